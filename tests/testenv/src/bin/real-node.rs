//! Runs the real single-node cluster by hand:
//! `cargo run -p testenv --bin real-node -- [DIR] [--fake-azure]` (as root).
//!
//! Starts the node (see `testenv::node`) with the images built by `scripts/build-image.sh`,
//! writes an admin kubeconfig to `DIR/kubeconfig` (default: inside the node's directory), prints
//! `export KUBECONFIG=<path>` and runs until Ctrl-C or SIGTERM, then removes everything.
//! With `--fake-azure` it also starts the fake Entra ID, ARM and Key Vault (a service principal,
//! vault secrets `db-username` and `db-password`), reachable from pods at the node's address,
//! writes their CA to `DIR/fake-azure-ca.crt` and prints `export FAKE_AZURE_…=…` lines; the last
//! line printed is `export REAL_NODE_READY=1`.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use testenv::azure::{AzureFakes, TENANT, TestCa, VAULT_AUDIENCE};
use testenv::node::{NODE_IP, Node, images_dir};
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
    let mut dir = None;
    let mut fake_azure = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--fake-azure" => fake_azure = true,
            a if !a.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => {
                eprintln!(
                    "usage: real-node [DIR] [--fake-azure]   (writes DIR/kubeconfig; runs until Ctrl-C or SIGTERM)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let images: Vec<PathBuf> = ["pause.tar", "busybox.tar", "amlsecrets.tar"]
        .iter()
        .map(|f| images_dir().join(f))
        .filter(|p| p.is_file())
        .collect();
    if images.len() < 3 {
        eprintln!(
            "error: image archives missing in {}: run scripts/build-image.sh first",
            images_dir().display()
        );
        return ExitCode::FAILURE;
    }
    let node = match Node::start(&images).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("error: the real node did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = dir.unwrap_or_else(|| node.dir().to_path_buf());
    let path =
        std::path::absolute(dir.join("kubeconfig")).unwrap_or_else(|_| dir.join("kubeconfig"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| node.write_kubeconfig(&path)) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("real node Ready in {:.1?}", node.startup_time());
    eprintln!("  node address: {NODE_IP} (inside its network namespace)");
    eprintln!("  files + logs: {}", node.dir().display());
    eprintln!("  a shell inside: nsenter -t {} -n -m -p", node.init_pid());
    println!("export KUBECONFIG={}", path.display());
    println!("export REAL_NODE_DIR={}", node.dir().display());
    println!("export REAL_NODE_PID={}", node.init_pid());

    let mut _exposures = Vec::new();
    let mut _fakes = None;
    if fake_azure {
        let fakes =
            AzureFakes::start_with_ca(TestCa::with_extra_names(&[&NODE_IP.to_string()])).await;
        fakes
            .entra
            .add_secret(TENANT, CLIENT_ID, OBJECT_ID, CLIENT_SECRET);
        fakes
            .vault
            .put_secret("db-username", "ml-reader", true, None);
        fakes
            .vault
            .put_secret("db-password", "correct-horse-battery-staple", true, None);
        let mut urls = Vec::new();
        for url in [
            &fakes.entra.authority_host,
            &fakes.arm.endpoint,
            &fakes.vault.uri,
        ] {
            let port: u16 = url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a fake's URL ends with its port");
            match node.expose(port).await {
                Ok(e) => {
                    urls.push(format!("https://{}", e.address()));
                    _exposures.push(e);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // Ids and nextLinks as pods reach the vault (the client refuses links to other hosts).
        fakes.vault.set_public_uri(&urls[2]);
        let ca = dir.join("fake-azure-ca.crt");
        if let Err(e) = std::fs::write(&ca, fakes.ca.pem()) {
            eprintln!("error: cannot write {}: {e}", ca.display());
            return ExitCode::FAILURE;
        }
        for (k, v) in [
            ("CA_FILE", ca.display().to_string()),
            ("TENANT", TENANT.to_string()),
            ("CLIENT_ID", CLIENT_ID.to_string()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("AUTHORITY_HOST", urls[0].clone()),
            ("ARM_ENDPOINT", urls[1].clone()),
            ("KEYVAULT_AUDIENCE", VAULT_AUDIENCE.to_string()),
            ("VAULT_URI", urls[2].clone()),
        ] {
            println!("export FAKE_AZURE_{k}={v}");
        }
        _fakes = Some(fakes);
    }
    println!("export REAL_NODE_READY=1");
    eprintln!("Ctrl-C or SIGTERM stops it and removes everything.");
    if fake_azure {
        // The try-out rotates a value by writing `NAME=VALUE` lines to stdin.
        let fakes = _fakes.as_ref().expect("started above").vault.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if let Some((name, value)) = line.split_once('=') {
                    fakes.put_secret(name.trim(), value.trim(), true, None);
                    eprintln!("fake vault: {} has a new version", name.trim());
                }
            }
        });
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
    drop(_exposures);
    drop(node);
    eprintln!("real node stopped");
    ExitCode::SUCCESS
}
