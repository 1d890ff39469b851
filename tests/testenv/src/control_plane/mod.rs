//! A real kube-apiserver + etcd for tests, the Rust counterpart of controller-runtime's envtest.
//!
//! [`ControlPlane::shared`] starts one control plane per test binary, lazily, and every test
//! takes a fresh namespace from [`ControlPlane::namespace`]. The API server runs with RBAC,
//! TLS from a CA generated per start, an admin identity (client certificate in
//! `system:masters`) and a service-account issuer (the server's own URL), so TokenRequest
//! works and OIDC discovery + JWKS are readable, also anonymously, like a public issuer.
//! Our CRDs from `crds/` are installed and Established before a client is handed out.
//! Processes never outlive the test process (see [`process`]). The API server of a private
//! control plane can be stopped and started again on the same port and etcd, to test outages
//! ([`ControlPlane::stop_apiserver`], [`ControlPlane::start_apiserver`]). A private control
//! plane can keep an audit log of every request ([`Options::audit_log`]), which the efficiency
//! benchmark reads to count the operator's requests.

mod access;
mod audit;
pub mod crds;
mod kubeconfig;
mod outage;
pub mod pki;
pub mod process;
mod startup;

pub use access::{NAMESPACE_LABEL, get_json};
use kube::config::{KubeConfigOptions, Kubeconfig};
use pki::Pki;
use process::{Binaries, Process};
use startup::{free_ports, spawn_apiserver, wait_for_port, wait_ready};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long etcd and the API server together may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often start-up is retried when a port picked as free was taken in the meantime.
const START_ATTEMPTS: u32 = 3;

