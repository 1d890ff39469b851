//! The flags of the laptop commands (`check`, `vault`, `connections`, `login`, `logout`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::api::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 30s, 10m or 1h"))
}

/// How a laptop command authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// The account of `az login` (`az account get-access-token`).
    AzureCli,
    /// Sign in in a browser with a code (the OAuth 2.0 device-code flow).
    Interactive,
    /// A service principal from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` or
    /// `AZURE_CLIENT_CERTIFICATE_PATH` (with `AZURE_CLIENT_CERTIFICATE_PASSWORD`).
    ServicePrincipal,
    /// The managed identity of the machine (IMDS); `AZURE_CLIENT_ID` picks a user-assigned one.
    ManagedIdentity,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// The cloud of the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CloudName {
    /// Azure public cloud.
    #[value(name = "AzurePublicCloud")]
    AzurePublicCloud,
    /// Azure operated by 21Vianet.
    #[value(name = "AzureChinaCloud")]
    AzureChinaCloud,
    /// Azure US Government.
    #[value(name = "AzureUSGovernmentCloud")]
    AzureUsGovernmentCloud,
    /// The endpoints given by `--authority-host`, `--resource-manager-endpoint`,
    /// `--key-vault-dns-suffix` and `--key-vault-audience`.
    #[value(name = "Custom")]
    Custom,
}

/// Who the command runs as, and how it talks to Azure.
#[derive(Args, Debug, Clone)]
pub struct LocalArgs {
    /// How to authenticate: `azure-cli` (the account of `az login`), `interactive` (a code to
    /// enter in a browser), `service-principal` or `managed-identity` (from the environment).
    #[arg(long, env = "AMLSECRETS_AUTH", value_enum, default_value_t = AuthMethod::AzureCli, global = true)]
    pub auth: AuthMethod,

    /// The Entra ID tenant to sign in to (`az … --tenant`; the interactive sign-in's tenant,
    /// default `organizations`).
    #[arg(long, global = true)]
    pub tenant: Option<String>,

    /// Keep the interactive sign-in's refresh token in a file only you can read (mode 0600, in
    /// the user cache directory) so later commands sign in without a code; `logout` removes it.
    /// Once the file exists, interactive sign-ins keep using it.
    #[arg(long, global = true)]
    pub cache_login: bool,

    /// Output format: `table`, `json` or `yaml`.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,

    /// A PEM bundle of CA certificates trusted for Azure endpoints in addition to the public roots.
    #[arg(long, env = "AMLSECRETS_EXTRA_CA_FILE", global = true)]
    pub extra_ca_file: Option<PathBuf>,

    /// The timeout of one Azure request attempt.
    #[arg(long, env = "AMLSECRETS_AZURE_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub azure_timeout: Duration,

    /// The IMDS endpoint, for `--auth managed-identity`.
    #[arg(long, env = "AMLSECRETS_IMDS_ENDPOINT", default_value = crate::azure::DEFAULT_IMDS_ENDPOINT, global = true)]
    pub imds_endpoint: String,
}

/// Which workspace: flags, a manifest, or an object in the cluster.
#[derive(Args, Debug, Clone, Default)]
pub struct WorkspaceArgs {
    /// The Azure subscription id of the workspace.
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID", global = true)]
    pub subscription: Option<String>,

    /// The resource group of the workspace.
    #[arg(long, short = 'g', global = true)]
    pub resource_group: Option<String>,

    /// The Azure ML workspace name.
    #[arg(long, short = 'w', global = true)]
    pub workspace: Option<String>,

    /// Use this vault URI instead of discovering the workspace's vault (like `spec.keyVault.uri`).
    #[arg(long, global = true)]
    pub vault: Option<String>,

    /// A YAML file with an `AzureMLWorkspace` (and optionally a `WorkspaceSecret`): its workspace,
    /// cloud, vault and auth are used (auth Secrets are read from the cluster).
    #[arg(long, short = 'f', global = true)]
    pub file: Option<PathBuf>,

    /// An object in the cluster to take the workspace from: `azuremlworkspace/NAME` or
    /// `workspacesecret/NAME` (through the kubeconfig).
    #[arg(long, global = true)]
    pub from: Option<String>,

    /// The namespace of `--from` and of a manifest without one (default: the kubeconfig's).
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,

    /// The workspace's cloud.
    #[arg(long, value_enum, global = true)]
    pub cloud: Option<CloudName>,

    /// The Entra ID authority host of a Custom cloud.
    #[arg(long, env = "AZURE_AUTHORITY_HOST", global = true)]
    pub authority_host: Option<String>,

    /// The ARM endpoint of a Custom cloud.
    #[arg(long, global = true)]
    pub resource_manager_endpoint: Option<String>,

    /// The vault DNS suffix of a Custom cloud (e.g. `.vault.azure.net`).
    #[arg(long, global = true)]
    pub key_vault_dns_suffix: Option<String>,

