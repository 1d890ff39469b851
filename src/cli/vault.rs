//! `amlsecrets vault list|get|set|delete` on the workspace's default vault, like Azure ML's
//! `Keyvault`: list never prints values, set never takes a value from the command line.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

use serde::Serialize;

use super::args::{LocalArgs, VaultCommand, WorkspaceArgs};
use super::render::{print_structured, print_table, progress, progress_done, role_hint, time};
use super::target::{self, Usage};
use crate::azure::{AzureApi, AzureClient, AzureError, Credential, NewSecret, SecretString};

/// A failed command: what to print, and the role hint.
pub struct Failure {
    /// The message.
    pub message: String,
    /// What to grant.
    pub hint: Option<String>,
    /// Whether the command was used wrongly (exit code 2) rather than failing (1).
    pub usage: bool,
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Self {
        usage(u.0)
    }
}

impl From<AzureError> for Failure {
    fn from(e: AzureError) -> Self {
        Failure {
            hint: role_hint(&e),
            message: e.to_string(),
            usage: false,
        }
    }
}

/// The workspace's vault and the identity to use it with.
pub struct Opened {
    /// The Azure client.
    pub azure: AzureClient,
    /// The identity.
    pub cred: Arc<Credential>,
    /// The vault URI.
    pub vault: String,
}

/// Resolves the vault (`--vault`, the manifest's `spec.keyVault`, or ARM discovery) and the identity.
pub async fn open(local: &LocalArgs, wargs: &WorkspaceArgs) -> Result<Opened, Failure> {
    let target = target::resolve(wargs).await?;
    let http = target::http(local)?;
    let azure = AzureClient::new(http.clone());
    let cred = super::identity::local_credential(local, &target.cloud, &http)?;
    let vault = match &target.workspace.spec.key_vault {
        Some(kv) => kv.uri.trim_end_matches('/').to_string(),
        None => {
            let ws = azure.get_workspace(&cred, &target.wref()).await?;
            ws.key_vault
                .map(|k| k.uri.trim_end_matches('/').to_string())
                .ok_or_else(|| Failure {
                    message: format!(
                        "workspace {} has no customer Key Vault (its credentials live in a Microsoft-managed store); only its connections can be read (`amlsecrets connections`)",
                        ws.resource_id
                    ),
                    hint: None,
                    usage: false,
                })?
        }
    };
    if !target.cloud.allows_vault(&vault) {
        return Err(Failure {
            message: format!(
                "{vault} is not a Key Vault of {} (hosts end with {}); no token is sent there",
                target.cloud.name, target.cloud.key_vault_dns_suffix
            ),
            hint: None,
            usage: false,
        });
    }
    Ok(Opened { azure, cred, vault })
}

