//! The WorkspaceSecret controller: dereference the workspace → fetch through the shared views →
//! assemble and build the Secret (pure) → server-side apply → status and Events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::connections;
use super::credentials::workspace_credential;
use super::error::Error;
use super::items::{Sources, fetch_all};
use super::workspace::publish;
use super::{Context, target};
use crate::api::conditions::{Condition, find_ready, reasons};
use crate::api::duration;
use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret::{
    CreationPolicy, DEFAULT_REFRESH_INTERVAL, WorkspaceSecret, WorkspaceSecretStatus,
};
use crate::azure::WorkspaceRef;
use crate::sync::assemble::{Assembled, ItemError, ItemResult, assemble, summary};
use crate::sync::build::{Ownership, ownership, target_name};
use crate::sync::claims::{self, field_manager};
use crate::sync::plan::{Compiled, expand_connections, plan};
use crate::sync::size;
use crate::sync::status as status_rules;

/// How long a WorkspaceSecret waits at most before looking again at a workspace not checked yet.
const PENDING_RECHECK: Duration = Duration::from_secs(30);

/// The finalizer that lets a `Merge` WorkspaceSecret remove its keys before it goes.
pub const FINALIZER: &str = "amlsecrets.io/release-keys";

/// What a sync achieved, for status.
struct Synced {
    assembled: Assembled,
    notes: Vec<String>,
}

/// Returns the refresh interval of a WorkspaceSecret; zero means sync once.
pub fn refresh_interval(ws: &WorkspaceSecret) -> Duration {
    let text = ws
        .spec
        .refresh_interval
        .as_deref()
        .unwrap_or(DEFAULT_REFRESH_INTERVAL);
    duration::parse(text).unwrap_or(Duration::from_secs(3600))
}

