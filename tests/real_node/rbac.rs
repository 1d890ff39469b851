//! The chart's RBAC as the pod's only rights: a namespace list keeps it out of other
//! namespaces' Secrets.

use std::time::Duration;

use kube::api::Api;

use crate::pods::*;
use crate::release::*;
use crate::support::*;

/// The chart's RBAC is all the pod has: with a namespace list the operator syncs there and is
/// kept out of any other namespace's Secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_with_a_namespace_list_keeps_the_pod_out_of_other_namespaces() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-rbac";
    let release = "amlsecrets-rbac";
    // The chart's Role goes into the listed namespace, which must exist first.
    create_namespace(&env.client(), "team-rbac-a").await;
    let (_release, _) = install(
        env,
        release,
        ns,
        &["--set", "config.namespaces={team-rbac-a}"],
    );
    env.tenant("team-rbac-a").await;
    env.tenant("team-rbac-b").await;
    env.fakes
        .vault
        .put_secret("rbac-secret", "only-for-a", true, None);
    let pods = env.release_pods(ns, release).await;
    assert!(pods.iter().all(|p| {
        p.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            == Some(release)
    }));
    for t in ["team-rbac-a", "team-rbac-b"] {
        env.workspace_secret(t, "db", "ml", "10s", &[("value", "keyvault:rbac-secret")])
            .await;
    }
    env.wait_synced("team-rbac-a", "db", Duration::from_secs(90))
        .await;
    let who = format!("system:serviceaccount:{ns}:{release}");
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "--as", &who];
        all.extend(args);
        // `kubectl auth can-i` exits 1 for "no".
        env.kubectl(&all).map(text).unwrap_or_else(|e| e)
    };
    assert!(can(&["get", "secrets", "-n", "team-rbac-a"]).starts_with("yes"));
    assert!(!can(&["get", "secrets", "-n", "team-rbac-b"]).starts_with("yes"));
    assert!(!can(&["list", "secrets", "--all-namespaces"]).starts_with("yes"));
    assert!(!can(&["create", "secrets", "-n", "team-rbac-b"]).starts_with("yes"));
    // Two refresh intervals later the other namespace is still untouched.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(env.secret_data("team-rbac-b", "db").await.is_none());
    let status = Api::<amlsecrets::api::WorkspaceSecret>::namespaced(env.client(), "team-rbac-b")
        .get("db")
        .await
        .unwrap()
        .status;
    assert!(
        status.is_none(),
        "the operator never touched team-rbac-b: {status:?}"
    );
}
