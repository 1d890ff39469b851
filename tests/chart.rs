//! The Helm chart with the real `helm` (built from its Go module): lint, render with defaults and
//! with every option, server-side validation against the API server's schemas, `helm install`,
//! and the operator running with the installed ServiceAccount's token: its RBAC suffices to
//! sync, and a namespace list keeps it away from Secrets elsewhere.

#[path = "operator/support.rs"]
mod support;

#[path = "chart/cluster.rs"]
mod cluster;
#[path = "chart/templates.rs"]
mod templates;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

/// The chart's directory.
fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/amlsecrets")
}

/// Runs `kubectl` or `helm`; returns stdout, panicking with stderr on failure.
fn run(tool: &str, args: &[&str], kubeconfig: Option<&Path>) -> String {
    let out = run_tool(tool, args, kubeconfig).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders the chart with `extra` arguments: the text and its objects.
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
    let text = run("helm", &args, None);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    (text, docs.into_iter().filter(|d| d.is_object()).collect())
}

/// The kinds of rendered objects.
fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The rendered Deployment.
fn deployment(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment")
}
