//! Online endpoints, serverless endpoints and datastores over ARM: get an endpoint (auth mode and
//! URI, never a secret), `listKeys`, an online endpoint's `token`, and a datastore's `listSecrets`
//! (no request body). Errors name the resource, the missing action and a built-in role that has it;
//! parse errors never quote the body.

use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::arm::{WorkspaceRef, throttled_or_server};
use super::connections::Credentials;
use super::credential::Credential;
use super::error::{AzureError, Service};
use super::http::{Http, HttpResponse, endpoint_of};
use super::redact::SecretString;
use super::request::{CallError, ErrorBody, authorized};
use crate::api::ResourceKind;

/// The API version of every call here: a stable version with online endpoint `token`, serverless
/// endpoint `listKeys` and datastore `listSecrets` (no request body), whose examples the fakes
/// follow.
pub const ENDPOINTS_API_VERSION: &str = "2025-12-01";
/// The built-in role that grants every action below (and Reader's reads).
pub const ENDPOINT_SECRETS_ROLE: &str = "AzureML Data Scientist";

/// The permission to read an online endpoint (auth mode, scoring URI).
pub const ONLINE_READ: &str = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read";
/// The permission to list an online endpoint's keys.
pub const ONLINE_LIST_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action";
/// The permission to get an online endpoint's token.
pub const ONLINE_TOKEN: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/token/action";
/// The permission to read a serverless endpoint (auth mode, URI).
pub const SERVERLESS_READ: &str =
    "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/read";
/// The permission to list a serverless endpoint's keys.
pub const SERVERLESS_LIST_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/listKeys/action";
/// The permission to read a datastore's credentials.
pub const DATASTORE_LIST_SECRETS: &str =
    "Microsoft.MachineLearningServices/workspaces/datastores/listSecrets/action";

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
struct WireEndpoint {
    #[serde(default)]
    name: String,
    #[serde(default)]
    properties: WireEndpointProperties,
    #[serde(default, rename = "systemData")]
    system_data: Option<WireSystemData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireEndpointProperties {
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    scoring_uri: Option<String>,
    #[serde(default)]
    inference_endpoint: Option<WireInference>,
}

#[derive(Deserialize, Default)]
struct WireInference {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSystemData {
    #[serde(default)]
    last_modified_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKeys {
    #[serde(default)]
    primary_key: Option<String>,
    #[serde(default)]
    secondary_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expiry_time_utc: Option<i64>,
    #[serde(default)]
    refresh_after_time_utc: Option<i64>,
}

/// What a request is about, for its URL and for classifying its errors.
struct Target<'a> {
    workspace: &'a WorkspaceRef,
    kind: ResourceKind,
    name: &'a str,
    action: &'static str,
}

impl Target<'_> {
    fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.workspace.resource_id(),
            self.kind.segment(),
            self.name
        )
    }
}

async fn call(
    http: &Http,
    cred: &Credential,
    operation: &'static str,
    method: Method,
    target: &Target<'_>,
    suffix: &str,
) -> Result<HttpResponse, AzureError> {
    let url = format!(
        "{}{}{suffix}?api-version={ENDPOINTS_API_VERSION}",
        cred.cloud().resource_manager,
        target.path()
    );
    let scope = cred.cloud().arm_scope();
    let resp = authorized(http, cred, &scope, operation, method, &url, None)
        .await
        .map_err(|e| match e {
            CallError::Token(e) => e,
            CallError::Transport(t) => AzureError::Network {
                service: Service::Arm,
                endpoint: endpoint_of(&url),
                failure: t.failure,
                detail: t.detail,
            },
        })?;
    if resp.status.is_success() {
        return Ok(resp);
    }
    Err(classify(cred, &resp, target))
}

fn classify(cred: &Credential, resp: &HttpResponse, target: &Target<'_>) -> AzureError {
    let body = ErrorBody::parse(resp);
    let workspace = target.workspace.resource_id();
    match resp.status.as_u16() {
        401 => AzureError::AuthenticationFailed {
            principal: cred.identity().to_string(),
            code: None,
            detail: format!(
                "Azure Resource Manager rejected the token ({}): {}",
                body.error.code,
                body.message_lines(1)
            ),
        },
        403 => AzureError::Forbidden {
            principal: cred.identity().to_string(),
            action: target.action.to_string(),
            resource: target.path(),
            model: None,
            detail: format!(
                "assign the principal the built-in role '{ENDPOINT_SECRETS_ROLE}' (or a custom role with this action) on the workspace or project. ARM said ({}): {}",
                body.error.code,
                body.message_lines(1)
            ),
        },
        404 if !matches!(
            body.error.code.as_str(),
            "ResourceGroupNotFound" | "SubscriptionNotFound"
        ) =>
        {
            AzureError::ResourceNotFound {
                workspace,
                kind: target.kind.noun().to_string(),
                name: target.name.to_string(),
                code: body.error.code.clone(),
            }
        }
        404 => AzureError::WorkspaceNotFound {
            workspace,
            code: body.error.code.clone(),
            detail: body.message_lines(1),
        },
        _ => throttled_or_server(resp, &body),
    }
}

