//! The WorkspaceSecretPush controller: finalizer → dereference the workspace, its credential and
//! the source Secret → push (`push_vault`: the vault secrets wanted and a step per item, both
//! pure, then vault IO through the vault's shared budget) → the report (pure) → publish status,
//! Events and metrics; on deletion, clean up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::Context;
use super::credentials::{reader_credential, usable_workspace};
use super::error::Error;
use super::push_vault::{Io, push_all};
use crate::api::duration;
use crate::api::workspace_secret::DeletionPolicy;
use crate::api::workspace_secret_push::WorkspaceSecretPush;
use crate::azure::Credential;
use crate::fetch::VaultView;
use crate::sync::push::{self, Inputs, Outcome};
use crate::sync::report::{Failure, Next, Retry};

/// The finalizer that lets a push delete what it wrote (`deletionPolicy: Delete`) and take its
/// label off the source Secret before it goes.
pub const FINALIZER: &str = "amlsecrets.io/push-cleanup";
/// The label a push puts on its source Secret so that only labelled Secrets are watched
/// (metadata only): a change of the source then reaches the vault within seconds.
pub const SOURCE_LABEL: &str = "amlsecrets.io/push-source";
/// The default `refreshInterval` of a push.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// Returns the refresh interval of a push.
pub fn refresh_interval(p: &WorkspaceSecretPush) -> Duration {
    p.spec
        .refresh_interval
        .as_deref()
        .and_then(duration::parse)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_REFRESH_INTERVAL)
}

/// Pushes one WorkspaceSecretPush and publishes its status.
pub async fn reconcile(
    cached: Arc<WorkspaceSecretPush>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let api: Api<WorkspaceSecretPush> = Api::namespaced(ctx.client.clone(), &ns);
    // A fresh read: the cache may not hold the status this controller wrote last, and the
    // digests in it are what keep a refresh from writing a version again.
    let Some(p) = api
        .get_opt(&cached.name_any())
        .await
        .map_err(|e| Error::kube("read WorkspaceSecretPush", &cached.name_any(), e))?
    else {
        return Ok(Action::await_change());
    };
    if p.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_push(&ns, &p.name_any());
        ctx.succeeded(&ObjectRef::from_obj(&p));
        return finalize(&ctx, &p, &api).await;
    }
    if !p.finalizers().iter().any(|f| f == FINALIZER) {
        set_finalizer(&api, &p, true).await?;
    }
    let started = Instant::now();
    let refresh = refresh_interval(&p);
    let outcome = push_all(&ctx, &p).await;
    let previous = p.status.clone().unwrap_or_default();
    let now = Timestamp::now().to_string();
    let report = push::report(
        &Inputs {
            previous: &previous,
            generation: p.metadata.generation,
            refresh,
            now: &now,
        },
        &outcome,
    );
    for n in &report.notices {
        let regarding = p.object_ref(&());
        super::status::emit(&ctx, &regarding, "Push", &n.reason, &n.note, n.warning).await;
    }
    let reason = report.status.conditions[0].reason.clone();
    ctx.metrics
        .reconciled("workspacesecretpush", &reason, started.elapsed());
    if let Ok(pushed) = &outcome {
        let written = pushed
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Wrote(..)))
            .count();
        ctx.metrics
            .pushed(&ns, &p.name_any(), written, report.status.items.len());
    }
    if report.write_status {
        super::status::apply(&api, &p.name_any(), &report.status).await?;
    }
    let oref = ObjectRef::from_obj(&p);
    if report.healthy {
        ctx.succeeded(&oref);
    }
    Ok(match report.next {
        Next::Backoff(cap) => Action::requeue(ctx.backoff(&oref, cap)),
        Next::After(d) => Action::requeue(super::context::jitter(d, 0.1)),
        Next::AwaitChange => Action::await_change(),
    })
}

/// Classifies a failed step for the report.
pub(super) fn failure(e: &Error) -> Failure {
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

/// The workspace's vault as this push's identity sees it.
pub(super) struct Target {
    pub(super) cred: Arc<Credential>,
    pub(super) view: Arc<VaultView>,
}

/// Finds the workspace (same namespace), its credential and the view of its vault.
pub(super) async fn target(ctx: &Context, p: &WorkspaceSecretPush) -> Result<Target, Error> {
    let ns = p.namespace().unwrap_or_default();
    let workspace = usable_workspace(ctx, &ns, &p.spec.workspace_ref.name).await?;
    let (_, cred) = reader_credential(ctx, &workspace).await?;
    let uri = workspace
        .status
        .as_ref()
        .and_then(|s| s.key_vault.as_ref())
        .map(|k| k.uri.clone())
        .ok_or_else(|| {
            Error::NoKeyVault(format!(
                "AzureMLWorkspace {} has no customer Key Vault to push into",
                workspace.name_any()
            ))
        })?;
    let view = ctx.vaults.view(&cred, &uri);
    Ok(Target { cred, view })
}

/// Reads the source Secret and makes sure it carries the watch label.
pub(super) async fn read_source(
    ctx: &Context,
    p: &WorkspaceSecretPush,
) -> Result<Option<std::collections::BTreeMap<String, Vec<u8>>>, Error> {
    let ns = p.namespace().unwrap_or_default();
    let name = &p.spec.source.name;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(secret) = api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube("read source Secret", name, e))?
    else {
        return Ok(None);
    };
    if secret.labels().get(SOURCE_LABEL).map(String::as_str) != Some("true") {
        // A merge patch never creates the Secret (an apply would, were it deleted meanwhile).
        let patch = json!({ "metadata": { "labels": { SOURCE_LABEL: "true" } } });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            // Gone meanwhile: the data read above is still what is pushed this time.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            // Without the label the push still works, but sees changes only at its interval.
            Err(kube::Error::Api(s)) => {
                warn!(secret = %name, code = s.code, message = %s.message, "cannot label the source Secret; its changes are noticed at the refresh interval only");
            }
            Err(e) => return Err(Error::kube("label source Secret", name, e)),
        }
    }
    Ok(Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
    ))
}

