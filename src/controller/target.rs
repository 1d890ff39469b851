//! The target Secret's IO: read it, apply the desired one with server-side apply, delete it, and
//! release our keys when a `Merge` WorkspaceSecret goes away.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::caches::Caches;
use super::error::Error;
use crate::api::workspace_secret::{CreationPolicy, SyncedKey, WorkspaceSecret};
use crate::sync::assemble::Assembled;
use crate::sync::build::{MANAGED_LABEL, Ownership, desired_secret, target_name};
use crate::sync::claims::{LEGACY_MANAGER, field_manager, legacy_keys};

/// Reads the target Secret, if it exists.
pub async fn read(api: &Api<Secret>, name: &str) -> Result<Option<Secret>, Error> {
    api.get_opt(name)
        .await
        .map_err(|e| Error::kube("read Secret", name, e))
}

/// Returns a Secret's data as plain bytes.
pub fn data_of(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Tells whether `existing` already holds everything `desired` claims, and nothing we synced
/// before that is gone from `desired` — then applying would change nothing.
pub fn up_to_date(existing: &Secret, desired: &Secret, previous: &[SyncedKey]) -> bool {
    let data_ok = !data_changes(existing, desired, previous);
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let owners_ok = desired.metadata.owner_references.iter().flatten().all(|o| {
        existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|e| e.uid == o.uid)
    });
    let type_ok = desired.type_.is_none() || desired.type_ == existing.type_;
    data_ok
        && subset(&desired.metadata.labels, &existing.metadata.labels)
        && subset(
            &desired.metadata.annotations,
            &existing.metadata.annotations,
        )
        && owners_ok
        && type_ok
}

/// Server-side applies the desired Secret under `manager`, the WorkspaceSecret's own field
/// manager, so that writers of other keys of the same Secret keep theirs. Returns the Secret as
/// written.
pub async fn apply(api: &Api<Secret>, desired: &Secret, manager: &str) -> Result<Secret, Error> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(desired),
    )
    .await
    .map_err(|e| Error::kube("apply Secret", &name, e))
}

/// Deletes the target Secret (only ever called for a Secret the operator owns).
pub async fn delete(api: &Api<Secret>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete Secret", name, e)),
    }
}

/// Releases every field `manager` owns in a Secret (its keys and label); other writers keep
/// theirs. Keys in `ours` are also taken from the legacy shared manager of earlier versions.
pub async fn release(
    api: &Api<Secret>,
    existing: &Secret,
    manager: &str,
    ours: &BTreeSet<String>,
) -> Result<(), Error> {
    let name = existing.metadata.name.clone().unwrap_or_default();
    release_manager(api, &name, manager).await?;
    shrink_legacy(api, existing, ours).await
}

async fn release_manager(api: &Api<Secret>, name: &str, manager: &str) -> Result<(), Error> {
    let empty = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name } });
    match api
        .patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(empty),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("release Secret keys", name, e)),
    }
}

/// Moves `ours` out of the legacy shared field manager (earlier versions wrote every Secret under
/// it), keeping the keys other WorkspaceSecrets still hold through it.
async fn shrink_legacy(
    api: &Api<Secret>,
    existing: &Secret,
    ours: &BTreeSet<String>,
) -> Result<(), Error> {
    let Some(legacy) = legacy_keys(existing) else {
        return Ok(());
    };
    let name = existing.metadata.name.clone().unwrap_or_default();
    let keep: BTreeMap<String, ByteString> = data_of(existing)
        .into_iter()
        .filter(|(k, _)| legacy.contains(k) && !ours.contains(k))
        .map(|(k, v)| (k, ByteString(v)))
        .collect();
    if keep.is_empty() {
        return release_manager(api, &name, LEGACY_MANAGER).await;
    }
    let remaining = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(keep),
        ..Secret::default()
    };
    match api
        .patch(
            &name,
            &PatchParams::apply(LEGACY_MANAGER).force(),
            &Patch::Apply(&remaining),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("release legacy Secret keys", &name, e)),
    }
}

/// Writes the assembled data: applies the desired Secret unless it is already up to date, creates
/// nothing when there is no data, and deletes an owned Secret left with no keys. Returns whether
/// the Secret's data changed.
pub(crate) async fn write(
    ws: &WorkspaceSecret,
    secrets: &Api<Secret>,
    caches: &Caches,
    existing: Option<&Secret>,
    assembled: &Assembled,
    previous: &[SyncedKey],
    owner: &Ownership,
) -> Result<bool, Error> {
    let name = target_name(ws);
    let ns = ws.namespace().unwrap_or_default();
    let manager = field_manager(ws);
    let desired = desired_secret(ws, assembled.data.clone());
    let remember = |written: Secret| caches.remember_secret(written);
    match existing {
        None if assembled.data.is_empty() => Ok(false),
        Some(_)
            if assembled.data.is_empty()
                && *owner == Ownership::Ours
                && ws.spec.target.creation_policy != CreationPolicy::Merge =>
        {
            tracing::debug!(secret = %name, "deleting owned Secret that has no keys left");
            caches.forget_secret(&ns, &name);
            delete(secrets, &name).await.map(|()| true)
        }
        Some(e) if up_to_date(e, &desired, previous) => Ok(false),
        Some(e) => {
            let changed = data_changes(e, &desired, previous);
            remember(apply(secrets, &desired, &manager).await?);
            let ours = assembled
                .data
                .keys()
                .cloned()
                .chain(previous.iter().map(|p| p.key.clone()))
                .collect();
            if legacy_keys(e).is_some() {
                caches.forget_secret(&ns, &name);
                shrink_legacy(secrets, e, &ours).await?;
            }
            Ok(changed)
        }
        None => apply(secrets, &desired, &manager).await.map(|written| {
            remember(written);
            true
        }),
    }
}

/// Tells whether applying `desired` changes data: a key of ours with other bytes, or a key we
/// synced before that goes.
fn data_changes(existing: &Secret, desired: &Secret, previous: &[SyncedKey]) -> bool {
    let (have, want) = (data_ref(existing), data_ref(desired));
    want.iter().any(|(k, v)| have.get(k) != Some(v))
        || previous
            .iter()
            .any(|p| !want.contains_key(p.key.as_str()) && have.contains_key(p.key.as_str()))
}

/// A Secret's data, borrowed.
fn data_ref(secret: &Secret) -> BTreeMap<&str, &[u8]> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect()
}

/// The field manager that records when the operator last changed a Secret's data (one manager
/// for every writer of the Secret, so the latest change wins).
pub const CHANGE_MANAGER: &str = "amlsecrets:data-changed";

/// Records on the Secret when its data last changed (`amlsecrets.io/data-changed-at`), for
/// deciding whether a workload that opted into rollouts later runs with older data.
pub(crate) async fn mark_changed(
    api: &Api<Secret>,
    caches: &Caches,
    name: &str,
    at: &str,
) -> Result<(), Error> {
    let patch = json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": name, "annotations": { crate::rollout::CHANGED_ANNOTATION: at } } });
    match api
        .patch(
            name,
            &PatchParams::apply(CHANGE_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
    {
        Ok(written) => {
            caches.remember_secret(written);
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("record the data change of Secret", name, e)),
    }
}
