//! The connection side of reporting (pure): whole connections that failed, credential fields
//! gone, finds that a workspace without a vault cannot serve, notes, and provenance labels.

use crate::api::conditions::reasons;
use crate::api::workspace_secret::{SyncedKey, WorkspaceSecret};
use crate::fetch::connections::Read;
use crate::sync::assemble::{ItemError, ItemResult};
use crate::sync::plan::{Compiled, Plan};

fn error(reason: &'static str, message: String, not_found: bool) -> ItemError {
    ItemError::new(reason, message, not_found)
}

/// Returns errors for whole connections that could not be read: each key synced from one before
/// gets the error (so it keeps its last good value, or goes under `deletionPolicy: Delete` when the
/// connection is gone); a connection with no such key gets one error under its reference.
fn failures(compiled: &Compiled, read: &Read, previous: &[SyncedKey]) -> Vec<ItemResult> {
    let mut out = Vec::new();
    for c in &compiled.connections {
        let Some(Err(e)) = read.get(&c.connection) else {
            continue;
        };
        let item = |key: &str, reference: &str| ItemResult {
            key: key.to_string(),
            reference: reference.to_string(),
            outcome: Err(ItemError::from_azure(e)),
        };
        let explicit = |key: &str| compiled.explicit.iter().any(|p| p.key == key);
        let before: Vec<&SyncedKey> = previous
            .iter()
            .filter(|k| !explicit(&k.key) && connection_of(&k.reference) == Some(&c.connection))
            .collect();
        if before.is_empty() {
            out.push(item(&c.reference, &c.reference));
        }
        out.extend(before.iter().map(|k| item(&k.key, &k.reference)));
    }
    out
}

/// Returns every per-item error of the connection side: whole connections that failed, credential
/// fields gone from a connection, and (for a workspace without a vault, `no_vault` saying why) each
/// vault `find`, which cannot be served while connection references still are.
pub fn item_errors(
    ws: &WorkspaceSecret,
    compiled: &Compiled,
    read: &Read,
    planned: &Plan,
    previous: &[SyncedKey],
    no_vault: Option<&str>,
) -> Vec<ItemResult> {
    let mut out = failures(compiled, read, previous);
    out.extend(planned.vanished_fields.iter().map(|gone| ItemResult {
        key: gone.key.clone(),
        reference: gone.reference.to_string(),
        outcome: Err(error(
            reasons::SECRET_NOT_FOUND,
            format!(
                "{} is no longer a credential of its connection",
                gone.reference
            ),
            true,
        )),
    }));
    let finds = ws
        .spec
        .data_from
        .iter()
        .enumerate()
        .filter(|(_, d)| d.find.is_some());
    for (i, _) in finds.filter(|_| no_vault.is_some()) {
        out.push(ItemResult {
            key: format!("dataFrom[{i}]"),
            reference: String::new(),
            outcome: Err(error(
                reasons::NO_KEY_VAULT,
                no_vault.unwrap_or_default().into(),
                false,
            )),
        });
    }
    out
}

/// Returns the connection a status reference names, if it names one.
pub fn connection_of(reference: &str) -> Option<&str> {
    let name = reference
        .trim_start_matches("${{")
        .trim_end_matches("}}")
        .trim()
        .strip_prefix("azureml://connections/")?;
    Some(name.split('/').next().unwrap_or(name))
}

/// Returns notes for the Ready message: whole connections that carry no secret.
pub fn notes(compiled: &Compiled, read: &Read) -> Vec<String> {
    let mut out = Vec::new();
    for c in &compiled.connections {
        if let Some(Ok(cur)) = read.get(&c.connection)
            && cur.secrets.credentials.is_empty()
        {
            let conn = &cur.secrets.connection;
            out.push(format!(
                "connection {} ({}) has no credentials to sync{}",
                c.connection,
                conn.kind(),
                if conn.is_identity_only() {
                    ": it uses identity-based access"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

/// Fills in the connection's `authType/category` on each fresh key read from a connection.
pub fn annotate(read: &Read, keys: &mut [SyncedKey]) {
    for k in keys.iter_mut().filter(|k| !k.stale) {
        if let Some(Some(Ok(cur))) = connection_of(&k.reference).map(|c| read.get(c)) {
            k.connection_kind = Some(cur.secrets.connection.kind());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_references_name_their_connection() {
        assert_eq!(
            connection_of("${{azureml://connections/c/target}}"),
            Some("c")
        );
        assert_eq!(connection_of("azureml://connections/c"), Some("c"));
        assert_eq!(connection_of("keyvault:x"), None);
    }
}