/// Syncs one WorkspaceSecret and writes its status.
pub async fn reconcile(ws: Arc<WorkspaceSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let ws_api: Api<WorkspaceSecret> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = ws.finalizers().iter().any(|f| f == FINALIZER);
    if ws.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget(&ns, &ws.name_any());
        if has_finalizer {
            let name = target_name(&ws);
            if let Some(existing) = target::read(&secrets, &name).await? {
                let ours = synced_key_names(&ws);
                target::release(&secrets, &existing, &field_manager(&ws), &ours).await?;
            }
            set_finalizer(&ws_api, &ws, false).await?;
        }
        return Ok(Action::await_change());
    }
    let wants_finalizer = ws.spec.target.creation_policy == CreationPolicy::Merge;
    if wants_finalizer != has_finalizer {
        set_finalizer(&ws_api, &ws, wants_finalizer).await?;
    }

    let oref = ObjectRef::from_obj(&*ws);
    let refresh = refresh_interval(&ws);
    let started = std::time::Instant::now();
    let outcome = sync(&ws, &ctx, &secrets, refresh).await;
    let now = Timestamp::now().to_string();
    let previous = ws.status.clone().unwrap_or_default();
    let prev_ready = find_ready(&previous.conditions).cloned();
    let generation = ws.metadata.generation;
    let mut status = WorkspaceSecretStatus {
        observed_generation: generation,
        target_name: Some(target_name(&ws)),
        refresh_time: Some(now.clone()),
        ..previous.clone()
    };
    let once = refresh.is_zero();
    // Transient failures back off up to the refresh interval (or --max-retry-delay for sync-once).
    let retry_cap = if once {
        ctx.args.max_retry_delay
    } else {
        refresh
    };
    let retry = || Action::requeue(ctx.backoff(&oref, retry_cap));
    let action;
    let ready = match &outcome {
        Ok(synced) => {
            status.synced_keys = synced.assembled.synced_keys.clone();
            match summary(&synced.assembled) {
                Some((reason, message)) => {
                    let transient = synced
                        .assembled
                        .errors
                        .iter()
                        .any(|(_, e)| is_transient_reason(e));
                    action = if transient {
                        retry()
                    } else {
                        requeue_after(refresh)
                    };
                    Condition::ready(
                        false,
                        reason,
                        message,
                        generation,
                        prev_ready.as_ref(),
                        &now,
                    )
                }
                None => {
                    ctx.succeeded(&oref);
                    action = requeue_after(refresh);
                    let mut parts = Vec::new();
                    if !synced.assembled.synced_keys.is_empty() {
                        parts.push(format!(
                            "{} keys synced into Secret {}",
                            synced.assembled.synced_keys.len(),
                            target_name(&ws)
                        ));
                    }
                    parts.extend(synced.notes.iter().cloned());
                    let message = parts.join("; ");
                    Condition::ready(
                        true,
                        reasons::SYNCED,
                        message,
                        generation,
                        prev_ready.as_ref(),
                        &now,
                    )
                }
            }
        }
        Err(e) => {
            action = if e.reason() == reasons::INVALID_SPEC {
                Action::await_change()
            } else if matches!(e, Error::WorkspacePending(_)) {
                // The workspace's first status wakes this object; the requeue is a safety net.
                Action::requeue(retry_cap.min(PENDING_RECHECK))
            } else if e.is_transient() {
                retry()
            } else {
                requeue_after(retry_cap)
            };
            if !status.synced_keys.is_empty() {
                for k in &mut status.synced_keys {
                    k.stale = true;
                }
            }
            Condition::ready(
                false,
                e.reason(),
                e.to_string(),
                generation,
                prev_ready.as_ref(),
                &now,
            )
        }
    };
    let transition = prev_ready
        .as_ref()
        .is_none_or(|p| p.status != ready.status || p.reason != ready.reason);
    let pending = matches!(outcome, Err(Error::WorkspacePending(_)));
    if transition && !pending {
        publish(&ctx, &*ws, &ready).await;
    }
    if let Ok(synced) = &outcome
        && !synced.assembled.changed.is_empty()
        && prev_ready.is_some()
    {
        let note = format!("updated keys: {}", synced.assembled.changed.join(", "));
        let event = Event {
            type_: EventType::Normal,
            reason: "Updated".into(),
            note: Some(note),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &ws.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
    if let Ok(synced) = &outcome {
        let soon = status_rules::newly_expiring(
            &previous,
            &synced.assembled.synced_keys,
            ctx.args.expiry_warning,
        );
        if !soon.is_empty() {
            let event = Event {
                type_: EventType::Warning,
                reason: "SecretExpiringSoon".into(),
                note: Some(format!("sources expire soon: {}", soon.join(", "))),
                action: "Sync".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&event, &ws.object_ref(&())).await {
                warn!(error = %e, "cannot publish event");
            }
        }
    }
    ctx.metrics
        .reconciled("workspacesecret", &ready.reason, started.elapsed());
    if let Ok(synced) = &outcome {
        let expiry = synced
            .assembled
            .synced_keys
            .iter()
            .filter_map(|k| k.expires.as_deref()?.parse::<Timestamp>().ok())
            .map(|t| t.as_second())
            .min();
        ctx.metrics
            .synced(&ns, &ws.name_any(), synced.assembled.data.len(), expiry);
    }
    status.conditions = vec![ready];
    if status_rules::worth_writing(&previous, &status, refresh) {
        super::apply_status(&ws_api, &ws.name_any(), &status).await?;
    }
    Ok(action)
}

fn is_transient_reason(e: &ItemError) -> bool {
    matches!(
        e.reason,
        reasons::THROTTLED | reasons::AZURE_ERROR | reasons::VAULT_UNREACHABLE
    )
}

fn requeue_after(refresh: Duration) -> Action {
    if refresh.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(super::context::jitter(refresh, 0.1))
    }
}

async fn set_finalizer(
    api: &Api<WorkspaceSecret>,
    ws: &WorkspaceSecret,
    present: bool,
) -> Result<(), Error> {
    let mut finalizers: Vec<String> = ws
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_string());
    }
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": ws.resource_version() } });
    match api
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: a queued reconcile of a WorkspaceSecret whose finalizer was just released.
        Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(()),
        Err(e) => Err(Error::kube(
            "update finalizers of WorkspaceSecret",
            &ws.name_any(),
            e,
        )),
    }
}

/// The keys this WorkspaceSecret synced, by its status.
fn synced_key_names(ws: &WorkspaceSecret) -> BTreeSet<String> {
    ws.status
        .iter()
        .flat_map(|s| s.synced_keys.iter().map(|k| k.key.clone()))
        .collect()
}

