//! Workspace connections as ARM describes them, and their credentials parsed by `authType` into an
//! opaque map of fields whose values never show in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::azure::redact::SecretString;

/// Auth types that authenticate with an identity and carry no secret.
const IDENTITY_ONLY: &[&str] = &["AAD", "None"];

/// A workspace connection without its credentials (what list and get return).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// The connection's name.
    pub name: String,
    /// Its ARM id.
    pub resource_id: String,
    /// `ApiKey`, `CustomKeys`, `AccessKey`, `PAT`, `UsernamePassword`, … (kept as ARM spells it).
    pub auth_type: String,
    /// `AzureOpenAI`, `CognitiveSearch`, `ContainerRegistry`, `CustomKeys`, `S3`, … (opaque).
    pub category: String,
    /// `properties.target`: the endpoint, registry or URL the connection points to.
    pub target: Option<String>,
    /// `properties.metadata`, values as strings.
    pub metadata: BTreeMap<String, String>,
    /// `properties.expiryTime` (RFC 3339), when the credentials expire.
    pub expiry_time: Option<String>,
    /// `systemData.lastModifiedAt` (RFC 3339).
    pub last_modified: Option<String>,
}

impl Connection {
    /// Tells whether the connection authenticates with an identity only (AAD, None): no secret.
    pub fn is_identity_only(&self) -> bool {
        IDENTITY_ONLY
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&self.auth_type))
    }

    /// Returns `authType/category`, as status shows it.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.auth_type, self.category)
    }

    /// Tells whether the connection is of `category` (compared case-insensitively).
    pub fn is_category(&self, category: &str) -> bool {
        self.category.eq_ignore_ascii_case(category)
    }
}

/// The credential fields of a connection: `key` for ApiKey, each custom key for CustomKeys,
/// `accessKeyId`/`secretAccessKey` for AccessKey, and so on; unknown shapes are flattened with
/// `.` between nesting levels. `Debug` shows the field names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    fields: BTreeMap<String, SecretString>,
}

impl Credentials {
    /// Builds credentials from field names and values.
    pub fn from_fields<K: Into<String>, V: Into<SecretString>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Credentials {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns one field; for CustomKeys also under its wire path `keys.<name>`.
    pub fn get(&self, field: &str) -> Option<&SecretString> {
        self.fields
            .get(field)
            .or_else(|| self.fields.get(field.strip_prefix("keys.")?))
    }

    /// Returns the field names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Returns the fields and their values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Tells whether there is no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Parses `properties.credentials` for an auth type: CustomKeys' `keys` object is lifted to the
    /// top; every other shape (known or not) becomes its scalar leaves. Identity-only auth types
    /// yield nothing.
    pub fn parse(auth_type: &str, credentials: Option<&Value>) -> Self {
        let mut out = Credentials::default();
        if IDENTITY_ONLY
            .iter()
            .any(|t| t.eq_ignore_ascii_case(auth_type))
        {
            return out;
        }
        let Some(Value::Object(map)) = credentials else {
            return out;
        };
        for (k, v) in map {
            let lift = auth_type.eq_ignore_ascii_case("CustomKeys") && k == "keys";
            let prefix = if lift { String::new() } else { k.clone() };
            out.flatten(&prefix, v);
        }
        out
    }

    fn flatten(&mut self, path: &str, v: &Value) {
        let leaf = match v {
            Value::Null => return,
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) | Value::Array(_) => v.to_string(),
            Value::Object(map) => {
                for (k, inner) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.flatten(&p, inner);
                }
                return;
            }
        };
        if !path.is_empty() {
            self.fields
                .insert(path.to_string(), SecretString::new(leaf));
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// A connection with its credentials, as `listsecrets` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionSecrets {
    /// The connection.
    pub connection: Connection,
    /// Its credentials (empty for identity-only connections).
    pub credentials: Credentials,
}

/// The wire shape of a connection resource.
#[derive(Deserialize)]
pub(crate) struct WireConnection {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    properties: WireProperties,
    #[serde(default, rename = "systemData")]
    system_data: Option<WireSystemData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireProperties {
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    expiry_time: Option<String>,
    /// Kept as a raw value so that a surprise shape can never become an error message quoting it.
    #[serde(default)]
    credentials: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSystemData {
    #[serde(default)]
    last_modified_at: Option<String>,
}

/// A page of the connection list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePage {
    #[serde(default)]
    pub value: Vec<WireConnection>,
    #[serde(default)]
    pub next_link: Option<String>,
}

impl WireConnection {
    /// Returns the connection without credentials.
    pub(crate) fn connection(&self) -> Connection {
        let p = &self.properties;
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Connection {
            name: self.name.clone(),
            resource_id: self.id.clone(),
            auth_type: p.auth_type.clone().unwrap_or_else(|| "None".into()),
            category: p.category.clone().unwrap_or_default(),
            target: p.target.clone(),
            metadata: p
                .metadata
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
            expiry_time: p.expiry_time.clone().filter(|s| !s.is_empty()),
            last_modified: self
                .system_data
                .as_ref()
                .and_then(|s| s.last_modified_at.clone()),
        }
    }

