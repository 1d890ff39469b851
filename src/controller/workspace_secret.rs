//! The WorkspaceSecret controller: release keys on deletion, sync (see `secret_sync`), then the
//! pure report step decides status, Events and the next reconcile, and this module publishes them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::error::Error;
use super::{Context, rollout, secret_sync, target};
use crate::api::duration;
use crate::api::workspace_secret::{CreationPolicy, DEFAULT_REFRESH_INTERVAL, WorkspaceSecret};
use crate::sync::build::target_name;
use crate::sync::claims::field_manager;
use crate::sync::report::{self, Failure, Inputs, Next, Report, Retry};

/// The finalizer that lets a `Merge` WorkspaceSecret remove its keys before it goes.
pub const FINALIZER: &str = "amlsecrets.io/release-keys";

/// Returns the refresh interval of a WorkspaceSecret; zero means sync once.
pub fn refresh_interval(ws: &WorkspaceSecret) -> Duration {
    let text = ws
        .spec
        .refresh_interval
        .as_deref()
        .unwrap_or(DEFAULT_REFRESH_INTERVAL);
    duration::parse(text).unwrap_or(Duration::from_secs(3600))
}

/// Syncs one WorkspaceSecret and publishes its status: finalizer → sync → report → publish.
pub async fn reconcile(ws: Arc<WorkspaceSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The store keeps each object's syncedKeys apart (see `caches`).
    let ws = ctx.caches.with_synced_keys(ws);
    let ns = ws.namespace().unwrap_or_default();
    let ws_api: Api<WorkspaceSecret> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    if ws.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget(&ns, &ws.name_any());
        ctx.succeeded(&ObjectRef::from_obj(&*ws));
        return finalize(&ws, &ws_api, &secrets).await;
    }
    ensure_finalizer(&ws, &ws_api).await?;

    let started = std::time::Instant::now();
    let refresh = refresh_interval(&ws);
    let target = target_name(&ws);
    let outcome = secret_sync::sync(&ws, &target, &ctx, &secrets, refresh)
        .await
        .map_err(|e| failure(&e));
    if let Ok(synced) = &outcome {
        let changed = &synced.assembled.changed;
        rollout::follow(&ctx, &ws, &target, synced.data_changed, changed).await;
    }
    let previous = ws.status.clone().unwrap_or_default();
    let now = Timestamp::now().to_string();
    let report = report::report(
        &Inputs {
            previous: &previous,
            generation: ws.metadata.generation,
            target: &target,
            refresh,
            max_retry_delay: ctx.args.max_retry_delay,
            expiry_warning: ctx.args.expiry_warning,
            now: &now,
        },
        &outcome,
    );
    publish(&ctx, &ws, &ws_api, &report, &outcome, started).await?;
    Ok(next_action(&ctx, &ws, &report))
}

/// Classifies a failed sync for the report step.
fn failure(e: &Error) -> Failure {
    let retry = match e {
        Error::InvalidSpec(_) => Retry::OnSpecChange,
        Error::WorkspacePending(_) => Retry::Pending,
        e if e.is_transient() => Retry::Backoff,
        _ => Retry::AtInterval,
    };
    Failure {
        reason: e.reason(),
        message: e.to_string(),
        retry,
    }
}

/// Publishes the report: Events, the status when it is worth a write, then metrics.
async fn publish(
    ctx: &Context,
    ws: &WorkspaceSecret,
    api: &Api<WorkspaceSecret>,
    report: &Report,
    outcome: &Result<report::Synced, Failure>,
    started: std::time::Instant,
) -> Result<(), Error> {
    for n in &report.notices {
        let regarding = ws.object_ref(&());
        super::status::emit(ctx, &regarding, "Sync", &n.reason, &n.note, n.warning).await;
    }
    let ready = &report.status.conditions[0];
    ctx.metrics
        .reconciled("workspacesecret", &ready.reason, started.elapsed());
    if report.write_status {
        super::status::apply(api, &ws.name_any(), &report.status).await?;
    }
    // Counted once the sync is whole, status included: whoever waits on the count sees it all.
    if let Ok(synced) = outcome {
        let expiry = synced
            .assembled
            .synced_keys
            .iter()
            // Endpoint tokens are short-lived by design and refreshed on their own schedule.
            .filter(|k| !crate::sync::endpoints::is_token(&k.reference))
            .filter_map(|k| k.expires.as_deref()?.parse::<Timestamp>().ok())
            .map(|t| t.as_second())
            .min();
        let (ns, name) = (ws.namespace().unwrap_or_default(), ws.name_any());
        ctx.metrics
            .synced(&ns, &name, synced.assembled.data.len(), expiry);
    }
    Ok(())
}

/// Maps the report's decision onto a controller action.
fn next_action(ctx: &Context, ws: &WorkspaceSecret, report: &Report) -> Action {
    let oref = ObjectRef::from_obj(ws);
    if report.healthy {
        ctx.succeeded(&oref);
    }
    match report.next {
        Next::Backoff(cap) => Action::requeue(ctx.backoff(&oref, cap)),
        Next::After(d) => Action::requeue(super::context::jitter(d, 0.1)),
        Next::AwaitChange => Action::await_change(),
    }
}

/// Releases this WorkspaceSecret's keys (a `Merge` writer's finalizer), then lets it go.
async fn finalize(
    ws: &WorkspaceSecret,
    api: &Api<WorkspaceSecret>,
    secrets: &Api<Secret>,
) -> Result<Action, Error> {
    if ws.finalizers().iter().any(|f| f == FINALIZER) {
        if let Some(existing) = target::read(secrets, &target_name(ws)).await? {
            let ours = synced_key_names(ws);
            target::release(secrets, &existing, &field_manager(ws), &ours).await?;
        }
        set_finalizer(api, ws, false).await?;
    }
    Ok(Action::await_change())
}

/// Adds the finalizer to a `Merge` writer (and removes it from others).
async fn ensure_finalizer(ws: &WorkspaceSecret, api: &Api<WorkspaceSecret>) -> Result<(), Error> {
    let has = ws.finalizers().iter().any(|f| f == FINALIZER);
    let wants = ws.spec.target.creation_policy == CreationPolicy::Merge;
    if wants != has {
        set_finalizer(api, ws, wants).await?;
    }
    Ok(())
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

/// Decides how to retry when writing status itself failed.
pub fn error_policy(_ws: Arc<WorkspaceSecret>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %err, "workspace secret reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