#[derive(Serialize)]
struct Listed {
    name: String,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Got {
    name: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

#[derive(Serialize)]
struct Written {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<String>,
}

/// Runs a vault command.
pub async fn run(
    local: &LocalArgs,
    wargs: &WorkspaceArgs,
    command: &VaultCommand,
) -> Result<(), Failure> {
    // Read what `set` writes before anything else: a bad file fails before any sign-in.
    let to_write = match command {
        VaultCommand::Set {
            name,
            from_file,
            from_env,
            from_env_file,
            ..
        } => Some(values_to_set(
            name.as_deref(),
            from_file.as_deref(),
            from_env.as_deref(),
            from_env_file.as_deref(),
        )?),
        _ => None,
    };
    let o = open(local, wargs).await?;
    let format = local.output;
    match command {
        VaultCommand::List => {
            progress(&format!("listing {}", o.vault));
            let listed = o.azure.list_secret_properties(&o.cred, &o.vault).await;
            progress_done();
            let mut secrets = listed?;
            secrets.sort_by(|a, b| a.name.cmp(&b.name));
            let listed: Vec<Listed> = secrets
                .into_iter()
                .filter(|s| !s.managed)
                .map(|s| Listed {
                    name: s.name,
                    enabled: s.enabled,
                    content_type: s.content_type,
                    updated: time(s.updated),
                    expires: time(s.expires),
                    tags: s.tags,
                })
                .collect();
            if !print_structured(
                format,
                &serde_json::json!({ "vault": o.vault, "secrets": listed }),
            ) {
                let rows: Vec<Vec<String>> = listed
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.enabled.to_string(),
                            s.updated.clone().unwrap_or_default(),
                            s.expires.clone().unwrap_or_default(),
                            s.tags
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "ENABLED", "UPDATED", "EXPIRES", "TAGS"], &rows);
            }
        }
        VaultCommand::Get { names } => {
            let mut got = Vec::new();
            for (i, name) in names.iter().enumerate() {
                count_progress(i, names.len(), "reading");
                let s = o.azure.get_secret(&o.cred, &o.vault, name, None).await?;
                got.push(Got {
                    name: s.properties.name.clone(),
                    value: s.value.expose().to_string(),
                    version: s.properties.version.clone(),
                    updated: time(s.properties.updated),
                    expires: time(s.properties.expires),
                });
            }
            progress_done();
            if !print_structured(
                format,
                &serde_json::json!({ "vault": o.vault, "secrets": got }),
            ) {
                print_values(&got);
            }
        }
        VaultCommand::Set { content_type, .. } => {
            let values = to_write.unwrap_or_default();
            let mut written = Vec::new();
            for (i, (name, value)) in values.iter().enumerate() {
                count_progress(i, values.len(), "writing");
                let new = NewSecret {
                    value: value.clone(),
                    content_type: content_type.clone(),
                    ..NewSecret::default()
                };
                let s = o.azure.set_secret(&o.cred, &o.vault, name, &new).await?;
                written.push(Written {
                    name: name.clone(),
                    version: s.properties.version.clone(),
                    updated: time(s.properties.updated),
                });
            }
            progress_done();
            if !print_structured(
                format,
                &serde_json::json!({ "vault": o.vault, "set": written }),
            ) {
                for w in &written {
                    println!(
                        "set {} in {} (version {})",
                        w.name,
                        o.vault,
                        w.version.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        VaultCommand::Delete { name, yes } => {
            if !yes && !confirm(&format!("Delete secret {name} from {}?", o.vault))? {
                return Err(Failure {
                    message: format!("not deleted: {name}"),
                    hint: None,
                    usage: false,
                });
            }
            let d = o.azure.delete_secret(&o.cred, &o.vault, name).await?;
            let purge = time(d.scheduled_purge_date);
            let doc = serde_json::json!({
                "vault": o.vault, "deleted": name, "recoveryId": d.recovery_id, "scheduledPurgeDate": purge,
            });
            if !print_structured(format, &doc) {
                match (&d.recovery_id, purge) {
                    (Some(_), Some(p)) => println!(
                        "deleted {name} from {}; it can be recovered until {p}",
                        o.vault
                    ),
                    _ => println!("deleted {name} from {}", o.vault),
                }
            }
        }
    }
    Ok(())
}

/// Prints values for people: one value as is (nothing added unless stdout is a terminal);
/// several as `NAME` lines followed by the value, indented.
fn print_values(got: &[Got]) {
    let mut out = std::io::stdout().lock();
    if let [one] = got {
        let _ = out.write_all(one.value.as_bytes());
        if std::io::stdout().is_terminal() && !one.value.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        return;
    }
    let rows: Vec<Vec<String>> = got
        .iter()
        .map(|g| vec![g.name.clone(), g.value.escape_debug().to_string()])
        .collect();
    drop(out);
    print_table(&["NAME", "VALUE"], &rows);
}

/// Shows `what i/n` on a terminal's stderr while several secrets are read or written.
fn count_progress(i: usize, n: usize, what: &str) {
    if n > 1 {
        progress(&format!("{what} {}/{n}", i + 1));
    }
}

fn confirm(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "delete asks for confirmation, but stdin is not a terminal: pass --yes".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure {
            message: format!("cannot read the answer: {e}"),
            hint: None,
            usage: false,
        })?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Checks a Key Vault secret name: 1-127 letters, digits and dashes.
pub fn valid_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "{name:?} is not a Key Vault secret name (1-127 letters, digits and '-')"
        )))
    }
}

fn usage(message: String) -> Failure {
    Failure {
        message,
        hint: None,
        usage: true,
    }
}

/// Collects what `set` writes: from a file, an environment variable, stdin, or a `.env` file.
fn values_to_set(
    name: Option<&str>,
    from_file: Option<&std::path::Path>,
    from_env: Option<&str>,
    from_env_file: Option<&std::path::Path>,
) -> Result<Vec<(String, SecretString)>, Failure> {
    if let Some(path) = from_env_file {
        if name.is_some() {
            return Err(usage(
                "give either NAME or --from-env-file, not both".into(),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let pairs =
            super::dotenv::parse(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        if pairs.is_empty() {
            return Err(usage(format!(
                "{} holds no NAME=value line",
                path.display()
            )));
        }
        for (n, _) in &pairs {
            valid_name(n)?;
        }
        return Ok(pairs
            .into_iter()
            .map(|(n, v)| (n, SecretString::new(v)))
            .collect());
    }
    let name = name.ok_or_else(|| usage("give the secret NAME (or --from-env-file)".into()))?;
    valid_name(name)?;
    let value = if let Some(path) = from_file {
        let bytes = std::fs::read(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        String::from_utf8(bytes).map_err(|_| {
            usage(format!(
                "{} is not UTF-8 text; Key Vault stores text (base64-encode binary files and reference them with decode: Base64)",
                path.display()
            ))
        })?
    } else if let Some(var) = from_env {
        std::env::var(var).map_err(|_| {
            usage(format!(
                "the environment variable {var} is not set (or not UTF-8)"
            ))
        })?
    } else {
        if std::io::stdin().is_terminal() {
            eprintln!("Enter the value of {name}, then Ctrl-D (it is not echoed anywhere else):");
        }
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| usage(format!("cannot read the value from stdin: {e}")))?;
        s
    };
    Ok(vec![(name.to_string(), SecretString::new(value))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_key_vault_rules() {
        assert!(valid_name("db-password-2").is_ok());
        assert!(valid_name("db_password").is_err());
        assert!(valid_name("").is_err());
    }
}
