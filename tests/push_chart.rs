//! The chart's RBAC suffices for WorkspaceSecretPush: the operator, running with the token of the
//! ServiceAccount `helm install` created (Roles in a listed namespace, the least it is granted),
//! pushes a Secret into the fake vault, follows a change, and on deletion deletes what it wrote,
//! unlabels the source and removes its finalizer.

#[path = "operator/support.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use amlsecrets::api::WorkspaceSecretPush;
use amlsecrets::api::conditions::find_ready;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use serde_json::json;
use support::*;
use testenv::control_plane::ControlPlane;

async fn put_source(client: &kube::Client, ns: &str, value: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("src".into()),
            ..Default::default()
        },
        data: Some([("token".to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            "src",
            &PatchParams::apply("test").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_suffices_to_push_follow_a_change_and_clean_up() {
    let cp = ControlPlane::shared().await;
    let admin = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig).unwrap();
    let fakes = fakes().await;
    let release_ns = cp.namespace().await;
    let app = cp.namespace().await;
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/amlsecrets");
    let set = format!("config.namespaces={{{app}}}");
    let out = Command::new(tool("helm"))
        .args(["install", "pusher", chart.to_str().unwrap()])
        .args(["--namespace", &release_ns, "--set", &set])
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("amlsecrets-helm-cache"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sa_client = cp
        .client_as_service_account(&release_ns, "pusher-amlsecrets")
        .await
        .unwrap();
    let mut op = Operator::start(
        sa_client,
        args(&[
            format!("--namespaces={app}"),
            format!("--operator-namespace={release_ns}"),
        ]),
        http_config(&fakes),
    );
    apply_workload(&admin, &app, &fakes, "db").await;
    put_source(&admin, &app, "pushed-by-chart-rbac").await;
    let pushes: Api<WorkspaceSecretPush> = Api::namespaced(admin.clone(), &app);
    let p = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecretPush", "metadata": { "name": "p" },
        "spec": { "workspaceRef": { "name": "ml" }, "source": { "name": "src" }, "deletionPolicy": "Delete",
                  "data": [ { "secretKey": "token", "remoteName": "chart-token" } ] } });
    pushes
        .patch("p", &PatchParams::apply("test").force(), &Patch::Apply(p))
        .await
        .unwrap();
    let reason = || async {
        let p = pushes.get_opt("p").await.ok()??;
        Some(find_ready(&p.status?.conditions)?.reason.clone())
    };
    eventually("the push to be Pushed", Duration::from_secs(45), || async {
        (reason().await.as_deref() == Some("Pushed")).then_some(())
    })
    .await;
    assert_eq!(
        fakes.vault.value("chart-token").as_deref(),
        Some("pushed-by-chart-rbac")
    );

    // The labelled source is watched: a change arrives without waiting for the interval (1h).
    put_source(&admin, &app, "changed").await;
    eventually(
        "the change in the vault",
        Duration::from_secs(15),
        || async { (fakes.vault.value("chart-token").as_deref() == Some("changed")).then_some(()) },
    )
    .await;

    pushes.delete("p", &DeleteParams::default()).await.unwrap();
    eventually("the push to be gone", Duration::from_secs(30), || async {
        pushes.get_opt("p").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(fakes.vault.is_deleted("chart-token"));
    let source = Api::<Secret>::namespaced(admin.clone(), &app)
        .get("src")
        .await
        .unwrap();
    assert!(
        !source
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("amlsecrets.io/push-source")
    );
    op.stop().await;
}