async fn workspace_of(ctx: &Context, ws: &WorkspaceSecret) -> Result<AzureMLWorkspace, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let name = &ws.spec.workspace_ref.name;
    let api: Api<AzureMLWorkspace> = Api::namespaced(ctx.client.clone(), &ns);
    let workspace = api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube("read AzureMLWorkspace", name, e))?
        .ok_or_else(|| {
            Error::WorkspaceNotReady(format!("AzureMLWorkspace {ns}/{name} does not exist"))
        })?;
    // A workspace resolved once stays usable while Azure has a bad moment: each WorkspaceSecret
    // then reports its own, more precise reason instead of WorkspaceNotReady.
    let status = workspace.status.clone().unwrap_or_default();
    if status.observed_generation.is_none() {
        return Err(Error::WorkspacePending(format!(
            "waiting for the first check of AzureMLWorkspace {name}"
        )));
    }
    if status.observed_generation != workspace.metadata.generation {
        return Err(Error::WorkspacePending(format!(
            "waiting for AzureMLWorkspace {name} to be checked after its last change"
        )));
    }
    let resolved = status.workspace.is_some() || status.key_vault.is_some();
    match find_ready(&status.conditions) {
        Some(r) if r.is_true() || resolved => Ok(workspace),
        Some(r) => Err(Error::WorkspaceNotReady(format!(
            "AzureMLWorkspace {name} is not Ready ({}): {}",
            r.reason, r.message
        ))),
        None => Err(Error::WorkspaceNotReady(format!(
            "AzureMLWorkspace {name} has not been checked yet"
        ))),
    }
}

async fn sync(
    ws: &WorkspaceSecret,
    ctx: &Context,
    secrets: &Api<Secret>,
    refresh: Duration,
) -> Result<Synced, Error> {
    let compiled = Compiled::new(&ws.spec).map_err(Error::InvalidSpec)?;
    let name = target_name(ws);
    let existing = target::read(secrets, &name).await?;
    let owner = ownership(existing.as_ref().map(|s| &s.metadata), ws);
    let policy = ws.spec.target.creation_policy;
    match (policy, &owner) {
        (CreationPolicy::Merge, Ownership::Absent) => {
            return Err(Error::TargetConflict(format!(
                "Secret {name} does not exist; creationPolicy Merge only writes into an existing Secret"
            )));
        }
        (CreationPolicy::Owner | CreationPolicy::Orphan, Ownership::Foreign) => {
            return Err(Error::TargetConflict(format!(
                "Secret {name} already exists and was not created by this WorkspaceSecret; it is left untouched (use creationPolicy: Merge to add keys to it, or another target.name)"
            )));
        }
        _ => {}
    }
    let workspace = workspace_of(ctx, ws).await?;
    let (cloud, cred) = workspace_credential(ctx, &workspace).await?;
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
    let max_age = if refresh.is_zero() {
        Duration::ZERO
    } else {
        refresh.mul_f64(0.9)
    };
    let view = vault_uri.as_deref().map(|uri| ctx.vaults.view(&cred, uri));
    let listing = match (&view, compiled.needs_workspace_listing()) {
        (Some(v), true) => Some(v.list(ctx.azure.as_ref(), &cred, max_age).await?),
        _ => None,
    };
    let previous = ws
        .status
        .as_ref()
        .map(|s| s.synced_keys.clone())
        .unwrap_or_default();
    let wref = WorkspaceRef {
        subscription_id: workspace.spec.subscription_id.clone(),
        resource_group: workspace.spec.resource_group.clone(),
        workspace_name: workspace.spec.workspace_name.clone(),
    };
    let names = compiled.connection_names();
    let conns = connections::read(ctx, &cred, &wref, &names, max_age).await;
    let mut planned = plan(&compiled, listing.as_deref().map(Vec::as_slice), &previous);
    expand_connections(
        &compiled,
        &connections::fields(&conns),
        &previous,
        &mut planned,
    );
    // Keys another writer holds are never fetched nor written (TargetConflict per key).
    let mut conflicted = Vec::new();
    if let Some(existing) = &existing {
        let found = claims::conflicts(
            existing,
            planned.items.iter().map(|p| p.key.as_str()),
            &field_manager(ws),
            &previous,
            ws.spec.target.existing_keys,
        );
        planned
            .items
            .retain(|p| !found.iter().any(|c| c.key == p.key));
        conflicted = found;
    }
    let sources = Sources {
        ctx,
        cred: &cred,
        cloud: &cloud,
        workspace_vault: view,
        listing,
        max_age,
        connections: &conns,
    };
    let mut results = fetch_all(&sources, &planned.items).await;
    for (key, why) in &planned.invalid {
        results.push(item_error(
            key,
            "",
            reasons::INVALID_SPEC,
            why.clone(),
            false,
        ));
    }
    for gone in &planned.vanished {
        let message = format!("{} was deleted from the vault", gone.reference);
        results.push(item_error(
            &gone.key,
            &gone.reference.to_string(),
            reasons::SECRET_NOT_FOUND,
            message,
            true,
        ));
    }
    results.extend(connections::item_errors(
        ws,
        &compiled,
        &conns,
        &planned,
        &previous,
        no_vault.as_deref(),
    ));
    for c in &conflicted {
        results.push(item_error(
            &c.key,
            "",
            reasons::TARGET_CONFLICT,
            c.message(&name),
            false,
        ));
    }
    let mut existing_data = existing.as_ref().map(target::data_of);
    if let Some(data) = existing_data.as_mut() {
        data.retain(|k, _| !conflicted.iter().any(|c| &c.key == k));
    }
    let mut assembled = assemble(
        results,
        existing_data.as_ref(),
        &previous,
        ws.spec.target.deletion_policy,
    );
    connections::annotate(&conns, &mut assembled.synced_keys);
    connections::warn_expiring(ctx, ws, &cred, &wref, &conns).await;
    let mut notes = connections::notes(&compiled, &conns);
    if !planned.disabled.is_empty() {
        notes.push(format!(
            "skipped disabled vault secrets: {}",
            planned.disabled.join(", ")
        ));
    }
    if let Some(existing) = &existing {
        check_size(
            &assembled.data,
            &target::data_of(existing),
            &previous,
            &name,
        )?;
    } else {
        check_size(&assembled.data, &Default::default(), &previous, &name)?;
    }
    target::write(
        ws,
        secrets,
        existing.as_ref(),
        &assembled,
        &previous,
        &owner,
    )
    .await?;
    if assembled.data.is_empty() && assembled.errors.is_empty() {
        notes.push(nothing_to_write(ws, &name, existing.is_some()));
    }
    Ok(Synced { assembled, notes })
}

