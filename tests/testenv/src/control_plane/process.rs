//! Finds the pinned etcd and kube-apiserver binaries and runs them under a watchdog.
//!
//! Each binary is started as `sh -c WATCHDOG … binary args` with a pipe as the shell's
//! stdin whose write end only the test process holds. The shell forks a watcher that
//! blocks reading that pipe, then `exec`s the binary, so the child we hold *is* the binary.
//! The pipe reaches end-of-file when the test process is gone for any reason (normal exit
//! of a test binary whose shared control plane lives in a static, panic, abort, timeout
//! kill) or when the [`Process`] handle is dropped; the watcher then kills the binary with
//! SIGKILL and removes the data directory. No polling, no `unsafe`, no `pre_exec`.

use super::Error;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// The script the harness runs when a binary is missing; it builds and caches them.
const BUILD_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/build-control-plane.sh"
);

/// Watchdog: `$1` directory to remove once the binary is killed, the rest: the command.
const WATCHDOG: &str = r#"dir=$1; shift
me=$$
exec 3<&0
( read -r _ <&3; kill -KILL "$me"; rm -rf "$dir" ) </dev/null >/dev/null 2>&1 &
exec "$@" 3<&- </dev/null"#;

/// Paths of the binaries a control plane runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The etcd server.
    pub etcd: PathBuf,
    /// The Kubernetes API server.
    pub kube_apiserver: PathBuf,
}

/// Returns the tools directory: `$AMLSECRETS_TOOLS_DIR`, else `$XDG_CACHE_HOME/amlsecrets/tools`,
/// else `~/.cache/amlsecrets/tools` (the same rule as `scripts/build-control-plane.sh`).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AMLSECRETS_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("amlsecrets").join("tools")
}

/// Locates etcd and kube-apiserver in `<tools dir>/bin`, building them with the build
/// script when missing (slow the first time, cached afterwards). Blocks; fails with a
/// message naming what is missing and how to provide it.
pub fn locate() -> Result<Binaries, Error> {
    let bin = tools_dir().join("bin");
    let found = |dir: &Path| Binaries {
        etcd: dir.join("etcd"),
        kube_apiserver: dir.join("kube-apiserver"),
    };
    let missing = |b: &Binaries| -> Vec<PathBuf> {
        [&b.etcd, &b.kube_apiserver]
            .into_iter()
            .filter(|p| !p.is_file())
            .cloned()
            .collect()
    };
    let binaries = found(&bin);
    if missing(&binaries).is_empty() {
        return Ok(binaries);
    }
    eprintln!(
        "testenv: etcd/kube-apiserver not in {}; building them with {BUILD_SCRIPT}",
        bin.display()
    );
    let output = Command::new("bash")
        .arg(BUILD_SCRIPT)
        .args(["etcd", "kube-apiserver"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let built = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(PathBuf::from),
        Ok(out) => {
            return Err(missing_error(
                &missing(&binaries),
                &format!("the build script failed ({})", out.status),
            ));
        }
        Err(e) => {
            return Err(missing_error(
                &missing(&binaries),
                &format!("the build script could not run: {e}"),
            ));
        }
    };
    let binaries = found(&built.unwrap_or(bin));
    match missing(&binaries).as_slice() {
        [] => Ok(binaries),
        still => Err(missing_error(
            still,
            "the build script did not produce them",
        )),
    }
}

fn missing_error(missing: &[PathBuf], why: &str) -> Error {
    let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
    Error::MissingBinaries(format!(
        "missing {}: {why}. Run `scripts/build-control-plane.sh etcd kube-apiserver` (needs Go), \
         or point AMLSECRETS_TOOLS_DIR at a directory whose bin/ holds etcd and kube-apiserver",
        list.join(", ")
    ))
}

/// A running binary of the control plane, killed when dropped.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    binary: PathBuf,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` under the watchdog, logging to `<log_dir>/<name>.log`;
    /// the watchdog removes `cleanup_dir` after killing the binary.
    pub fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log_dir: &Path,
        cleanup_dir: &Path,
    ) -> Result<Self, Error> {
        let log = log_dir.join(format!("{name}.log"));
        let io = |e| Error::Io(format!("cannot start {name} ({})", binary.display()), e);
        let out = File::create(&log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("testenv-watchdog")
            .arg(cleanup_dir)
            .arg(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io)?;
        Ok(Self {
            name,
            binary: binary.to_owned(),
            child,
            log,
        })
    }

    /// Returns the process id of the binary itself. The shell we start `exec`s it, so that is
    /// normally our child's id; should a shell stay in between, its descendants are searched
    /// (through /proc) for the one running the binary.
    pub fn binary_pid(&self) -> u32 {
        // The binary may be a symlink (to a versioned file); /proc names the file itself.
        let binary = std::fs::canonicalize(&self.binary).unwrap_or_else(|_| self.binary.clone());
        let runs_binary = |pid: u32| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary)
        };
        let mut queue = vec![self.child.id()];
        while let Some(pid) = queue.pop() {
            if runs_binary(pid) {
                return pid;
            }
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            queue.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        self.child.id()
    }

    /// Returns the exit status if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails with the log tail if the process has ended.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(Error::Exited {
                name: self.name,
                status: status.to_string(),
                log: self.log_tail(),
            }),
        }
    }

    /// Returns the last lines of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        const TAIL: u64 = 4000;
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Process {
    /// Closes the watchdog's pipe so the watchdog kills the binary, and reaps it; kills it
    /// directly only if the watchdog did not within five seconds.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
