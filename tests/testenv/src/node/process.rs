//! Processes of a real node under a watchdog, like the control plane's (`control_plane::process`):
//! each runs as `sh -c WATCHDOG … program args` with a pipe as stdin whose write end only the
//! test process holds. When the pipe reaches end-of-file (the handle is dropped, or the test
//! process is gone for any reason: exit, panic, abort, SIGKILL) the watcher kills the program
//! with SIGKILL and then runs a clean-up command. The watcher ignores SIGHUP, SIGINT and SIGTERM,
//! so signals sent to the whole process group (`timeout`, Ctrl-C) cannot stop the clean-up.
//!
//! The node itself is `unshare --pid --kill-child=SIGKILL …`: killing `unshare` kills the
//! namespace's PID 1, and the kernel then kills every process of the PID namespace (components,
//! shims, containers); the mount and network namespaces die with their last process. Only the
//! pods' cgroups live outside (cgroup v1 is not namespaced): the clean-up removes them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// Watchdog: `$1` a shell command run after the program is killed, the rest: the program.
const WATCHDOG: &str = r#"cleanup=$1; shift
me=$$
exec 3<&0
( trap '' HUP INT TERM; read -r _ <&3; kill -KILL "$me"; sh -c "$cleanup" ) </dev/null >/dev/null 2>&1 &
exec "$@" 3<&- </dev/null"#;

/// A program running under the watchdog, killed (and cleaned up after) when dropped.
#[derive(Debug)]
pub struct Watched {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Watched {
    /// Starts `program args` logging to `log`; `cleanup` is a shell command the watchdog runs
    /// after killing it (empty: nothing).
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        log: &Path,
        cleanup: &str,
    ) -> std::io::Result<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("real-node-watchdog")
            .arg(cleanup)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Returns the process id of the program (the watchdog's shell `exec`s it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the exit status if the program has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Returns the program's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the last lines of the program's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }
}

impl Drop for Watched {
    /// Closes the watchdog's pipe and reaps the program; kills it directly only if the watchdog
    /// did not within five seconds.
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

/// Returns the last `lines` lines of a log file (at most 8 KB).
pub fn tail(path: &Path, lines: usize) -> String {
    const TAIL: u64 = 8000;
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
