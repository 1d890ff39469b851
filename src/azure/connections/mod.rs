//! Azure ML workspace connections over ARM: list (paged, optional category filter), get, and
//! `listsecrets`, the only call that returns credentials. Errors name the connection, the missing
//! action and the built-in role that grants it.

pub mod model;

use reqwest::Method;

use super::arm::{WorkspaceRef, throttled_or_server};
use super::credential::Credential;
use super::error::{AzureError, Service};
use super::http::{Http, HttpResponse, endpoint_of};
use super::request::{CallError, ErrorBody, authorized};
pub use model::{Connection, ConnectionSecrets, Credentials};
use model::{WireConnection, WirePage};

/// The connections API version (stable; `listsecrets` is GA since 2024-04-01).
pub const CONNECTIONS_API_VERSION: &str = "2025-09-01";
/// The permission needed to list and get connections (no credentials).
pub const CONNECTIONS_READ: &str = "Microsoft.MachineLearningServices/workspaces/connections/read";
/// The permission needed to read a connection's credentials.
pub const LIST_SECRETS_ACTION: &str =
    "Microsoft.MachineLearningServices/workspaces/connections/listsecrets/action";
/// The least-privileged built-in role granting [`LIST_SECRETS_ACTION`].
pub const SECRETS_READER_ROLE: &str = "Azure Machine Learning Workspace Connection Secrets Reader";

const MAX_PAGES: usize = 100;

/// What a request is about, for classifying its errors.
struct Target<'a> {
    workspace: &'a WorkspaceRef,
    connection: Option<&'a str>,
    action: &'static str,
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn connection_path(ws: &WorkspaceRef, name: &str) -> String {
    format!("{}/connections/{name}", ws.resource_id())
}

