//! What a refresh reads without asking the API server: AzureMLWorkspaces from the shared watch's
//! store, each workspace's resolved credential until the workspace changes (its last check
//! included), and each target Secret as the operator last wrote or read it, while the managed
//! Secrets' metadata watch shows the same resourceVersion (nobody changed it since).
//!
//! A cached target Secret is kept serialized (its JSON, managedFields cut to what a sync reads):
//! a sync reads it once, and as Rust values (a B-tree node per map, an allocation per string) the
//! same Secret takes several times the memory, which at thousands of objects was most of the
//! operator's. For the same reason each WorkspaceSecret's `status.syncedKeys` leaves the object
//! before it enters the watch's store and is kept serialized beside it, until a reconcile puts it
//! back ([`Caches::with_synced_keys`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use crate::api::workspace::AzureMLWorkspace;
use crate::api::workspace_secret::{SyncedKey, WorkspaceSecret};
use crate::azure::{CloudEndpoints, Credential};

/// (namespace, name).
type Key = (String, String);

/// A workspace's credential as resolved at one resourceVersion of the workspace.
struct Resolved {
    resource_version: String,
    cloud: CloudEndpoints,
    cred: Arc<Credential>,
}

/// The caches of the reconciles, filled by the watches (stores) and by the operator's own reads
/// and writes.
#[derive(Default)]
pub(crate) struct Caches {
    workspaces: Mutex<Vec<Store<AzureMLWorkspace>>>,
    managed: Mutex<Vec<Store<PartialObjectMeta<Secret>>>>,
    credentials: Mutex<HashMap<Key, Resolved>>,
    secrets: Mutex<HashMap<Key, Known>>,
    synced_keys: Mutex<HashMap<Key, Stashed>>,
}

/// The `status.syncedKeys` of one WorkspaceSecret, as the watch last showed them.
struct Stashed {
    uid: Option<Box<str>>,
    /// Their JSON.
    json: Box<[u8]>,
}

/// A target Secret as the operator last wrote or read it.
struct Known {
    resource_version: Box<str>,
    /// The Secret's JSON (see [`compact`]).
    json: Box<[u8]>,
}

impl Caches {
    /// Adds the store of a scope's AzureMLWorkspace watch.
    pub(crate) fn add_workspaces(&self, store: Store<AzureMLWorkspace>) {
        self.workspaces.lock().expect("caches lock").push(store);
    }

    /// Adds the store of a scope's managed-Secret metadata watch.
    pub(crate) fn add_managed(&self, store: Store<PartialObjectMeta<Secret>>) {
        self.managed.lock().expect("caches lock").push(store);
    }

    /// Forgets everything, the stores of the watches included (the controllers stopped; the next
    /// term adds its own).
    pub(crate) fn clear(&self) {
        self.workspaces.lock().expect("caches lock").clear();
        self.managed.lock().expect("caches lock").clear();
        self.credentials.lock().expect("caches lock").clear();
        self.secrets.lock().expect("caches lock").clear();
        self.synced_keys.lock().expect("caches lock").clear();
    }

    /// The workspace `ns/name` as the watch last saw it, if it did.
    pub(crate) fn workspace(&self, ns: &str, name: &str) -> Option<Arc<AzureMLWorkspace>> {
        let obj = ObjectRef::new(name).within(ns);
        let stores = self.workspaces.lock().expect("caches lock");
        stores.iter().find_map(|s| s.get(&obj))
    }

    /// The credential resolved for this very version of the workspace, if any.
    pub(crate) fn credential(
        &self,
        ws: &AzureMLWorkspace,
    ) -> Option<(CloudEndpoints, Arc<Credential>)> {
        let rv = ws.resource_version()?;
        let creds = self.credentials.lock().expect("caches lock");
        creds
            .get(&key_of(ws))
            .filter(|r| r.resource_version == rv)
            .map(|r| (r.cloud.clone(), r.cred.clone()))
    }

