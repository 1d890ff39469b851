//! One WorkspaceSecret sync as a recipe of named steps: read the target → dereference the
//! workspace and its identity → list (vault, connections, endpoints and datastores) → plan (pure)
//! → fetch values → resolve and assemble (pure, last good data) → write the target. Only the
//! steps named for IO touch the network; each returns a typed value for the next.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::caches::Caches;
use super::credentials::{reader_credential, usable_workspace};
use super::error::Error;
use super::{Context, target};
use crate::api::Reference;
use crate::api::conditions::reasons;
use crate::api::workspace_secret::{CreationPolicy, SyncedKey, WorkspaceSecret};
use crate::azure::{CloudEndpoints, Credential, SecretListing, WorkspaceRef};
use crate::fetch::connections::{self as conn_fetch, Read};
use crate::fetch::endpoints as ep_fetch;
use crate::fetch::items::{Sources, fetch_all};
use crate::fetch::{Deps, Interest, Reader, VaultView};
use crate::sync::assemble::{Assembled, ItemError, ItemResult, assemble};
use crate::sync::build::{Ownership, ownership};
use crate::sync::claims::{self, Conflict, field_manager};
use crate::sync::connections as conn_report;
use crate::sync::endpoints as ep_report;
use crate::sync::plan::{Compiled, Plan, expand_connections, plan};
use crate::sync::report::Synced;
use crate::sync::size;

/// The target Secret as it is, and whether this WorkspaceSecret may write it.
pub(crate) struct TargetState {
    pub(crate) name: String,
    pub(crate) existing: Option<Arc<Secret>>,
    owner: Ownership,
}

/// The workspace, the identity and the vault a sync reads.
struct Source {
    wref: WorkspaceRef,
    cloud: CloudEndpoints,
    cred: Arc<Credential>,
    vault: Option<Arc<VaultView>>,
    /// Why `keyvault:` items cannot be served, for a workspace without a customer vault.
    no_vault: Option<String>,
}

/// What was listed for this sync.
struct Listings {
    vault: Option<Arc<SecretListing>>,
    connections: Read,
    endpoints: ep_fetch::Read,
}

/// Syncs a WorkspaceSecret into its target Secret.
pub(super) async fn sync(
    ws: &WorkspaceSecret,
    target_name: &str,
    ctx: &Context,
    secrets: &Api<Secret>,
    refresh: Duration,
) -> Result<Synced, Error> {
    let compiled = Compiled::new(&ws.spec).map_err(Error::InvalidSpec)?;
    let target = read_target(ws, target_name, secrets, Some(&ctx.caches)).await?;
    let source = dereference(ctx, ws, &compiled).await?;
    let reader = kube::runtime::reflector::ObjectRef::from_obj(ws);
    follow(&reader, ctx, &source, &compiled, refresh);
    let deps = Deps {
        azure: ctx.azure.as_ref(),
        vaults: &ctx.vaults,
        connections: &ctx.connections,
        endpoints: &ctx.endpoints,
    };
    let max_age = if refresh.is_zero() {
        Duration::ZERO
    } else {
        refresh.mul_f64(0.9)
    };
    let listings = list(deps, &source, &compiled, refresh, max_age, &reader).await?;
    let previous = ws
        .status
        .as_ref()
        .map(|s| s.synced_keys.clone())
        .unwrap_or_default();
    let (planned, conflicts) = plan_keys(ws, &compiled, &listings, &target, &previous);
    let sources = Sources {
        deps,
        cred: &source.cred,
        cloud: &source.cloud,
        workspace_vault: source.vault.clone(),
        listing: listings.vault.clone(),
        interval: refresh,
        connections: &listings.connections,
        endpoints: &listings.endpoints,
    };
    let fetched = fetch_all(&sources, &planned.items).await;
    let (assembled, notes) = resolve(
        ws, &compiled, &listings, &source, &target, &planned, &conflicts, fetched, &previous,
    );
    check_size(&assembled.data, &target, &previous)?;
    let data_changed = target::write(
        ws,
        secrets,
        &ctx.caches,
        target.existing.as_deref(),
        &assembled,
        &previous,
        &target.owner,
    )
    .await?;
    if data_changed && ctx.rollout.is_some() {
        // Whole seconds, like the start times of containers it is compared with.
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .unwrap_or_default()
            .to_string();
        target::mark_changed(secrets, &ctx.caches, &target.name, &now).await?;
    }
    let mut notes = notes;
    if assembled.data.is_empty() && assembled.errors.is_empty() {
        notes.push(nothing_to_write(ws, &target));
    }
    let refresh_within = ep_fetch::refresh_within(&listings.endpoints);
    Ok(Synced {
        assembled,
        notes,
        data_changed,
        refresh_within,
    })
}

