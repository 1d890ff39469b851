//! Printing results (`--output table|json|yaml`) and the role hints of failures.

use serde::Serialize;

use super::args::OutputFormat;
use crate::azure::AzureError;
use crate::azure::error::{VaultPermissionModel, aadsts_hint};

/// Prints a serializable document as JSON or YAML; `false` for table output (the caller prints).
pub fn print_structured<T: Serialize>(format: OutputFormat, doc: &T) -> bool {
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(doc).expect("reports serialize")
            );
            true
        }
        OutputFormat::Yaml => {
            print!(
                "{}",
                serde_saphyr::to_string(doc).expect("reports serialize")
            );
            true
        }
        OutputFormat::Table => false,
    }
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// The role (or access policy, or action) to grant for an operation that was refused, at which
/// scope, and to whom; `None` for failures no grant fixes.
pub fn role_hint(e: &AzureError) -> Option<String> {
    match e {
        AzureError::Forbidden {
            principal,
            action,
            resource,
            model,
            ..
        } => Some(match model {
            Some(VaultPermissionModel::Rbac) => {
                let role = if action.contains("setSecret") || action.ends_with("secrets/delete") {
                    "Key Vault Secrets Officer"
                } else {
                    "Key Vault Secrets User"
                };
                format!("grant {principal} the role '{role}' on the vault {resource} (it needs {action})")
            }
            Some(VaultPermissionModel::AccessPolicy) => format!(
                "add an access policy on the vault {resource} for {principal} with the permission {action}"
            ),
            None if action == crate::azure::connections::LIST_SECRETS_ACTION => format!(
                "grant {principal} the role '{}' on {resource} (it needs {action})",
                crate::azure::connections::SECRETS_READER_ROLE
            ),
            None => format!(
                "grant {principal} the role 'AzureML Data Scientist' (or Reader) on {resource} (it needs {action})"
            ),
        }),
        AzureError::AuthenticationFailed { code: Some(c), .. } => aadsts_hint(*c).map(str::to_string),
        AzureError::WorkspaceNotFound { .. } => Some(
            "check the subscription, resource group and workspace name, and that the identity can see the subscription".into(),
        ),
        AzureError::SecretDisabled { vault, name } => {
            Some(format!("enable the secret {name} in {vault}"))
        }
        _ => None,
    }
}

/// Returns the `rfc3339` form of Unix seconds.
pub fn time(unix: Option<i64>) -> Option<String> {
    unix.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
}

/// Says on stderr what a long step is doing, when stderr is a terminal (never in pipes or files);
/// the next call or [`progress_done`] overwrites it.
pub fn progress(what: &str) {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[K{what}…");
        let _ = err.flush();
    }
}

/// Clears the progress line.
pub fn progress_done() {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}
