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

pub use config::{KUBELET_SYNC_FREQUENCY_SECS, NODE_IP, NODE_NAME, SERVICE_IP};
use k8s_openapi::api::core::v1::{Node as KubeNode, ServiceAccount};
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use pki::NodePki;
use process::Watched;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long the node may take from start to Ready (first start imports images and starts
/// containerd; later ones take 10-20 s).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// The binaries a node runs, from the tools directory.
const BINARIES: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
];
/// Host commands a node needs, and the Debian package that brings each.
const COMMANDS: [(&str, &str); 8] = [
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("ip", "iproute2"),
    ("containerd", "containerd"),
    ("runc", "runc"),
    ("ctr", "containerd"),
    ("socat", "socat"),
];
/// The repository's scripts.
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");

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

    /// Imports a docker-archive image into the node's containerd (namespace `k8s.io`).
    pub fn import_image(&self, archive: &Path) -> Result<(), Error> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["-n", "k8s.io", "images", "import"])
            .arg(archive)
            .output()
            .map_err(|e| err(format!("cannot run ctr: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "ctr images import {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Runs `command` inside the node's network, mount and PID namespaces and returns its stdout.
    pub fn run_inside(&self, command: &[&str]) -> Result<String, Error> {
        let out = Command::new("nsenter")
            .arg("-t")
            .arg(self.init_pid.to_string())
            .args(["-n", "-m", "-p", "--"])
            .args(command)
            .output()
            .map_err(|e| err(format!("cannot run nsenter: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err(format!(
                "{command:?} in the node failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Makes `127.0.0.1:port` of the test process reachable from pods at `NODE_IP:port` until
    /// the returned handle is dropped (a `socat` pair joined by a socket file).
    pub async fn expose(&self, port: u16) -> Result<Exposure, Error> {
        let sock = self.dir.join(format!("expose-{port}.sock"));
        let logs = self.dir.join("logs");
        let outside = Watched::spawn(
            "expose-outside",
            "socat",
            &[
                format!("UNIX-LISTEN:{},fork,unlink-early", sock.display()),
                format!("TCP:127.0.0.1:{port}"),
            ],
            &logs.join(format!("expose-{port}-outside.log")),
            &format!("rm -f '{}'", sock.display()),
        )
        .map_err(|e| err(format!("cannot start socat: {e}")))?;
        // Inside: in the node's PID namespace too, so it ends with the node at the latest.
        let inside = Watched::spawn(
            "expose-inside",
            "nsenter",
            &[
                "-t".into(),
                self.init_pid.to_string(),
                "-n".into(),
                "-p".into(),
                "--".into(),
                "setpriv".into(),
                "--pdeathsig".into(),
                "KILL".into(),
                "socat".into(),
                format!("TCP-LISTEN:{port},bind={NODE_IP},reuseaddr,fork"),
                format!("UNIX-CONNECT:{}", sock.display()),
            ],
            &logs.join(format!("expose-{port}-inside.log")),
            "",
        )
        .map_err(|e| err(format!("cannot start nsenter: {e}")))?;
        let mut exposure = Exposure {
            port,
            _inside: inside,
            _outside: outside,
        };
        let hex = format!(":{port:04X} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening = self
                .run_inside(&["cat", "/proc/net/tcp"])
                .is_ok_and(|t| t.lines().any(|l| l.contains(&hex) && l.contains(" 0A ")));
            if listening && sock.exists() {
                return Ok(exposure);
            }
            if let Some(status) = exposure._inside.exited() {
                return Err(err(format!(
                    "socat inside the node exited ({status}): {}",
                    exposure._inside.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(err(format!("port {port} was not exposed in 10 s")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Returns the memory figures of a pod's cgroup (cgroup v1), by pod UID.
    pub fn pod_memory(&self, pod_uid: &str) -> Option<PodMemory> {
        let root = Path::new("/sys/fs/cgroup/memory")
            .join(&self.cgroup_root)
            .join("kubepods");
        let name = format!("pod{pod_uid}");
        let dir = [
            root.join(&name),
            root.join("burstable").join(&name),
            root.join("besteffort").join(&name),
        ]
        .into_iter()
        .find(|d| d.is_dir())?;
        let read = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
        let inactive_file = stat
            .lines()
            .find_map(|l| l.strip_prefix("total_inactive_file "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let usage = read("memory.usage_in_bytes")?;
        Some(PodMemory {
            usage,
            max_usage: read("memory.max_usage_in_bytes")?,
            working_set: usage.saturating_sub(inactive_file),
            limit: read("memory.limit_in_bytes")?,
        })
    }
}

/// A pod's memory from its cgroup, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct PodMemory {
    /// Current usage, page cache included.
    pub usage: u64,
    /// The highest usage since the pod started (page cache included).
    pub max_usage: u64,
    /// Usage minus inactive file pages: what the kubelet calls the working set.
    pub working_set: u64,
    /// The cgroup's limit.
    pub limit: u64,
}

/// A loopback port of the test process reachable from pods at the node's address.
#[derive(Debug)]
pub struct Exposure {
    port: u16,
    _inside: Watched,
    _outside: Watched,
}

impl Exposure {
    /// Returns `NODE_IP:port`, where pods reach it.
    pub fn address(&self) -> String {
        format!("{NODE_IP}:{}", self.port)
    }
}

/// Returns where the image archives live: `$AMLSECRETS_CACHE/images` (default
/// `~/.cache/amlsecrets/images`), written by `scripts/build-image.sh`.
pub fn images_dir() -> PathBuf {
    let cache = std::env::var_os("AMLSECRETS_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                })
                .join("amlsecrets")
        });
    cache.join("images")
}

/// The operator image as the tests reference it (built by `scripts/build-image.sh`).
pub const OPERATOR_IMAGE: &str = "amlsecrets:e2e";
/// The consumer pods' image: busybox on an empty base.
pub const BUSYBOX_IMAGE: &str = "amlsecrets-e2e/busybox:local";

fn default_images() -> Result<Vec<PathBuf>, Error> {
    let dir = images_dir();
    let images: Vec<PathBuf> = ["pause.tar", "busybox.tar", "amlsecrets.tar"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let missing: Vec<String> = images
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(images)
    } else {
        Err(err(format!(
            "missing image archives {}: run scripts/build-image.sh (scripts/test.sh does)",
            missing.join(", ")
        )))
    }
}

fn check_root() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() == Some("0") {
        Ok(())
    } else {
        Err(err(
            "the real node needs root (namespaces, mounts, cgroups); run the tests as root",
        ))
    }
}

/// Finds (building when missing) the node's binaries and checks the host commands; returns
/// the directory holding the binaries.
fn prerequisites() -> Result<PathBuf, Error> {
    let missing_commands = || -> Vec<(&str, &str)> {
        COMMANDS
            .iter()
            .copied()
            .filter(|(c, _)| !command_exists(c))
            .collect()
    };
    if !missing_commands().is_empty() {
        eprintln!("testenv: installing the real node's packages with scripts/real-node-deps.sh");
        let _ = Command::new("bash")
            .arg(format!("{SCRIPTS}/real-node-deps.sh"))
            .status();
    }
    let still = missing_commands();
    if !still.is_empty() {
        let list: Vec<String> = still.iter().map(|(c, p)| format!("{c} ({p})")).collect();
        return Err(err(format!(
            "the real node needs {}: run scripts/real-node-deps.sh as root",
            list.join(", ")
        )));
    }
    let bin = crate::control_plane::tools_dir().join("bin");
    let missing = || BINARIES.iter().filter(|b| !bin.join(b).is_file()).count();
    if missing() > 0 {
        eprintln!("testenv: building the real node's binaries with scripts/build-control-plane.sh");
        let status = Command::new("bash")
            .arg(format!("{SCRIPTS}/build-control-plane.sh"))
            .args(BINARIES)
            .stdout(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) || missing() > 0 {
            return Err(err(format!(
                "missing {} in {}: `scripts/build-control-plane.sh {}` failed (needs Go)",
                BINARIES.join(", "),
                bin.display(),
                BINARIES.join(" ")
            )));
        }
    }
    Ok(bin)
}

fn command_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(name).is_file())
}

/// The watchdog's clean-up: wait for the pods' cgroups to empty (the kernel kills the PID
/// namespace once its PID 1 is gone), remove them, remove the node's directory.
fn cleanup_command(dir: &Path, cgroup_root: &str) -> String {
    format!(
        r#"for _ in $(seq 1 200); do
  left=
  for c in /sys/fs/cgroup/*/{cgroup_root}; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {{}} + 2>/dev/null
    [ -d "$c" ] && left=1
  done
  [ -z "$left" ] && break
  sleep 0.1
done
rm -rf '{dir}'"#,
        dir = dir.display()
    )
}

/// Returns the PID of `unshare`'s child in the new PID namespace (the namespaces' PID 1; the
/// watchdog's watcher is a child of the same process, forked before `exec unshare`).
fn init_pid(unshare: u32) -> Result<u32, Error> {
    let path = format!("/proc/{unshare}/task/{unshare}/children");
    let ours = std::fs::read_link("/proc/self/ns/pid").ok();
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok() != ours)
        })
        .ok_or_else(|| {
            err(format!(
                "cannot find the node's PID 1 among the children in {path}"
            ))
        })
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| err(format!("cannot find a free loopback port: {e}")))
}