/// Errors starting or talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary is missing and could not be built.
    #[error("{0}")]
    MissingBinaries(String),
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// Generating the certificates or keys failed.
    #[error("generating the control plane's certificates failed: {0}")]
    Pki(#[from] rcgen::Error),
    /// A process ended during start-up.
    #[error("{name} exited during start-up ({status}); last log lines:\n{log}")]
    Exited {
        /// Which binary.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// The control plane did not become ready in time.
    #[error("{0} not ready after {START_TIMEOUT:?}; last log lines:\n{1}")]
    Timeout(&'static str, String),
    /// The CRDs could not be read or installed.
    #[error("{0}")]
    Crds(String),
    /// Building the client configuration failed.
    #[error("building the client configuration failed: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// A request to the API server failed.
    #[error("request to the API server failed: {0}")]
    Kube(#[from] kube::Error),
    /// The API server answered with JSON that does not parse.
    #[error("the API server's answer is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A TokenRequest came back without a token.
    #[error("the TokenRequest for ServiceAccount {0} returned no token")]
    NoToken(String),
}

/// A running etcd + kube-apiserver pair with our CRDs installed; stopped when dropped.
pub struct ControlPlane {
    // Field order is drop order: the API server stops before etcd, the directory goes last.
    apiserver: std::sync::Mutex<Option<Process>>,
    etcd: Process,
    apiserver_binary: PathBuf,
    apiserver_args: Vec<String>,
    dir: tempfile::TempDir,
    server_url: String,
    pki: Pki,
    kubeconfig: Kubeconfig,
    config: kube::Config,
    startup: Duration,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("dir", &self.dir.path())
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

/// How a private control plane is started ([`ControlPlane::start_with`]).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Turns on the API server's audit log (every request at level Metadata, JSON lines, see
    /// [`ControlPlane::audit_log_path`]); off by default, it costs the API server CPU and disk.
    pub audit_log: bool,
}

static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();

impl ControlPlane {
    /// Returns the control plane shared by all tests of this test binary, starting it on first use.
    ///
    /// Panics with the reason (missing binary, log tail of a failed process…) if it cannot
    /// start; every later caller gets the same panic message without retrying. The processes
    /// end when the test binary exits.
    pub async fn shared() -> &'static ControlPlane {
        let started = SHARED
            .get_or_init(|| async {
                let result = ControlPlane::start().await.map_err(|e| e.to_string());
                if let Ok(cp) = &result {
                    eprintln!(
                        "testenv: control plane started in {:.1?} at {}",
                        cp.startup, cp.server_url
                    );
                }
                result
            })
            .await;
        match started {
            Ok(cp) => cp,
            Err(e) => panic!("the test control plane (etcd + kube-apiserver) did not start: {e}"),
        }
    }

    /// Starts a new, private control plane: locates (or builds) the binaries, starts etcd and
    /// the API server on free loopback ports, waits for `/readyz` and installs the CRDs.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts a new, private control plane like [`ControlPlane::start`], with `options`.
    pub async fn start_with(options: Options) -> Result<Self, Error> {
        let started = Instant::now();
        let binaries = tokio::task::spawn_blocking(process::locate)
            .await
            .map_err(|e| {
                Error::MissingBinaries(format!("locating the binaries panicked: {e}"))
            })??;
        let crds = crds::load()?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &options).await {
                Ok(mut cp) => {
                    let client = cp.client();
                    access::allow_anonymous_discovery(&client).await?;
                    crds::install(&client, &crds).await?;
                    cp.startup = started.elapsed();
                    return Ok(cp);
                }
                Err(Error::Exited { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(binaries: &Binaries, options: &Options) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("amlsecrets-testenv-")
            .tempdir()
            .map_err(|e| Error::Io("cannot create a temporary directory".into(), e))?;
        let pki = Pki::generate()?;
        let file = |name: &str, contents: &str| -> Result<String, Error> {
            let path = dir.path().join(name);
            std::fs::write(&path, contents)
                .map_err(|e| Error::Io(format!("cannot write {}", path.display()), e))?;
            Ok(path.display().to_string())
        };
        let [etcd_port, peer_port, api_port] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            "--name=testenv".to_owned(),
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testenv={peer_url}"),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let mut etcd = Process::spawn("etcd", &binaries.etcd, &etcd_args, dir.path(), dir.path())?;

        let server_url = format!("https://127.0.0.1:{api_port}");
        let mut api_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // Loopback may not be published as the `kubernetes` Service's endpoint (nor is it needed).
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.path().join("apiserver").display()),
            format!(
                "--tls-cert-file={}",
                file("serving.crt", &pki.serving_cert_pem)?
            ),
            format!(
                "--tls-private-key-file={}",
                file("serving.key", &pki.serving_key_pem)?
            ),
            format!(
                "--client-ca-file={}",
                file("client-ca.crt", &pki.client_ca_pem)?
            ),
            format!("--service-account-issuer={server_url}"),
            format!("--api-audiences={server_url}"),
            format!(
                "--service-account-key-file={}",
                file("sa.pub", &pki.sa_public_key_pem)?
            ),
            format!(
                "--service-account-signing-key-file={}",
                file("sa.key", &pki.sa_signing_key_pem)?
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--allow-privileged=true".to_owned(),
            // No controller-manager creates `default` ServiceAccounts, so this plugin would block pods.
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--profiling=false".to_owned(),
        ];
        if options.audit_log {
            api_args.extend(audit::flags(dir.path())?);
        }
        wait_for_port(&mut etcd, etcd_port).await?;
        let mut apiserver = spawn_apiserver(&binaries.kube_apiserver, &api_args, dir.path())?;

        let kubeconfig = kubeconfig::admin(&server_url, &pki);
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
                .await?;
        wait_ready(&config, &mut [&mut apiserver, &mut etcd]).await?;
        Ok(Self {
            apiserver: std::sync::Mutex::new(Some(apiserver)),
            etcd,
            apiserver_binary: binaries.kube_apiserver.clone(),
            apiserver_args: api_args,
            dir,
            server_url,
            pki,
            kubeconfig,
            config,
            startup: Duration::ZERO,
        })
    }

    /// Returns a client acting as the admin (group `system:masters`). Call inside a Tokio runtime:
    /// a client belongs to the runtime it was made in, so make one per test rather than sharing it.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config.clone())
            .expect("the admin client configuration was validated at start")
    }

    /// Returns a copy of the admin client configuration.
    pub fn admin_config(&self) -> kube::Config {
        self.config.clone()
    }

    /// Returns the API server's URL, e.g. `https://127.0.0.1:40123`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Returns the PEM of the CA that signed the API server's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.server_ca_pem
    }

    /// Returns the service-account token issuer (`iss` of every token): the server's own URL.
    pub fn issuer(&self) -> &str {
        &self.server_url
    }

    /// Returns how long [`ControlPlane::start`] took, binaries located, CRDs Established.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Returns the directory holding etcd's data, certificates and the processes' logs.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the path of the API server's audit log (JSON lines, one event per completed
    /// request and one per started long-running response), if [`Options::audit_log`] is on.
    pub fn audit_log_path(&self) -> Option<PathBuf> {
        self.apiserver_args
            .iter()
            .any(|a| a.starts_with("--audit-log-path="))
            .then(|| self.dir.path().join(audit::LOG_FILE))
    }

    /// Returns the process id of the running kube-apiserver (not of a shell that started it),
    /// for sampling its CPU time from /proc; `None` while it is stopped.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver
            .lock()
            .expect("apiserver lock")
            .as_ref()
            .map(Process::binary_pid)
    }

    /// Returns the admin kubeconfig as YAML (certificates inline).
    pub fn kubeconfig_yaml(&self) -> String {
        serde_saphyr::to_string(&self.kubeconfig).expect("a kubeconfig always serializes")
    }

    /// Writes the admin kubeconfig to `path`, for kubectl, helm or a controller run by hand.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Returns the last lines of the API server's and etcd's logs, for diagnosing a failing test.
    pub fn log_tails(&self) -> String {
        let apiserver = self
            .apiserver
            .lock()
            .expect("apiserver lock")
            .as_ref()
            .map(Process::log_tail)
            .unwrap_or_else(|| "(stopped)".into());
        format!(
            "kube-apiserver:\n{apiserver}\netcd:\n{}",
            self.etcd.log_tail()
        )
    }
}

/// Returns where binaries are looked for; see [`process::tools_dir`].
pub fn tools_dir() -> PathBuf {
    process::tools_dir()
}
