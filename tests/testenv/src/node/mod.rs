//! A real single-node Kubernetes cluster for end-to-end tests: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kubelet, containerd + runc and a bridge CNI network,
//! running in private PID, mount and network namespaces (see `docs/real-node.md`).
//!
//! [`Node::shared`] starts one node per test binary; [`Node::start`] a private one. The harness
//! reaches the API server through a socket file bridged by `socat` (the test process stays in
//! the host's network namespace, where the node's addresses do not exist), and
//! [`Node::expose`] makes a loopback port of the test process (a fake Azure server) reachable
//! from pods at [`NODE_IP`]. Nothing outlives the test process: see [`process`].

pub mod config;
pub mod pki;
pub mod process;

mod host;
mod images;
mod inside;

use host::{check_root, cleanup_command, free_port, init_pid, prerequisites};
use images::default_images;
pub use images::{BUSYBOX_IMAGE, OPERATOR_IMAGE, images_dir};
pub use inside::{Exposure, PodMemory};

pub use config::{KUBELET_SYNC_FREQUENCY_SECS, NODE_IP, NODE_NAME, SERVICE_IP};
use k8s_openapi::api::core::v1::{Node as KubeNode, ServiceAccount};
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use pki::NodePki;
use process::Watched;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long the node may take from start to Ready (first start imports images and starts
/// containerd; later ones take 10-20 s).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Why a node could not start or be used.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// A running single-node cluster; stopped, with everything it made, when dropped.
pub struct Node {
    // Drop order: the bridge, then the node (its watchdog removes the cgroups and `dir`).
    _bridge: Watched,
    node: Watched,
    init_pid: u32,
    dir: PathBuf,
    cgroup_root: String,
    pki: NodePki,
    kubeconfig: String,
    config: kube::Config,
    startup: Duration,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.dir)
            .field("init_pid", &self.init_pid)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

static SHARED: OnceCell<Result<Node, String>> = OnceCell::const_new();

impl Node {
    /// Returns the node shared by all tests of this test binary, starting it on first use with
    /// the images of [`images_dir`]. Panics with the reason if it cannot start; every later
    /// caller gets the same panic without retrying.
    pub async fn shared() -> &'static Node {
        let started = SHARED
            .get_or_init(|| async {
                let images = match default_images() {
                    Ok(images) => images,
                    Err(e) => return Err(e.to_string()),
                };
                let result = Node::start(&images).await.map_err(|e| e.to_string());
                if let Ok(node) = &result {
                    eprintln!(
                        "testenv: real node Ready in {:.1?} ({})",
                        node.startup,
                        node.dir.display()
                    );
                }
                result
            })
            .await;
        match started {
            Ok(node) => node,
            Err(e) => panic!("the real node did not start: {e}"),
        }
    }

    /// Starts a private node and imports the given image archives (docker-archive tar files);
    /// returns once the API server is ready, the node is Ready and the `default`
    /// ServiceAccount exists.
    pub async fn start(images: &[PathBuf]) -> Result<Self, Error> {
        let started = Instant::now();
        check_root()?;
        let bin = tokio::task::spawn_blocking(prerequisites)
            .await
            .map_err(|e| err(format!("checking prerequisites panicked: {e}")))??;
        let dir = tempfile::Builder::new()
            .prefix("amlsecrets-node-")
            .tempdir()
            .map_err(|e| err(format!("cannot create a temporary directory: {e}")))?
            .keep();
        let cgroup_root = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "amlsecrets-node".into());
        let pki = NodePki::generate(NODE_NAME, IpAddr::V4(NODE_IP), IpAddr::V4(SERVICE_IP))
            .map_err(|e| err(format!("generating the node's certificates failed: {e}")))?;
        let io = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| err(format!("{what}: {e}"))
        };
        config::write_all(&dir, &pki, &cgroup_root).map_err(io("writing the node's files"))?;
        let script = dir.join("node.sh");
        std::fs::write(&script, include_str!("node.sh")).map_err(io("writing node.sh"))?;
        std::fs::write(dir.join("ca.key"), &pki.ca.key).map_err(io("writing ca.key"))?;

        let mut args: Vec<String> = [
            "--pid",
            "--mount",
            "--net",
            "--fork",
            "--kill-child=SIGKILL",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            "bash",
        ]
        .map(String::from)
        .to_vec();
        args.push(script.display().to_string());
        args.push(dir.display().to_string());
        args.push(bin.display().to_string());
        args.extend(images.iter().map(|i| i.display().to_string()));
        let node = Watched::spawn(
            "node",
            "unshare",
            &args,
            &dir.join("node.log"),
            &cleanup_command(&dir, &cgroup_root),
        )
        .map_err(io("cannot start unshare"))?;

        let port = free_port()?;
        let bridge = Watched::spawn(
            "apiserver-bridge",
            "socat",
            &[
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                format!("UNIX-CONNECT:{}", dir.join("apiserver.sock").display()),
            ],
            &dir.join("apiserver-bridge.log"),
            "",
        )
        .map_err(io("cannot start socat"))?;
        let kubeconfig = config::kubeconfig(
            &format!("https://127.0.0.1:{port}"),
            &pki.ca.cert,
            &pki.admin,
        );
        let parsed = Kubeconfig::from_yaml(&kubeconfig)
            .map_err(|e| err(format!("the admin kubeconfig does not parse: {e}")))?;
        let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
            .await
            .map_err(|e| err(format!("the admin kubeconfig is not usable: {e}")))?;
        let mut this = Self {
            _bridge: bridge,
            node,
            init_pid: 0,
            dir,
            cgroup_root,
            pki,
            kubeconfig,
            config,
            startup: Duration::ZERO,
        };
        this.wait_started(started).await?;
        this.startup = started.elapsed();
        Ok(this)
    }

    async fn wait_started(&mut self, started: Instant) -> Result<(), Error> {
        let deadline = started + START_TIMEOUT;
        let mut step = "the node's components to start";
        let mut probe = self.config.clone();
        probe.read_timeout = Some(Duration::from_secs(5));
        let client =
            kube::Client::try_from(probe).map_err(|e| err(format!("cannot make a client: {e}")))?;
        let nodes: Api<KubeNode> = Api::all(client.clone());
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        loop {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(err(format!(
                    "timed out after {START_TIMEOUT:?} waiting for {step}\n{}",
                    self.log_tails()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !self.dir.join("started").exists() {
                continue;
            }
            if self.init_pid == 0 {
                self.init_pid = init_pid(self.node.pid())?;
            }
            step = "kube-apiserver /readyz";
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a static request is valid");
            if !client
                .request_text(request)
                .await
                .is_ok_and(|b| b.trim() == "ok")
            {
                continue;
            }
            step = "the node to be Ready";
            let ready = nodes
                .get_opt(NODE_NAME)
                .await
                .ok()
                .flatten()
                .is_some_and(|n| {
                    n.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
            if !ready {
                continue;
            }
            step = "the default ServiceAccount (controller-manager)";
            if accounts.get_opt("default").await.ok().flatten().is_some() {
                return Ok(());
            }
        }
    }

    /// Fails with the node's log tails if the node (its PID 1) has ended.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.node.exited() {
            None => Ok(()),
            Some(status) => Err(err(format!(
                "the node exited ({status})\n{}",
                self.log_tails()
            ))),
        }
    }

    /// Returns a client acting as the admin (`system:masters`). Make one per Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config.clone())
            .expect("the admin client configuration was validated at start")
    }

    /// Returns a copy of the admin client configuration.
    pub fn admin_config(&self) -> kube::Config {
        self.config.clone()
    }

    /// Returns the admin kubeconfig (for kubectl and helm on this host) as YAML.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    /// Writes the admin kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.kubeconfig)
    }

    /// Returns the PEM of the cluster CA (what signed the API server's certificate).
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca.cert
    }

    /// Returns the service-account token issuer (`iss` of every token).
    pub fn issuer(&self) -> String {
        config::issuer()
    }

    /// Returns how long [`Node::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Returns the node's directory (configuration, `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the cgroup (below each hierarchy's root) holding every pod.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// Returns the host PID of the node's PID 1 (to enter its namespaces with `nsenter -t`).
    pub fn init_pid(&self) -> u32 {
        self.init_pid
    }

    /// Returns the last lines of every component's log.
    pub fn log_tails(&self) -> String {
        let mut out = format!(
            "node.sh:\n{}\n",
            process::tail(&self.dir.join("node.log"), 20)
        );
        let logs = self.dir.join("logs");
        for name in [
            "kubelet",
            "containerd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ] {
            let path = logs.join(format!("{name}.log"));
            if path.exists() {
                out.push_str(&format!("{name}:\n{}\n", process::tail(&path, 12)));
            }
        }
        out
    }
}