fn item_error(
    key: &str,
    reference: &str,
    reason: &'static str,
    message: String,
    not_found: bool,
) -> ItemResult {
    ItemResult {
        key: key.to_string(),
        reference: reference.to_string(),
        outcome: Err(ItemError {
            reason,
            message,
            not_found,
        }),
    }
}

/// Decides how to retry when writing status itself failed.
pub fn error_policy(_ws: Arc<WorkspaceSecret>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %err, "workspace secret reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

/// Refuses data that would not fit in a Secret: ours plus the keys other writers keep there.
fn check_size(
    ours: &BTreeMap<String, Vec<u8>>,
    existing: &BTreeMap<String, Vec<u8>>,
    previous: &[crate::api::workspace_secret::SyncedKey],
    name: &str,
) -> Result<(), Error> {
    let others: BTreeMap<&str, usize> = existing
        .iter()
        .filter(|(k, _)| !ours.contains_key(*k) && !previous.iter().any(|p| &p.key == *k))
        .map(|(k, v)| (k.as_str(), v.len()))
        .collect();
    match size::too_large(ours, &others) {
        Some(why) => Err(Error::TooLarge(format!(
            "Secret {name}: {why}; nothing was written"
        ))),
        None => Ok(()),
    }
}

/// Says what happened when a sync had nothing to write.
fn nothing_to_write(ws: &WorkspaceSecret, name: &str, exists: bool) -> String {
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
    let secret = match (exists, ws.spec.target.creation_policy) {
        (false, _) => format!("Secret {name} was not created"),
        (true, CreationPolicy::Merge) => format!("Secret {name} holds none of its keys"),
        (true, _) => format!("Secret {name} was deleted (no keys left)"),
    };
    format!("{matched}; {secret}")
}
