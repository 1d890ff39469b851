//! Consecutive transient failures per object, for the backoff of its next attempt; forgotten on
//! success and when the object is gone (a watch saw it deleted, or a relist no longer lists it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

/// One object of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Key {
    fn of<K: Resource<DynamicType = ()>>(obj: &ObjectRef<K>) -> Key {
        Key {
            kind: K::kind(&()).into_owned(),
            namespace: obj.namespace.clone(),
            name: obj.name.clone(),
        }
    }
}

/// Consecutive transient failures per object, of both kinds.
#[derive(Debug, Default)]
pub(crate) struct Backoffs {
    failures: Mutex<HashMap<Key, u32>>,
}

impl Backoffs {
    /// Records a transient failure and returns the delay before the next attempt (without
    /// jitter): 5 s doubling, capped by `cap`, at least 1 s.
    pub(crate) fn failed<K: Resource<DynamicType = ()>>(
        &self,
        obj: &ObjectRef<K>,
        cap: Duration,
    ) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(Key::of(obj)).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(5).saturating_mul(1u32 << (*n - 1).min(10));
        base.min(cap).max(Duration::from_secs(1))
    }

    /// Forgets an object's failures (after a success, or when it is gone).
    pub(crate) fn forget<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&Key::of(obj));
    }

    /// Forgets the objects a watch event says are gone: a deleted one, or once a relist is
    /// complete, every object of that kind `store` (already updated by the event) no longer has.
    pub(crate) fn observe<K>(&self, event: &Event<K>, store: &Store<K>)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        match event {
            Event::Delete(obj) => self.forget(&ObjectRef::from_obj(obj)),
            Event::InitDone => {
                let kind = K::kind(&());
                self.failures
                    .lock()
                    .expect("failures lock")
                    .retain(|key, _| {
                        key.kind != kind || {
                            let mut obj = ObjectRef::<K>::new(&key.name);
                            obj.namespace = key.namespace.clone();
                            store.get(&obj).is_some()
                        }
                    });
            }
            Event::Apply(_) | Event::Init | Event::InitApply(_) => {}
        }
    }

    /// Returns how many objects have failures on record.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.lock().expect("failures lock").len()
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;

    use super::*;
    use crate::api::workspace::AzureMLWorkspace;
    use crate::api::workspace_secret::WorkspaceSecret;

    const CAP: Duration = Duration::from_secs(3600);

    fn workspace(name: &str) -> AzureMLWorkspace {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "subscriptionId": "00000000-0000-0000-0000-000000000000",
                      "resourceGroup": "rg", "workspaceName": "ml", "auth": {} },
        }))
        .expect("a valid AzureMLWorkspace")
    }

    fn secret(name: &str) -> WorkspaceSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "workspaceRef": { "name": "ml" }, "data": [{ "key": "k", "ref": "keyvault:k" }] },
        }))
        .expect("a valid WorkspaceSecret")
    }

    /// Applies `event` to the store as the reflector does, then lets the backoffs observe it.
    fn watch<K>(b: &Backoffs, writer: &mut Writer<K>, event: Event<K>)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        writer.apply_watcher_event(&event);
        b.observe(&event, &writer.as_reader());
    }

    #[test]
    fn failures_double_up_to_the_cap_and_a_success_starts_over() {
        let b = Backoffs::default();
        let ws = ObjectRef::from_obj(&workspace("a"));
        let delays: Vec<u64> = (0..5).map(|_| b.failed(&ws, CAP).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80]);
        assert_eq!(b.failed(&ws, Duration::from_secs(30)).as_secs(), 30);
        b.forget(&ws);
        assert_eq!(b.failed(&ws, CAP).as_secs(), 5);
    }

    #[test]
    fn a_deleted_object_of_either_kind_is_forgotten_and_only_it() {
        let b = Backoffs::default();
        let (_, mut workspaces) = kube::runtime::reflector::store::<AzureMLWorkspace>();
        let (_, mut secrets) = kube::runtime::reflector::store::<WorkspaceSecret>();
        for name in ["a", "b"] {
            watch(&b, &mut workspaces, Event::Apply(workspace(name)));
            watch(&b, &mut secrets, Event::Apply(secret(name)));
            b.failed(&ObjectRef::from_obj(&workspace(name)), CAP);
            b.failed(&ObjectRef::from_obj(&secret(name)), CAP);
        }
        assert_eq!(b.len(), 4, "same names, different kinds");
        watch(&b, &mut workspaces, Event::Delete(workspace("a")));
        assert_eq!(b.len(), 3);
        watch(&b, &mut secrets, Event::Delete(secret("a")));
        assert_eq!(b.len(), 2);
        assert_eq!(
            b.failed(&ObjectRef::from_obj(&workspace("b")), CAP)
                .as_secs(),
            10,
            "the others keep their count"
        );
    }

    #[test]
    fn a_relist_forgets_the_objects_deleted_while_the_watch_was_broken() {
        let b = Backoffs::default();
        let (_, mut workspaces) = kube::runtime::reflector::store::<AzureMLWorkspace>();
        watch(&b, &mut workspaces, Event::Init);
        for name in ["a", "b"] {
            watch(&b, &mut workspaces, Event::InitApply(workspace(name)));
            b.failed(&ObjectRef::from_obj(&workspace(name)), CAP);
        }
        watch(&b, &mut workspaces, Event::InitDone);
        b.failed(&ObjectRef::from_obj(&secret("a")), CAP);
        assert_eq!(b.len(), 3);
        // "a" was deleted while the watch was broken: the relist no longer has it.
        watch(&b, &mut workspaces, Event::Init);
        watch(&b, &mut workspaces, Event::InitApply(workspace("b")));
        assert_eq!(
            b.len(),
            3,
            "nothing is forgotten before the relist is complete"
        );
        watch(&b, &mut workspaces, Event::InitDone);
        assert_eq!(
            b.len(),
            2,
            "workspace a is forgotten; WorkspaceSecret a is another kind"
        );
    }
}
