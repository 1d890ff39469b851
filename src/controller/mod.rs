//! The controllers and how they are wired: one watch per kind (the AzureMLWorkspaces' shared by
//! all three controllers), what wakes each controller, concurrency, shutdown.

mod backoff;
mod caches;
pub mod context;
pub mod credentials;
pub mod error;
pub mod events;
pub mod push;
mod push_vault;
mod push_wiring;
mod rollout;
pub(crate) mod secret_sync;
mod status;
pub mod target;
mod triggers;
mod wakes;
mod watches;
pub mod workspace;
pub mod workspace_secret;

use std::future::{Future, ready};
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use kube::{Client, Resource};
use tracing::{debug, info};

pub use context::{Context, FIELD_MANAGER};
pub use credentials::CREDENTIAL_LABEL;
pub use error::Error;
use triggers::{
    changed, naming_service_account, of_workspace, referencing_secret, workspace_fingerprint,
    writing_secret,
};
use watches::{Fanout, Watch, WatchBackoff};

use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::sync::build::MANAGED_LABEL;

/// The events of one watch, as [`Watch::stream`] passes them on.
type Events<K> = Result<Event<K>, watcher::Error>;

/// Runs both controllers over one namespace (or all) until `shutdown` resolves.
pub async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = namespace.as_deref();
    let grace = shutdown.clone();
    let watches = ctx.metrics.health.watches_started();

    // One watch of the AzureMLWorkspaces feeds one store and both controllers.
    let (ws_store, ws_writer) = reflector::store::<AzureMLWorkspace>();
    ctx.caches.add_workspaces(ws_store.clone());
    let mut fanout = Fanout::new(ws_store.clone());
    let (for_workspaces, for_secrets) = (fanout.subscribe(), fanout.subscribe());
    let for_pushes = fanout.subscribe();
    let ws_watch = Watch::new(&ctx.client, ns, "AzureMLWorkspaces");
    let ws_events = ws_watch
        .stream(watch(api::<AzureMLWorkspace>(&ws_watch.client, ns)))
        .modify(slim)
        .reflect(ws_writer)
        .inspect(forget_gone(&ctx, ws_store.clone()))
        .inspect(forget_deleted_workspace(&ctx));
    let ws_root = fanout
        .feed(ws_events)
        .take_until(shutdown.clone())
        .for_each(|_| ready(()));

    let (wsec_store, wsec_writer) = reflector::store::<WorkspaceSecret>();
    let wsec_watch = Watch::new(&ctx.client, ns, "WorkspaceSecrets");
    let wsec_events = wsec_watch
        .stream(watch(api::<WorkspaceSecret>(&wsec_watch.client, ns)))
        .modify(slim)
        .map_ok(stash_synced_keys(&ctx))
        .reflect(wsec_writer)
        .inspect(forget_gone(&ctx, wsec_store.clone()))
        .inspect(prune_synced_keys(&ctx, wsec_store.clone()))
        .inspect(forget_deleted_reader(&ctx));

    let synced = {
        let (ws_store, wsec_store, watches) = (ws_store.clone(), wsec_store.clone(), &watches);
        async move {
            if ws_store.wait_until_ready().await.is_ok()
                && wsec_store.wait_until_ready().await.is_ok()
            {
                watches.synced();
            }
        }
    };
    let workspaces = workspaces(&ctx, ns, for_workspaces, ws_store, shutdown.clone());
    let secrets = workspace_secrets(
        &ctx,
        ns,
        wsec_events,
        wsec_store,
        for_secrets,
        shutdown.clone(),
    );
    let pushes = push_wiring::run(ctx.clone(), namespace.clone(), for_pushes, shutdown);
    info!(namespace = ns.unwrap_or("*"), "controllers started");
    // A graceful shutdown lets in-flight reconciles finish, but a controller whose cache had not
    // synced yet never drains (kube-runtime holds its runner until the store is ready), so the
    // drain is bounded: what is still running after DRAIN_LIMIT is aborted.
    let drained = async {
        futures::join!(ws_root, workspaces, secrets, pushes, synced);
    };
    tokio::select! {
        () = drained => {}
        () = async { grace.await; tokio::time::sleep(DRAIN_LIMIT).await } => {
            tracing::warn!(limit = ?DRAIN_LIMIT, "controllers did not drain after shutdown; stopping them");
        }
    }
}

