//! The controllers and how they are wired: watches, triggers, concurrency, shutdown.

pub mod context;
pub mod credentials;
pub mod error;
pub mod push;
mod push_vault;
mod push_wiring;
mod rollout;
mod secret_sync;
mod status;
pub mod target;
mod watches;
pub mod workspace;
pub mod workspace_secret;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use kube::{Client, ResourceExt};
use tracing::{debug, info};

pub use context::{Context, FIELD_MANAGER};
pub use credentials::CREDENTIAL_LABEL;
pub use error::Error;
use watches::Watch;

use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret::{CreationPolicy, WorkspaceSecret};
use crate::sync::build::{MANAGED_LABEL, target_name};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs both controllers over one namespace (or all) until `shutdown` resolves.
pub async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = namespace.as_deref();
    let grace = shutdown.clone();
    let client = ctx.client.clone();
    let concurrency = ControllerConfig::default().concurrency(ctx.args.concurrency);
    let watches = ctx.metrics.health.watches_started();
    let pushes = push_wiring::run(ctx.clone(), namespace.clone(), shutdown.clone());

    // AzureMLWorkspace: re-check on spec changes and when a ServiceAccount it names changes.
    let (ws_reader, ws_writer) = reflector::store::<AzureMLWorkspace>();
    let own_watch = Watch::new(&client, ns, "AzureMLWorkspaces");
    let ws_stream = own_watch
        .stream(watch(api::<AzureMLWorkspace>(&own_watch.client, ns)))
        .reflect(ws_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default())
        .inspect(work_arrived(&ctx));
    let sa_store = ws_reader.clone();
    let cred_store = ws_reader.clone();
    let credential_label = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}=true"));
    let sa_watch = Watch::new(&client, ns, "ServiceAccounts");
    let cred_watch = Watch::new(&client, ns, "credential Secrets");
    let workspaces = Controller::for_stream(ws_stream, ws_reader.clone())
        .with_config(concurrency.clone())
        .trigger_backoff(watches::WatchBackoff::new())
        .watches_stream(
            sa_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<ServiceAccount>>(&sa_watch.client, ns),
                    watcher::Config::default(),
                ))
                .touched_objects(),
            move |sa| {
                let sa_ns = sa.namespace();
                let sa_name = sa.name_any();
                sa_store
                    .state()
                    .into_iter()
                    .filter(|w| {
                        w.namespace() == sa_ns
                            && w.spec
                                .auth
                                .workload_identity
                                .as_ref()
                                .and_then(|wi| wi.service_account_name.as_deref())
                                == Some(sa_name.as_str())
                    })
                    .map(|w| ObjectRef::from_obj(&*w))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            cred_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<Secret>>(&cred_watch.client, ns),
                    credential_label,
                ))
                .touched_objects(),
            move |secret| {
                let (s_ns, s_name) = (secret.namespace(), secret.name_any());
                cred_store
                    .state()
                    .into_iter()
                    .filter(|w| {
                        w.namespace() == s_ns
                            && credentials::referenced_secrets(w).contains(&s_name.as_str())
                    })
                    .map(|w| ObjectRef::from_obj(&*w))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |obj, ctx| tracked(ctx.clone(), workspace::reconcile(obj, ctx)),
            workspace::error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "workspace controller event");
            }
        });

    // WorkspaceSecret: re-sync on spec changes, on changes of its workspace (status included),
    // and when a Secret the operator manages is edited or deleted (metadata-only, by label).
    let (wsec_reader, wsec_writer) = reflector::store::<WorkspaceSecret>();
    let own_watch = Watch::new(&client, ns, "WorkspaceSecrets");
    let wsec_stream = own_watch
        .stream(watch(api::<WorkspaceSecret>(&own_watch.client, ns)))
        .reflect(wsec_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        )
        .inspect(work_arrived(&ctx));
    let synced = {
        let (ws_reader, wsec_reader) = (ws_reader.clone(), wsec_reader.clone());
        let watches = &watches;
        async move {
            if ws_reader.wait_until_ready().await.is_ok()
                && wsec_reader.wait_until_ready().await.is_ok()
            {
                watches.synced();
            }
        }
    };
    let by_workspace = wsec_reader.clone();
    let by_secret = wsec_reader.clone();
    let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let ws_watch = Watch::new(&client, ns, "AzureMLWorkspaces of WorkspaceSecrets");
    let managed_watch = Watch::new(&client, ns, "managed Secrets");
    let secrets = Controller::for_stream(wsec_stream, wsec_reader)
        .with_config(concurrency)
        .trigger_backoff(watches::WatchBackoff::new())
        .watches_stream(
            ws_watch
                .stream(watch(api::<AzureMLWorkspace>(&ws_watch.client, ns)))
                .touched_objects()
                .predicate_filter(workspace_fingerprint, Default::default()),
            move |w| {
                let (w_ns, w_name) = (w.namespace(), w.name_any());
                by_workspace
                    .state()
                    .into_iter()
                    .filter(|s| s.namespace() == w_ns && s.spec.workspace_ref.name == w_name)
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            managed_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<Secret>>(&managed_watch.client, ns),
                    managed,
                ))
                .touched_objects(),
            move |secret| {
                let (s_ns, s_name) = (secret.namespace(), secret.name_any());
                by_secret
                    .state()
                    .into_iter()
                    .filter(|w| w.namespace() == s_ns && target_name(w) == s_name)
                    .map(|w| ObjectRef::from_obj(&*w))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| tracked(ctx.clone(), workspace_secret::reconcile(obj, ctx)),
            workspace_secret::error_policy,
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "workspace secret controller event");
            }
        });
    info!(namespace = ns.unwrap_or("*"), "controllers started");
    // A graceful shutdown lets in-flight reconciles finish, but a controller whose cache had not
    // synced yet never drains (kube-runtime holds its runner until the store is ready), so the
    // drain is bounded: what is still running after DRAIN_LIMIT is aborted.
    let drained = async {
        futures::join!(workspaces, secrets, pushes, synced);
    };
    tokio::select! {
        () = drained => {}
        () = async { grace.await; tokio::time::sleep(DRAIN_LIMIT).await } => {
            tracing::warn!(limit = ?DRAIN_LIMIT, "controllers did not drain after shutdown; stopping them");
        }
    }
}

