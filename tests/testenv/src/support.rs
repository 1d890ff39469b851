//! What every test binary needs around the control plane and the node, in one place: waiting for
//! what a test asserts (`eventually`), namespaces, and running `kubectl` and `helm` from the
//! tools directory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};

/// How often `eventually` checks again.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it yields a value, or returns `None` once `timeout` has passed.
pub async fn eventually_opt<T, F, Fut>(timeout: Duration, check: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it yields a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match eventually_opt(timeout, check).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Creates a namespace (no error if it exists).
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
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

/// Returns the path of a tool (`helm`, `kubectl`) in the tools directory, building it with
/// `scripts/build-control-plane.sh` when missing.
pub fn tool(name: &str) -> PathBuf {
    let path = crate::control_plane::tools_dir().join("bin").join(name);
    if path.is_file() {
        return path;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-control-plane.sh");
    eprintln!(
        "{name} missing in {}: building it with {}",
        path.display(),
        script.display()
    );
    let status = Command::new("bash").arg(&script).arg(name).status();
    assert!(
        status.is_ok_and(|s| s.success()) && path.is_file(),
        "{name} is missing and `scripts/build-control-plane.sh {name}` did not build it (needs Go and the Go module proxy)"
    );
    path
}

/// Runs a tool of the tools directory (with `KUBECONFIG` when given, and helm's cache and
/// configuration in the temporary directory); returns stdout, or the error output.
pub fn run_tool(name: &str, args: &[&str], kubeconfig: Option<&Path>) -> Result<Vec<u8>, String> {
    let path = tool(name);
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("amlsecrets-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("amlsecrets-helm-config"),
        );
    if let Some(kubeconfig) = kubeconfig {
        cmd.env("KUBECONFIG", kubeconfig);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{name} {args:?} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}
