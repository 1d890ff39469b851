//! The AzureMLWorkspace controller: authenticate, resolve workspace → vault, prove access with one
//! cheap real call, and tell the truth in status.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::credentials::{rotation_hint, workspace_credential};
use super::error::Error;
use crate::api::conditions::{Condition, find_ready, reasons};
use crate::api::workspace::{
    AzureMLWorkspace, AzureMLWorkspaceStatus, IdentityInfo, KeyVaultInfo, WorkspaceInfo,
};
use crate::azure::{AzureApi, AzureError, CloudEndpoints, Credential, WorkspaceRef};

/// The name read to prove vault access: a 404 or a value both prove the identity may read secrets.
const PROBE_SECRET: &str = "amlsecrets-access-check";

/// What a successful check found.
pub(crate) struct Found {
    pub(crate) workspace: WorkspaceInfo,
    pub(crate) key_vault: Option<KeyVaultInfo>,
    pub(crate) identity: IdentityInfo,
    /// How many connections were listed (only when there is no vault to probe).
    pub(crate) connections: Option<usize>,
}

/// Checks one workspace and writes its status.
pub async fn reconcile(ws: Arc<AzureMLWorkspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let oref = ObjectRef::from_obj(&*ws);
    let started = std::time::Instant::now();
    let outcome = check(&ws, &ctx).await;
    let now = Timestamp::now().to_string();
    let previous = ws.status.clone().unwrap_or_default();
    let (status, action) = match &outcome {
        Ok(found) => {
            ctx.succeeded(&oref);
            let every = super::context::jitter(ctx.args.workspace_check_interval, 0.1);
            (
                resolved(&ws, found, &previous, &now),
                Action::requeue(every),
            )
        }
        Err(e) => {
            let credentials_failed = is_credential_failure(e);
            let hint = match credentials_failed {
                true => rotation_hint(&ctx.client, &ws, longest_recheck(&ctx)).await,
                false => None,
            };
            // Nothing wakes a workspace when an unlabelled credential Secret is fixed or a
            // credential starts to work, so those failures are re-checked like transient ones:
            // from seconds up to the check interval.
            let delay = if e.is_transient() || credentials_failed {
                ctx.backoff(&oref, longest_recheck(&ctx))
            } else {
                ctx.args.workspace_check_interval
            };
            (
                failed(&ws, e, hint, &previous, &now),
                Action::requeue(delay),
            )
        }
    };
    write_status(&ctx, &ws, &previous, &status, started).await?;
    Ok(action)
}

/// The status of a workspace that was checked successfully (pure).
fn resolved(
    ws: &AzureMLWorkspace,
    found: &Found,
    previous: &AzureMLWorkspaceStatus,
    now: &str,
) -> AzureMLWorkspaceStatus {
    let message = match &found.key_vault {
        Some(kv) => format!(
            "authenticated as {}; vault {} is readable",
            describe(&found.identity),
            kv.uri
        ),
        None => format!(
            "authenticated as {}; the workspace has no customer Key Vault, so only connection references can be served ({} connections listed)",
            describe(&found.identity),
            found.connections.unwrap_or_default()
        ),
    };
    let generation = ws.metadata.generation;
    let prev_ready = find_ready(&previous.conditions);
    AzureMLWorkspaceStatus {
        conditions: vec![Condition::ready(
            true,
            reasons::RESOLVED,
            message,
            generation,
            prev_ready,
            now,
        )],
        observed_generation: generation,
        workspace: Some(found.workspace.clone()),
        key_vault: found.key_vault.clone(),
        identity: Some(found.identity.clone()),
        last_checked_time: Some(now.to_string()),
    }
}

/// The status of a workspace whose check failed (pure): what was resolved before is kept.
fn failed(
    ws: &AzureMLWorkspace,
    e: &Error,
    hint: Option<String>,
    previous: &AzureMLWorkspaceStatus,
    now: &str,
) -> AzureMLWorkspaceStatus {
    let mut message = e.to_string();
    if let Some(hint) = hint {
        message.push_str(". ");
        message.push_str(&hint);
    }
    let generation = ws.metadata.generation;
    let prev_ready = find_ready(&previous.conditions);
    AzureMLWorkspaceStatus {
        conditions: vec![Condition::ready(
            false,
            e.reason(),
            message,
            generation,
            prev_ready,
            now,
        )],
        observed_generation: generation,
        last_checked_time: Some(now.to_string()),
        ..previous.clone()
    }
}

/// Counts the reconcile, publishes an Event when `Ready` changed, and writes the status.
async fn write_status(
    ctx: &Context,
    ws: &AzureMLWorkspace,
    previous: &AzureMLWorkspaceStatus,
    status: &AzureMLWorkspaceStatus,
    started: std::time::Instant,
) -> Result<(), Error> {
    let ready = &status.conditions[0];
    ctx.metrics
        .reconciled("workspace", &ready.reason, started.elapsed());
    if find_ready(&previous.conditions)
        .is_none_or(|p| p.status != ready.status || p.reason != ready.reason)
    {
        publish(ctx, ws, ready).await;
    }
    let api: Api<AzureMLWorkspace> =
        Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    super::status::apply(&api, &ws.name_any(), status).await
}

