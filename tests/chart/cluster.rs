//! The chart against a real API server: its manifests pass server-side schema validation, and
//! the operator running with the installed ServiceAccount's token syncs, and with a namespace
//! list is kept away from Secrets elsewhere.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use testenv::control_plane::ControlPlane;

use crate::support::*;
use crate::{chart, render, run};

/// Installs a minimal ServiceMonitor CRD (the Prometheus Operator's kind) so that a rendered
/// ServiceMonitor can be validated; its own schema is the operator's business, not ours.
const SERVICE_MONITOR_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"servicemonitors.monitoring.coreos.com"},
"spec":{"group":"monitoring.coreos.com","scope":"Namespaced","names":{"kind":"ServiceMonitor","plural":"servicemonitors","singular":"servicemonitor","listKind":"ServiceMonitorList"},
"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_server_side_schema_validation() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig).unwrap();
    let crd = dir.path().join("servicemonitor-crd.json");
    std::fs::write(&crd, SERVICE_MONITOR_CRD).unwrap();
    run(
        "kubectl",
        &["apply", "--server-side", "-f", crd.to_str().unwrap()],
        Some(&kubeconfig),
    );
    run(
        "kubectl",
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
        ],
        Some(&kubeconfig),
    );
    for ns in [
        "amlsecrets-system",
        "amlsecrets-team-a",
        "amlsecrets-team-b",
    ] {
        create_namespace(&client, ns).await;
    }
    let all = chart().join("ci/all-values.yaml");
    for (name, extra) in [
        ("defaults", vec![]),
        ("every option", vec!["-f", all.to_str().unwrap()]),
    ] {
        let (text, _) = render(&extra);
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, text).unwrap();
        let out = run(
            "kubectl",
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--validate=strict",
                "--field-manager=chart-test",
                "-f",
                file.to_str().unwrap(),
            ],
            Some(&kubeconfig),
        );
        assert!(
            out.contains("deployment.apps/") && out.contains("(server dry run)"),
            "{name}: {out}"
        );
    }
    // Strict validation is real: an unknown field is refused.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: amlsecrets-system}\nspec: {portz: []}\n").unwrap();
    let out = Command::new(tool("kubectl"))
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            bad.to_str().unwrap(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown field passed validation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_chart_rbac_suffices_to_sync_and_a_namespace_list_denies_secrets_elsewhere() {
    let cp = ControlPlane::shared().await;
    let admin = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig).unwrap();
    let fakes = fakes().await;
    let chart = chart();

    // All namespaces: ClusterRole. The operator runs with the chart ServiceAccount's token.
    let release_ns = cp.namespace().await;
    let app_ns = cp.namespace().await;
    let out = run(
        "helm",
        &[
            "install",
            "amlsecrets",
            chart.to_str().unwrap(),
            "--namespace",
            &release_ns,
        ],
        Some(&kubeconfig),
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let sa_client = cp
        .client_as_service_account(&release_ns, "amlsecrets")
        .await
        .unwrap();
    let mut op = Operator::start(
        sa_client,
        args(&[
            "--namespaces=".into(),
            format!("--operator-namespace={release_ns}"),
            "--leader-election".into(),
        ]),
        http_config(&fakes),
    );
    apply_workload(&admin, &app_ns, &fakes, "db").await;
    wait_synced(&admin, &app_ns, "db", Duration::from_secs(45)).await;
    // The status patch follows the Secret write: wait for it, never read it once.
    wait_reason(&admin, &app_ns, "db", "Synced").await;
    op.stop().await;

    // A namespace list: Roles in the listed namespace only.
    let scoped_ns = cp.namespace().await;
    let listed = cp.namespace().await;
    let elsewhere = cp.namespace().await;
    let set = format!("config.namespaces={{{listed}}}");
    run(
        "helm",
        &[
            "install",
            "scoped",
            chart.to_str().unwrap(),
            "--namespace",
            &scoped_ns,
            "--set",
            &set,
        ],
        Some(&kubeconfig),
    );
    let sa_client = cp
        .client_as_service_account(&scoped_ns, "scoped-amlsecrets")
        .await
        .unwrap();
    let mut op = Operator::start(
        sa_client.clone(),
        args(&[
            format!("--namespaces={listed}"),
            format!("--operator-namespace={scoped_ns}"),
            "--leader-election".into(),
        ]),
        http_config(&fakes),
    );
    apply_workload(&admin, &listed, &fakes, "db").await;
    wait_synced(&admin, &listed, "db", Duration::from_secs(45)).await;
    op.stop().await;

    let forbidden =
        |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    let other: Api<Secret> = Api::namespaced(sa_client.clone(), &elsewhere);
    assert!(
        forbidden(other.list(&ListParams::default()).await.map(|_| ())),
        "listing Secrets elsewhere must be denied"
    );
    assert!(
        forbidden(other.get("anything").await.map(|_| ())),
        "reading a Secret elsewhere must be denied"
    );
    let everywhere: Api<Secret> = Api::all(sa_client.clone());
    assert!(
        forbidden(everywhere.list(&ListParams::default()).await.map(|_| ())),
        "listing Secrets cluster-wide must be denied"
    );
    let s = Secret {
        metadata: ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(
        forbidden(other.create(&PostParams::default(), &s).await.map(|_| ())),
        "creating a Secret elsewhere must be denied"
    );
    // And it holds nothing it does not need where it is allowed: no update, no deletecollection.
    let mine: Api<Secret> = Api::namespaced(sa_client, &listed);
    let mut db = mine.get("db").await.unwrap();
    db.metadata.managed_fields = None;
    assert!(
        forbidden(
            mine.replace("db", &PostParams::default(), &db)
                .await
                .map(|_| ())
        ),
        "update is not granted"
    );
}