/// Reads the target Secret (from `caches` while nobody changed it since the operator last wrote
/// or read it) and refuses a Secret this WorkspaceSecret may not write at all (also run by the
/// CLI's `check`, without caches).
pub(crate) async fn read_target(
    ws: &WorkspaceSecret,
    name: &str,
    secrets: &Api<Secret>,
    caches: Option<&Caches>,
) -> Result<TargetState, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let existing = match caches.and_then(|c| c.secret(&ns, name)) {
        Some(known) => Some(known),
        None => {
            let read = target::read(secrets, name).await?.map(Arc::new);
            if let (Some(c), Some(s)) = (caches, &read) {
                c.remember_secret(Secret::clone(s));
            }
            read
        }
    };
    let owner = ownership(existing.as_ref().map(|s| &s.metadata), ws);
    match (ws.spec.target.creation_policy, &owner) {
        (CreationPolicy::Merge, Ownership::Absent) => Err(Error::TargetConflict(format!(
            "Secret {name} does not exist; creationPolicy Merge only writes into an existing Secret"
        ))),
        (CreationPolicy::Owner | CreationPolicy::Orphan, Ownership::Foreign) => {
            Err(Error::TargetConflict(format!(
                "Secret {name} already exists and was not created by this WorkspaceSecret; it is left untouched (use creationPolicy: Merge to add keys to it, or another target.name)"
            )))
        }
        _ => Ok(TargetState {
            name: name.to_string(),
            existing,
            owner,
        }),
    }
}

/// Finds the workspace (same namespace), its identity's credential and its vault's view.
async fn dereference(
    ctx: &Context,
    ws: &WorkspaceSecret,
    compiled: &Compiled,
) -> Result<Source, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let workspace = usable_workspace(ctx, &ns, &ws.spec.workspace_ref.name).await?;
    let (cloud, cred) = reader_credential(ctx, &workspace).await?;
    let vault_uri = workspace
        .status
        .as_ref()
        .and_then(|s| s.key_vault.as_ref())
        .map(|k| k.uri.clone());
    // Without a customer vault, vault references fail one by one (NoKeyVault) while connection
    // references are still served.
    let no_vault = (compiled.uses_workspace_vault() && vault_uri.is_none()).then(|| {
        format!(
            "AzureMLWorkspace {} has no customer Key Vault, so keyvault: references cannot be served (connection references can)",
            workspace.name_any()
        )
    });
    let vault = vault_uri.as_deref().map(|uri| ctx.vaults.view(&cred, uri));
    let wref = WorkspaceRef {
        subscription_id: workspace.spec.subscription_id.clone(),
        resource_group: workspace.spec.resource_group.clone(),
        workspace_name: workspace.spec.workspace_name.clone(),
    };
    Ok(Source {
        wref,
        cloud,
        cred,
        vault,
        no_vault,
    })
}

/// Tells the vault views what this WorkspaceSecret reads, so that their listings wake it when
/// one of its secrets (or a secret one of its finds matches) changes.
fn follow(reader: &Reader, ctx: &Context, source: &Source, compiled: &Compiled, refresh: Duration) {
    let mut by_vault: BTreeMap<String, Interest> = BTreeMap::new();
    for p in &compiled.explicit {
        let (vault, name) = match &p.reference {
            Reference::WorkspaceVault {
                name,
                version: None,
            } => match &source.vault {
                Some(v) => (v.vault().to_string(), name),
                None => continue,
            },
            Reference::Vault {
                vault_uri,
                name,
                version: None,
            } if source.cloud.allows_vault(vault_uri) => (vault_uri.clone(), name),
            _ => continue,
        };
        by_vault
            .entry(vault)
            .or_default()
            .names
            .insert(name.clone());
    }
    if let (Some(v), false) = (&source.vault, compiled.finds.is_empty()) {
        by_vault.entry(v.vault().to_string()).or_default().finds = compiled.finds.clone();
    }
    for (vault, mut interest) in by_vault {
        interest.interval = refresh;
        ctx.vaults
            .view(&source.cred, &vault)
            .follow(reader.clone(), interest);
    }
}

/// Lists the workspace vault (when a `find` or a latest-version item needs it) and reads the
/// connections the spec references, each through its shared view.
async fn list(
    deps: Deps<'_>,
    source: &Source,
    compiled: &Compiled,
    refresh: Duration,
    max_age: Duration,
    reader: &Reader,
) -> Result<Listings, Error> {
    let vault = match (&source.vault, compiled.needs_workspace_listing()) {
        (Some(v), true) => Some(v.list(deps.azure, &source.cred, refresh).await?),
        _ => None,
    };
    let names = compiled.connection_names();
    let wanted = ep_report::wanted(compiled);
    let (connections, endpoints) = futures::join!(
        conn_fetch::read(
            deps,
            &source.cred,
            &source.wref,
            &names,
            max_age,
            Some((reader, refresh)),
        ),
        ep_fetch::read(deps, &source.cred, &source.wref, &wanted, max_age),
    );
    Ok(Listings {
        vault,
        connections,
        endpoints,
    })
}

