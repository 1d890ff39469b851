//! The Helm chart with the real `helm` (built from its Go module): lint, render with defaults and
//! with every option, server-side validation against the API server's schemas, `helm install`,
//! and the operator running with the installed ServiceAccount's token: its RBAC suffices to
//! sync, and a namespace list keeps it away from Secrets elsewhere.

#[path = "operator/support.rs"]
mod support;

#[path = "chart/rollout.rs"]
mod rollout;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use amlsecrets::config::RunArgs;
use clap::Args;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::Value;
use support::*;
use testenv::control_plane::ControlPlane;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/amlsecrets")
}

/// Runs a tool; returns stdout, panicking with stderr on failure.
fn run(tool: &Path, args: &[&str], kubeconfig: Option<&Path>) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(args).env(
        "HELM_CACHE_HOME",
        std::env::temp_dir().join("amlsecrets-helm-cache"),
    );
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{stderr}",
        tool.display()
    );
    stdout
}

fn render(extra: &[&str]) -> (String, Vec<Value>) {
    let chart = chart();
    let mut args = vec![
        "template",
        "t",
        chart.to_str().unwrap(),
        "--namespace",
        "amlsecrets-system",
    ];
    args.extend(extra);
    let text = run(&tool("helm"), &args, None);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    (text, docs.into_iter().filter(|d| d.is_object()).collect())
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

fn deployment(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment")
}

#[test]
fn chart_crds_are_identical_to_the_generated_crds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(root.join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut in_chart: Vec<_> = std::fs::read_dir(chart().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    in_chart.sort();
    assert_eq!(
        names, in_chart,
        "the chart's crds/ must hold exactly the files of crds/"
    );
    for name in names {
        let a = std::fs::read(root.join("crds").join(&name)).unwrap();
        let b = std::fs::read(chart().join("crds").join(&name)).unwrap();
        assert!(
            a == b,
            "charts/amlsecrets/crds/{} differs from crds/ (copy crds/*.yaml into the chart)",
            name.to_string_lossy()
        );
    }
}

#[test]
fn chart_config_values_map_one_to_one_onto_run_flags() {
    let flags: Vec<String> = RunArgs::augment_args(clap::Command::new("run"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .filter(|l| l != "operator-namespace") // the release namespace, from POD_NAMESPACE
        .collect();
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let mut keys: Vec<String> = values["config"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected: Vec<String> = flags
        .iter()
        .map(|f| {
            let mut parts = f.split('-');
            let first = parts.next().unwrap().to_string();
            parts.fold(first, |acc, p| acc + &p[..1].to_uppercase() + &p[1..])
        })
        .collect();
    keys.sort();
    expected.sort();
    assert_eq!(
        keys, expected,
        "values.yaml config keys vs flags of `amlsecrets run`"
    );
    // Every flag reaches the container (extra-ca-file only when a CA is configured).
    let (text, _) = render(&["-f", chart().join("ci/all-values.yaml").to_str().unwrap()]);
    for flag in &flags {
        assert!(
            text.contains(&format!("- --{flag}=")),
            "--{flag} is not passed by the Deployment"
        );
    }
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    for key in &keys {
        assert!(
            readme.contains(&format!("`config.{key}`")),
            "README does not document chart value config.{key}"
        );
    }
}

#[test]
fn chart_lints_clean_and_renders_a_locked_down_deployment() {
    let chart = chart();
    let all = chart.join("ci/all-values.yaml");
    for extra in [vec![], vec!["-f", all.to_str().unwrap()]] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend(&extra);
        let out = run(&tool("helm"), &args, None);
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }

    let (_, docs) = render(&[]);
    assert_eq!(
        kinds(&docs),
        [
            "PodDisruptionBudget",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment"
        ]
    );
    let d = deployment(&docs);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().map(Vec::len),
        Some(2),
        "spread with 2 replicas"
    );
    let (_, single) = render(&["--set", "replicaCount=1"]);
    assert!(deployment(&single)["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null());
    let failed = Command::new(tool("helm"))
        .args([
            "template",
            "t",
            chart.to_str().unwrap(),
            "--set",
            "replicaCount=2",
            "--set",
            "config.leaderElection=false",
        ])
        .output()
        .unwrap();
    assert!(
        !failed.status.success()
            && String::from_utf8_lossy(&failed.stderr).contains("leaderElection")
    );

    // Every option: Roles per listed namespace, no cluster-wide grant, the operator's identity.
    let (_, docs) = render(&["-f", all.to_str().unwrap()]);
    let k = kinds(&docs);
    assert!(
        !k.iter().any(|k| k.starts_with("Cluster")),
        "a namespace list grants nothing cluster-wide: {k:?}"
    );
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles.iter().filter(|n| **n == "amlsecrets-team-a").count(),
        2,
        "operator and lease Roles in team-a: {roles:?}"
    );
    assert!(roles.contains(&"amlsecrets-team-b"));
    for kind in [
        "ServiceMonitor",
        "ConfigMap",
        "PodDisruptionBudget",
        "Service",
    ] {
        assert!(k.iter().any(|x| x == kind), "{kind} missing: {k:?}");
    }
    let sa = docs.iter().find(|d| d["kind"] == "ServiceAccount").unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
        "00000000-0000-0000-0000-0000000000c1"
    );
    let d = deployment(&docs);
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        9090
    );
}

/// Installs a minimal ServiceMonitor CRD (the Prometheus Operator's kind) so that a rendered
/// ServiceMonitor can be validated; its own schema is the operator's business, not ours.
const SERVICE_MONITOR_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"servicemonitors.monitoring.coreos.com"},
"spec":{"group":"monitoring.coreos.com","scope":"Namespaced","names":{"kind":"ServiceMonitor","plural":"servicemonitors","singular":"servicemonitor","listKind":"ServiceMonitorList"},
"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

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
        &tool("kubectl"),
        &["apply", "--server-side", "-f", crd.to_str().unwrap()],
        Some(&kubeconfig),
    );
    run(
        &tool("kubectl"),
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
        ensure_namespace(&client, ns).await;
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
            &tool("kubectl"),
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
    let helm = tool("helm");
    let chart = chart();

    // All namespaces: ClusterRole. The operator runs with the chart ServiceAccount's token.
    let release_ns = cp.namespace().await;
    let app_ns = cp.namespace().await;
    let out = run(
        &helm,
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
        &helm,
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
        deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"].clone()
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
