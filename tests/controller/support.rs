//! Shared setup of the controller tests: the real API server, the fake Azure, the operator
//! running in-process against one namespace, log capture and polling helpers. Shared by several
//! test binaries, each using a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use amlsecrets::api::conditions::find_ready;
use amlsecrets::api::{AzureMLWorkspace, Condition, WorkspaceSecret};
use amlsecrets::azure::{AzureClient, Http, HttpConfig, RetryPolicy};
use amlsecrets::config::RunArgs;
use amlsecrets::controller::{self, Context};
use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use serde_json::{Value, json};
use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};
use testenv::control_plane::ControlPlane;
use tokio::sync::oneshot;

pub use testenv::support::eventually;

/// The service principal registered with a client secret.
pub const SP_CLIENT: &str = "11111111-2222-3333-4444-000000000001";
/// Its object id.
pub const SP_OID: &str = "aaaaaaaa-2222-3333-4444-000000000001";
/// Its client secret, planted to be searched for in logs.
pub const SP_SECRET: &str = "planted-sp-secret-7Hq~Xw";
/// A vault value planted to be searched for in logs, Events and status.
pub const PLANTED: &str = "planted-vault-value-Kx93";

/// Everything in the logs of this test binary, captured at the most verbose level of our crate.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_env_filter("amlsecrets=trace,testenv=debug,kube=debug,info")
            .with_writer(move || Capture(buffer))
            .with_ansi(false)
            .try_init();
        buffer
    })
}

struct Capture(&'static Mutex<Vec<u8>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One test's world: a namespace, the fakes, and a running operator.
pub struct World {
    pub cp: &'static ControlPlane,
    pub client: kube::Client,
    pub ns: String,
    pub fakes: AzureFakes,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The running operator's context (its metrics).
    ctx: Option<Arc<Context>>,
}

/// Returns operator flags for tests: one namespace, short delays.
pub fn args(ns: &str, extra: &[&str]) -> RunArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let mut argv = vec![
        "amlsecrets".to_string(),
        format!("--namespaces={ns}"),
        format!("--operator-namespace={ns}-operator"),
        "--workspace-check-interval=20s".into(),
        "--max-retry-delay=20s".into(),
        "--azure-timeout=2s".into(),
    ];
    let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
    argv.retain(|a| !extra.iter().any(|e| flag(e) == flag(a)));
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).run
}

impl World {
    /// Creates a namespace and the fakes with the service principal registered, and starts the operator.
    pub async fn start(extra_args: &[&str]) -> World {
        World::start_on(ControlPlane::shared().await, extra_args).await
    }

    /// Like [`World::start`], on a given control plane (e.g. a private one a test stops).
    pub async fn start_on(cp: &'static ControlPlane, extra_args: &[&str]) -> World {
        logs();
        let client = cp.client();
        let ns = cp.namespace().await;
        let fakes = AzureFakes::start().await;
        fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
        let mut world = World {
            cp,
            client,
            ns,
            fakes,
            stop: None,
            task: None,
            ctx: None,
        };
        world.start_operator(args(&world.ns, extra_args));
        world
    }

