//! How the WorkspaceSecretPush controller is wired: its own watch, its share of the one
//! AzureMLWorkspace watch, and its source
//! Secrets — only those labelled `amlsecrets.io/push-source=true` (metadata only, selected by the
//! API server), the label each push puts on its source, so no other Secret is watched.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use tracing::debug;

use super::push::{self, SOURCE_LABEL};
use super::triggers::{changed, workspace_fingerprint};
use super::watches::{Watch, WatchBackoff};
use super::{Context, api, tracked, work_arrived};
use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret_push::WorkspaceSecretPush;

/// Runs the WorkspaceSecretPush controller over one namespace (or all) until `shutdown` resolves.
/// `workspaces` is this controller's share of the one AzureMLWorkspace watch.
pub(super) async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    workspaces: impl futures::Stream<Item = Arc<AzureMLWorkspace>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = namespace.as_deref();
    let client = ctx.client.clone();
    let (reader, writer) = reflector::store::<WorkspaceSecretPush>();
    let own_watch = Watch::new(&client, ns, "WorkspaceSecretPushes");
    let stream = own_watch
        .stream(watcher::watcher(
            api::<WorkspaceSecretPush>(&own_watch.client, ns),
            watcher::Config::default(),
        ))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        )
        .inspect(work_arrived(&ctx));
    // `/readyz` waits for this watch to have listed its objects too.
    let watches = ctx.metrics.health.watches_started();
    let synced = {
        let reader = reader.clone();
        let watches = &watches;
        async move {
            if reader.wait_until_ready().await.is_ok() {
                watches.synced();
            }
        }
    };
    let by_workspace = reader.clone();
    let by_source = reader.clone();
    let source_watch = Watch::new(&client, ns, "push source Secrets");
    let labelled = watcher::Config::default().labels(&format!("{SOURCE_LABEL}=true"));
    let controller = Controller::for_stream(stream, reader)
        .with_config(ControllerConfig::default().concurrency(ctx.args.concurrency))
        .trigger_backoff(WatchBackoff::new())
        .watches_shared_stream(changed(workspaces, workspace_fingerprint), move |w| {
            let (w_ns, w_name) = (w.namespace(), w.name_any());
            by_workspace
                .state()
                .into_iter()
                .filter(|p| p.namespace() == w_ns && p.spec.workspace_ref.name == w_name)
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .watches_stream(
            source_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<Secret>>(&source_watch.client, ns),
                    labelled,
                ))
                .touched_objects(),
            move |secret| {
                let (s_ns, s_name) = (secret.namespace(), secret.name_any());
                by_source
                    .state()
                    .into_iter()
                    .filter(|p| p.namespace() == s_ns && p.spec.source.name == s_name)
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| tracked(ctx.clone(), push::reconcile(obj, ctx)),
            push::error_policy,
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "workspace secret push controller event");
            }
        });
    futures::join!(controller, synced);
}