async fn check(ws: &AzureMLWorkspace, ctx: &Context) -> Result<Found, Error> {
    let (cloud, cred) = workspace_credential(ctx, ws).await?;
    resolve(ctx.azure.as_ref(), &cloud, &cred, ws).await
}

/// Resolves workspace → vault and proves access with one cheap real call, with its dependencies
/// explicit so that the CLI's `check` runs exactly this step too.
pub(crate) async fn resolve(
    azure: &dyn AzureApi,
    cloud: &CloudEndpoints,
    cred: &Credential,
    ws: &AzureMLWorkspace,
) -> Result<Found, Error> {
    if let Some(kv) = ws
        .spec
        .key_vault
        .as_ref()
        .filter(|kv| !cloud.allows_vault(&kv.uri))
    {
        return Err(Error::InvalidSpec(format!(
            "keyVault.uri {} is not a Key Vault of {} (hosts end with {}); the identity's token is not sent there",
            kv.uri, cloud.name, cloud.key_vault_dns_suffix
        )));
    }
    let wref = WorkspaceRef {
        subscription_id: ws.spec.subscription_id.clone(),
        resource_group: ws.spec.resource_group.clone(),
        workspace_name: ws.spec.workspace_name.clone(),
    };
    let (workspace, key_vault) = match &ws.spec.key_vault {
        Some(kv) => (
            WorkspaceInfo {
                resource_id: Some(wref.resource_id()),
                ..WorkspaceInfo::default()
            },
            Some(KeyVaultInfo {
                resource_id: None,
                uri: kv.uri.trim_end_matches('/').to_string(),
                source: Some("Spec".into()),
            }),
        ),
        None => {
            let found = azure.get_workspace(cred, &wref).await?;
            let kv = found.key_vault.as_ref().map(|v| KeyVaultInfo {
                resource_id: v.resource_id.clone(),
                uri: v.uri.trim_end_matches('/').to_string(),
                source: Some(v.source.as_str().to_string()),
            });
            let info = WorkspaceInfo {
                resource_id: Some(found.resource_id.clone()),
                kind: Some(found.kind.clone()),
                location: found.location.clone(),
                workspace_id: found.workspace_id.clone(),
                hub_resource_id: found.hub_resource_id.clone(),
            };
            (info, kv)
        }
    };
    let mut connections = None;
    if let Some(kv) = &key_vault {
        match azure.get_secret(cred, &kv.uri, PROBE_SECRET, None).await {
            Ok(_) => {}
            Err(AzureError::SecretNotFound { .. }) | Err(AzureError::SecretDisabled { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        // No vault to probe: Ready means the workspace's connections could be listed.
        connections = Some(azure.list_connections(cred, &wref, None).await?.len());
    }
    let id = cred.identity();
    let identity = IdentityInfo {
        method: id.method.clone(),
        tenant_id: id.tenant_id.clone(),
        client_id: id.client_id.clone(),
        object_id: id.object_id.clone(),
        details: id.details.clone(),
    };
    Ok(Found {
        workspace,
        key_vault,
        identity,
        connections,
    })
}

/// Returns the longest wait between two checks of a failing workspace.
fn longest_recheck(ctx: &Context) -> Duration {
    ctx.args
        .workspace_check_interval
        .min(ctx.args.max_retry_delay)
}

/// Tells whether the credentials were unavailable (a missing Secret or key, unusable material) or
/// rejected (Entra ID refused them, a service refused the token).
fn is_credential_failure(e: &Error) -> bool {
    matches!(
        e.reason(),
        reasons::CREDENTIALS_UNAVAILABLE | reasons::AUTHENTICATION_FAILED
    )
}

fn describe(id: &IdentityInfo) -> String {
    let mut s = crate::azure::method_label(&id.method).to_string();
    if let Some(c) = &id.client_id {
        s.push_str(&format!(" client {c}"));
    }
    if let Some(o) = &id.object_id {
        s.push_str(&format!(" (object {o})"));
    }
    s
}

/// Publishes an Event for a Ready transition.
pub(crate) async fn publish<K>(ctx: &Context, obj: &K, ready: &Condition)
where
    K: Resource<DynamicType = ()>,
{
    let regarding = obj.object_ref(&());
    let warning = !ready.is_true();
    super::status::emit(
        ctx,
        &regarding,
        "Reconcile",
        &ready.reason,
        &ready.message,
        warning,
    )
    .await;
}

/// Decides how to retry when writing status itself failed.
pub fn error_policy(_ws: Arc<AzureMLWorkspace>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %err, "workspace reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
