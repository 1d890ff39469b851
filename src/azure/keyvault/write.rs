//! Writing for `WorkspaceSecretPush`: a PUT of a secret with its validity (`exp`, `nbf`),
//! content type and tags, the soft-delete conflict (409 `ObjectIsDeletedButRecoverable`) told
//! apart from other errors, and 403 hints that name the permission a writer needs.

use std::collections::BTreeMap;

use reqwest::Method;

use super::model::Item;
use super::{Secret, classify, op, secret_url};
use crate::azure::credential::Credential;
use crate::azure::error::{AzureError, Service, VaultPermissionModel};
use crate::azure::http::{Http, endpoint_of};
use crate::azure::redact::SecretString;
use crate::azure::request::{CallError, ErrorBody, authorized};

/// The error code Key Vault gives a PUT of a name that is soft-deleted.
pub const DELETED_BUT_RECOVERABLE: &str = "ObjectIsDeletedButRecoverable";

/// A secret version to write with everything a push sets.
#[derive(Clone, Debug, Default)]
pub struct PushedSecret {
    /// The value (redacted in `Debug`).
    pub value: SecretString,
    /// The content type, if any.
    pub content_type: Option<String>,
    /// Every tag of the new version (the user's and the ownership tags).
    pub tags: BTreeMap<String, String>,
    /// Not valid before (Unix seconds).
    pub not_before: Option<i64>,
    /// Expires (Unix seconds).
    pub expires: Option<i64>,
}

/// Builds the SetSecret body: `value`, `contentType`, `tags`, `attributes.{nbf,exp}`.
pub fn put_body(secret: &PushedSecret) -> serde_json::Value {
    let mut body = serde_json::json!({ "value": secret.value.expose() });
    if let Some(ct) = &secret.content_type {
        body["contentType"] = ct.clone().into();
    }
    if !secret.tags.is_empty() {
        body["tags"] = serde_json::to_value(&secret.tags).unwrap_or_default();
    }
    let mut attributes = serde_json::Map::new();
    if let Some(nbf) = secret.not_before {
        attributes.insert("nbf".into(), nbf.into());
    }
    if let Some(exp) = secret.expires {
        attributes.insert("exp".into(), exp.into());
    }
    if !attributes.is_empty() {
        body["attributes"] = attributes.into();
    }
    body
}

/// Writes a new version of a secret with its attributes, content type and tags
/// (`PUT {vault}/secrets/{name}`). A name that is soft-deleted answers 409; that becomes
/// [`AzureError::Server`] with code [`DELETED_BUT_RECOVERABLE`] (see [`is_deleted_but_recoverable`]).
pub async fn put_secret_with_attributes(
    http: &Http,
    cred: &Credential,
    vault: &str,
    name: &str,
    secret: &PushedSecret,
) -> Result<Secret, AzureError> {
    let o = op("keyvault.set", vault, Some(name), None);
    let body = put_body(secret);
    let url = secret_url(vault, name, "");
    let scope = cred.cloud().key_vault_scope();
    let resp = authorized(http, cred, &scope, o.name, Method::PUT, &url, Some(&body))
        .await
        .map_err(|e| match e {
            CallError::Token(e) => e,
            CallError::Transport(t) => AzureError::VaultUnreachable {
                vault: endpoint_of(vault),
                failure: t.failure,
                detail: t.detail,
            },
        })?;
    if resp.status.as_u16() == 409 {
        let err = ErrorBody::parse(&resp);
        if err.inner_code() == DELETED_BUT_RECOVERABLE || err.error.code == DELETED_BUT_RECOVERABLE
        {
            return Err(deleted_but_recoverable(vault, name));
        }
    }
    if !resp.status.is_success() {
        return Err(writer_hint(classify(cred, &o, &resp), o.rbac_action));
    }
    let item: Item = resp.json(Service::KeyVault)?;
    Ok(Secret {
        properties: item.properties(),
        value: item.value.unwrap_or_default().into(),
    })
}

