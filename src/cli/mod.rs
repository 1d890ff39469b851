//! The laptop side of amlsecrets: `check`, `vault`, `connections`, `login` and `logout`, run with
//! your own identity (the Azure CLI's account, an interactive sign-in, or a service principal or
//! managed identity from the environment) or with an `AzureMLWorkspace`'s own auth.
//!
//! Exit codes: 0 success; 1 something would not sync or an Azure call failed; 2 wrong usage.

pub mod args;
pub mod check;
pub mod connections;
pub mod dotenv;
pub mod identity;
pub mod render;
pub mod report;
pub mod target;
pub mod vault;

use std::process::ExitCode;

use args::{CheckArgs, ConnectionsCommand, LocalArgs, VaultCommand, WorkspaceArgs};

/// A laptop command, parsed.
pub enum Command {
    /// `check`.
    Check(LocalArgs, WorkspaceArgs, CheckArgs),
    /// `vault …`.
    Vault(LocalArgs, WorkspaceArgs, VaultCommand),
    /// `connections …`.
    Connections(LocalArgs, WorkspaceArgs, ConnectionsCommand),
    /// `login`.
    Login(LocalArgs, WorkspaceArgs),
    /// `logout`.
    Logout,
}

/// The exit code of a failed Azure call or of a check that found something that would not sync.
pub const EXIT_FAILED: u8 = 1;
/// The exit code of wrong usage (also clap's).
pub const EXIT_USAGE: u8 = 2;

/// Logs go to stderr at `warn` unless `RUST_LOG` says otherwise; never a token or value.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn fail(f: vault::Failure) -> ExitCode {
    eprintln!("error: {}", f.message);
    if let Some(h) = f.hint {
        eprintln!("to fix: {h}");
    }
    ExitCode::from(if f.usage { EXIT_USAGE } else { EXIT_FAILED })
}

/// Runs a laptop command to its exit code.
pub fn main(command: Command) -> ExitCode {
    init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        match command {
            Command::Check(local, ws, args) => match check::run(&local, &ws, &args).await {
                Ok(report) => {
                    report::print(local.output, &report);
                    if report.ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_FAILED)
                    }
                }
                Err(u) => {
                    eprintln!("error: {u}");
                    ExitCode::from(EXIT_USAGE)
                }
            },
            Command::Vault(local, ws, cmd) => match vault::run(&local, &ws, &cmd).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => fail(f),
            },
            Command::Connections(local, ws, cmd) => {
                match connections::run(&local, &ws, &cmd).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(f) => fail(f),
                }
            }
            Command::Login(local, ws) => login(local, ws).await,
            Command::Logout => logout(),
        }
    })
}

/// Signs in interactively and keeps the sign-in in the login cache file.
async fn login(mut local: LocalArgs, ws: WorkspaceArgs) -> ExitCode {
    local.auth = args::AuthMethod::Interactive;
    local.cache_login = true;
    let cloud = match ws.cloud.is_some() || ws.authority_host.is_some() {
        true => match target::resolve(&WorkspaceArgs {
            subscription: Some("-".into()),
            resource_group: Some("-".into()),
            workspace: Some("-".into()),
            ..ws
        })
        .await
        {
            Ok(t) => t.cloud,
            Err(u) => {
                eprintln!("error: {u}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        false => crate::azure::CloudEndpoints::public(),
    };
    let result = async {
        let http = target::http(&local)?;
        let cred = identity::local_credential(&local, &cloud, &http)?;
        cred.token(&cloud.arm_scope())
            .await
            .map_err(vault::Failure::from)?;
        Ok::<_, vault::Failure>(cred.identity())
    }
    .await;
    match result {
        Ok(who) => {
            let path = crate::azure::credential::login_cache::login_cache_path();
            println!(
                "signed in as {who}; the sign-in is kept in {} until `amlsecrets logout`",
                path.map(|p| p.display().to_string()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(f) => fail(f),
    }
}

/// Removes the login cache file.
fn logout() -> ExitCode {
    let Some(path) = crate::azure::credential::login_cache::login_cache_path() else {
        eprintln!("error: no cache directory (set HOME or XDG_CACHE_HOME)");
        return ExitCode::from(EXIT_USAGE);
    };
    match crate::azure::credential::login_cache::logout(&path) {
        Ok(true) => {
            println!("signed out: removed {}", path.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("not signed in: {} does not exist", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot remove {}: {e}", path.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}
