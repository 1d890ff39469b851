//! The REST model of online endpoints, serverless endpoints and datastores: the public shapes
//! (an endpoint's auth mode and URI, keys, a token, a datastore's credentials; `Debug` never shows a
//! value) and the wire shapes ARM answers with.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::azure::connections::Credentials;
use crate::azure::redact::SecretString;

/// An online or serverless endpoint as ARM describes it (no secret).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's name.
    pub name: String,
    /// `Key`, `AMLToken` or `AADToken` (online); `Key` or `AAD` (serverless), as ARM spells it.
    pub auth_mode: String,
    /// The scoring URI (online) or inference URI (serverless).
    pub uri: Option<String>,
    /// `systemData.lastModifiedAt` (RFC 3339).
    pub last_modified: Option<String>,
}

impl Endpoint {
    /// Tells whether the endpoint authenticates callers with keys.
    pub fn uses_keys(&self) -> bool {
        mode_is(&self.auth_mode, "Key")
    }

    /// Tells whether the endpoint authenticates callers with Azure ML tokens (`aml_token`).
    pub fn uses_aml_token(&self) -> bool {
        mode_is(&self.auth_mode, "AMLToken")
    }
}

/// Compares auth modes as the CLI and ARM spell them (`aml_token`, `AMLToken`).
pub fn mode_is(mode: &str, want: &str) -> bool {
    mode.replace('_', "").eq_ignore_ascii_case(want)
}

/// An endpoint's two keys; `Debug` never shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointKeys {
    /// The primary key.
    pub primary: Option<SecretString>,
    /// The secondary key.
    pub secondary: Option<SecretString>,
}

/// An `AMLToken` online endpoint's token; `Debug` never shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointToken {
    /// The token.
    pub access_token: SecretString,
    /// `tokenType` (e.g. `Bearer`).
    pub token_type: Option<String>,
    /// `expiryTimeUtc`, Unix seconds.
    pub expiry: Option<i64>,
    /// `refreshAfterTimeUtc`, Unix seconds.
    pub refresh_after: Option<i64>,
}

/// A datastore's credentials as `listSecrets` returns them.
#[derive(Clone, PartialEq, Eq)]
pub struct DatastoreSecrets {
    /// `secretsType`: `AccountKey`, `Sas`, `ServicePrincipal`, `Certificate`, `None`, … as ARM spells it.
    pub secrets_type: String,
    /// The credential fields (`key`, `sasToken`, `clientSecret`, `certificate`, …).
    pub credentials: Credentials,
}

impl fmt::Debug for DatastoreSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatastoreSecrets")
            .field("secrets_type", &self.secrets_type)
            .field("credentials", &self.credentials)
            .finish()
    }
}

#[derive(Deserialize, Default)]
pub(super) struct WireEndpoint {
    #[serde(default)]
    name: String,
    #[serde(default)]
    properties: WireEndpointProperties,
    #[serde(default, rename = "systemData")]
    system_data: Option<WireSystemData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireEndpointProperties {
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    scoring_uri: Option<String>,
    #[serde(default)]
    inference_endpoint: Option<WireInference>,
}

#[derive(Deserialize, Default)]
pub(super) struct WireInference {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireSystemData {
    #[serde(default)]
    last_modified_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireKeys {
    #[serde(default)]
    primary_key: Option<String>,
    #[serde(default)]
    secondary_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireToken {
    #[serde(default)]
    pub(super) access_token: Option<String>,
    #[serde(default)]
    pub(super) token_type: Option<String>,
    #[serde(default)]
    pub(super) expiry_time_utc: Option<i64>,
    #[serde(default)]
    pub(super) refresh_after_time_utc: Option<i64>,
}

pub(super) fn endpoint_of_wire(wire: WireEndpoint) -> Endpoint {
    let p = wire.properties;
    Endpoint {
        name: wire.name,
        auth_mode: p.auth_mode.unwrap_or_default(),
        uri: p
            .scoring_uri
            .or(p.inference_endpoint.and_then(|i| i.uri))
            .filter(|u| !u.is_empty()),
        last_modified: wire.system_data.and_then(|s| s.last_modified_at),
    }
}

pub(super) fn keys_of_wire(wire: WireKeys) -> EndpointKeys {
    EndpointKeys {
        primary: wire.primary_key.map(SecretString::new),
        secondary: wire.secondary_key.map(SecretString::new),
    }
}

/// Splits a `listSecrets` answer into its type and credential fields.
pub(super) fn datastore_secrets(wire: &Value) -> DatastoreSecrets {
    let secrets_type = wire
        .get("secretsType")
        .and_then(Value::as_str)
        .unwrap_or("None")
        .to_string();
    let mut fields = wire.clone();
    if let Some(map) = fields.as_object_mut() {
        map.remove("secretsType");
    }
    DatastoreSecrets {
        credentials: Credentials::parse(&secrets_type, Some(&fields)),
        secrets_type,
    }
}
