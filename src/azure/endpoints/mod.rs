//! Online endpoints, serverless endpoints and datastores over ARM: get an endpoint (auth mode and
//! URI, never a secret), `listKeys`, an online endpoint's `token`, and a datastore's `listSecrets`
//! (no request body). Errors name the resource, the missing action and a built-in role that has it;
//! parse errors never quote the body.

use reqwest::Method;
use serde_json::Value;

mod model;

pub use model::{DatastoreSecrets, Endpoint, EndpointKeys, EndpointToken, mode_is};
use model::{WireToken, datastore_secrets, endpoint_of_wire, keys_of_wire};

use super::arm::{WorkspaceRef, throttled_or_server};
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

#[cfg(test)]
mod tests;
