//! The WorkspaceSecrets the benchmark creates, which vault secrets they read, and when each is
//! first seen Ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::NS;

pub(crate) fn wsec_api(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "amlsecrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "amlsecrets.io/v1alpha1".into(),
        kind: "WorkspaceSecret".into(),
        plural: "workspacesecrets".into(),
    };
    Api::namespaced_with(client.clone(), NS, &ar)
}

/// WorkspaceSecret `i`: even ones name 10 vault items (overlapping), odd ones find a tag group.
pub(crate) fn wsec_spec(i: usize, secrets: usize, refresh: Duration) -> Value {
    let interval = format!("{}s", refresh.as_secs());
    if i.is_multiple_of(2) {
        let picked: std::collections::BTreeSet<usize> =
            (0..10).map(|k| (i * 7 + k * 13) % secrets).collect();
        let data: Vec<Value> = picked
            .iter()
            .map(|s| json!({ "key": format!("s{s:05}"), "ref": format!("keyvault:s{s:05}") }))
            .collect();
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": interval, "data": data })
    } else {
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": interval,
                "dataFrom": [{ "find": { "tags": { "group": format!("g{}", i % 50) } }, "keys": { "style": "UpperSnake" } }] })
    }
}

pub(crate) async fn create_wsec(client: &kube::Client, name: &str, spec: Value) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name }, "spec": spec
    }))
    .unwrap();
    wsec_api(client)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

/// Returns the secrets some initial WorkspaceSecret reads (see [`wsec_spec`]): only their changes
/// cost a get.
pub(crate) fn referenced_secrets(
    workspace_secrets: usize,
    secrets: usize,
) -> std::collections::BTreeSet<usize> {
    let groups: std::collections::BTreeSet<usize> = (0..workspace_secrets)
        .filter(|i| !i.is_multiple_of(2))
        .map(|i| i % 50)
        .collect();
    let mut out: std::collections::BTreeSet<usize> = (0..secrets)
        .filter(|s| groups.contains(&(s % 50)))
        .collect();
    for i in (0..workspace_secrets).step_by(2) {
        out.extend((0..10).map(|k| (i * 7 + k * 13) % secrets));
    }
    out
}

/// Records when each WorkspaceSecret is first seen Ready.
pub(crate) fn watch_ready(client: kube::Client) -> Arc<Mutex<HashMap<String, Instant>>> {
    let ready = Arc::new(Mutex::new(HashMap::new()));
    let seen = ready.clone();
    tokio::spawn(async move {
        let mut stream = watcher(wsec_api(&client), watcher::Config::default())
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
                seen.lock()
                    .unwrap()
                    .entry(obj.metadata.name.clone().unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        }
    });
    ready
}
