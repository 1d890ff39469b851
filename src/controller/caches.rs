//! What a refresh reads without asking the API server: AzureMLWorkspaces from the shared watch's
//! store, each workspace's resolved credential until the workspace changes (its last check
//! included), and each target Secret as the operator last wrote or read it, while the managed
//! Secrets' metadata watch shows the same resourceVersion (nobody changed it since).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::workspace::AzureMLWorkspace;
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
    secrets: Mutex<HashMap<Key, Arc<Secret>>>,
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
        let known = self
            .secrets
            .lock()
            .expect("caches lock")
            .get(&(ns.to_string(), name.to_string()))
            .cloned()?;
        let obj = ObjectRef::new(name).within(ns);
        let stores = self.managed.lock().expect("caches lock");
        let seen = stores.iter().find_map(|s| s.get(&obj))?;
        (seen.resource_version().is_some() && seen.resource_version() == known.resource_version())
            .then_some(known)
    }

    /// Tells whether a managed Secret's watch event shows the very version the operator last
    /// wrote or read (its own write coming back): nothing in it is news to the writer.
    pub(crate) fn knows(&self, seen: &PartialObjectMeta<Secret>) -> bool {
        let (Some(ns), Some(rv)) = (seen.namespace(), seen.resource_version()) else {
            return false;
        };
        self.secret(&ns, &seen.name_any())
            .is_some_and(|known| known.resource_version() == Some(rv))
    }

    /// Remembers a Secret as the API server returned it (read or written), its `managedFields`
    /// cut down to what a sync reads of them (see [`compact`]).
    pub(crate) fn remember_secret(&self, mut secret: Secret) {
        let (Some(ns), Some(name)) = (secret.namespace(), secret.metadata.name.clone()) else {
            return;
        };
        compact(&mut secret);
        let mut secrets = self.secrets.lock().expect("caches lock");
        secrets.insert((ns, name), Arc::new(secret));
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
    use kube::runtime::watcher::Event;
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
}
