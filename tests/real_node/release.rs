//! Taking turns on the node: one test at a time, each with its own chart release, removed at the
//! end even when the test fails.

use std::time::Duration;

use tokio::sync::Mutex;

use crate::support::*;

/// The tests take turns on the node (see the crate documentation).
pub static SERIAL: Mutex<()> = Mutex::const_new(());

/// Removes a release (and waits for its pods to go) when dropped, also when a test fails.
pub struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(env) = ENV_FOR_DROP.get() {
            let _ = env.helm(&[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
                "--timeout",
                "2m",
            ]);
        }
    }
}

static ENV_FOR_DROP: std::sync::OnceLock<&'static Env> = std::sync::OnceLock::new();

/// Returns the shared environment, and lets a [`Release`] dropped later uninstall itself.
pub async fn setup() -> &'static Env {
    let env = env().await;
    let _ = ENV_FOR_DROP.set(env);
    env
}

/// Installs the chart as `release` (see `Env::install`); the release is removed when the
/// returned guard is dropped. Returns how long the install took.
pub fn install(env: &Env, release: &str, namespace: &str, extra: &[&str]) -> (Release, Duration) {
    let took = env.install(release, namespace, extra);
    (
        Release {
            name: release.into(),
            namespace: namespace.into(),
        },
        took,
    )
}