/// Parses an answer without letting a parser message quote the body.
fn parse<T: serde::de::DeserializeOwned>(resp: &HttpResponse, what: &str) -> Result<T, AzureError> {
    serde_json::from_slice(&resp.body).map_err(|e| AzureError::InvalidResponse {
        service: Service::Arm,
        detail: format!(
            "{what} has an unexpected shape ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn endpoint_of_wire(wire: WireEndpoint) -> Endpoint {
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

fn keys_of_wire(wire: WireKeys) -> EndpointKeys {
    EndpointKeys {
        primary: wire.primary_key.map(SecretString::new),
        secondary: wire.secondary_key.map(SecretString::new),
    }
}

/// Gets an online endpoint (auth mode, scoring URI): `GET …/onlineEndpoints/{name}`.
pub async fn get_online_endpoint(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<Endpoint, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::OnlineEndpoint,
        name,
        action: ONLINE_READ,
    };
    let resp = call(
        http,
        cred,
        "arm.onlineEndpoints.get",
        Method::GET,
        &target,
        "",
    )
    .await?;
    Ok(endpoint_of_wire(parse(&resp, "the online endpoint")?))
}

/// Lists an online endpoint's keys: `POST …/onlineEndpoints/{name}/listKeys`.
pub async fn list_online_endpoint_keys(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<EndpointKeys, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::OnlineEndpoint,
        name,
        action: ONLINE_LIST_KEYS,
    };
    let op = "arm.onlineEndpoints.listKeys";
    let resp = call(http, cred, op, Method::POST, &target, "/listKeys").await?;
    Ok(keys_of_wire(parse(&resp, "the listKeys answer")?))
}

/// Gets an `AMLToken` online endpoint's token: `POST …/onlineEndpoints/{name}/token`.
pub async fn get_online_endpoint_token(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<EndpointToken, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::OnlineEndpoint,
        name,
        action: ONLINE_TOKEN,
    };
    let op = "arm.onlineEndpoints.token";
    let resp = call(http, cred, op, Method::POST, &target, "/token").await?;
    let wire: WireToken = parse(&resp, "the token answer")?;
    let access_token =
        wire.access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AzureError::InvalidResponse {
                service: Service::Arm,
                detail: format!("the token answer of online endpoint {name} has no accessToken"),
            })?;
    Ok(EndpointToken {
        access_token: SecretString::new(access_token),
        token_type: wire.token_type,
        expiry: wire.expiry_time_utc.filter(|t| *t > 0),
        refresh_after: wire.refresh_after_time_utc.filter(|t| *t > 0),
    })
}

/// Gets a serverless endpoint (auth mode, inference URI): `GET …/serverlessEndpoints/{name}`.
pub async fn get_serverless_endpoint(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<Endpoint, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::ServerlessEndpoint,
        name,
        action: SERVERLESS_READ,
    };
    let op = "arm.serverlessEndpoints.get";
    let resp = call(http, cred, op, Method::GET, &target, "").await?;
    Ok(endpoint_of_wire(parse(&resp, "the serverless endpoint")?))
}

/// Lists a serverless endpoint's keys: `POST …/serverlessEndpoints/{name}/listKeys`.
pub async fn list_serverless_endpoint_keys(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<EndpointKeys, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::ServerlessEndpoint,
        name,
        action: SERVERLESS_LIST_KEYS,
    };
    let op = "arm.serverlessEndpoints.listKeys";
    let resp = call(http, cred, op, Method::POST, &target, "/listKeys").await?;
    Ok(keys_of_wire(parse(&resp, "the listKeys answer")?))
}

