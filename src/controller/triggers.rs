//! What wakes each controller besides its own objects: the objects a ServiceAccount, a Secret or
//! a workspace change concerns, and which changes of a shared object count.

use std::future::ready;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{Predicate, WatchStreamExt};
use kube::{Resource, ResourceExt};

use super::credentials;
use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::sync::build::target_name;

/// The workspaces whose workload identity names this ServiceAccount.
pub(super) fn naming_service_account(
    store: &Store<AzureMLWorkspace>,
    sa: &PartialObjectMeta<ServiceAccount>,
) -> Vec<ObjectRef<AzureMLWorkspace>> {
    let name = sa.name_any();
    refs(store, |w| {
        w.namespace() == sa.namespace()
            && w.spec
                .auth
                .workload_identity
                .as_ref()
                .and_then(|wi| wi.service_account_name.as_deref())
                == Some(name.as_str())
    })
}

/// The workspaces whose auth reads this credential Secret.
pub(super) fn referencing_secret(
    store: &Store<AzureMLWorkspace>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<AzureMLWorkspace>> {
    let name = secret.name_any();
    refs(store, |w| {
        w.namespace() == secret.namespace()
            && credentials::referenced_secrets(w).contains(&name.as_str())
    })
}

/// The WorkspaceSecrets that use this workspace.
pub(super) fn of_workspace(
    store: &Store<WorkspaceSecret>,
    w: &AzureMLWorkspace,
) -> Vec<ObjectRef<WorkspaceSecret>> {
    let name = w.name_any();
    refs(store, |s| {
        s.namespace() == w.namespace() && s.spec.workspace_ref.name == name
    })
}

/// The WorkspaceSecrets that write this Secret.
pub(super) fn writing_secret(
    store: &Store<WorkspaceSecret>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<WorkspaceSecret>> {
    let name = secret.name_any();
    refs(store, |s| {
        s.namespace() == secret.namespace() && target_name(s) == name
    })
}

/// The references of the objects in `store` that `matches`.
fn refs<K>(store: &Store<K>, matches: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| matches(o))
        .map(|o| ObjectRef::from_obj(&**o))
        .collect()
}

/// Passes on the objects of a shared stream whose `predicate` hash changed: kube's predicate
/// filter, which takes owned objects, over a stream of shared ones.
pub(super) fn changed<K, P>(
    objects: impl Stream<Item = Arc<K>> + Send,
    predicate: P,
) -> impl Stream<Item = Arc<K>> + Send
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash,
    P: Predicate<K> + Send + 'static,
{
    objects
        .map(|obj| Ok::<K, watcher::Error>(K::clone(&obj)))
        .predicate_filter(predicate, Default::default())
        .filter_map(|obj| ready(obj.ok().map(Arc::new)))
}

/// Hashes what WorkspaceSecrets depend on in a workspace: its spec, readiness and vault — not
/// the time of its last check, so routine re-checks do not wake every WorkspaceSecret.
pub(super) fn workspace_fingerprint(w: &AzureMLWorkspace) -> Option<u64> {
    use std::hash::Hasher;
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
