//! The Key Vault secrets data plane (api-version 2025-07-01): get, list with paging, versions, set, delete.

use reqwest::Method;

mod model;
pub mod write;

pub use model::{DeletedSecret, NewSecret, Secret, SecretListing, SecretProperties, split_id};
use model::{Item, Page};

use crate::azure::credential::Credential;
use crate::azure::error::{AzureError, Service, VaultPermissionModel};
use crate::azure::http::{Http, HttpResponse, endpoint_of, retry_after};
use crate::azure::request::{CallError, ErrorBody, authorized};

/// The data-plane API version used.
pub const API_VERSION: &str = "2025-07-01";
/// The page size asked for when listing.
pub const PAGE_SIZE: u32 = 25;
/// The most pages followed in one listing.
const MAX_PAGES: usize = 10_000;

fn base(vault: &str) -> &str {
    vault.trim_end_matches('/')
}

/// What a call was about, to classify its errors.
struct Op<'a> {
    name: &'static str,
    vault: &'a str,
    secret: Option<&'a str>,
    version: Option<&'a str>,
    rbac_action: &'static str,
    policy_permission: &'static str,
}

async fn call(
    http: &Http,
    cred: &Credential,
    op: &Op<'_>,
    method: Method,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<HttpResponse, AzureError> {
    let scope = cred.cloud().key_vault_scope();
    let resp = authorized(http, cred, &scope, op.name, method, url, body)
        .await
        .map_err(|e| match e {
            CallError::Token(e) => e,
            CallError::Transport(t) => AzureError::VaultUnreachable {
                vault: endpoint_of(op.vault),
                failure: t.failure,
                detail: t.detail,
            },
        })?;
    if resp.status.is_success() {
        return Ok(resp);
    }
    Err(classify(cred, op, &resp))
}

fn classify(cred: &Credential, op: &Op<'_>, resp: &HttpResponse) -> AzureError {
    let status = resp.status.as_u16();
    let body = ErrorBody::parse(resp);
    let principal = cred.identity().to_string();
    let vault = base(op.vault).to_string();
    match status {
        401 => {
            let challenge = resp
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>();
            let advice = if cred.is_pre_issued() {
                "whoever issues the pre-issued tokens must put a valid, unexpired token for this vault's audience (see the challenge) into the Secret's Key Vault token key"
            } else {
                "check that the vault is in the identity's tenant and cloud"
            };
            AzureError::AuthenticationFailed {
                principal,
                code: None,
                detail: format!(
                    "Key Vault rejected the token ({}); {advice}. The vault's challenge: {challenge}",
                    service_said(401, &body)
                ),
            }
        }
        403 if body.inner_code() == "SecretDisabled" || body.error.code == "SecretDisabled" => {
            AzureError::SecretDisabled {
                vault,
                name: op.secret.unwrap_or_default().to_string(),
            }
        }
        403 => {
            let rbac = body.inner_code() == "ForbiddenByRbac";
            let (model, action, advice) = if rbac {
                (
                    VaultPermissionModel::Rbac,
                    op.rbac_action.to_string(),
                    "this vault uses Azure RBAC: assign the principal a role with this data action on the vault (e.g. 'Key Vault Secrets User' to read)",
                )
            } else {
                (
                    VaultPermissionModel::AccessPolicy,
                    format!("secrets {}", op.policy_permission),
                    "this vault uses access policies: add an access policy for the principal granting this secret permission",
                )
            };
            AzureError::Forbidden {
                principal,
                action,
                resource: vault,
                model: Some(model),
                detail: format!("{advice}. Key Vault said: {}", body.message_lines(1)),
            }
        }
        404 if op.secret.is_some() => AzureError::SecretNotFound {
            vault,
            name: op.secret.unwrap_or_default().to_string(),
            version: op.version.map(str::to_string),
        },
        429 => AzureError::Throttled {
            service: Service::KeyVault,
            retry_after: retry_after(&resp.headers),
        },
        _ => AzureError::Server {
            service: Service::KeyVault,
            status,
            code: body.error.code.clone(),
            detail: body.message_lines(2),
        },
    }
}

fn op<'a>(
    name: &'static str,
    vault: &'a str,
    secret: Option<&'a str>,
    version: Option<&'a str>,
) -> Op<'a> {
    let (rbac_action, policy_permission) = match name {
        "keyvault.get" => ("Microsoft.KeyVault/vaults/secrets/getSecret/action", "get"),
        "keyvault.set" => ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "set"),
        "keyvault.delete" => ("Microsoft.KeyVault/vaults/secrets/delete", "delete"),
        _ => (
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            "list",
        ),
    };
    Op {
        name,
        vault,
        secret,
        version,
        rbac_action,
        policy_permission,
    }
}

fn secret_url(vault: &str, name: &str, suffix: &str) -> String {
    format!(
        "{}/secrets/{}{}?api-version={API_VERSION}",
        base(vault),
        name,
        suffix
    )
}