    /// Remembers the credential resolved for this version of the workspace.
    pub(crate) fn remember_credential(
        &self,
        ws: &AzureMLWorkspace,
        cloud: &CloudEndpoints,
        cred: &Arc<Credential>,
    ) {
        let Some(resource_version) = ws.resource_version() else {
            return;
        };
        let resolved = Resolved {
            resource_version,
            cloud: cloud.clone(),
            cred: cred.clone(),
        };
        let mut creds = self.credentials.lock().expect("caches lock");
        creds.insert(key_of(ws), resolved);
    }

    /// Forgets a deleted workspace's credential.
    pub(crate) fn forget_workspace(&self, ws: &AzureMLWorkspace) {
        self.credentials
            .lock()
            .expect("caches lock")
            .remove(&key_of(ws));
    }

    /// The Secret `ns/name` as the operator last wrote or read it, if the metadata watch shows
    /// that very version (else it changed since, or the watch has not caught up: read it).
    pub(crate) fn secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        let json = {
            let secrets = self.secrets.lock().expect("caches lock");
            let known = secrets.get(&(ns.to_string(), name.to_string()))?;
            if !self.watch_shows(ns, name, &known.resource_version) {
                return None;
            }
            known.json.clone()
        };
        // It was serialized from a Secret; should that ever fail to read back, the API server is
        // asked instead.
        serde_json::from_slice(&json).ok().map(Arc::new)
    }

    /// Tells whether the managed Secrets' watch shows `ns/name` at `resource_version`.
    fn watch_shows(&self, ns: &str, name: &str, resource_version: &str) -> bool {
        let obj = ObjectRef::new(name).within(ns);
        let stores = self.managed.lock().expect("caches lock");
        stores
            .iter()
            .find_map(|s| s.get(&obj))
            .is_some_and(|seen| seen.resource_version().as_deref() == Some(resource_version))
    }

    /// Tells whether a managed Secret's watch event shows the very version the operator last
    /// wrote or read (its own write coming back): nothing in it is news to the writer.
    pub(crate) fn knows(&self, seen: &PartialObjectMeta<Secret>) -> bool {
        let (Some(ns), Some(rv)) = (seen.namespace(), seen.resource_version()) else {
            return false;
        };
        let name = seen.name_any();
        let secrets = self.secrets.lock().expect("caches lock");
        secrets
            .get(&(ns.clone(), name.clone()))
            .is_some_and(|known| *known.resource_version == *rv)
            && self.watch_shows(&ns, &name, &rv)
    }

    /// Remembers a Secret as the API server returned it (read or written), its `managedFields`
    /// cut down to what a sync reads of them (see [`compact`]).
    pub(crate) fn remember_secret(&self, mut secret: Secret) {
        let (Some(ns), Some(name), Some(rv)) = (
            secret.namespace(),
            secret.metadata.name.clone(),
            secret.resource_version(),
        ) else {
            return;
        };
        compact(&mut secret);
        let Ok(json) = serde_json::to_vec(&secret) else {
            return;
        };
        let known = Known {
            resource_version: rv.into(),
            json: json.into_boxed_slice(),
        };
        let mut secrets = self.secrets.lock().expect("caches lock");
        secrets.insert((ns, name), known);
    }

    /// Takes the `status.syncedKeys` out of the WorkspaceSecrets of a watch event before they enter
    /// the store, and keeps them serialized; a deleted object's are forgotten. Run before the
    /// store takes the event; [`Caches::prune_synced_keys`] after a relist.
    pub(crate) fn stash_synced_keys(&self, event: &mut Event<WorkspaceSecret>) {
        let mut stashed = self.synced_keys.lock().expect("caches lock");
        match event {
            Event::Apply(ws) | Event::InitApply(ws) => {
                let key = (ws.namespace().unwrap_or_default(), ws.name_any());
                let keys = ws
                    .status
                    .as_mut()
                    .map(|s| std::mem::take(&mut s.synced_keys))
                    .unwrap_or_default();
                match serde_json::to_vec(&keys) {
                    Ok(json) if !keys.is_empty() => {
                        let uid = ws.uid().map(String::into_boxed_str);
                        let json = json.into_boxed_slice();
                        stashed.insert(key, Stashed { uid, json });
                    }
                    // None to keep (or, were they ever not serializable, kept in the object).
                    Ok(_) => {
                        stashed.remove(&key);
                    }
                    Err(_) => {
                        if let Some(s) = ws.status.as_mut() {
                            s.synced_keys = keys;
                        }
                        stashed.remove(&key);
                    }
                }
            }
            Event::Delete(ws) => {
                stashed.remove(&(ws.namespace().unwrap_or_default(), ws.name_any()));
            }
            Event::Init | Event::InitDone => {}
        }
    }

    /// After a relist, forgets the `syncedKeys` of WorkspaceSecrets no longer in the store.
    pub(crate) fn prune_synced_keys(&self, store: &Store<WorkspaceSecret>) {
        let mut stashed = self.synced_keys.lock().expect("caches lock");
        stashed.retain(|(ns, name), _| store.get(&ObjectRef::new(name).within(ns)).is_some());
    }

    /// The WorkspaceSecret with its `status.syncedKeys` back, as the watch last showed them (they
    /// can be newer than the object: the store takes an event just after they are kept).
    pub(crate) fn with_synced_keys(&self, ws: Arc<WorkspaceSecret>) -> Arc<WorkspaceSecret> {
        let keys = {
            let stashed = self.synced_keys.lock().expect("caches lock");
            let key = (ws.namespace().unwrap_or_default(), ws.name_any());
            match stashed.get(&key) {
                Some(s) if s.uid.as_deref() == ws.uid().as_deref() => s.json.clone(),
                _ => return ws,
            }
        };
        let Ok(keys) = serde_json::from_slice::<Vec<SyncedKey>>(&keys) else {
            return ws;
        };
        let mut full = WorkspaceSecret::clone(&ws);
        full.status.get_or_insert_default().synced_keys = keys;
        Arc::new(full)
    }

    /// Forgets a Secret (deleted, or changed in a way not remembered).
    pub(crate) fn forget_secret(&self, ns: &str, name: &str) {
        self.secrets
            .lock()
            .expect("caches lock")
            .remove(&(ns.to_string(), name.to_string()));
    }
}

