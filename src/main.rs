//! The `amlsecrets` command line: `run` the operator, print `crds`, and the laptop commands
//! (`check`, `vault`, `connections`, `login`, `logout`).

use std::path::PathBuf;
use std::process::ExitCode;

use amlsecrets::cli::args::{
    CheckArgs, ConnectionsCommand, LocalArgs, VaultCommand, WorkspaceArgs,
};
use amlsecrets::config::RunArgs;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amlsecrets",
    version,
    about = "Syncs Azure ML workspace secrets into Kubernetes Secrets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the current kubeconfig (or in-cluster config).
    Run(Box<RunArgs>),
    /// Print both CustomResourceDefinitions as YAML (or write them into a directory).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check from your computer what the operator would do for a workspace or WorkspaceSecret:
    /// identity, workspace, vault, each item and connection, with the role to grant for each failure.
    Check {
        #[command(flatten)]
        check: CheckArgs,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        workspace: WorkspaceArgs,
    },
    /// Work with the workspace's default Key Vault: list, get, set, delete secrets.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        workspace: WorkspaceArgs,
    },
    /// List or show the workspace's connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        workspace: WorkspaceArgs,
    },
    /// Sign in interactively (a code to enter in a browser) and keep the sign-in for later
    /// commands (`--auth interactive`) in a file only you can read.
    Login {
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        workspace: WorkspaceArgs,
    },
    /// Remove the sign-in kept by `login` (or `--cache-login`).
    Logout,
}

fn main() -> ExitCode {
    use amlsecrets::cli::{Command as Local, main as local};
    match Cli::parse().command {
        Command::Check {
            check,
            local: l,
            workspace,
        } => return local(Local::Check(l, workspace, check)),
        Command::Vault {
            command,
            local: l,
            workspace,
        } => return local(Local::Vault(l, workspace, command)),
        Command::Connections {
            command,
            local: l,
            workspace,
        } => return local(Local::Connections(l, workspace, command)),
        Command::Login {
            local: l,
            workspace,
        } => return local(Local::Login(l, workspace)),
        Command::Logout => return local(Local::Logout),
        Command::Crds { dir: Some(dir) } => {
            if let Err(e) = amlsecrets::crds::write_all(&dir) {
                eprintln!("error: cannot write CRDs into {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        Command::Crds { dir: None } => {
            for crd in amlsecrets::crds::all() {
                print!("{}", amlsecrets::crds::to_yaml(&crd));
            }
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            if let Err(e) = runtime.block_on(run(*args)) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

async fn run(args: RunArgs) -> Result<(), String> {
    amlsecrets::telemetry::init(args.log_format, &args.log_level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await.map_err(|e| {
        let mut message =
            format!("cannot reach the Kubernetes API (kubeconfig or in-cluster config): {e}");
        if no_cluster_configuration() {
            message.push_str(
                "\nNo cluster configured (no KUBECONFIG, no ~/.kube/config, not in a pod). To see the \
                 operator work without a cluster or an Azure subscription, run scripts/try-out.sh \
                 from the repository (README: \"Try it locally\").",
            );
        }
        message
    })?;
    let http_config = args.http_config()?;
    amlsecrets::operator::run(client, args, http_config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Tells whether nothing points at a cluster: no `KUBECONFIG`, no `~/.kube/config`, not in a pod.
fn no_cluster_configuration() -> bool {
    let kubeconfig = std::env::var_os("KUBECONFIG").is_some_and(|k| !k.is_empty());
    let default_file = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kube/config").exists())
        .unwrap_or(false);
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    !kubeconfig && !default_file && !in_cluster
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