async fn call(
    http: &Http,
    cred: &Credential,
    operation: &'static str,
    method: Method,
    url: &str,
    target: &Target<'_>,
) -> Result<HttpResponse, AzureError> {
    let cloud = cred.cloud();
    let resp = authorized(http, cred, &cloud.arm_scope(), operation, method, url, None)
        .await
        .map_err(|e| match e {
            CallError::Token(e) => e,
            CallError::Transport(t) => AzureError::Network {
                service: Service::Arm,
                endpoint: endpoint_of(url),
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
    let status = resp.status.as_u16();
    let workspace = target.workspace.resource_id();
    let resource = match target.connection {
        Some(c) => connection_path(target.workspace, c),
        None => format!("{workspace}/connections"),
    };
    match status {
        401 => AzureError::AuthenticationFailed {
            principal: cred.identity().to_string(),
            code: None,
            detail: format!(
                "Azure Resource Manager rejected the token ({}): {}",
                body.error.code,
                body.message_lines(1)
            ),
        },
        403 => {
            let grant = if target.action == LIST_SECRETS_ACTION {
                format!(
                    "assign the principal the built-in role '{SECRETS_READER_ROLE}' (or 'AzureML Data Scientist', or a custom role with this action) on the workspace"
                )
            } else {
                "assign the principal a role with connections/read (e.g. Reader or 'AzureML Data Scientist') on the workspace".to_string()
            };
            AzureError::Forbidden {
                principal: cred.identity().to_string(),
                action: target.action.to_string(),
                resource,
                model: None,
                detail: format!(
                    "{grant}. ARM said ({}): {}",
                    body.error.code,
                    body.message_lines(1)
                ),
            }
        }
        404 => match target.connection {
            Some(c)
                if !matches!(
                    body.error.code.as_str(),
                    "ResourceGroupNotFound" | "SubscriptionNotFound"
                ) =>
            {
                AzureError::ConnectionNotFound {
                    workspace,
                    connection: c.to_string(),
                    code: body.error.code.clone(),
                }
            }
            _ => AzureError::WorkspaceNotFound {
                workspace,
                code: body.error.code.clone(),
                detail: body.message_lines(1),
            },
        },
        _ => throttled_or_server(resp, &body),
    }
}

/// Parses a connection resource without letting a parser message quote the body.
fn parse<T: serde::de::DeserializeOwned>(resp: &HttpResponse, what: &str) -> Result<T, AzureError> {
    serde_json::from_slice(&resp.body).map_err(|e| AzureError::InvalidResponse {
        service: Service::Arm,
        detail: format!(
            "{what} is not a connection resource ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// Lists a workspace's connections (no credentials), following `nextLink`; `category` filters
/// server-side (e.g. `ContainerRegistry`).
pub async fn list_connections(
    http: &Http,
    cred: &Credential,
    ws: &WorkspaceRef,
    category: Option<&str>,
) -> Result<Vec<Connection>, AzureError> {
    let arm = &cred.cloud().resource_manager;
    let mut url = format!(
        "{arm}{}/connections?api-version={CONNECTIONS_API_VERSION}",
        ws.resource_id()
    );
    if let Some(c) = category {
        url.push_str(&format!("&category={}", encode(c)));
    }
    let origin = endpoint_of(&url);
    let target = Target {
        workspace: ws,
        connection: None,
        action: CONNECTIONS_READ,
    };
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = call(
            http,
            cred,
            "arm.connections.list",
            Method::GET,
            &url,
            &target,
        )
        .await?;
        let page: WirePage = parse(&resp, "a connection list page")?;
        out.extend(page.value.iter().map(WireConnection::connection));
        match page.next_link.filter(|l| !l.is_empty()) {
            None => return Ok(out),
            Some(next) if endpoint_of(&next) == origin => url = next,
            Some(next) => {
                // The token goes to Resource Manager only.
                return Err(AzureError::InvalidResponse {
                    service: Service::Arm,
                    detail: format!("nextLink points to another host ({})", endpoint_of(&next)),
                });
            }
        }
    }
    Err(AzureError::InvalidResponse {
        service: Service::Arm,
        detail: "too many pages of connections".into(),
    })
}

/// Gets one connection (no credentials).
pub async fn get_connection(
    http: &Http,
    cred: &Credential,
    ws: &WorkspaceRef,
    name: &str,
) -> Result<Connection, AzureError> {
    let url = format!(
        "{}{}?api-version={CONNECTIONS_API_VERSION}",
        cred.cloud().resource_manager,
        connection_path(ws, name)
    );
    let target = Target {
        workspace: ws,
        connection: Some(name),
        action: CONNECTIONS_READ,
    };
    let resp = call(
        http,
        cred,
        "arm.connections.get",
        Method::GET,
        &url,
        &target,
    )
    .await?;
    let wire: WireConnection = parse(&resp, "the connection")?;
    Ok(wire.connection())
}

/// Reads a connection with its credentials: `POST …/connections/{name}/listsecrets`, no body.
pub async fn list_connection_secrets(
    http: &Http,
    cred: &Credential,
    ws: &WorkspaceRef,
    name: &str,
) -> Result<ConnectionSecrets, AzureError> {
    let url = format!(
        "{}{}/listsecrets?api-version={CONNECTIONS_API_VERSION}",
        cred.cloud().resource_manager,
        connection_path(ws, name)
    );
    let target = Target {
        workspace: ws,
        connection: Some(name),
        action: LIST_SECRETS_ACTION,
    };
    let resp = call(
        http,
        cred,
        "arm.connections.listsecrets",
        Method::POST,
        &url,
        &target,
    )
    .await?;
    let wire: WireConnection = parse(&resp, "the listsecrets answer")?;
    Ok(wire.into_secrets())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("ContainerRegistry"), "ContainerRegistry");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn parse_errors_never_quote_the_body() {
        let resp = HttpResponse {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: br#"{"name": "c", "properties": {"credentials": "planted-xyz", "metadata": 5}}"#
                .to_vec(),
        };
        let Err(err) = parse::<WireConnection>(&resp, "the connection") else {
            panic!("a bad shape must not parse");
        };
        assert!(!err.to_string().contains("planted-xyz"), "{err}");
    }
}