/// The AzureMLWorkspace controller: re-checks a workspace when its spec changes (its generation)
/// and when a ServiceAccount or labelled credential Secret it names changes.
async fn workspaces(
    ctx: &Arc<Context>,
    ns: Option<&str>,
    objects: impl Stream<Item = Arc<AzureMLWorkspace>> + Send + 'static,
    store: Store<AzureMLWorkspace>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let sa_watch = Watch::new(&ctx.client, ns, "ServiceAccounts");
    let cred_watch = Watch::new(&ctx.client, ns, "credential Secrets");
    let credential_label = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}=true"));
    let (by_sa, by_secret) = (store.clone(), store.clone());
    let own = changed(objects, predicates::generation).inspect(work_arrived(ctx));
    Controller::for_shared_stream(own, store)
        .with_config(ControllerConfig::default().concurrency(ctx.args.concurrency))
        .trigger_backoff(WatchBackoff::new())
        .watches_stream(
            sa_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<ServiceAccount>>(&sa_watch.client, ns),
                    watcher::Config::default(),
                ))
                .touched_objects(),
            move |sa| naming_service_account(&by_sa, &sa),
        )
        .watches_stream(
            cred_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<Secret>>(&cred_watch.client, ns),
                    credential_label,
                ))
                .touched_objects(),
            move |secret| referencing_secret(&by_secret, &secret),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| tracked(ctx.clone(), workspace::reconcile(obj, ctx)),
            workspace::error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "workspace controller event");
            }
        })
        .await;
}

/// The WorkspaceSecret controller: re-syncs on spec changes (generation, finalizers), when what
/// it depends on in its workspace changes ([`workspace_fingerprint`]), and when a Secret the
/// operator manages is edited or deleted (metadata-only, by label).
async fn workspace_secrets(
    ctx: &Arc<Context>,
    ns: Option<&str>,
    events: impl Stream<Item = Events<WorkspaceSecret>> + Send + 'static,
    store: Store<WorkspaceSecret>,
    workspaces: impl Stream<Item = Arc<AzureMLWorkspace>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let managed_watch = Watch::new(&ctx.client, ns, "managed Secrets");
    let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let (by_workspace, by_secret) = (store.clone(), store.clone());
    let own_writes = ctx.clone();
    let woken = ctx.wakes.subscribe(ns);
    let (managed_store, managed_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    ctx.caches.add_managed(managed_store);
    let own = events
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        )
        .inspect(work_arrived(ctx));
    Controller::for_stream(own, store)
        .with_config(ControllerConfig::default().concurrency(ctx.args.concurrency))
        .trigger_backoff(WatchBackoff::new())
        .watches_shared_stream(changed(workspaces, workspace_fingerprint), move |w| {
            of_workspace(&by_workspace, &w)
        })
        .watches_stream(
            managed_watch
                .stream(watcher::watcher(
                    api::<PartialObjectMeta<Secret>>(&managed_watch.client, ns),
                    managed,
                ))
                .modify(bare)
                .reflect(managed_writer)
                .touched_objects(),
            move |secret| {
                // The operator's own write coming back wakes nobody: the sync that wrote it is
                // done with it (and a second sync now would read a status the store may not
                // have caught up with yet).
                if own_writes.caches.knows(&secret) {
                    return Vec::new();
                }
                writing_secret(&by_secret, &secret)
            },
        )
        .reconcile_on(woken)
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| tracked(ctx.clone(), workspace_secret::reconcile(obj, ctx)),
            workspace_secret::error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "workspace secret controller event");
            }
        })
        .await;
}

/// Returns an inspector of a watch's events that forgets the failures (backoff) of objects that
/// are gone.
fn forget_gone<K>(ctx: &Arc<Context>, store: Store<K>) -> impl Fn(&Events<K>) + use<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let ctx = ctx.clone();
    move |event| {
        if let Ok(event) = event {
            ctx.failures.observe(event, &store);
        }
    }
}