/// Cuts a Secret's `managedFields` down to what a sync reads of them: each entry's manager and
/// operation, and of its fields only the data keys it owns (`f:data`). The rest (times, API
/// versions, labels, owner references) is most of a cached Secret's size and read by nobody.
fn compact(secret: &mut Secret) {
    for entry in secret.metadata.managed_fields.iter_mut().flatten() {
        entry.time = None;
        entry.api_version = None;
        entry.fields_type = None;
        entry.fields_v1 = entry.fields_v1.take().and_then(|f| {
            let data = f.0.get("f:data")?.clone();
            Some(FieldsV1(serde_json::json!({ "f:data": data })))
        });
    }
}

fn key_of(ws: &AzureMLWorkspace) -> Key {
    (ws.namespace().unwrap_or_default(), ws.name_any())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;
    use crate::sync::claims::{key_managers, legacy_keys};

    /// A Secret as the API server returns it after two writers applied keys to it.
    fn written(rv: &str) -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "app", "namespace": "ns", "resourceVersion": rv, "uid": "u-1",
                "labels": { "amlsecrets.io/managed": "true" },
                "managedFields": [
                    { "manager": "amlsecrets/app", "operation": "Apply", "apiVersion": "v1",
                      "time": "2026-12-02T10:00:00Z", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:data": { "f:a": {}, "f:b": {} },
                                    "f:metadata": { "f:labels": { "f:amlsecrets.io/managed": {} } } } },
                    { "manager": "amlsecrets", "operation": "Apply", "apiVersion": "v1",
                      "time": "2026-12-02T09:00:00Z", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:data": { "f:c": {} } } },
                    { "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                      "time": "2026-12-02T09:00:00Z", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:metadata": { "f:annotations": { "f:note": {} } } } },
                ],
            },
            "data": { "a": "MQ==", "b": "Mg==", "c": "Mw==" },
        }))
        .expect("a valid Secret")
    }

    fn seen(rv: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            metadata: ObjectMeta {
                name: Some("app".into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..PartialObjectMeta::default()
        }
    }

    #[test]
    fn a_compacted_secret_answers_who_owns_which_key_as_the_full_one_does() {
        let full = written("7");
        let mut small = full.clone();
        compact(&mut small);
        assert_eq!(key_managers(&small), key_managers(&full));
        assert_eq!(legacy_keys(&small), legacy_keys(&full));
        assert_eq!(small.data, full.data);
        let kept = serde_json::to_string(&small.metadata.managed_fields).unwrap();
        assert!(
            !kept.contains("f:metadata") && !kept.contains("time"),
            "{kept}"
        );
    }

    #[test]
    fn only_the_version_the_operator_wrote_is_known_and_only_while_the_watch_shows_it() {
        let caches = Caches::default();
        let (store, mut writer) = kube::runtime::reflector::store();
        caches.add_managed(store);
        caches.remember_secret(written("7"));
        assert!(!caches.knows(&seen("7")), "the watch has not shown it yet");
        writer.apply_watcher_event(&Event::Apply(seen("7")));
        assert!(caches.knows(&seen("7")), "its own write coming back");
        assert!(caches.secret("ns", "app").is_some());
        writer.apply_watcher_event(&Event::Apply(seen("8")));
        assert!(!caches.knows(&seen("8")), "somebody else changed it");
        assert!(caches.secret("ns", "app").is_none(), "so it is read again");
        writer.apply_watcher_event(&Event::Delete(seen("9")));
        assert!(!caches.knows(&seen("9")));
    }

    fn reader(uid: &str, keys: &[&str]) -> WorkspaceSecret {
        serde_json::from_value(json!({
            "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret",
            "metadata": { "name": "app", "namespace": "ns", "uid": uid, "resourceVersion": "3" },
            "spec": { "workspaceRef": { "name": "ml" } },
            "status": {
                "targetName": "app",
                "syncedKeys": keys.iter().map(|k| json!({ "key": k, "ref": format!("keyvault:{k}"), "version": "v1" })).collect::<Vec<_>>(),
            },
        }))
        .expect("a valid WorkspaceSecret")
    }

    fn keys_of(ws: &WorkspaceSecret) -> Vec<String> {
        let status = ws.status.as_ref().expect("a status");
        status.synced_keys.iter().map(|k| k.key.clone()).collect()
    }

    #[test]
    fn synced_keys_wait_beside_the_store_and_come_back_whole_for_the_same_object_only() {
        let caches = Caches::default();
        let full = reader("u-1", &["a", "b"]);
        let mut event = Event::Apply(full.clone());
        caches.stash_synced_keys(&mut event);
        let Event::Apply(stored) = event else {
            unreachable!()
        };
        assert!(keys_of(&stored).is_empty(), "the store gets none");
        assert_eq!(
            stored.status.as_ref().unwrap().target_name.as_deref(),
            Some("app")
        );
        let back = caches.with_synced_keys(Arc::new(stored.clone()));
        assert_eq!(
            serde_json::to_value(&*back).unwrap(),
            serde_json::to_value(&full).unwrap(),
            "a reconcile sees the object as the API server sent it"
        );

        // A newer event wins, even over an older copy of the object.
        caches.stash_synced_keys(&mut Event::Apply(reader("u-1", &["c"])));
        assert_eq!(
            keys_of(&caches.with_synced_keys(Arc::new(stored.clone()))),
            ["c"]
        );
        // Another object of the same name (deleted and created again) gets none of them.
        let other = Arc::new(reader("u-2", &[]));
        assert!(keys_of(&caches.with_synced_keys(other)).is_empty());

        caches.stash_synced_keys(&mut Event::Delete(reader("u-1", &["c"])));
        assert!(keys_of(&caches.with_synced_keys(Arc::new(stored.clone()))).is_empty());

        // After a relist only the objects still in the store keep theirs.
        caches.stash_synced_keys(&mut Event::InitApply(reader("u-1", &["d"])));
        let (store, mut writer) = kube::runtime::reflector::store::<WorkspaceSecret>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        caches.prune_synced_keys(&store);
        assert!(keys_of(&caches.with_synced_keys(Arc::new(stored))).is_empty());
    }
}
