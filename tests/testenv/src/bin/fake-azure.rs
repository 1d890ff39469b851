//! Runs the fake Azure by hand: `cargo run -p testenv --bin fake-azure [DIR]`.
//!
//! Starts fake Entra ID, ARM and Key Vault over https with a throw-away CA, registers a service
//! principal, seeds the vault with `db-username` and `db-password`, writes the CA certificate to
//! `DIR/ca.crt` (default: a temporary directory), prints the custom-cloud endpoints as
//! `export FAKE_AZURE_…=…` lines on stdout (the last one is `FAKE_AZURE_READY=1`) and runs until
//! Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};
use tokio::signal::unix::{SignalKind, signal};

/// The service principal's application id.
const CLIENT_ID: &str = "5a1e7c2d-0000-4000-8000-00000000c11e";
/// Its object id.
const OBJECT_ID: &str = "5a1e7c2d-0000-4000-8000-0000000000b1";
/// Its client secret (a fake: it only opens the fake token endpoint).
const CLIENT_SECRET: &str = "try-out-client-secret";

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let arg = std::env::args_os().nth(1).map(PathBuf::from);
    if arg
        .as_ref()
        .is_some_and(|d| d.to_string_lossy().starts_with('-'))
    {
        eprintln!("usage: fake-azure [DIR]   (writes DIR/ca.crt; runs until Ctrl-C or SIGTERM)");
        return ExitCode::from(2);
    }
    let temp = match arg {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let dir = arg.unwrap_or_else(|| {
        temp.as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default()
    });
    let fakes = AzureFakes::start().await;
    fakes
        .entra
        .add_secret(TENANT, CLIENT_ID, OBJECT_ID, CLIENT_SECRET);
    fakes
        .vault
        .put_secret("db-username", "ml-reader", true, None);
    fakes
        .vault
        .put_secret("db-password", "correct-horse-battery-staple", true, None);
    let ca = std::path::absolute(dir.join("ca.crt")).unwrap_or_else(|_| dir.join("ca.crt"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&ca, fakes.ca.pem()))
    {
        eprintln!("error: cannot write {}: {e}", ca.display());
        return ExitCode::FAILURE;
    }
    eprintln!("fake Azure ready (vault secrets: db-username, db-password)");
    for (k, v) in [
        ("CA_FILE", ca.display().to_string()),
        ("TENANT", TENANT.to_string()),
        ("CLIENT_ID", CLIENT_ID.to_string()),
        ("CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("AUTHORITY_HOST", fakes.entra.authority_host.clone()),
        ("ARM_ENDPOINT", fakes.arm.endpoint.clone()),
        ("KEYVAULT_AUDIENCE", VAULT_AUDIENCE.to_string()),
        ("VAULT_URI", fakes.vault.uri.clone()),
        ("READY", "1".to_string()),
    ] {
        println!("export FAKE_AZURE_{k}={v}");
    }
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
    drop(fakes);
    eprintln!("fake Azure stopped");
    ExitCode::SUCCESS
}
