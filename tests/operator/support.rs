//! Shared setup of the chart, leader-election and admin tests: the whole operator
//! (`amlsecrets::operator::run`: admin server, leader election, controllers) in-process against
//! the real API server and the fake Azure, with any client (admin or a ServiceAccount's token).

#![allow(dead_code)]

use std::time::Duration;

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::api::conditions::find_ready;
use amlsecrets::azure::{HttpConfig, RetryPolicy};
use amlsecrets::config::RunArgs;
use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde_json::json;
use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};
use tokio::sync::oneshot;

// Not every test binary that includes this module uses every helper.
#[allow(unused_imports)]
pub use testenv::support::{create_namespace, eventually, run_tool, tool};

/// The service principal the fakes know.
pub const SP_CLIENT: &str = "11111111-2222-3333-4444-0000000000aa";
/// Its object id.
pub const SP_OID: &str = "aaaaaaaa-2222-3333-4444-0000000000aa";
/// Its client secret.
pub const SP_SECRET: &str = "operator-tests-sp-secret";

/// The fake Azure with a service principal and one vault secret `db-password`.
pub async fn fakes() -> AzureFakes {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fakes = AzureFakes::start().await;
    fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
    fakes
        .vault
        .put_secret("db-password", "s3cr3t-value", true, None);
    fakes
}

/// Returns operator flags: the given ones after test defaults (short delays, a free admin port).
pub fn args(extra: &[String]) -> RunArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let mut argv = vec![
        "amlsecrets".to_string(),
        "--workspace-check-interval=20s".into(),
        "--max-retry-delay=10s".into(),
        "--azure-timeout=3s".into(),
        format!("--admin-addr=127.0.0.1:{}", free_port()),
    ];
    argv.extend(extra.iter().cloned());
    Cli::parse_from(argv).run
}

/// Returns a TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Returns the HTTP settings trusting the fakes' CA, with quick retries.
pub fn http_config(fakes: &AzureFakes) -> HttpConfig {
    HttpConfig {
        extra_ca_pem: Some(fakes.ca.pem()),
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_total: Duration::from_secs(8),
            ..RetryPolicy::default()
        },
    }
}

/// An operator running in-process.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    /// The admin server's base URL.
    pub admin: String,
}

impl Operator {
    /// Starts `amlsecrets::operator::run` with this client and these flags.
    pub fn start(client: kube::Client, args: RunArgs, http: HttpConfig) -> Operator {
        // RUST_LOG shows the operators' logs when a test needs explaining.
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let admin = format!("http://{}", args.admin_addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(amlsecrets::operator::run(client, args, http, async move {
            let _ = stopped.await;
        }));
        Operator {
            stop: Some(stop),
            task: Some(task),
            admin,
        }
    }

    /// Stops gracefully (as on SIGTERM) and waits for the process to finish.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), task).await;
            result
                .expect("the operator stops on shutdown")
                .unwrap()
                .unwrap();
        }
    }

    /// Kills the operator: its task is aborted, nothing is released.
    pub fn kill(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// GETs an admin path; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.admin)).await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GETs a plain-http URL with a minimal HTTP/1.1 client; returns status and body.
pub async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = match tokio::net::TcpStream::connect(host).await {
        Ok(s) => s,
        Err(_) => return (0, String::new()),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    // A replica that is stopping drops its admin connections: like a refused connect, that is
    // "no answer" (status 0), not a test failure.
    let mut raw = Vec::new();
    if stream.write_all(request.as_bytes()).await.is_err()
        || stream.read_to_end(&mut raw).await.is_err()
    {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Applies the service-principal workspace `ml` (Secret `sp`) and a WorkspaceSecret `name`
/// syncing `db-password` into key `password`.
pub async fn apply_workload(client: &kube::Client, ns: &str, fakes: &AzureFakes, name: &str) {
    let pp = PatchParams::apply("test").force();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("sp".into()),
            ..Default::default()
        },
        data: Some(
            [(
                "clientSecret".to_string(),
                ByteString(SP_SECRET.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch("sp", &pp, &Patch::Apply(secret))
        .await
        .unwrap();
    let ws = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": "ml" },
        "spec": { "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg-ml", "workspaceName": "mlw-test",
            "cloud": "Custom",
            "customCloud": { "authorityHost": fakes.entra.authority_host, "resourceManagerEndpoint": fakes.arm.endpoint,
                             "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE },
            "keyVault": { "uri": fakes.vault.uri },
            "auth": { "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } } } });
    let api: Api<amlsecrets::api::AzureMLWorkspace> = Api::namespaced(client.clone(), ns);
    api.patch("ml", &pp, &Patch::Apply(ws)).await.unwrap();
    let wsec = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name },
        "spec": { "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": [ { "key": "password", "ref": "keyvault:db-password" } ] } });
    Api::<WorkspaceSecret>::namespaced(client.clone(), ns)
        .patch(name, &pp, &Patch::Apply(wsec))
        .await
        .unwrap();
}

/// Returns the Ready reason of a WorkspaceSecret, if it has one.
pub async fn wsec_reason(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let ws = Api::<WorkspaceSecret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    ws.status
        .and_then(|s| find_ready(&s.conditions).map(|c| c.reason.clone()))
}

/// Waits until a WorkspaceSecret's Ready reason is `reason` (status follows the Secret write).
pub async fn wait_reason(client: &kube::Client, ns: &str, name: &str, reason: &str) {
    eventually(
        &format!("WorkspaceSecret {ns}/{name} reason {reason}"),
        Duration::from_secs(20),
        || async { (wsec_reason(client, ns, name).await.as_deref() == Some(reason)).then_some(()) },
    )
    .await;
}

/// Waits until the Secret `name` holds the vault value in `password`.
pub async fn wait_synced(client: &kube::Client, ns: &str, name: &str, timeout: Duration) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    eventually(&format!("Secret {ns}/{name} synced"), timeout, || async {
        let s = api.get_opt(name).await.ok()??;
        (s.data?.get("password")?.0 == b"s3cr3t-value").then_some(())
    })
    .await;
}