    /// Returns the connection with its credentials parsed by auth type.
    pub(crate) fn into_secrets(self) -> ConnectionSecrets {
        let connection = self.connection();
        let credentials =
            Credentials::parse(&connection.auth_type, self.properties.credentials.as_ref());
        ConnectionSecrets {
            connection,
            credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(c: &Credentials) -> Vec<&str> {
        c.names().collect()
    }

    #[test]
    fn each_auth_type_parses_into_its_fields() {
        let cases = [
            ("ApiKey", json!({"key": "k"}), vec!["key"]),
            (
                "CustomKeys",
                json!({"keys": {"a": "1", "b-2": "2"}}),
                vec!["a", "b-2"],
            ),
            (
                "AccessKey",
                json!({"accessKeyId": "i", "secretAccessKey": "s"}),
                vec!["accessKeyId", "secretAccessKey"],
            ),
            ("AccountKey", json!({"key": "k"}), vec!["key"]),
            ("PAT", json!({"pat": "p"}), vec!["pat"]),
            ("SAS", json!({"sas": "s"}), vec!["sas"]),
            (
                "UsernamePassword",
                json!({"username": "u", "password": "p", "securityToken": null}),
                vec!["password", "username"],
            ),
            (
                "ServicePrincipal",
                json!({"clientId": "c", "clientSecret": "s", "tenantId": "t"}),
                vec!["clientId", "clientSecret", "tenantId"],
            ),
            (
                "OAuth2",
                json!({"clientId": "c", "clientSecret": "s", "authUrl": "u"}),
                vec!["authUrl", "clientId", "clientSecret"],
            ),
            (
                "ManagedIdentity",
                json!({"clientId": "c", "resourceId": "r"}),
                vec!["clientId", "resourceId"],
            ),
            ("AAD", json!({"ignored": "x"}), vec![]),
            ("None", json!(null), vec![]),
        ];
        for (auth, creds, want) in cases {
            let c = Credentials::parse(auth, Some(&creds));
            assert_eq!(names(&c), want, "{auth}");
        }
    }

    #[test]
    fn unknown_auth_types_become_flattened_opaque_maps() {
        let c = Credentials::parse(
            "FancyNewAuth",
            Some(&json!({"token": "t", "nested": {"a": "x", "n": 3}, "flag": true})),
        );
        assert_eq!(names(&c), ["flag", "nested.a", "nested.n", "token"]);
        assert_eq!(c.get("nested.n").unwrap().expose(), "3");
    }

    #[test]
    fn custom_keys_are_found_with_or_without_the_keys_prefix() {
        let c = Credentials::parse("CustomKeys", Some(&json!({"keys": {"endpoint-key": "v"}})));
        assert_eq!(c.get("endpoint-key").unwrap().expose(), "v");
        assert_eq!(c.get("keys.endpoint-key").unwrap().expose(), "v");
        assert!(c.get("other").is_none());
    }

    #[test]
    fn debug_shows_field_names_but_never_values() {
        let c = Credentials::parse("ApiKey", Some(&json!({"key": "planted-abc"})));
        let text = format!(
            "{:?}",
            ConnectionSecrets {
                credentials: c,
                ..Default::default()
            }
        );
        assert!(
            text.contains("key") && !text.contains("planted-abc"),
            "{text}"
        );
    }

    #[test]
    fn microsoft_list_secrets_example_parses() {
        let raw: WireConnection = serde_json::from_value(json!({
            "name": "connection-1",
            "type": "Microsoft.MachineLearningServices/workspaces/connections",
            "id": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/connections/connection-1",
            "properties": {"authType": "AccessKey", "category": "CustomKeys",
                "credentials": {"accessKeyId": "some_string", "secretAccessKey": "some_string"},
                "expiryTime": "2020-01-01T00:00:00Z", "metadata": {}, "target": "some_string"},
            "systemData": {"createdAt": "2020-01-01T00:00:00Z", "lastModifiedAt": "2020-01-01T00:00:00Z"}
        }))
        .unwrap();
        let s = raw.into_secrets();
        assert_eq!(s.connection.kind(), "AccessKey/CustomKeys");
        assert_eq!(
            s.connection.expiry_time.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(
            s.connection.last_modified.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(names(&s.credentials), ["accessKeyId", "secretAccessKey"]);
        assert!(!s.connection.is_identity_only());
    }
}