/// Deletes what the push wrote (`deletionPolicy: Delete`), takes the label off its source when
/// no other push reads it, then lets the push go. A vault that cannot be reached for reasons a
/// retry will not fix (workspace gone, no permission) leaves its secrets in place, with a Warning.
async fn finalize(
    ctx: &Context,
    p: &WorkspaceSecretPush,
    api: &Api<WorkspaceSecretPush>,
) -> Result<Action, Error> {
    if !p.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let items = p
        .status
        .as_ref()
        .map(|s| s.items.clone())
        .unwrap_or_default();
    if p.spec.deletion_policy == DeletionPolicy::Delete && !items.is_empty() {
        let mut left = Vec::new();
        match target(ctx, p).await {
            Ok(t) => {
                let io = Io {
                    ctx,
                    p,
                    cred: &t.cred,
                    view: &t.view,
                    push: String::new(),
                    uid: p.uid().unwrap_or_default(),
                };
                let mut deleted = Vec::new();
                for item in &items {
                    match io.delete_if_ours(&item.remote_name).await {
                        Ok(true) => deleted.push(item.remote_name.clone()),
                        Ok(false) => {}
                        Err(e) if e.is_transient() => return Err(Error::Azure(e)),
                        Err(e) => left.push(format!("{}: {e}", item.remote_name)),
                    }
                }
                if !deleted.is_empty() {
                    event(ctx, p, false, crate::api::conditions::events::DELETED_FROM_VAULT, format!(
                        "deleted {} from the vault (deletionPolicy: Delete; on a soft-delete vault each name stays reserved until purged)",
                        deleted.join(", ")
                    ))
                    .await;
                }
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => left.push(e.to_string()),
        }
        if !left.is_empty() {
            event(
                ctx,
                p,
                true,
                crate::api::conditions::events::DELETE_FAILED,
                format!(
                    "the vault secrets of this push were not deleted and remain: {}",
                    left.join("; ")
                ),
            )
            .await;
        }
    }
    release_source(ctx, p).await?;
    set_finalizer(api, p, false).await?;
    Ok(Action::await_change())
}

async fn event(ctx: &Context, p: &WorkspaceSecretPush, warning: bool, reason: &str, note: String) {
    let e = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(super::status::event_note(&note, 1000)),
        action: "Push".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&e, &p.object_ref(&())).await {
        warn!(error = %err, reason, "cannot publish event");
    }
}

/// Takes the watch label off the source Secret unless another push of the namespace reads it.
async fn release_source(ctx: &Context, p: &WorkspaceSecretPush) -> Result<(), Error> {
    let ns = p.namespace().unwrap_or_default();
    let source = &p.spec.source.name;
    let pushes: Api<WorkspaceSecretPush> = Api::namespaced(ctx.client.clone(), &ns);
    let others = pushes
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::kube("list WorkspaceSecretPushes", &ns, e))?;
    let shared = others.items.iter().any(|o| {
        o.uid() != p.uid()
            && &o.spec.source.name == source
            && o.metadata.deletion_timestamp.is_none()
    });
    if shared {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({ "metadata": { "labels": { SOURCE_LABEL: null } } });
    match secrets
        .patch(source, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("unlabel source Secret", source, e)),
    }
}

async fn set_finalizer(
    api: &Api<WorkspaceSecretPush>,
    p: &WorkspaceSecretPush,
    present: bool,
) -> Result<(), Error> {
    let mut finalizers: Vec<String> = p
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.to_string());
    }
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": p.resource_version() } });
    match api
        .patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(()),
        Err(e) => Err(Error::kube(
            "update finalizers of WorkspaceSecretPush",
            &p.name_any(),
            e,
        )),
    }
}

/// Decides how to retry when a reconcile itself failed (status write, finalizer, cleanup).
pub fn error_policy(_p: Arc<WorkspaceSecretPush>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %err, "workspace secret push reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