fn deleted_but_recoverable(vault: &str, name: &str) -> AzureError {
    AzureError::Server {
        service: Service::KeyVault,
        status: 409,
        code: DELETED_BUT_RECOVERABLE.into(),
        detail: format!(
            "secret {name} in {} is deleted but recoverable (soft delete), so its name cannot be written until it is recovered (az keyvault secret recover --vault-name <vault> --name {name}; a push then adopts it if it wrote it) or purged (az keyvault secret purge, or wait for the vault's retention period, 7 to 90 days)",
            vault.trim_end_matches('/')
        ),
    }
}

/// Tells whether an error is Key Vault's 409 for a soft-deleted name.
pub fn is_deleted_but_recoverable(e: &AzureError) -> bool {
    matches!(e, AzureError::Server { status: 409, code, .. } if code == DELETED_BUT_RECOVERABLE)
}

/// Rewrites the advice of a 403 for a write or delete: a writer needs "Key Vault Secrets
/// Officer" (RBAC) or the access-policy secret permissions `get`, `list`, `set` (and `delete`
/// for `deletionPolicy: Delete`), not the reader's "Key Vault Secrets User".
pub fn writer_hint(e: AzureError, rbac_action: &str) -> AzureError {
    match e {
        AzureError::Forbidden {
            principal,
            action,
            resource,
            model,
            detail,
        } => {
            let said = detail
                .split_once("Key Vault said: ")
                .map(|(_, s)| s.to_string())
                .unwrap_or(detail);
            let advice = match model {
                Some(VaultPermissionModel::Rbac) => format!(
                    "this vault uses Azure RBAC: assign the principal the role 'Key Vault Secrets Officer' on the vault (it holds {} among the secret data actions a push needs)",
                    rbac_action
                ),
                _ => "this vault uses access policies: add an access policy for the principal with the secret permissions get, list and set (and delete for deletionPolicy: Delete)".to_string(),
            };
            AzureError::Forbidden {
                principal,
                action,
                resource,
                model,
                detail: format!("{advice}. Key Vault said: {said}"),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_value_metadata_and_validity() {
        let s = PushedSecret {
            value: "line1\nline2 ü".into(),
            content_type: Some("text/plain".into()),
            tags: [("team".to_string(), "a".to_string())].into(),
            not_before: Some(10),
            expires: Some(20),
        };
        assert_eq!(
            put_body(&s),
            serde_json::json!({"value": "line1\nline2 ü", "contentType": "text/plain",
                "tags": {"team": "a"}, "attributes": {"nbf": 10, "exp": 20}})
        );
        let bare = put_body(&PushedSecret {
            value: "v".into(),
            ..Default::default()
        });
        assert_eq!(bare, serde_json::json!({"value": "v"}));
    }

    #[test]
    fn forbidden_names_the_writer_role_or_permission() {
        let o = op("keyvault.set", "https://kv", Some("n"), None).rbac_action;
        let rbac = AzureError::Forbidden {
            principal: "p".into(),
            action: "a".into(),
            resource: "r".into(),
            model: Some(VaultPermissionModel::Rbac),
            detail: "old advice. Key Vault said: Caller is not authorized".into(),
        };
        let text = writer_hint(rbac, o).to_string();
        assert!(text.contains("Key Vault Secrets Officer"), "{text}");
        assert!(text.contains("Caller is not authorized"), "{text}");
        assert!(!text.contains("old advice"), "{text}");
        let policy = AzureError::Forbidden {
            principal: "p".into(),
            action: "a".into(),
            resource: "r".into(),
            model: Some(VaultPermissionModel::AccessPolicy),
            detail: "x. Key Vault said: does not have secrets set permission".into(),
        };
        let text = writer_hint(policy, o).to_string();
        assert!(text.contains("get, list and set"), "{text}");
    }

    #[test]
    fn the_soft_delete_conflict_is_recognised() {
        let e = deleted_but_recoverable("https://kv/", "db");
        assert!(is_deleted_but_recoverable(&e));
        assert!(e.to_string().contains("recover"), "{e}");
        assert!(!is_deleted_but_recoverable(&AzureError::Server {
            service: Service::KeyVault,
            status: 409,
            code: "Conflict".into(),
            detail: String::new(),
        }));
    }
}
