//! Shared setup of the real-node end-to-end tests: the node (one per test binary), the fake
//! Azure reachable from pods at the node's address, kubectl and helm against the node, chart
//! releases, tenants with a service-principal workspace, consumer pods and `kubectl exec`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use testenv::azure::{AzureFakes, TENANT, TestCa};
use testenv::node::{Exposure, NODE_IP, Node, OPERATOR_IMAGE};
use tokio::sync::OnceCell;

pub use testenv::support::{create_namespace, eventually, eventually_opt, run_tool};

/// The service principal the fakes know.
pub const SP_CLIENT: &str = "11111111-2222-3333-4444-0000000000e2";
/// Its object id.
pub const SP_OID: &str = "aaaaaaaa-2222-3333-4444-0000000000e2";
/// Its client secret.
pub const SP_SECRET: &str = "real-node-sp-secret";
/// The vault's host name as pods know it: no cluster DNS here, so the chart's `hostAliases` maps
/// it to the node's address (and the static binary resolves it through `/etc/hosts`).
pub const VAULT_HOST: &str = "e2e-vault.vault.test";
/// The audience of workload-identity tokens, as the Azure webhook projects them.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The node, the fakes reachable from its pods, and files for kubectl and helm.
pub struct Env {
    /// The node.
    pub node: &'static Node,
    /// The fake Azure (its servers run on a runtime of their own, shared by every test).
    pub fakes: AzureFakes,
    /// Entra ID's authority host as pods reach it.
    pub authority: String,
    /// ARM as pods reach it.
    pub arm: String,
    /// The vault as pods reach it (`https://VAULT_HOST:PORT`).
    pub vault: String,
    /// The fakes' CA certificate (for the chart's `extraCaBundle`).
    pub ca_file: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    _exposures: Vec<Exposure>,
}

static ENV: OnceCell<Env> = OnceCell::const_new();

/// Returns the shared environment, starting the node and the fakes on first use.
pub async fn env() -> &'static Env {
    ENV.get_or_init(|| async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let node = Node::shared().await;
        report(
            "node start -> Ready",
            format!("{:.1?}", node.startup_time()),
        );
        let fakes = start_fakes();
        fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
        let mut exposures = Vec::new();
        let mut urls = Vec::new();
        for url in [
            &fakes.entra.authority_host,
            &fakes.arm.endpoint,
            &fakes.vault.uri,
        ] {
            let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
            let exposure = node
                .expose(port)
                .await
                .unwrap_or_else(|e| panic!("exposing a fake to the pods failed: {e}"));
            urls.push(format!("https://{}", exposure.address()));
            exposures.push(exposure);
        }
        // The vault by name (hostAliases), the others by address.
        urls[2] = urls[2].replace(&NODE_IP.to_string(), VAULT_HOST);
        // Ids and nextLinks as pods reach the vault (the client refuses links to other hosts).
        fakes.vault.set_public_uri(&urls[2]);
        let ca_file = node.dir().join("fake-azure-ca.crt");
        std::fs::write(&ca_file, fakes.ca.pem()).unwrap();
        let kubeconfig = node.dir().join("kubeconfig");
        node.write_kubeconfig(&kubeconfig).unwrap();
        Env {
            node,
            fakes,
            authority: urls[0].clone(),
            arm: urls[1].clone(),
            vault: urls[2].clone(),
            ca_file,
            kubeconfig,
            _exposures: exposures,
        }
    })
    .await
}

/// Starts the fakes on a runtime of their own that lives as long as the test binary (each test
/// has its own runtime, which would stop servers started in it when the test ends).
fn start_fakes() -> AzureFakes {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fake-azure".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the fakes");
            runtime.block_on(async move {
                let ca = TestCa::with_extra_names(&[&NODE_IP.to_string(), VAULT_HOST]);
                let _ = tx.send(AzureFakes::start_with_ca(ca).await);
                std::future::pending::<()>().await;
            });
        })
        .expect("a thread for the fakes");
    rx.recv().expect("the fakes started")
}

impl Env {
    /// Returns an admin client (one per test: a client belongs to its runtime).
    pub fn client(&self) -> kube::Client {
        self.node.client()
    }

    /// Runs kubectl against the node; returns stdout or the error output.
    pub fn kubectl(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        run_tool("kubectl", args, Some(&self.kubeconfig))
    }

    /// Runs helm against the node; returns stdout or the error output.
    pub fn helm(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        run_tool("helm", args, Some(&self.kubeconfig))
    }

    /// `helm install`s the chart as `release` into `namespace` (created) with the e2e image,
    /// the fakes' CA as `extraCaBundle`, a `hostAliases` entry for the vault's name and `extra`
    /// `--set`-style arguments; waits until the
    /// Deployment is available (both replicas Ready). Returns how long the install took.
    pub fn install(&self, release: &str, namespace: &str, extra: &[&str]) -> Duration {
        let (repository, tag) = OPERATOR_IMAGE.split_once(':').unwrap();
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/amlsecrets");
        let repo = format!("image.repository={repository}");
        let tag = format!("image.tag={tag}");
        let ca = format!("extraCaBundle={}", self.ca_file.display());
        let alias_ip = format!("hostAliases[0].ip={NODE_IP}");
        let alias_name = format!("hostAliases[0].hostnames[0]={VAULT_HOST}");
        let mut args = vec![
            "install",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "4m",
            "--set",
            &repo,
            "--set",
            &tag,
            "--set",
            "image.pullPolicy=Never",
            "--set-file",
            &ca,
            "--set",
            &alias_ip,
            "--set",
            &alias_name,
        ];
        args.extend(extra);
        let started = Instant::now();
        if let Err(e) = self.helm(&args) {
            let pods = self
                .kubectl(&["get", "pods,events", "-n", namespace, "-o", "wide"])
                .unwrap_or_default();
            panic!(
                "helm install {release} failed: {e}\n{}\n{}",
                String::from_utf8_lossy(&pods),
                self.node.log_tails()
            );
        }
        started.elapsed()
    }
}

/// Prints a measured figure in a form easy to find in the test output, and appends it to the
/// file named by `AMLSECRETS_MEASUREMENTS` (`scripts/test.sh` prints that file at the end, since
/// the output of passing tests is captured).
pub fn report(what: &str, value: impl std::fmt::Display) {
    let line = format!("real-node measurement: {what}: {value}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("AMLSECRETS_MEASUREMENTS") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}
