//! What the node needs from the host, and cleaning up after it: root, the commands it runs,
//! the init process of its namespaces, free ports.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Error, err};

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

pub(super) fn check_root() -> Result<(), Error> {
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
pub(super) fn prerequisites() -> Result<PathBuf, Error> {
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
pub(super) fn cleanup_command(dir: &Path, cgroup_root: &str) -> String {
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
pub(super) fn init_pid(unshare: u32) -> Result<u32, Error> {
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

pub(super) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| err(format!("cannot find a free loopback port: {e}")))
}