    /// Starts the operator with the given flags (stopping a running one first).
    pub fn start_operator(&mut self, args: RunArgs) {
        self.start_operator_with(
            args,
            RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
                max_total: Duration::from_secs(4),
                ..RetryPolicy::default()
            },
        );
    }

    /// Starts the operator with the given flags and Azure retry policy (the production default
    /// for tests of how long a user waits).
    pub fn start_operator_with(&mut self, args: RunArgs, retry: RetryPolicy) {
        self.stop_operator_now();
        let http = Http::new(&HttpConfig {
            extra_ca_pem: Some(self.fakes.ca.pem()),
            request_timeout: args.azure_timeout,
            connect_timeout: Duration::from_secs(2),
            retry,
        })
        .unwrap();
        let ctx = Arc::new(Context::new(
            self.client.clone(),
            Arc::new(AzureClient::new(http.clone())),
            http,
            args,
        ));
        self.ctx = Some(ctx.clone());
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(controller::run(ctx, async move {
            let _ = rx.await;
        })));
    }

    fn stop_operator_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Stops the operator gracefully and waits for it to finish.
    pub async fn stop_operator(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("operator stops on shutdown")
                .unwrap();
        }
    }

    /// The running operator's metrics, as `/metrics` shows them.
    pub fn metrics(&self) -> String {
        self.ctx
            .as_ref()
            .expect("operator running")
            .metrics
            .render()
    }

    /// How many times the running operator synced WorkspaceSecret `name` successfully
    /// (`amlsecrets_secret_syncs_total`): a refresh that changed nothing counts too, though it
    /// writes nothing.
    pub fn syncs(&self, name: &str) -> u64 {
        let series = format!(
            "amlsecrets_secret_syncs_total{{namespace=\"{}\",name=\"{name}\"}} ",
            self.ns
        );
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until WorkspaceSecret `name` synced `more` times after `before` syncs.
    pub async fn wait_syncs(&self, name: &str, before: u64, more: u64, within: Duration) {
        eventually(&format!("{more} more syncs of {name}"), within, || async {
            (self.syncs(name) >= before + more).then_some(())
        })
        .await;
    }

    /// Returns the custom cloud block pointing at the fakes.
    pub fn custom_cloud(&self) -> Value {
        json!({
            "authorityHost": self.fakes.entra.authority_host,
            "resourceManagerEndpoint": self.fakes.arm.endpoint,
            "keyVaultDnsSuffix": ".vault.test",
            "keyVaultAudience": VAULT_AUDIENCE,
        })
    }

    /// Creates a Secret in the test namespace.
    pub async fn put_secret(&self, name: &str, data: &[(&str, &[u8])]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
    }

    /// Applies an AzureMLWorkspace with the given auth, pointing at the fakes and the fake vault.
    pub async fn workspace(&self, name: &str, auth: Value) {
        self.workspace_spec(
            name,
            json!({
                "subscriptionId": "00000000-1111-2222-3333-444444444444",
                "resourceGroup": "rg-ml",
                "workspaceName": "mlw-test",
                "cloud": "Custom",
                "customCloud": self.custom_cloud(),
                "keyVault": { "uri": self.fakes.vault.uri },
                "auth": auth,
            }),
        )
        .await;
    }

    /// Applies an AzureMLWorkspace with a whole spec.
    pub async fn workspace_spec(&self, name: &str, spec: Value) {
        let api: Api<AzureMLWorkspace> = Api::namespaced(self.client.clone(), &self.ns);
        let obj = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": name }, "spec": spec });
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
    }

    /// Applies the service-principal workspace `ml` (client secret in Secret `sp`).
    pub async fn sp_workspace(&self) {
        self.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
            .await;
        self.workspace(
            "ml",
            json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } }),
        )
        .await;
    }

    /// Applies a WorkspaceSecret with a whole spec.
    pub async fn workspace_secret(&self, name: &str, spec: Value) {
        let api: Api<WorkspaceSecret> = Api::namespaced(self.client.clone(), &self.ns);
        let obj = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name }, "spec": spec });
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
    }

    /// Returns the Ready condition of a WorkspaceSecret.
    pub async fn wsec_ready(&self, name: &str) -> Option<Condition> {
        let api: Api<WorkspaceSecret> = Api::namespaced(self.client.clone(), &self.ns);
        let ws = api.get_opt(name).await.unwrap()?;
        ws.status.and_then(|s| find_ready(&s.conditions).cloned())
    }

    /// Returns the Ready condition of an AzureMLWorkspace.
    pub async fn ws_ready(&self, name: &str) -> Option<Condition> {
        let api: Api<AzureMLWorkspace> = Api::namespaced(self.client.clone(), &self.ns);
        let ws = api.get_opt(name).await.unwrap()?;
        ws.status.and_then(|s| find_ready(&s.conditions).cloned())
    }

    /// Waits until a WorkspaceSecret's Ready has this status and reason.
    pub async fn wait_wsec(&self, name: &str, status: &str, reason: &str) -> Condition {
        let what = format!("WorkspaceSecret {name} Ready={status} reason={reason}");
        eventually(&what, Duration::from_secs(45), || async {
            self.wsec_ready(name)
                .await
                .filter(|c| c.status == status && c.reason == reason)
        })
        .await
    }

    /// Waits until an AzureMLWorkspace's Ready has this status and reason.
    pub async fn wait_ws(&self, name: &str, status: &str, reason: &str) -> Condition {
        let what = format!("AzureMLWorkspace {name} Ready={status} reason={reason}");
        eventually(&what, Duration::from_secs(45), || async {
            self.ws_ready(name)
                .await
                .filter(|c| c.status == status && c.reason == reason)
        })
        .await
    }

    /// Returns a Secret's data, if the Secret exists.
    pub async fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let s = api.get_opt(name).await.unwrap()?;
        Some(
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        )
    }

    /// Returns the full Secret.
    pub async fn secret(&self, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    /// Waits until a Secret's data satisfies `ok`.
    pub async fn wait_secret(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&BTreeMap<String, Vec<u8>>) -> bool,
    ) -> BTreeMap<String, Vec<u8>> {
        eventually(what, Duration::from_secs(45), || async {
            self.secret_data(name).await.filter(|d| ok(d))
        })
        .await
    }

    /// Waits until an Event with `reason` whose message contains `needle` is about object `name`.
    pub async fn wait_event(
        &self,
        name: &str,
        reason: &str,
        needle: &str,
    ) -> Vec<(String, String)> {
        let what = format!("an Event {reason} about {name} mentioning {needle:?}");
        eventually(&what, Duration::from_secs(20), || async {
            let events = self.events_for(name).await;
            events
                .iter()
                .any(|(r, m)| r == reason && m.contains(needle))
                .then_some(events)
        })
        .await
    }

    /// Returns the reasons and messages of Events about an object.
    pub async fn events_for(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_operator_now();
    }
}

/// Asserts that no planted value appears in the captured logs.
pub fn assert_logs_clean(planted: &[&str]) {
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(
        logs.len() > 1000,
        "the log capture saw almost nothing ({} bytes)",
        logs.len()
    );
    for p in planted {
        assert!(
            !logs.contains(p),
            "a planted value appeared in the logs: {p}"
        );
    }
}
