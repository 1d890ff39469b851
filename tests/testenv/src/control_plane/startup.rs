//! Starting the control plane's processes: free ports, kube-apiserver under the watchdog, and
//! waiting until etcd listens and the API server is ready.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use super::process::Process;
use super::{Error, START_TIMEOUT};

/// Starts kube-apiserver under the watchdog. Its watchdog cleans up only the API server's own
/// generated files, so that stopping it leaves etcd's data (and the certificates) in place.
pub(super) fn spawn_apiserver(
    binary: &Path,
    args: &[String],
    dir: &Path,
) -> Result<Process, Error> {
    Process::spawn("kube-apiserver", binary, args, dir, &dir.join("apiserver"))
}

/// Reserves three distinct free loopback ports (released just before use).
pub(super) fn free_ports() -> Result<[u16; 3], Error> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::Io("cannot find a free loopback port".into(), e))
    };
    let listeners = [bind()?, bind()?, bind()?];
    let port = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::Io("local_addr".into(), e))
    };
    Ok([
        port(&listeners[0])?,
        port(&listeners[1])?,
        port(&listeners[2])?,
    ])
}

/// Waits until `process` accepts TCP connections on `port`.
pub(super) async fn wait_for_port(process: &mut Process, port: u16) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        process.check_running()?;
        if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout("etcd", process.log_tail()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/readyz` until the API server answers `ok`, failing early if a process ends; the
/// API server is the first of `processes`.
pub(super) async fn wait_ready(
    config: &kube::Config,
    processes: &mut [&mut Process],
) -> Result<(), Error> {
    let mut probe = config.clone();
    probe.default_retry = false;
    probe.read_timeout = Some(Duration::from_secs(5));
    let client = kube::Client::try_from(probe)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        for p in processes.iter_mut() {
            p.check_running()?;
        }
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a static request is valid");
        if client
            .request_text(request)
            .await
            .is_ok_and(|body| body.trim() == "ok")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout("kube-apiserver", processes[0].log_tail()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
