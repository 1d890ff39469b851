//! Reaching into the running node: importing images, running commands in its namespaces,
//! exposing a loopback port of the test process to pods, and reading a pod's memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Watched;
use super::{Error, NODE_IP, Node, err};

impl Node {
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