    /// The Key Vault token audience of a Custom cloud (e.g. `https://vault.azure.net`).
    #[arg(long, global = true)]
    pub key_vault_audience: Option<String>,
}

/// `amlsecrets check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Check with your own identity (`--auth`) instead of the manifest's, to tell "my access"
    /// from "the workload's access".
    #[arg(long)]
    pub as_me: bool,
}

/// `amlsecrets vault …`.
#[derive(Subcommand, Debug, Clone)]
pub enum VaultCommand {
    /// List the secrets of the workspace's vault: names, enabled, expiry, tags; never values.
    List,
    /// Print the values of one or more secrets (like `get_secret`/`get_secrets`).
    Get {
        /// The secret names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Write a secret (a new version) from stdin, a file or an environment variable, never from
    /// the command line; or several from a `.env`-style file (`--from-env-file`).
    Set {
        /// The secret name (omit with `--from-env-file`).
        name: Option<String>,
        /// Read the value from this file (exactly, no newline trimmed).
        #[arg(long, conflicts_with_all = ["from_env", "from_env_file"])]
        from_file: Option<PathBuf>,
        /// Read the value from this environment variable.
        #[arg(long, conflicts_with_all = ["from_file", "from_env_file"])]
        from_env: Option<String>,
        /// Write every `NAME=value` of this `.env`-style file (like `set_secrets`).
        #[arg(long, conflicts_with_all = ["from_file", "from_env"])]
        from_env_file: Option<PathBuf>,
        /// The content type to store with the secret.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Delete a secret (soft delete where the vault keeps deleted secrets); asks first.
    Delete {
        /// The secret name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `amlsecrets connections …`.
#[derive(Subcommand, Debug, Clone)]
pub enum ConnectionsCommand {
    /// List the workspace's connections: name, category, auth type, target, expiry.
    List {
        /// Only connections of this category (e.g. `AzureOpenAI`).
        #[arg(long)]
        category: Option<String>,
    },
    /// Show one connection; its credentials only with `--show-credentials`.
    Get {
        /// The connection name.
        name: String,
        /// Also print the credential values (ARM `listsecrets`).
        #[arg(long)]
        show_credentials: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The laptop commands as `main.rs` mounts them.
    #[derive(Parser)]
    #[allow(dead_code)]
    enum Laptop {
        Check {
            #[command(flatten)]
            check: CheckArgs,
            #[command(flatten)]
            local: LocalArgs,
            #[command(flatten)]
            workspace: WorkspaceArgs,
        },
        Vault {
            #[command(subcommand)]
            command: VaultCommand,
            #[command(flatten)]
            local: LocalArgs,
            #[command(flatten)]
            workspace: WorkspaceArgs,
        },
        Connections {
            #[command(subcommand)]
            command: ConnectionsCommand,
            #[command(flatten)]
            local: LocalArgs,
            #[command(flatten)]
            workspace: WorkspaceArgs,
        },
    }

    fn section() -> String {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme
            .find("## From your laptop")
            .expect("README has a From your laptop section");
        let rest = &readme[start + 3..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    }

    #[test]
    fn readme_documents_every_laptop_command_and_flag() {
        let text = section();
        let mut missing = Vec::new();
        let mut visit = |cmd: &clap::Command, path: String| {
            if !text.contains(&format!("amlsecrets {path}")) {
                missing.push(format!("command `amlsecrets {path}`"));
            }
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if !text.contains(&format!("--{long}")) {
                    missing.push(format!("flag --{long} of {path}"));
                }
                if let Some(env) = arg.get_env() {
                    let env = env.to_string_lossy();
                    if !text.contains(&format!("| `--{long}`")) || !text.contains(&*env) {
                        missing.push(format!("the row of --{long} with {env}"));
                    }
                }
            }
        };
        for top in Laptop::command().get_subcommands() {
            visit(top, top.get_name().to_string());
            for sub in top.get_subcommands() {
                visit(sub, format!("{} {}", top.get_name(), sub.get_name()));
            }
        }
        for other in ["amlsecrets login", "amlsecrets logout"] {
            if !text.contains(other) {
                missing.push(other.to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "README's From your laptop lacks: {missing:?}"
        );
    }

    #[test]
    fn readme_maps_every_sdk_call_and_authentication_class() {
        let text = section();
        for sdk in [
            "get_default_keyvault()",
            "set_secret(",
            "set_secrets(",
            "get_secret(",
            "get_secrets(",
            "list_secrets()",
            "InteractiveLoginAuthentication",
            "AzureCliAuthentication",
            "ServicePrincipalAuthentication",
            "MsiAuthentication",
        ] {
            assert!(
                text.contains(sdk),
                "README's From your laptop does not map {sdk}"
            );
        }
    }
}
