//! What a rollout tells: Events on the WorkspaceSecret and on each rolled workload.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use super::Rollouts;
use crate::api::conditions::events;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::controller::Context;

pub(super) fn keys_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" (keys: {})", keys.join(", "))
    }
}

/// Tells a WorkspaceSecret once (per operator process) that rollouts are not permitted.
pub(super) async fn tell_forbidden(
    ctx: &Context,
    rollouts: &Rollouts,
    ws: &WorkspaceSecret,
    why: &str,
) {
    let id = ws.uid().unwrap_or_default();
    if !rollouts.told.lock().expect("told lock").insert(id) {
        return;
    }
    let note = format!(
        "rollout annotations of workloads are ignored here: the operator may not read or patch them ({why}); grant get/list/patch on deployments, statefulsets and daemonsets and list on pods (chart value config.rolloutWorkloads)"
    );
    publish(
        ctx,
        &ws.object_ref(&()),
        events::ROLLOUT_NOT_PERMITTED,
        &note,
        true,
    )
    .await;
}

/// Publishes `RolledOut` on a rolled workload, naming the Secret, the keys and the WorkspaceSecret.
pub(super) async fn announce_on_workload(
    ctx: &Context,
    ws: &WorkspaceSecret,
    workload: &DynamicObject,
    target: &str,
    changed_keys: &[String],
) {
    let reference = ObjectReference {
        api_version: workload.types.as_ref().map(|t| t.api_version.clone()),
        kind: workload.types.as_ref().map(|t| t.kind.clone()),
        name: workload.metadata.name.clone(),
        namespace: workload.metadata.namespace.clone(),
        uid: workload.metadata.uid.clone(),
        resource_version: workload.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let why = if changed_keys.is_empty() {
        format!("its pods ran with older data of Secret {target}")
    } else {
        format!("Secret {target} changed{}", keys_note(changed_keys))
    };
    let note = format!("rolling out: {why}; by WorkspaceSecret {}", ws.name_any());
    publish(ctx, &reference, events::ROLLED_OUT, &note, false).await;
}

pub(super) async fn publish(
    ctx: &Context,
    regarding: &ObjectReference,
    reason: &str,
    note: &str,
    warning: bool,
) {
    crate::controller::status::emit(ctx, regarding, "Rollout", reason, note, warning).await;
}
