//! An API-server outage on a private control plane: the operator says once per watch that it
//! broke and once that it works again (with the production log setup, not an error per failed
//! request), and picks up objects created after the API server's return within seconds.

#[path = "controller/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::telemetry::{self, LogFormat};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::*;
use testenv::control_plane::ControlPlane;

/// How long the API server is down (`OUTAGE_TEST_SECONDS` overrides it, for measuring).
const OUTAGE: Duration = Duration::from_secs(30);
/// How late, at most, an object created after the API server's return may be picked up: the
/// watches retry at most 3 s apart (kube's default backoff: 30 s and more), plus a relist.
const PICKUP: Duration = Duration::from_secs(8);
/// The operator's watches, as its log lines name them (the AzureMLWorkspaces' one is shared by
/// all three controllers).
const WATCHES: [&str; 7] = [
    "AzureMLWorkspaces",
    "ServiceAccounts",
    "credential Secrets",
    "WorkspaceSecrets",
    "managed Secrets",
    "WorkspaceSecretPushes",
    "push source Secrets",
];

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Prints the captured logs if the test fails, to explain it.
struct DumpOnPanic(Capture);

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("operator logs:\n{}", self.0.text_since(0));
        }
    }
}

impl Capture {
    fn text_since(&self, mark: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[mark..]).into_owned()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Applies a WorkspaceSecret, retrying while the test's own client reconnects.
async fn apply_wsec(w: &World, name: &str) {
    let api: Api<WorkspaceSecret> = Api::namespaced(w.client.clone(), &w.ns);
    let obj = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name },
        "spec": { "workspaceRef": { "name": "ml" }, "data": [{ "key": "pw", "ref": "keyvault:pw" }] } });
    eventually(
        &format!("applying WorkspaceSecret {name}"),
        Duration::from_secs(10),
        || async {
            api.patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .ok()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_outage_each_watch_logs_once_and_new_objects_are_picked_up_within_seconds()
 {
    // The production log setup (plain, info), captured.
    let logs = Capture::default();
    let writer = logs.clone();
    // OUTAGE_TEST_LOG (filter directives) shows more when a failure needs explaining.
    let directives = std::env::var("OUTAGE_TEST_LOG").unwrap_or_else(|_| "info".into());
    tracing::subscriber::set_global_default(telemetry::subscriber(
        LogFormat::Plain,
        &directives,
        move || writer.clone(),
        false,
    ))
    .expect("the first subscriber of this test binary");
    let _dump = DumpOnPanic(logs.clone());

    let cp: &'static ControlPlane =
        Box::leak(Box::new(ControlPlane::start().await.unwrap_or_else(|e| {
            panic!("a private control plane did not start: {e}")
        })));
    let w = World::start_on(cp, &[]).await;
    w.fakes.vault.put_secret("pw", "v1", true, None);
    w.sp_workspace().await;
    apply_wsec(&w, "before").await;
    w.wait_wsec("before", "True", "Synced").await;
    w.wait_ws("ml", "True", "Resolved").await;

    let outage = std::env::var("OUTAGE_TEST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(OUTAGE, Duration::from_secs);
    let mark = logs.len();
    cp.stop_apiserver().await;
    tokio::time::sleep(outage).await;
    cp.start_apiserver()
        .await
        .unwrap_or_else(|e| panic!("the API server did not start again: {e}"));
    let during = logs.text_since(mark);

    apply_wsec(&w, "after").await;
    let created = Instant::now();
    eventually(
        "WorkspaceSecret after Synced",
        Duration::from_secs(45),
        || async { w.wsec_ready("after").await.filter(|c| c.status == "True") },
    )
    .await;
    let pickup = created.elapsed();
    eprintln!("created after a {outage:?} outage: Synced after {pickup:?}");
    assert!(
        pickup <= PICKUP,
        "a WorkspaceSecret created after the API server's return took {pickup:?} to sync"
    );

    for watch in WATCHES {
        let broke = count(&during, &format!("watch of {watch} broke"));
        assert_eq!(
            broke, 1,
            "watch of {watch}: {broke} 'broke' lines during the outage:\n{during}"
        );
    }
    assert!(
        during
            .lines()
            .filter(|l| l.contains(" broke"))
            .all(|l| l.contains("error=")),
        "a break line does not say why:\n{during}"
    );
    let errors = count(&during, " ERROR ");
    assert_eq!(
        errors, 0,
        "{errors} ERROR lines during a {outage:?} outage:\n{during}"
    );
    // One line per watch, plus the workspace's failed re-check (two lines every 10 s).
    let noisy = count(&during, " WARN ");
    assert!(
        noisy <= WATCHES.len() + 2 + outage.as_secs() as usize / 5,
        "{noisy} WARN lines during a {outage:?} outage:\n{during}"
    );
    let after = eventually(
        "a 'works again' line per watch",
        Duration::from_secs(10),
        || async {
            let text = logs.text_since(mark);
            WATCHES
                .iter()
                .all(|watch| count(&text, &format!("watch of {watch} works again")) >= 1)
                .then_some(text)
        },
    )
    .await;
    for watch in WATCHES {
        let again = count(&after, &format!("watch of {watch} works again"));
        assert_eq!(
            again, 1,
            "watch of {watch}: {again} 'works again' lines:\n{after}"
        );
    }
}
