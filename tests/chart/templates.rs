//! The chart on its own: its CRDs are the generated ones, its values map one to one onto the
//! operator's flags, and it lints clean and renders a locked-down Deployment.

use std::path::PathBuf;
use std::process::Command;

use amlsecrets::config::RunArgs;
use clap::Args;
use serde_json::Value;

use crate::support::*;
use crate::{chart, deployment, kinds, render, run};

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
        .filter(|l| l != "allow-azure-cli-auth") // for a laptop only: never in a pod (below)
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
    // spec.auth.azureCli is for an operator run on a laptop: no value turns it on in a pod.
    assert!(
        !text.contains("allow-azure-cli-auth") && !text.contains("AMLSECRETS_ALLOW_AZURE_CLI_AUTH"),
        "the chart enables the Azure CLI auth method"
    );
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
        let out = run("helm", &args, None);
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
