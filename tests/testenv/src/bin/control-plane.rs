//! Runs the test control plane by hand: `cargo run -p testenv --bin control-plane [DIR]`.
//!
//! Starts etcd + kube-apiserver with our CRDs installed, writes an admin kubeconfig to
//! `DIR/kubeconfig` (default: inside the control plane's temporary directory), prints
//! `export KUBECONFIG=<path>` as its last line and runs until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use testenv::control_plane::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map(PathBuf::from);
    if dir
        .as_ref()
        .is_some_and(|d| d.to_string_lossy().starts_with('-'))
    {
        eprintln!(
            "usage: control-plane [DIR]   (writes DIR/kubeconfig; runs until Ctrl-C or SIGTERM)"
        );
        return ExitCode::from(2);
    }
    let cp = match ControlPlane::start().await {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: the control plane did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = dir.unwrap_or_else(|| cp.data_dir().to_path_buf());
    let path =
        std::path::absolute(dir.join("kubeconfig")).unwrap_or_else(|_| dir.join("kubeconfig"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| cp.write_kubeconfig(&path)) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("control plane ready in {:.1?}", cp.startup_time());
    eprintln!("  API server:  {}", cp.server_url());
    eprintln!("  SA issuer:   {} (JWKS at /openid/v1/jwks)", cp.issuer());
    eprintln!("  data + logs: {}", cp.data_dir().display());
    eprintln!("Ctrl-C or SIGTERM stops it and removes the data.");
    println!("export KUBECONFIG={}", path.display());

    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("error: cannot listen for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(cp);
    eprintln!("control plane stopped");
    ExitCode::SUCCESS
}
