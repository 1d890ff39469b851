//! The chart's rollout rights as the operator's only rights: without `config.rolloutWorkloads`
//! an operator started with `--rollout-workloads` syncs as before and says once that it may not
//! roll; with it, the chart's Roles suffice to record a workload's digest.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use testenv::control_plane::ControlPlane;

use crate::support::*;
use crate::{chart, deployment as rendered_deployment, render, run};

async fn deployment(client: &kube::Client, ns: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "follows", "annotations": { "amlsecrets.io/rollout": "true" } },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "follows" } },
            "template": { "metadata": { "labels": { "app": "follows" } },
                "spec": { "containers": [{ "name": "app", "image": "busybox",
                    "envFrom": [{ "secretRef": { "name": "db" } }] }] } } } }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn rollout_events(client: &kube::Client, ns: &str, reason: &str) -> Vec<String> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

async fn install_scoped(
    cp: &ControlPlane,
    kubeconfig: &Path,
    release: &str,
    watched: &str,
    rollout: bool,
) -> (String, kube::Client) {
    let release_ns = cp.namespace().await;
    let namespaces = format!("config.namespaces={{{watched}}}");
    let rollout = format!("config.rolloutWorkloads={rollout}");
    let chart = chart();
    let args = [
        "install",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        &release_ns,
        "--set",
        &namespaces,
        "--set",
        &rollout,
    ];
    run("helm", &args, Some(kubeconfig));
    let sa = format!("{release}-amlsecrets");
    let client = cp
        .client_as_service_account(&release_ns, &sa)
        .await
        .unwrap();
    (release_ns, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rollout_rights_suffice_and_without_them_the_operator_says_so_once() {
    let cp = ControlPlane::shared().await;
    let admin = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig).unwrap();
    let fakes = fakes().await;

    // Rights not granted, flag on: the sync is unaffected, one Warning says why.
    let app_ns = cp.namespace().await;
    let (release_ns, sa) = install_scoped(cp, &kubeconfig, "norollout", &app_ns, false).await;
    let mut op = Operator::start(
        sa,
        args(&[
            format!("--namespaces={app_ns}"),
            format!("--operator-namespace={release_ns}"),
            "--rollout-workloads".into(),
        ]),
        http_config(&fakes),
    );
    deployment(&admin, &app_ns).await;
    apply_workload(&admin, &app_ns, &fakes, "db").await;
    wait_synced(&admin, &app_ns, "db", Duration::from_secs(45)).await;
    wait_reason(&admin, &app_ns, "db", "Synced").await;
    let notes = eventually("RolloutNotPermitted", Duration::from_secs(20), || async {
        let n = rollout_events(&admin, &app_ns, "RolloutNotPermitted").await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(notes[0].contains("config.rolloutWorkloads"), "{notes:?}");
    // Later syncs (refresh 10 s) do not repeat it.
    let series = format!("amlsecrets_secret_syncs_total{{namespace=\"{app_ns}\",name=\"db\"}} ");
    let syncs = |metrics: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let first = syncs(op.get("/metrics").await.1);
    eventually("a later sync", Duration::from_secs(30), || async {
        (syncs(op.get("/metrics").await.1) > first).then_some(())
    })
    .await;
    let again = rollout_events(&admin, &app_ns, "RolloutNotPermitted").await;
    assert_eq!(again.len(), 1, "said once: {again:?}");
    let d = Api::<Deployment>::namespaced(admin.clone(), &app_ns)
        .get("follows")
        .await
        .unwrap();
    assert!(
        !d.metadata
            .annotations
            .unwrap()
            .contains_key("amlsecrets.io/secrets-digest"),
        "nothing recorded without the rights"
    );
    op.stop().await;

    // Rights granted by the chart: the digest is recorded (no pods here, so nothing rolls).
    let app_ns = cp.namespace().await;
    let (release_ns, sa) = install_scoped(cp, &kubeconfig, "withrollout", &app_ns, true).await;
    let mut op = Operator::start(
        sa,
        args(&[
            format!("--namespaces={app_ns}"),
            format!("--operator-namespace={release_ns}"),
            "--rollout-workloads".into(),
        ]),
        http_config(&fakes),
    );
    deployment(&admin, &app_ns).await;
    apply_workload(&admin, &app_ns, &fakes, "db").await;
    wait_synced(&admin, &app_ns, "db", Duration::from_secs(45)).await;
    let api = Api::<Deployment>::namespaced(admin.clone(), &app_ns);
    eventually(
        "digest recorded with the chart's rights",
        Duration::from_secs(30),
        || async {
            let d = api.get("follows").await.ok()?;
            d.metadata
                .annotations?
                .get("amlsecrets.io/secrets-digest")
                .cloned()
        },
    )
    .await;
    assert!(
        rollout_events(&admin, &app_ns, "RolloutNotPermitted")
            .await
            .is_empty()
    );
    assert!(
        rollout_events(&admin, &app_ns, "RolloutFailed")
            .await
            .is_empty()
    );
    op.stop().await;
}

/// Rollouts add their rights only when enabled: patching workloads is never granted by default.
#[test]
fn rollout_rights_are_granted_only_with_rollout_workloads() {
    let apps_rules = |docs: &[Value]| -> Vec<Value> {
        docs.iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["apiGroups"] == serde_json::json!(["apps"]))
            .collect()
    };
    let args = |docs: &[Value]| {
        rendered_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"].clone()
    };
    let (_, off) = render(&[]);
    assert!(apps_rules(&off).is_empty(), "no workload rights by default");
    assert!(
        args(&off)
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("--rollout-workloads=false"))
    );

    let (_, on) = render(&["--set", "config.rolloutWorkloads=true"]);
    let rules = apps_rules(&on);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0]["resources"],
        serde_json::json!(["deployments", "statefulsets", "daemonsets"])
    );
    assert_eq!(
        rules[0]["verbs"],
        serde_json::json!(["get", "list", "patch"])
    );
    assert!(
        args(&on)
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("--rollout-workloads=true"))
    );

    // With a namespace list: workload rights per namespace, the digest key's Secret in the
    // release namespace only, by name.
    let (_, listed) = render(&[
        "--set",
        "config.rolloutWorkloads=true",
        "--set",
        "config.namespaces={team-a}",
    ]);
    assert_eq!(apps_rules(&listed).len(), 1);
    let key_role = listed
        .iter()
        .find(|d| {
            d["kind"] == "Role"
                && d["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-rollout-key")
        })
        .expect("a Role for the rollout key");
    assert_eq!(key_role["metadata"]["namespace"], "amlsecrets-system");
    assert!(
        key_role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |r| r["resourceNames"] == serde_json::json!(["amlsecrets-rollout-key"])
                    && r["verbs"] == serde_json::json!(["get"])
            )
    );
}