/// How long in-flight reconciles may run after shutdown before they are aborted.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one reconcile while the health state counts it as running (for `/livez`).
async fn tracked<F: std::future::Future>(ctx: Arc<Context>, reconcile: F) -> F::Output {
    let _running = ctx.metrics.health.reconcile_started();
    reconcile.await
}

/// Returns a stream inspector that tells the health state a watch delivered work.
fn work_arrived<K, E>(ctx: &Context) -> impl Fn(&Result<K, E>) + use<K, E> {
    let health = ctx.metrics.health.clone();
    move |item| {
        if item.is_ok() {
            health.work_arrived();
        }
    }
}

fn watch<K>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default())
}

/// Runs the controllers over every watched namespace until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.shared();
    let namespaces = ctx.args.watched_namespaces();
    if namespaces.is_empty() {
        run_scope(ctx, None, shutdown).await;
    } else {
        let scopes = namespaces
            .into_iter()
            .map(|ns| run_scope(ctx.clone(), Some(ns), shutdown.clone()));
        futures::future::join_all(scopes).await;
    }
}

/// Hashes what WorkspaceSecrets depend on in a workspace: its spec, readiness and vault — not
/// the time of its last check, so routine re-checks do not wake every WorkspaceSecret.
fn workspace_fingerprint(w: &AzureMLWorkspace) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.metadata.uid.hash(&mut h);
    w.metadata.generation.hash(&mut h);
    if let Some(s) = &w.status {
        s.observed_generation.hash(&mut h);
        s.key_vault.as_ref().map(|k| &k.uri).hash(&mut h);
        if let Some(r) = crate::api::conditions::find_ready(&s.conditions) {
            (&r.status, &r.reason).hash(&mut h);
        }
    }
    Some(h.finish())
}

/// Tells whether a WorkspaceSecret keeps a finalizer (only `Merge` needs one, to release its keys).
pub fn needs_finalizer(ws: &WorkspaceSecret) -> bool {
    ws.spec.target.creation_policy == CreationPolicy::Merge
}
