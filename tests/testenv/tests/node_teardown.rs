//! The real node leaves nothing behind: a `real-node` process killed with SIGKILL (no
//! destructor runs) takes every process, mount, interface, cgroup and file of its node with it,
//! and the host's interfaces, mounts and iptables rules are as before.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn mounts() -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        // Fields 5 (mount point) and 9 (source) identify a mount across reads.
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f.get(4).unwrap_or(&""), f.get(9).unwrap_or(&""))
        })
        .collect();
    lines.sort();
    lines
}

fn iptables() -> String {
    ["iptables-save", "ip6tables-save"]
        .iter()
        .map(|t| {
            Command::new(t)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

fn cgroups(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(name))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn a_killed_node_leaves_no_process_mount_interface_cgroup_or_rule_behind() {
    let (ifs, mnts, rules) = (interfaces(), mounts(), iptables());
    let mut child = Command::new(env!("CARGO_BIN_EXE_real-node"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("real-node starts");
    let mut dir = None;
    let mut init = None;
    let mut kubeconfig = None;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(d) = line.strip_prefix("export REAL_NODE_DIR=") {
            dir = Some(PathBuf::from(d));
        }
        if let Some(k) = line.strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(k.to_owned());
        }
        if let Some(p) = line.strip_prefix("export REAL_NODE_PID=") {
            init = p.parse::<u32>().ok();
        }
        if line == "export REAL_NODE_READY=1" {
            break;
        }
    }
    let (Some(dir), Some(init)) = (dir, init) else {
        let status = child.wait();
        panic!("real-node did not report its node as ready ({status:?}); see its output above");
    };
    let cgroup = dir.file_name().unwrap().to_string_lossy().into_owned();
    // A running pod: its containers, shims, mounts and cgroups must go too.
    let kubectl = testenv::control_plane::tools_dir().join("bin/kubectl");
    let kubectl = |args: &[&str]| {
        let out = Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", kubeconfig.as_deref().unwrap_or_default())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    kubectl(&[
        "run",
        "sleeper",
        "--image",
        testenv::node::BUSYBOX_IMAGE,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "/bin/busybox",
        "sleep",
        "3600",
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=90s",
    ]);
    let pods = Path::new("/sys/fs/cgroup/memory")
        .join(&cgroup)
        .join("kubepods");
    assert!(
        pods.is_dir(),
        "the pod's cgroups live under the node's cgroup"
    );
    let needle = dir.display().to_string();
    assert!(
        Path::new(&format!("/proc/{init}")).exists(),
        "the node's PID 1 runs"
    );
    assert!(!cgroups(&cgroup).is_empty(), "the node made its cgroups");
    assert!(
        processes_mentioning(&needle).len() > 3,
        "the node's components run"
    );
    assert_eq!(
        interfaces(),
        ifs,
        "the node's interfaces are not in the host's namespace"
    );

    child.kill().unwrap(); // SIGKILL: no destructor of the harness runs
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_mentioning(&needle);
        let groups = cgroups(&cgroup);
        let gone = !Path::new(&format!("/proc/{init}")).exists()
            && left.is_empty()
            && groups.is_empty()
            && !dir.exists();
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30 s after SIGKILL: processes {left:?}, cgroups {groups:?}, directory exists: {}",
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(interfaces(), ifs, "host interfaces unchanged");
    assert_eq!(mounts(), mnts, "host mounts unchanged");
    assert_eq!(iptables(), rules, "host iptables rules unchanged");
}
