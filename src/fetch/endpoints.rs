//! The endpoint and datastore side of fetching: read each referenced endpoint or datastore once
//! through the shared views ([`super::endpoint`]), and turn a reference into its value with
//! provenance, or an error that says what to use instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Deps;
use super::endpoint::is_mode;
pub use super::endpoint::{Current, EndpointViews, Field, ResourceView};
use crate::api::conditions::reasons;
use crate::api::workspace_secret::Decode;
use crate::api::{Reference, ResourceKind, ResourcePart, ResourceRef};
use crate::azure::{AzureError, Credential, WorkspaceRef};
use crate::sync::assemble::{Fetched, ItemError};
use crate::sync::decode::decode;

/// The resources read for one sync: the values or why there are none.
pub type Read = BTreeMap<ResourceRef, Result<Arc<Current>, AzureError>>;

/// Reads every resource in `wanted` (with whether its secrets are needed, not only its URI),
/// concurrently, each through its shared view.
pub async fn read(
    deps: Deps<'_>,
    cred: &Arc<Credential>,
    workspace: &WorkspaceRef,
    wanted: &BTreeMap<ResourceRef, bool>,
    max_age: Duration,
) -> Read {
    let reads = wanted.iter().map(|(resource, secrets)| async move {
        let view = deps.endpoints.view(cred, workspace, resource);
        let got = view.get(deps.azure, cred, max_age, *secrets).await;
        (resource.clone(), got)
    });
    futures::future::join_all(reads).await.into_iter().collect()
}

/// Returns the field names of each resource read successfully that offers secrets.
pub fn fields(read: &Read) -> BTreeMap<ResourceRef, Vec<String>> {
    read.iter()
        .filter_map(|(r, got)| {
            let c = got.as_ref().ok()?;
            c.no_secrets()
                .is_none()
                .then(|| (r.clone(), c.fields.keys().cloned().collect()))
        })
        .collect()
}

/// Returns how long until the earliest token of this sync must be refreshed.
pub fn refresh_within(read: &Read) -> Option<Duration> {
    read.values()
        .filter_map(|r| r.as_ref().ok()?.refresh_in)
        .min()
}

fn invalid(message: String) -> ItemError {
    ItemError::new(reasons::INVALID_SPEC, message, false)
}

/// Explains why a secret the resource's auth mode does not have cannot be served.
fn wrong_mode(current: &Current, part: &ResourcePart) -> Option<ItemError> {
    let r = &current.resource;
    if r.kind == ResourceKind::Datastore || !part.is_secret() {
        return None;
    }
    if let Some(why) = current.no_secrets() {
        return Some(invalid(why));
    }
    let auth = &current.auth;
    match part {
        ResourcePart::Token if !is_mode(auth, "AMLToken") => Some(invalid(format!(
            "{} uses key authentication (authMode {auth}) and has no token; reference {r}/keys/primary or {r}/keys/secondary",
            r.describe()
        ))),
        ResourcePart::PrimaryKey | ResourcePart::SecondaryKey if is_mode(auth, "AMLToken") => {
            Some(invalid(format!(
                "{} uses Azure ML token authentication (authMode {auth}) and has no keys; reference {r}/token (refreshed before it expires)",
                r.describe()
            )))
        }
        _ => None,
    }
}

/// Returns the value of an endpoint or datastore reference, with its provenance.
pub fn fetch(read: &Read, reference: &Reference, how: Decode) -> Result<Fetched, ItemError> {
    let Reference::Resource { resource, part } = reference else {
        return Err(invalid(format!(
            "{reference} names a whole endpoint or datastore; it belongs in dataFrom"
        )));
    };
    let current = match read.get(resource) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(ItemError::from_azure(e)),
        None => {
            return Err(ItemError::new(
                reasons::AZURE_ERROR,
                format!("{} was not read", resource.describe()),
                false,
            ));
        }
    };
    if let Some(e) = wrong_mode(current, part) {
        return Err(e);
    }
    let field = part.field();
    let Some(value) = current.fields.get(field) else {
        if let Some(why) = current.no_secrets() {
            return Err(invalid(why));
        }
        let known: Vec<&str> = current.fields.keys().map(String::as_str).collect();
        return Err(ItemError::new(
            reasons::SECRET_NOT_FOUND,
            format!(
                "{} ({}) has no {field}; it has: {}",
                resource.describe(),
                current.kind(),
                known.join(", ")
            ),
            true,
        ));
    };
    let bytes = decode(value.value.expose(), how)
        .map_err(|e| ItemError::new(reasons::INVALID_SPEC, e.to_string(), false))?;
    Ok(Fetched {
        bytes,
        version: None,
        updated: Some(value.seen_since.clone()),
        expires: value.expires.clone(),
    })
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
