//! Workloads for the rollout test: Deployments and StatefulSets reading a Secret, their
//! revisions, their pods, and what the operator recorded on them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use testenv::node::BUSYBOX_IMAGE;

use crate::pods::*;
use crate::support::*;

pub const SECRET: &str = "app-secrets";

/// A workload's pod template: busybox sleeping, reading `app-secrets` by `envFrom` or a volume.
pub fn template(app: &str, env_from: bool) -> serde_json::Value {
    let mut container = json!({ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
        "command": ["/bin/busybox", "sleep", "86400"],
        "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false,
                             "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } } });
    let mut spec = json!({ "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": false, "enableServiceLinks": false });
    if env_from {
        container["envFrom"] = json!([{ "secretRef": { "name": SECRET } }]);
    } else {
        container["volumeMounts"] =
            json!([{ "name": "secret", "mountPath": "/secret", "readOnly": true }]);
        spec["volumes"] = json!([{ "name": "secret", "secret": { "secretName": SECRET } }]);
    }
    spec["containers"] = json!([container]);
    json!({ "metadata": { "labels": { "app": app } }, "spec": spec })
}

pub async fn create(
    env: &Env,
    ns: &str,
    kind: &str,
    name: &str,
    annotations: &[(&str, &str)],
    env_from: bool,
) {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    let mut spec = json!({ "replicas": 1, "selector": { "matchLabels": { "app": name } },
        "template": template(name, env_from) });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    let obj = json!({ "apiVersion": "apps/v1", "kind": kind,
        "metadata": { "name": name, "annotations": annotations }, "spec": spec });
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client(),
        ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("apps", "v1", kind)),
    );
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
    .unwrap();
}

/// ReplicaSets of Deployment `name` (its revisions).
pub async fn replica_sets(env: &Env, ns: &str, name: &str) -> usize {
    let api: Api<ReplicaSet> = Api::namespaced(env.client(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    list.items.len()
}

/// ControllerRevisions of StatefulSet `name`.
pub async fn revisions(env: &Env, ns: &str, name: &str) -> usize {
    let api: Api<ControllerRevision> = Api::namespaced(env.client(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    list.items.len()
}

/// Waits until Deployment `name` has rolled out completely (one updated, available pod and no
/// old one left).
pub async fn deployment_settled(env: &Env, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(env.client(), ns);
    eventually(
        &format!("Deployment {name} rolled out"),
        Duration::from_secs(120),
        || async {
            let d = api.get_opt(name).await.ok()??;
            let generation = d.metadata.generation;
            let s = d.status?;
            (s.observed_generation == generation
                && s.updated_replicas == Some(1)
                && s.available_replicas == Some(1)
                && s.replicas == Some(1))
            .then_some(())
        },
    )
    .await;
}

/// Waits until StatefulSet `name` runs its update revision, Ready.
pub async fn stateful_set_settled(env: &Env, ns: &str, name: &str) {
    let api: Api<StatefulSet> = Api::namespaced(env.client(), ns);
    eventually(
        &format!("StatefulSet {name} rolled out"),
        Duration::from_secs(120),
        || async {
            let d = api.get_opt(name).await.ok()??;
            let generation = d.metadata.generation;
            let s = d.status?;
            (s.observed_generation == generation
                && s.ready_replicas == Some(1)
                && s.update_revision.is_some()
                && s.current_revision == s.update_revision)
                .then_some(())
        },
    )
    .await;
}

/// The one running, not terminating pod of workload `app`.
pub async fn running_pod(env: &Env, ns: &str, app: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(env.client(), ns);
    eventually(
        &format!("one Ready pod of {app}"),
        Duration::from_secs(120),
        || async {
            let pods = api
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .ok()?;
            let live: Vec<Pod> = pods
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = live.len() == 1
                && live[0]
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then(|| live[0].clone())
        },
    )
    .await
}

pub fn env_value(env: &Env, ns: &str, pod: &Pod, name: &str) -> String {
    let script = format!("printf %s \"${name}\"");
    text(
        env.exec(
            ns,
            pod.metadata.name.as_deref().unwrap(),
            &["/bin/busybox", "sh", "-c", &script],
        )
        .unwrap(),
    )
}

/// The digest the operator recorded on a workload.
pub async fn recorded(env: &Env, ns: &str, kind: &str, name: &str) -> Option<String> {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client(),
        ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("apps", "v1", kind)),
    );
    let obj = api.get(name).await.ok()?;
    obj.metadata
        .annotations?
        .get("amlsecrets.io/secrets-digest")
        .cloned()
}

/// Waits until the operator (the release in `operator_ns`) synced WorkspaceSecret `ns/name` twice
/// more, by its `amlsecrets_secret_syncs_total` metric: two refreshes happened (each one a chance
/// to roll something it should not; an unchanged refresh writes nothing the test could watch).
pub async fn two_syncs(env: &Env, operator_ns: &str, ns: &str, name: &str) {
    let series = format!("amlsecrets_secret_syncs_total{{namespace=\"{ns}\",name=\"{name}\"}} ");
    // The leader's count (a standby has none; a new leader starts from zero).
    let count = || async {
        let mut most = 0u64;
        for pod in env.release_pods(operator_ns, "amlsecrets").await {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let pod = pod.metadata.name.unwrap_or_default();
            let metrics = env
                .pod_get(operator_ns, &pod, 8080, "/metrics")
                .await
                .unwrap_or_default();
            let n = metrics
                .lines()
                .find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok())
                .unwrap_or(0);
            most = most.max(n);
        }
        most
    };
    let before = count().await;
    let started = Instant::now();
    loop {
        let now = count().await;
        if now >= before + 2 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{name} was not synced twice in 90 s ({before} → {now} syncs)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Events with `reason` regarding object `name` in `ns`.
pub async fn events_about(env: &Env, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(env.client(), ns);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.note)
        .collect()
}