/// Returns a step of the WorkspaceSecret watch, before its store, that keeps each object's
/// `status.syncedKeys` serialized beside the store rather than in it (see [`caches`]).
fn stash_synced_keys(
    ctx: &Arc<Context>,
) -> impl FnMut(Event<WorkspaceSecret>) -> Event<WorkspaceSecret> + use<> {
    let ctx = ctx.clone();
    move |mut event| {
        ctx.caches.stash_synced_keys(&mut event);
        event
    }
}

/// Returns an inspector of the WorkspaceSecret watch that, after a relist, forgets the kept
/// `syncedKeys` of objects that are gone.
fn prune_synced_keys(
    ctx: &Arc<Context>,
    store: Store<WorkspaceSecret>,
) -> impl Fn(&Events<WorkspaceSecret>) + use<> {
    let ctx = ctx.clone();
    move |event| {
        if let Ok(Event::InitDone) = event {
            ctx.caches.prune_synced_keys(&store);
        }
    }
}

/// Returns an inspector of the WorkspaceSecret watch that forgets a deleted one's interest in the
/// vault views and what the operator cached of its Secret.
fn forget_deleted_reader(ctx: &Arc<Context>) -> impl Fn(&Events<WorkspaceSecret>) + use<> {
    let ctx = ctx.clone();
    move |event| {
        if let Ok(Event::Delete(ws)) = event {
            let reader = reflector::ObjectRef::from_obj(ws);
            ctx.vaults.forget(&reader);
            ctx.connections.forget(&reader);
            let ns = ws.metadata.namespace.as_deref().unwrap_or_default();
            ctx.caches
                .forget_secret(ns, &crate::sync::build::target_name(ws));
        }
    }
}

/// Returns an inspector of the AzureMLWorkspace watch that forgets a deleted one's credential.
fn forget_deleted_workspace(ctx: &Arc<Context>) -> impl Fn(&Events<AzureMLWorkspace>) + use<> {
    let ctx = ctx.clone();
    move |event| {
        if let Ok(Event::Delete(ws)) = event {
            ctx.caches.forget_workspace(ws);
        }
    }
}

/// `kubectl apply`'s copy of the whole object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what nobody reads of an object before it enters a store: its managedFields and the copy
/// of itself `kubectl apply` keeps in an annotation, often most of an object's size (the target
/// Secret's managedFields, which decide key ownership, are read from the API server's answers,
/// never from a store).
fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Keeps of a managed Secret's metadata what its watch is read for (which Secret, at which
/// resourceVersion): its store answers whether the operator's cached copy is current, for
/// thousands of Secrets.
fn bare(secret: &mut PartialObjectMeta<Secret>) {
    let meta = &mut secret.metadata;
    *meta = kube::api::ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        resource_version: meta.resource_version.take(),
        uid: meta.uid.take(),
        ..Default::default()
    };
}

/// How long in-flight reconciles may run after shutdown before they are aborted.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one reconcile while the health state counts it as running (for `/livez`).
async fn tracked<F: Future>(ctx: Arc<Context>, reconcile: F) -> F::Output {
    let _running = ctx.metrics.health.reconcile_started();
    reconcile.await
}

/// Returns a stream inspector that tells the health state a watch delivered work.
fn work_arrived<T>(ctx: &Context) -> impl Fn(&T) + use<T> {
    let health = ctx.metrics.health.clone();
    move |_| health.work_arrived()
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
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

fn watch<K>(api: Api<K>) -> impl Stream<Item = Events<K>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default())
}

/// Runs the controllers over every watched namespace until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let shutdown = shutdown.shared();
    let namespaces = ctx.args.watched_namespaces();
    if namespaces.is_empty() {
        run_scope(ctx.clone(), None, shutdown).await;
    } else {
        let scopes = namespaces
            .into_iter()
            .map(|ns| run_scope(ctx.clone(), Some(ns), shutdown.clone()));
        futures::future::join_all(scopes).await;
    }
    // Not leading any more (or shutting down): the views stop listing on their own.
    ctx.vaults.forget_all();
    ctx.connections.forget_all();
    // The stores of this term's watches no longer follow the cluster.
    ctx.caches.clear();
}
