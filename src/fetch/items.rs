//! Fetches the value of each planned key through the shared vault views (and the connections read
//! for this sync), turning Azure answers into per-key results so one bad item never stalls the
//! others. Takes its dependencies explicitly, so the controller and the CLI share it.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;

use super::Deps;
use super::VaultView;
use crate::api::Reference;
use crate::api::conditions::reasons;
use crate::azure::{AzureError, Credential, Secret, SecretListing, SecretProperties};
use crate::sync::assemble::{Fetched, ItemError, ItemResult};
use crate::sync::decode::decode;
use crate::sync::plan::Planned;

/// What fetching needs besides the plan.
pub struct Sources<'a> {
    /// Azure access and the shared views.
    pub deps: Deps<'a>,
    /// The workspace's credential.
    pub cred: &'a Arc<Credential>,
    /// The workspace's cloud: tokens go only to its vaults.
    pub cloud: &'a crate::azure::CloudEndpoints,
    /// The workspace vault's view, when it has a vault.
    pub workspace_vault: Option<Arc<VaultView>>,
    /// The workspace vault's listing, when it was needed.
    pub listing: Option<Arc<SecretListing>>,
    /// The refresh interval (zero: sync once), for listings of other vaults.
    pub interval: std::time::Duration,
    /// The workspace connections read for this sync.
    pub connections: &'a super::connections::Read,
    /// The endpoints and datastores read for this sync.
    pub endpoints: &'a super::endpoints::Read,
}

/// Fetches every planned key, a few at a time.
pub async fn fetch_all(sources: &Sources<'_>, items: &[Planned]) -> Vec<ItemResult> {
    let futures: Vec<crate::azure::BoxFuture<'_, ItemResult>> = items
        .iter()
        .map(|p| Box::pin(fetch_result(sources, p)) as crate::azure::BoxFuture<'_, ItemResult>)
        .collect();
    futures::stream::iter(futures).buffered(8).collect().await
}

async fn fetch_result(sources: &Sources<'_>, p: &Planned) -> ItemResult {
    ItemResult {
        key: p.key.clone(),
        reference: p.reference.to_string(),
        outcome: fetch(sources, p).await,
    }
}

fn from_azure(e: AzureError) -> ItemError {
    ItemError::from_azure(&e)
}

fn rfc3339(unix: Option<i64>) -> Option<String> {
    unix.and_then(|s| Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
}

/// Checks the `enabled`, `nbf` and `exp` attributes: a secret outside them is reported, never deleted.
fn usable(p: &SecretProperties) -> Result<(), ItemError> {
    let now = Timestamp::now().as_second();
    let why = if !p.enabled {
        Some(format!("vault secret {} is disabled", p.name))
    } else if p.expires.is_some_and(|exp| exp <= now) {
        Some(format!(
            "vault secret {} expired at {}",
            p.name,
            rfc3339(p.expires).unwrap_or_default()
        ))
    } else if p.not_before.is_some_and(|nbf| nbf > now) {
        Some(format!(
            "vault secret {} is not valid before {}",
            p.name,
            rfc3339(p.not_before).unwrap_or_default()
        ))
    } else {
        None
    };
    match why {
        Some(message) => Err(ItemError::new(reasons::SECRET_DISABLED, message, false)),
        None => Ok(()),
    }
}

fn listed<'a>(
    listing: Option<&'a SecretListing>,
    name: &str,
    vault: &str,
) -> Result<&'a SecretProperties, ItemError> {
    listing.and_then(|l| l.get(name)).ok_or_else(|| {
        ItemError::new(
            reasons::SECRET_NOT_FOUND,
            format!("vault {vault} has no secret named {name}"),
            true,
        )
    })
}

async fn fetch(s: &Sources<'_>, p: &Planned) -> Result<Fetched, ItemError> {
    let azure = s.deps.azure;
    let secret: Arc<Secret> = match &p.reference {
        Reference::WorkspaceVault { name, version } => {
            let view = s.workspace_vault.as_ref().ok_or_else(|| {
                ItemError::new(
                    reasons::NO_KEY_VAULT,
                    "the workspace has no Key Vault",
                    false,
                )
            })?;
            match version {
                Some(v) => view
                    .pinned(azure, s.cred, name, v)
                    .await
                    .map_err(from_azure)?,
                None => {
                    let props = listed(s.listing.as_deref(), name, view.vault())?;
                    usable(props)?;
                    view.latest(azure, s.cred, props)
                        .await
                        .map_err(from_azure)?
                }
            }
        }
        Reference::Vault {
            vault_uri,
            name,
            version,
        } => {
            if !s.cloud.allows_vault(vault_uri) {
                return Err(ItemError::new(
                    reasons::INVALID_SPEC,
                    format!(
                        "{vault_uri} is not a Key Vault of {} (hosts end with {}); the identity's token is not sent there",
                        s.cloud.name, s.cloud.key_vault_dns_suffix
                    ),
                    false,
                ));
            }
            let view = s.deps.vaults.view(s.cred, vault_uri);
            match version {
                Some(v) => view
                    .pinned(azure, s.cred, name, v)
                    .await
                    .map_err(from_azure)?,
                None => {
                    let listing = view
                        .list(azure, s.cred, s.interval)
                        .await
                        .map_err(from_azure)?;
                    let props = listed(Some(&listing), name, vault_uri)?;
                    usable(props)?;
                    view.latest(azure, s.cred, props)
                        .await
                        .map_err(from_azure)?
                }
            }
        }
        Reference::Connection { .. } | Reference::WholeConnection { .. } => {
            return super::connections::fetch(s.connections, &p.reference, p.decode);
        }
        Reference::Resource { .. } | Reference::WholeResource { .. } => {
            return super::endpoints::fetch(s.endpoints, &p.reference, p.decode);
        }
    };
    usable(&secret.properties)?;
    let bytes = decode(secret.value.expose(), p.decode)
        .map_err(|e| ItemError::new(reasons::INVALID_SPEC, e.to_string(), false))?;
    Ok(Fetched {
        bytes,
        version: secret.properties.version.clone(),
        updated: rfc3339(secret.properties.updated),
        expires: rfc3339(secret.properties.expires),
    })
}