/// Plans every key (pure): finds over the listing, whole connections over their fields, and keys
/// another writer of the target holds, which are neither fetched nor written.
fn plan_keys(
    ws: &WorkspaceSecret,
    compiled: &Compiled,
    listings: &Listings,
    target: &TargetState,
    previous: &[SyncedKey],
) -> (Plan, Vec<Conflict>) {
    let mut planned = plan(compiled, listings.vault.as_deref(), previous);
    let fields = conn_fetch::fields(&listings.connections);
    expand_connections(compiled, &fields, previous, &mut planned);
    let resource_fields = ep_fetch::fields(&listings.endpoints);
    ep_report::expand_resources(compiled, &resource_fields, previous, &mut planned);
    let conflicts = match &target.existing {
        Some(existing) => claims::conflicts(
            existing,
            planned.items.iter().map(|p| p.key.as_str()),
            &field_manager(ws),
            previous,
            ws.spec.target.existing_keys,
        ),
        None => Vec::new(),
    };
    planned
        .items
        .retain(|p| !conflicts.iter().any(|c| c.key == p.key));
    (planned, conflicts)
}

/// Turns fetched values and every per-item problem into the data to write and the notes for the
/// `Ready` message (pure): last good data is kept wherever a key failed.
#[allow(clippy::too_many_arguments)]
fn resolve(
    ws: &WorkspaceSecret,
    compiled: &Compiled,
    listings: &Listings,
    source: &Source,
    target: &TargetState,
    planned: &Plan,
    conflicts: &[Conflict],
    mut results: Vec<ItemResult>,
    previous: &[SyncedKey],
) -> (Assembled, Vec<String>) {
    let failed = |key: &str, reference: &str, error: ItemError| ItemResult {
        key: key.to_string(),
        reference: reference.to_string(),
        outcome: Err(error),
    };
    for (key, why) in &planned.invalid {
        results.push(failed(
            key,
            "",
            ItemError::new(reasons::INVALID_SPEC, why.clone(), false),
        ));
    }
    for gone in &planned.vanished {
        let message = format!("{} was deleted from the vault", gone.reference);
        let error = ItemError::new(reasons::SECRET_NOT_FOUND, message, true);
        results.push(failed(&gone.key, &gone.reference.to_string(), error));
    }
    for c in conflicts {
        let error = ItemError::new(reasons::TARGET_CONFLICT, c.message(&target.name), false);
        results.push(failed(&c.key, "", error));
    }
    results.extend(conn_report::item_errors(
        ws,
        compiled,
        &listings.connections,
        planned,
        previous,
        source.no_vault.as_deref(),
    ));
    results.extend(ep_report::item_errors(
        compiled,
        &listings.endpoints,
        planned,
        previous,
    ));
    // A key another writer holds is not ours to keep either.
    let mut existing = target.existing.as_deref().map(target::data_of);
    if let Some(data) = existing.as_mut() {
        data.retain(|k, _| !conflicts.iter().any(|c| &c.key == k));
    }
    let mut assembled = assemble(
        results,
        existing.as_ref(),
        previous,
        ws.spec.target.deletion_policy,
    );
    conn_report::annotate(&listings.connections, &mut assembled.synced_keys);
    ep_report::annotate(&listings.endpoints, &mut assembled.synced_keys);
    let mut notes = conn_report::notes(compiled, &listings.connections);
    notes.extend(ep_report::notes(compiled, &listings.endpoints));
    if !planned.disabled.is_empty() {
        notes.push(format!(
            "skipped disabled vault secrets: {}",
            planned.disabled.join(", ")
        ));
    }
    (assembled, notes)
}

/// Refuses data that would not fit in a Secret: ours plus the keys other writers keep there.
fn check_size(
    ours: &BTreeMap<String, Vec<u8>>,
    target: &TargetState,
    previous: &[SyncedKey],
) -> Result<(), Error> {
    let existing = target
        .existing
        .as_deref()
        .map(target::data_of)
        .unwrap_or_default();
    let others: BTreeMap<&str, usize> = existing
        .iter()
        .filter(|(k, _)| !ours.contains_key(*k) && !previous.iter().any(|p| &p.key == *k))
        .map(|(k, v)| (k.as_str(), v.len()))
        .collect();
    match size::too_large(ours, &others) {
        Some(why) => Err(Error::TooLarge(format!(
            "Secret {}: {why}; nothing was written",
            target.name
        ))),
        None => Ok(()),
    }
}

/// Says what happened when a sync had nothing to write.
fn nothing_to_write(ws: &WorkspaceSecret, target: &TargetState) -> String {
    let finds: Vec<String> = ws
        .spec
        .data_from
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let f = d.find.as_ref()?;
            let mut what = format!("dataFrom[{i}].find");
            if let Some(r) = &f.name_regex {
                what.push_str(&format!(" nameRegex {r:?}"));
            }
            if !f.tags.is_empty() {
                let tags: Vec<String> = f.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                what.push_str(&format!(" tags {}", tags.join(",")));
            }
            Some(what)
        })
        .collect();
    let matched = if finds.is_empty() {
        "nothing to sync".to_string()
    } else {
        format!("no enabled vault secret matches {}", finds.join(" or "))
    };
    let name = &target.name;
    let secret = match (target.existing.is_some(), ws.spec.target.creation_policy) {
        (false, _) => format!("Secret {name} was not created"),
        (true, CreationPolicy::Merge) => format!("Secret {name} holds none of its keys"),
        (true, _) => format!("Secret {name} was deleted (no keys left)"),
    };
    format!("{matched}; {secret}")
}