/// Gets a secret's value: the latest version, or the given one.
pub async fn get_secret(
    http: &Http,
    cred: &Credential,
    vault: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Secret, AzureError> {
    let suffix = version.map(|v| format!("/{v}")).unwrap_or_default();
    let o = op("keyvault.get", vault, Some(name), version);
    let resp = call(
        http,
        cred,
        &o,
        Method::GET,
        &secret_url(vault, name, &suffix),
        None,
    )
    .await?;
    let item: Item = resp.json(Service::KeyVault)?;
    let properties = item.properties();
    let value = item.value.ok_or_else(|| AzureError::InvalidResponse {
        service: Service::KeyVault,
        detail: "the secret has no value".into(),
    })?;
    Ok(Secret {
        properties,
        value: value.into(),
    })
}

async fn list_pages(
    http: &Http,
    cred: &Credential,
    o: &Op<'_>,
    first: String,
) -> Result<Vec<SecretProperties>, AzureError> {
    let origin = endpoint_of(o.vault);
    let mut out = Vec::new();
    let mut url = first;
    for _ in 0..MAX_PAGES {
        let resp = call(http, cred, o, Method::GET, &url, None).await?;
        let page: Page = resp.json(Service::KeyVault)?;
        out.extend(page.value.iter().map(Item::properties));
        match page.next_link.filter(|l| !l.is_empty()) {
            None => return Ok(out),
            Some(next) => {
                // Never send the token anywhere but the vault.
                if endpoint_of(&next) != origin && endpoint_of(&next).replace(":443", "") != origin
                {
                    return Err(AzureError::InvalidResponse {
                        service: Service::KeyVault,
                        detail: format!("nextLink points to another host ({})", endpoint_of(&next)),
                    });
                }
                url = next;
            }
        }
    }
    Err(AzureError::InvalidResponse {
        service: Service::KeyVault,
        detail: "too many pages".into(),
    })
}

/// Lists the properties of every secret of a vault (no values), following `nextLink` verbatim.
pub async fn list_secret_properties(
    http: &Http,
    cred: &Credential,
    vault: &str,
) -> Result<Vec<SecretProperties>, AzureError> {
    let url = format!(
        "{}/secrets?api-version={API_VERSION}&maxresults={PAGE_SIZE}",
        base(vault)
    );
    list_pages(http, cred, &op("keyvault.list", vault, None, None), url).await
}

/// Lists the versions of one secret (no values).
pub async fn list_secret_versions(
    http: &Http,
    cred: &Credential,
    vault: &str,
    name: &str,
) -> Result<Vec<SecretProperties>, AzureError> {
    let url = format!(
        "{}/secrets/{name}/versions?api-version={API_VERSION}&maxresults={PAGE_SIZE}",
        base(vault)
    );
    list_pages(
        http,
        cred,
        &op("keyvault.versions", vault, Some(name), None),
        url,
    )
    .await
}

/// Writes a secret, creating a new version.
pub async fn set_secret(
    http: &Http,
    cred: &Credential,
    vault: &str,
    name: &str,
    secret: &NewSecret,
) -> Result<Secret, AzureError> {
    let mut body = serde_json::json!({ "value": secret.value.expose() });
    if let Some(ct) = &secret.content_type {
        body["contentType"] = ct.clone().into();
    }
    if !secret.tags.is_empty() {
        body["tags"] = serde_json::to_value(&secret.tags).unwrap_or_default();
    }
    if let Some(enabled) = secret.enabled {
        body["attributes"] = serde_json::json!({ "enabled": enabled });
    }
    let o = op("keyvault.set", vault, Some(name), None);
    let resp = call(
        http,
        cred,
        &o,
        Method::PUT,
        &secret_url(vault, name, ""),
        Some(&body),
    )
    .await?;
    let item: Item = resp.json(Service::KeyVault)?;
    Ok(Secret {
        properties: item.properties(),
        value: item.value.unwrap_or_default().into(),
    })
}

/// Deletes a secret (soft delete on most vaults).
pub async fn delete_secret(
    http: &Http,
    cred: &Credential,
    vault: &str,
    name: &str,
) -> Result<DeletedSecret, AzureError> {
    let o = op("keyvault.delete", vault, Some(name), None);
    let resp = call(
        http,
        cred,
        &o,
        Method::DELETE,
        &secret_url(vault, name, ""),
        None,
    )
    .await?;
    let item: Item = resp.json(Service::KeyVault)?;
    Ok(DeletedSecret {
        properties: item.properties(),
        recovery_id: item.recovery_id.clone(),
        scheduled_purge_date: item.scheduled_purge_date,
    })
}

/// Formats what the service said in an error answer: `401 Unauthorized: AKV10032: Invalid issuer.`
fn service_said(status: u16, body: &ErrorBody) -> String {
    let message = body.message_lines(1);
    match (body.error.code.as_str(), message.as_str()) {
        ("", "") => status.to_string(),
        (code, "") => format!("{status} {code}"),
        ("", message) => format!("{status}: {message}"),
        (code, message) => format!("{status} {code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_into_name_and_version() {
        assert_eq!(
            split_id(
                "https://myvault.vault.azure.net/secrets/mysecretname/4387e9f3d6e14c459867679a90fd0f79"
            ),
            (
                "mysecretname".into(),
                Some("4387e9f3d6e14c459867679a90fd0f79".into())
            )
        );
        assert_eq!(
            split_id("https://127.0.0.1:8443/secrets/listsecrettest0"),
            ("listsecrettest0".into(), None)
        );
    }

    #[test]
    fn microsoft_examples_parse_into_properties() {
        let page: Page = serde_json::from_str(
            r#"{"value":[{"contentType":"plainText","id":"https://myvault.vault.azure.net/secrets/listsecrettest0","attributes":{"enabled":true,"created":1482189047,"updated":1482189047}}],"nextLink":"https://myvault.vault.azure.net:443/secrets?api-version=7.2&$skiptoken=x&maxresults=1"}"#,
        )
        .unwrap();
        let p = page.value[0].properties();
        assert_eq!(p.name, "listsecrettest0");
        assert_eq!(p.content_type.as_deref(), Some("plainText"));
        assert!(p.enabled && p.version.is_none());
        assert_eq!(
            endpoint_of(page.next_link.as_deref().unwrap()),
            "https://myvault.vault.azure.net"
        );
    }

    #[test]
    fn secret_debug_redacts_the_value() {
        let s = Secret {
            properties: SecretProperties::default(),
            value: "v@lue".into(),
        };
        assert!(!format!("{s:?}").contains("v@lue"));
    }
}
