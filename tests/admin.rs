//! The admin server of a running operator: `/metrics` after a real sync, `/readyz` before and
//! after the watches sync and with the API server unreachable, `/livez` when reconciling stalls.

#[path = "operator/support.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use support::*;
use testenv::control_plane::ControlPlane;

/// Returns the value of the series whose line starts with `prefix` (name and labels).
fn series(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_sync_show_reconciles_azure_requests_tokens_and_synced_keys() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let fakes = fakes().await;
    let client = cp.client();
    let mut op = Operator::start(
        client.clone(),
        args(&[format!("--namespaces={ns}")]),
        http_config(&fakes),
    );
    apply_workload(&client, &ns, &fakes, "db").await;
    wait_synced(&client, &ns, "db", Duration::from_secs(30)).await;
    let at_least_one = [
        r#"amlsecrets_reconciles_total{controller="workspacesecret",reason="Synced"}"#,
        r#"amlsecrets_reconciles_total{controller="workspace",reason="Resolved"}"#,
        r#"amlsecrets_reconcile_duration_seconds_count{controller="workspacesecret"}"#,
        r#"amlsecrets_azure_requests_total{service="entra",operation="token",status="200"}"#,
        r#"amlsecrets_azure_requests_total{service="keyvault",operation="get",status="200"}"#,
        r#"amlsecrets_token_acquisitions_total{auth_kind="ServicePrincipalSecret",outcome="success"}"#,
        &format!(r#"amlsecrets_secret_syncs_total{{namespace="{ns}",name="db"}}"#),
        &format!(r#"amlsecrets_secret_keys{{namespace="{ns}",name="db"}}"#),
    ];
    // The metrics of a reconcile are recorded after its Secret write: wait for all of them.
    eventually(
        "the Synced reconcile and its metrics are counted",
        Duration::from_secs(10),
        || async {
            let (_, m) = op.get("/metrics").await;
            at_least_one
                .iter()
                .all(|p| series(&m, p).is_some())
                .then_some(())
        },
    )
    .await;

    let (status, m) = op.get("/metrics").await;
    assert_eq!(status, 200);
    for prefix in at_least_one {
        let v = series(&m, prefix).unwrap_or_else(|| panic!("no series {prefix} in\n{m}"));
        assert!(v >= 1.0, "{prefix} = {v}");
    }
    // One token per audience (ARM is not called: the vault is given), cached afterwards.
    let tokens = series(&m, r#"amlsecrets_token_acquisitions_total{auth_kind="ServicePrincipalSecret",outcome="success"}"#).unwrap();
    assert!(
        tokens <= 2.0,
        "tokens are cached, yet {tokens} were fetched"
    );
    let seconds = series(
        &m,
        r#"amlsecrets_reconcile_duration_seconds_sum{controller="workspacesecret"}"#,
    )
    .unwrap();
    assert!(
        seconds > 0.0 && seconds < 30.0,
        "reconcile seconds {seconds}"
    );
    assert_eq!(
        series(
            &m,
            &format!(r#"amlsecrets_secret_keys{{namespace="{ns}",name="db"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(series(&m, "amlsecrets_leader "), Some(1.0));
    // The only failure allowed is the start-up race of a WorkspaceSecret reconciled before its
    // workspace was Ready; every failure is also counted as a reconcile.
    for line in m
        .lines()
        .filter(|l| l.starts_with("amlsecrets_reconcile_failures_total{"))
    {
        assert!(
            line.contains(r#"reason="WorkspaceNotReady""#),
            "unexpected failure: {line}"
        );
        let (series_name, count) = line.rsplit_once(' ').unwrap();
        let total = series_name.replace("reconcile_failures_total", "reconciles_total");
        assert_eq!(series(&m, &total), count.parse().ok(), "{line}");
    }
    assert!(
        !m.contains("amlsecrets_secret_expiry_seconds{"),
        "no synced key has an expiry"
    );
    assert!(!m.contains("s3cr3t-value") && m.ends_with("# EOF\n"));
    assert_eq!(op.get("/readyz").await.0, 200);
    assert_eq!(op.get("/livez").await.0, 200);
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_false_until_the_watches_have_synced() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let fakes = fakes().await;
    // A ServiceAccount with no RBAC yet: the watches cannot list anything.
    let client = cp.client_as_service_account(&ns, "operator").await.unwrap();
    let mut op = Operator::start(
        client,
        args(&[format!("--namespaces={ns}")]),
        http_config(&fakes),
    );
    let (status, body) = eventually(
        "the admin server answers",
        Duration::from_secs(10),
        || async {
            let r = op.get("/readyz").await;
            (r.0 != 0).then_some(r)
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("watches have not synced"), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        op.get("/readyz").await.0,
        503,
        "ready without being able to list"
    );
    assert_eq!(
        op.get("/livez").await.0,
        200,
        "not syncing is not a reason to restart"
    );

    grant(&cp.client(), &ns, "operator").await;
    eventually(
        "/readyz turns 200 once the watches list",
        Duration::from_secs(45),
        || async { (op.get("/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_api_server_is_unreachable() {
    let cp = ControlPlane::shared().await;
    let fakes = fakes().await;
    let mut config = cp.admin_config();
    config.cluster_url = format!("https://127.0.0.1:{}", free_port())
        .parse()
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let op = Operator::start(
        client,
        args(&["--namespaces=nowhere".into()]),
        http_config(&fakes),
    );
    let (status, body) = eventually(
        "the admin server answers",
        Duration::from_secs(10),
        || async {
            let r = op.get("/readyz").await;
            (r.0 != 0).then_some(r)
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("API server is unreachable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_fails_when_work_waits_longer_than_the_stall_threshold() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let fakes = fakes().await;
    let client = cp.client();
    // Entra answers after 25 s and the request timeout is longer: reconciles hang.
    fakes.entra.faults.set_delay(Some(Duration::from_secs(25)));
    let mut http = http_config(&fakes);
    http.request_timeout = Duration::from_secs(60);
    let mut op = Operator::start(
        client.clone(),
        args(&[
            format!("--namespaces={ns}"),
            "--liveness-stall-threshold=2s".into(),
        ]),
        http,
    );
    eventually("/readyz 200", Duration::from_secs(20), || async {
        (op.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(op.get("/livez").await.0, 200, "idle is healthy");

    apply_workload(&client, &ns, &fakes, "db").await;
    let body = eventually("/livez fails", Duration::from_secs(15), || async {
        let (status, body) = op.get("/livez").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("stalled"), "{body}");

    // Once Azure answers, reconciles finish and the probe recovers.
    fakes.entra.faults.set_delay(None);
    eventually("/livez recovers", Duration::from_secs(45), || async {
        (op.get("/livez").await.0 == 200).then_some(())
    })
    .await;
    op.kill();
}

/// Grants a ServiceAccount the operator's namespaced rules, as the chart's Role does.
async fn grant(admin: &kube::Client, ns: &str, sa: &str) {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let role = Role {
        metadata: ObjectMeta {
            name: Some("operator".into()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(
                &["amlsecrets.io"],
                &[
                    "azuremlworkspaces",
                    "workspacesecrets",
                    "workspacesecretpushes",
                ],
                &["get", "list", "watch", "patch"],
            ),
            rule(
                &["amlsecrets.io"],
                &[
                    "azuremlworkspaces/status",
                    "workspacesecrets/status",
                    "workspacesecretpushes/status",
                ],
                &["patch"],
            ),
            rule(
                &[""],
                &["secrets", "serviceaccounts"],
                &["get", "list", "watch"],
            ),
        ]),
    };
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("operator".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "operator".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}
