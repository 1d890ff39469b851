//! The WorkspaceSecrets the benchmark creates, where they live, which vault secrets they read
//! under which key, and when each is first seen Ready.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::propagation::Reader;
use crate::setup::namespace;

/// How many tag groups the vault secrets fall into (`group=g<s % GROUPS>`).
pub(crate) const GROUPS: usize = 50;

fn wsec_resource() -> ApiResource {
    ApiResource {
        group: "amlsecrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "amlsecrets.io/v1alpha1".into(),
        kind: "WorkspaceSecret".into(),
        plural: "workspacesecrets".into(),
    }
}

/// The name of vault secret `s`.
pub(crate) fn secret_name(s: usize) -> String {
    format!("s{s:05}")
}

/// The tags of vault secret `s`.
pub(crate) fn secret_group(s: usize) -> String {
    format!("g{}", s % GROUPS)
}

/// The vault secrets WorkspaceSecret spec `i` names (see [`wsec_spec`]).
fn picked(i: usize, secrets: usize) -> BTreeSet<usize> {
    (0..10).map(|k| (i * 7 + k * 13) % secrets).collect()
}

/// WorkspaceSecret spec `i`: even ones name 10 vault items (overlapping), odd ones find a tag group.
pub(crate) fn wsec_spec(i: usize, secrets: usize, refresh: Duration) -> Value {
    let interval = format!("{}s", refresh.as_secs());
    if i.is_multiple_of(2) {
        let data: Vec<Value> = picked(i, secrets)
            .iter()
            .map(|&s| json!({ "key": secret_name(s), "ref": format!("keyvault:{}", secret_name(s)) }))
            .collect();
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": interval, "data": data })
    } else {
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": interval,
                "dataFrom": [{ "find": { "tags": { "group": format!("g{}", i % GROUPS) } }, "keys": { "style": "UpperSnake" } }] })
    }
}

/// The vault secrets WorkspaceSecret spec `i` reads, each with the key of its target Secret that
/// holds it: named items keep their name, a tag group's members are UpperSnake (`s00012` →
/// `S00012`).
pub(crate) fn reads(i: usize, secrets: usize) -> Vec<(usize, String)> {
    if i.is_multiple_of(2) {
        picked(i, secrets)
            .into_iter()
            .map(|s| (s, secret_name(s)))
            .collect()
    } else {
        (0..secrets)
            .filter(|s| s % GROUPS == i % GROUPS)
            .map(|s| (s, secret_name(s).to_uppercase()))
            .collect()
    }
}

/// Creates WorkspaceSecret `namespace/name` (its target Secret takes the same name).
pub(crate) async fn create_wsec(client: &kube::Client, namespace: &str, name: &str, spec: Value) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name }, "spec": spec
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &wsec_resource())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

/// When each WorkspaceSecret (`namespace/name`) was first seen Ready.
pub(crate) type Ready = Arc<Mutex<HashMap<String, Instant>>>;

/// Records when each WorkspaceSecret (`namespace/name`) is first seen Ready.
pub(crate) fn watch_ready(client: kube::Client) -> Ready {
    let ready = Arc::new(Mutex::new(HashMap::new()));
    let seen = ready.clone();
    tokio::spawn(async move {
        let api = Api::<DynamicObject>::all_with(client, &wsec_resource());
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = stream.next().await {
            let is_ready = obj.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if is_ready {
                let key = format!(
                    "{}/{}",
                    obj.metadata.namespace.clone().unwrap_or_default(),
                    obj.metadata.name.clone().unwrap_or_default()
                );
                seen.lock().unwrap().entry(key).or_insert_with(Instant::now);
            }
        }
    });
    ready
}

/// The WorkspaceSecrets created so far: where they are, when they were created, who reads what.
pub(crate) struct Population {
    secrets: usize,
    namespaces: usize,
    vaults: usize,
    refresh: Duration,
    /// When each (`namespace/name`) was created.
    pub(crate) created: HashMap<String, Instant>,
    /// The readers of each vault secret.
    pub(crate) readers: HashMap<usize, Vec<Reader>>,
    /// Per vault, the secrets some WorkspaceSecret reads from it: only their changes cost a get.
    pub(crate) referenced: Vec<BTreeSet<usize>>,
}

impl Population {
    pub(crate) fn new(secrets: usize, namespaces: usize, vaults: usize, refresh: Duration) -> Self {
        Self {
            secrets,
            namespaces,
            vaults,
            refresh,
            created: HashMap::new(),
            readers: HashMap::new(),
            referenced: vec![BTreeSet::new(); vaults],
        }
    }

    /// Creates WorkspaceSecret `name` with spec `i` ([`wsec_spec`]) in namespace `i % N`, whose
    /// workspace reads vault `(i % N) % V`; returns its `namespace/name`.
    pub(crate) async fn create(&mut self, client: &kube::Client, i: usize, name: &str) -> String {
        let k = i % self.namespaces;
        let ns = namespace(k);
        create_wsec(client, &ns, name, wsec_spec(i, self.secrets, self.refresh)).await;
        let key = format!("{ns}/{name}");
        self.created.insert(key.clone(), Instant::now());
        for (s, secret_key) in reads(i, self.secrets) {
            self.referenced[k % self.vaults].insert(s);
            self.readers.entry(s).or_default().push(Reader {
                namespace: ns.clone(),
                secret: name.to_owned(),
                key: secret_key,
            });
        }
        key
    }

    /// How many vaults some WorkspaceSecret reads vault secret `s` from.
    pub(crate) fn vaults_reading(&self, s: usize) -> usize {
        self.referenced.iter().filter(|r| r.contains(&s)).count()
    }
}