/// Reads a datastore's credentials: `POST …/datastores/{name}/listSecrets` (no body in the stable
/// API). Known shapes: `AccountKey {key}`, `Sas {sasToken}`, `ServicePrincipal {clientSecret}`,
/// `Certificate {certificate}`; others become their scalar fields; `None` carries nothing.
pub async fn list_datastore_secrets(
    http: &Http,
    cred: &Credential,
    workspace: &WorkspaceRef,
    name: &str,
) -> Result<DatastoreSecrets, AzureError> {
    let target = Target {
        workspace,
        kind: ResourceKind::Datastore,
        name,
        action: DATASTORE_LIST_SECRETS,
    };
    let op = "arm.datastores.listSecrets";
    let resp = call(http, cred, op, Method::POST, &target, "/listSecrets").await?;
    let wire: Value = parse(&resp, "the listSecrets answer")?;
    Ok(datastore_secrets(&wire))
}

/// Splits a `listSecrets` answer into its type and credential fields.
fn datastore_secrets(wire: &Value) -> DatastoreSecrets {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resp(body: Value) -> HttpResponse {
        HttpResponse {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn microsoft_examples_parse() {
        // OnlineEndpoint_getToken.json: the times are integers (Unix seconds).
        let t: WireToken = parse(
            &resp(json!({"accessToken": "string", "expiryTimeUtc": 1, "refreshAfterTimeUtc": 1, "tokenType": "string"})),
            "t",
        )
        .unwrap();
        assert_eq!(t.expiry_time_utc, Some(1));
        // OnlineEndpoint_listKeys.json
        let k = keys_of_wire(
            parse(
                &resp(json!({"primaryKey": "string", "secondaryKey": "string"})),
                "k",
            )
            .unwrap(),
        );
        assert_eq!(k.primary.unwrap().expose(), "string");
        // OnlineEndpoint/get.json and ServerlessEndpoint/get.json
        let online = endpoint_of_wire(parse(&resp(json!({"id": "string", "name": "string", "properties": {"scoringUri": "https://www.contoso.com/example", "authMode": "AMLToken", "provisioningState": "Creating"}, "systemData": {"lastModifiedAt": "2020-01-01T12:34:56.999Z"}})), "e").unwrap());
        assert!(online.uses_aml_token() && !online.uses_keys());
        assert_eq!(
            online.uri.as_deref(),
            Some("https://www.contoso.com/example")
        );
        let serverless = endpoint_of_wire(parse(&resp(json!({"name": "string", "properties": {"authMode": "Key", "inferenceEndpoint": {"headers": {"string": "string"}, "uri": "https://www.contoso.com/example"}}})), "e").unwrap());
        assert!(serverless.uses_keys());
        assert_eq!(
            serverless.uri.as_deref(),
            Some("https://www.contoso.com/example")
        );
        // Datastore_listSecrets.json
        let d = datastore_secrets(&json!({"secretsType": "AccountKey", "key": "string"}));
        assert_eq!(d.secrets_type, "AccountKey");
        assert_eq!(d.credentials.names().collect::<Vec<_>>(), ["key"]);
    }

    #[test]
    fn each_datastore_secrets_type_has_its_fields_and_none_has_none() {
        let cases = [
            (
                json!({"secretsType": "Sas", "sasToken": "s"}),
                vec!["sasToken"],
            ),
            (
                json!({"secretsType": "ServicePrincipal", "clientSecret": "c"}),
                vec!["clientSecret"],
            ),
            (
                json!({"secretsType": "Certificate", "certificate": "c"}),
                vec!["certificate"],
            ),
            (json!({"secretsType": "None"}), vec![]),
            (
                json!({"secretsType": "KerberosPassword", "kerberosPassword": "p"}),
                vec!["kerberosPassword"],
            ),
        ];
        for (wire, want) in cases {
            let d = datastore_secrets(&wire);
            assert_eq!(d.credentials.names().collect::<Vec<_>>(), want, "{wire}");
        }
    }

    #[test]
    fn auth_modes_compare_like_the_cli_writes_them() {
        assert!(mode_is("aml_token", "AMLToken"));
        assert!(mode_is("key", "Key"));
        assert!(!mode_is("AADToken", "AMLToken"));
    }

    #[test]
    fn parse_errors_and_debug_never_show_values() {
        let Err(err) = parse::<WireToken>(&resp(json!({"accessToken": ["planted-xyz"]})), "t")
        else {
            panic!("a bad shape must not parse");
        };
        assert!(!err.to_string().contains("planted-xyz"), "{err}");
        let d = datastore_secrets(&json!({"secretsType": "Sas", "sasToken": "planted-sas"}));
        assert!(!format!("{d:?}").contains("planted-sas"));
    }
}
