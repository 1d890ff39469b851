//! Consumers follow rotation: with `config.rolloutWorkloads`, a Deployment that `envFrom`s a
//! synced Secret and a StatefulSet that mounts it are rolled by the real controller-manager when
//! the vault value changes — exactly one new revision per change, none for an unchanged refresh
//! or a restart of the operator, and nothing for a workload that did not opt in.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet, StatefulSet};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};

use super::*;
use testenv::node::BUSYBOX_IMAGE;

const SECRET: &str = "app-secrets";

/// A workload's pod template: busybox sleeping, reading `app-secrets` by `envFrom` or a volume.
fn template(app: &str, env_from: bool) -> serde_json::Value {
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

async fn create(
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
async fn replica_sets(env: &Env, ns: &str, name: &str) -> usize {
    let api: Api<ReplicaSet> = Api::namespaced(env.client(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    list.items.len()
}

/// ControllerRevisions of StatefulSet `name`.
async fn revisions(env: &Env, ns: &str, name: &str) -> usize {
    let api: Api<ControllerRevision> = Api::namespaced(env.client(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    list.items.len()
}

/// Waits until Deployment `name` has rolled out completely (one updated, available pod and no
/// old one left).
async fn deployment_settled(env: &Env, ns: &str, name: &str) {
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
async fn stateful_set_settled(env: &Env, ns: &str, name: &str) {
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
async fn running_pod(env: &Env, ns: &str, app: &str) -> Pod {
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

fn env_value(env: &Env, ns: &str, pod: &Pod, name: &str) -> String {
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
async fn recorded(env: &Env, ns: &str, kind: &str, name: &str) -> Option<String> {
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

/// Waits until the WorkspaceSecret's `refreshTime` moved past `after` twice: two syncs happened
/// (each one a chance to roll something it should not).
async fn two_syncs_after(env: &Env, ns: &str, name: &str, after: jiff::Timestamp) {
    let api: Api<amlsecrets::api::workspace_secret::WorkspaceSecret> =
        Api::namespaced(env.client(), ns);
    let started = Instant::now();
    let mut seen: Vec<jiff::Timestamp> = Vec::new();
    while seen.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{name} was not synced twice in 90 s (saw {seen:?})"
        );
        let t = api
            .get(name)
            .await
            .ok()
            .and_then(|w| w.status?.refresh_time?.parse::<jiff::Timestamp>().ok());
        if let Some(t) = t.filter(|t| *t > after && !seen.contains(t)) {
            seen.push(t);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Events with `reason` regarding object `name` in `ns`.
async fn events_about(env: &Env, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(env.client(), ns);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_workloads_roll_once_per_data_change_and_nothing_else_does() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-rollout";
    let (_release, _) = install(
        env,
        "amlsecrets",
        ns,
        &[
            "--set",
            "config.rolloutWorkloads=true",
            "--set",
            "replicaCount=1",
        ],
    );
    let tenant = "team-rollout";
    env.tenant(tenant).await;
    let vault = &env.fakes.vault;
    let first = "first-value";
    vault.put_secret("rollout-db-password", first, true, None);
    env.workspace_secret(
        tenant,
        SECRET,
        "ml",
        "10s",
        &[("DB_PASSWORD", "keyvault:rollout-db-password")],
    )
    .await;
    env.wait_synced(tenant, SECRET, Duration::from_secs(90))
        .await;

    // Two workloads opt in (one by annotation "true", one naming the Secret); one does not.
    create(
        env,
        tenant,
        "Deployment",
        "env-app",
        &[("amlsecrets.io/rollout", "true")],
        true,
    )
    .await;
    create(
        env,
        tenant,
        "StatefulSet",
        "file-app",
        &[("amlsecrets.io/rollout-secrets", SECRET)],
        false,
    )
    .await;
    create(env, tenant, "Deployment", "bystander", &[], true).await;
    deployment_settled(env, tenant, "env-app").await;
    stateful_set_settled(env, tenant, "file-app").await;
    deployment_settled(env, tenant, "bystander").await;

    // Their pods started after the Secret's data: the digest is recorded, nothing restarts.
    for (kind, name) in [("Deployment", "env-app"), ("StatefulSet", "file-app")] {
        eventually(
            &format!("digest recorded on {name}"),
            Duration::from_secs(60),
            || async { recorded(env, tenant, kind, name).await },
        )
        .await;
    }
    let before = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(before, (1, 1, 1), "opting in restarted nothing");
    let file_pod = running_pod(env, tenant, "file-app").await;
    let bystander = running_pod(env, tenant, "bystander").await;
    assert_eq!(
        env_value(
            env,
            tenant,
            &running_pod(env, tenant, "env-app").await,
            "DB_PASSWORD"
        ),
        first
    );

    // Rotate: each opted-in workload gets exactly one new revision, and runs the new value.
    let second = "second-value";
    let rotated = Instant::now();
    vault.put_secret("rollout-db-password", second, true, None);
    eventually("env-app rolled", Duration::from_secs(90), || async {
        (replica_sets(env, tenant, "env-app").await == 2).then_some(())
    })
    .await;
    deployment_settled(env, tenant, "env-app").await;
    let app_pod = running_pod(env, tenant, "env-app").await;
    assert_eq!(
        env_value(env, tenant, &app_pod, "DB_PASSWORD"),
        second,
        "the new pod's environment"
    );
    report(
        "rollout: vault change -> new Deployment pod Ready",
        format!("{:.1?}", rotated.elapsed()),
    );
    eventually("file-app rolled", Duration::from_secs(60), || async {
        (revisions(env, tenant, "file-app").await == 2).then_some(())
    })
    .await;
    stateful_set_settled(env, tenant, "file-app").await;
    let new_file_pod = running_pod(env, tenant, "file-app").await;
    assert_ne!(
        new_file_pod.metadata.uid, file_pod.metadata.uid,
        "file-app-0 was replaced"
    );
    let file = env
        .exec(
            tenant,
            "file-app-0",
            &["/bin/busybox", "cat", "/secret/DB_PASSWORD"],
        )
        .unwrap();
    assert_eq!(text(file), second);
    assert_eq!(
        replica_sets(env, tenant, "bystander").await,
        1,
        "no annotation: untouched"
    );
    assert_eq!(
        running_pod(env, tenant, "bystander").await.metadata.uid,
        bystander.metadata.uid
    );
    assert_eq!(
        env_value(env, tenant, &bystander, "DB_PASSWORD"),
        first,
        "without a rollout an envFrom pod keeps the old value"
    );

    // Events name the workloads, the Secret and the key, never a value.
    let on_ws = eventually(
        "RolledOut on the WorkspaceSecret",
        Duration::from_secs(30),
        || async {
            let notes = events_about(env, tenant, SECRET, "RolledOut").await;
            notes
                .iter()
                .any(|n| n.contains("Deployment/env-app") || n.contains("StatefulSet/file-app"))
                .then_some(notes)
        },
    )
    .await;
    let on_app = eventually("RolledOut on env-app", Duration::from_secs(30), || async {
        let notes = events_about(env, tenant, "env-app", "RolledOut").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(
        on_app[0].contains(SECRET) && on_app[0].contains("DB_PASSWORD"),
        "{on_app:?}"
    );
    for note in on_ws.iter().chain(&on_app) {
        assert!(
            !note.contains(first) && !note.contains(second),
            "a value in an Event: {note}"
        );
    }

    // Unchanged refreshes add no revision.
    let settled = (2, 2, 1);
    two_syncs_after(env, tenant, SECRET, jiff::Timestamp::now()).await;
    let counts = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(counts, settled, "no revision from unchanged refreshes");

    // Neither does a restart of the operator (it keeps no state: the digest on the workload decides).
    env.kubectl(&["rollout", "restart", "deployment/amlsecrets", "-n", ns])
        .unwrap();
    env.kubectl(&[
        "rollout",
        "status",
        "deployment/amlsecrets",
        "-n",
        ns,
        "--timeout=120s",
    ])
    .unwrap();
    two_syncs_after(env, tenant, SECRET, jiff::Timestamp::now()).await;
    let counts = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(counts, settled, "no revision from an operator restart");
    let metrics = {
        let pods = env.release_pods(ns, "amlsecrets").await;
        let pod = pods
            .iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .unwrap();
        env.pod_get(ns, pod.metadata.name.as_deref().unwrap(), 8080, "/metrics")
            .await
            .unwrap_or_default()
    };
    assert!(
        !metrics.contains("amlsecrets_rollouts_total{"),
        "the restarted operator rolled nothing: {}",
        metrics
            .lines()
            .filter(|l| l.contains("rollouts"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let api: Api<Deployment> = Api::namespaced(env.client(), tenant);
    for name in ["env-app", "bystander"] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    let sts: Api<StatefulSet> = Api::namespaced(env.client(), tenant);
    let _ = sts.delete("file-app", &DeleteParams::default()).await;
}
