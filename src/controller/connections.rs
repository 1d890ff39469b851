//! The connection side of a WorkspaceSecret sync: read each referenced connection once through the
//! shared views, turn references into values with provenance, report whole connections that failed
//! or carry no secret, and warn (once) before a connection's credentials expire.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use super::Context;
use crate::api::conditions::reasons;
use crate::api::workspace_secret::{Decode, SyncedKey, WorkspaceSecret};
use crate::api::{ConnectionPart, Reference};
use crate::azure::{AzureError, Credential, WorkspaceRef};
use crate::fetch::connection::Current;
use crate::sync::assemble::{Fetched, ItemError, ItemResult};
use crate::sync::decode::decode;
use crate::sync::dockerconfig::docker_config;
use crate::sync::plan::{Compiled, Plan};

/// The connections read for one sync, by name: the value or why there is none.
pub type Read = BTreeMap<String, Result<Arc<Current>, AzureError>>;

/// Reads every connection in `names`, concurrently, each through its shared view (one
/// `listsecrets` per connection and interval, whoever asks).
pub async fn read(
    ctx: &Context,
    cred: &Arc<Credential>,
    workspace: &WorkspaceRef,
    names: &BTreeSet<String>,
    max_age: Duration,
) -> Read {
    let reads = names.iter().map(|name| async move {
        let view = ctx.connections.view(cred, workspace, name);
        let got = view.get(ctx.azure.as_ref(), cred, max_age).await;
        (name.clone(), got)
    });
    futures::future::join_all(reads).await.into_iter().collect()
}

/// Returns the credential field names of each connection read successfully.
pub fn fields(read: &Read) -> BTreeMap<String, Vec<String>> {
    read.iter()
        .filter_map(|(name, r)| {
            let c = r.as_ref().ok()?;
            Some((
                name.clone(),
                c.secrets.credentials.names().map(String::from).collect(),
            ))
        })
        .collect()
}

fn error(reason: &'static str, message: String, not_found: bool) -> ItemError {
    ItemError {
        reason,
        message,
        not_found,
    }
}

fn rfc3339(t: &str) -> String {
    t.parse::<Timestamp>()
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Returns the value of a connection reference (a credential, metadata key, the target, or for a
/// whole connection the `.dockerconfigjson`), with the connection's provenance.
pub fn fetch(read: &Read, reference: &Reference, how: Decode) -> Result<Fetched, ItemError> {
    let name = match reference {
        Reference::Connection { connection, .. } | Reference::WholeConnection { connection } => {
            connection
        }
        _ => unreachable!("only connection references are fetched here"),
    };
    let current = match read.get(name) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(error(e.reason(), e.to_string(), e.is_secret_not_found())),
        None => {
            return Err(error(
                reasons::AZURE_ERROR,
                format!("connection {name} was not read"),
                false,
            ));
        }
    };
    let conn = &current.secrets.connection;
    let creds = &current.secrets.credentials;
    let value: Vec<u8> = match reference {
        Reference::WholeConnection { .. } => {
            docker_config(conn, creds).map_err(|m| error(reasons::INVALID_SPEC, m, false))?
        }
        Reference::Connection { part, .. } => {
            let text = match part {
                ConnectionPart::Credential(field) if conn.is_identity_only() => {
                    return Err(error(
                        reasons::INVALID_SPEC,
                        format!(
                            "connection {name} uses {} (identity-based access) and has no credential {field}; reference its /target or /metadata instead",
                            conn.auth_type
                        ),
                        false,
                    ));
                }
                ConnectionPart::Credential(field) => creds.get(field).map(|v| v.expose()).ok_or_else(|| {
                    let known: Vec<&str> = creds.names().collect();
                    error(
                        reasons::SECRET_NOT_FOUND,
                        format!(
                            "connection {name} ({}) has no credential {field}; its credentials are: {}",
                            conn.kind(),
                            known.join(", ")
                        ),
                        true,
                    )
                })?,
                ConnectionPart::Metadata(key) => {
                    conn.metadata.get(key).map(String::as_str).ok_or_else(|| {
                        let known: Vec<&str> = conn.metadata.keys().map(String::as_str).collect();
                        error(
                            reasons::SECRET_NOT_FOUND,
                            format!(
                                "connection {name} has no metadata key {key}; its keys are: {}",
                                known.join(", ")
                            ),
                            true,
                        )
                    })?
                }
                ConnectionPart::Target => conn.target.as_deref().ok_or_else(|| {
                    error(
                        reasons::SECRET_NOT_FOUND,
                        format!("connection {name} has no target"),
                        true,
                    )
                })?,
            };
            decode(text, how).map_err(|e| error(reasons::INVALID_SPEC, e.to_string(), false))?
        }
        _ => unreachable!("only connection references are fetched here"),
    };
    Ok(Fetched {
        bytes: value,
        version: None,
        updated: Some(
            conn.last_modified
                .as_deref()
                .map(rfc3339)
                .unwrap_or_else(|| current.seen_since.clone()),
        ),
        expires: conn.expiry_time.as_deref().map(rfc3339),
    })
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
            outcome: Err(error(e.reason(), e.to_string(), e.is_secret_not_found())),
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
fn connection_of(reference: &str) -> Option<&str> {
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

/// Publishes one Warning Event per (object, connection, expiry) when a connection's credentials
/// expire within `--expiry-warning` or have expired.
pub async fn warn_expiring(
    ctx: &Context,
    ws: &WorkspaceSecret,
    cred: &Arc<Credential>,
    workspace: &WorkspaceRef,
    read: &Read,
) {
    let uid = ws.meta().uid.clone().unwrap_or_default();
    let now = Timestamp::now();
    for (name, cur) in read {
        let Ok(cur) = cur else { continue };
        let Some(expiry) = cur.secrets.connection.expiry_time.as_deref() else {
            continue;
        };
        let Ok(at) = expiry.parse::<Timestamp>() else {
            continue;
        };
        let left = at.as_second() - now.as_second();
        if left > ctx.args.expiry_warning.as_secs() as i64 {
            continue;
        }
        let view = ctx.connections.view(cred, workspace, name);
        if !view.first_warning(&uid, expiry) {
            continue;
        }
        let (reason, note) = if left <= 0 {
            (
                "ConnectionExpired",
                format!(
                    "the credentials of workspace connection {name} expired at {at}; rotate them in Azure ML (the Secret follows within the refresh interval)"
                ),
            )
        } else {
            (
                "ConnectionExpiring",
                format!(
                    "the credentials of workspace connection {name} expire at {at} (in {}h); rotate them in Azure ML before then",
                    left / 3600
                ),
            )
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &ws.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::{Connection, ConnectionSecrets, Credentials};

    fn read_one(auth: &str, fields: &[(&str, &str)]) -> Read {
        let secrets = ConnectionSecrets {
            connection: Connection {
                name: "c".into(),
                auth_type: auth.into(),
                category: "CustomKeys".into(),
                target: Some("https://t".into()),
                metadata: BTreeMap::from([("region".into(), "eu".into())]),
                expiry_time: Some("2030-01-01T00:00:00Z".into()),
                ..Connection::default()
            },
            credentials: Credentials::from_fields(fields.iter().copied()),
        };
        let cur = Current {
            secrets: Arc::new(secrets),
            seen_since: "2025-01-01T00:00:00Z".into(),
        };
        BTreeMap::from([("c".to_string(), Ok(Arc::new(cur)))])
    }

    fn part(p: ConnectionPart) -> Reference {
        Reference::Connection {
            connection: "c".into(),
            part: p,
        }
    }

    #[test]
    fn credential_metadata_and_target_resolve_with_provenance() {
        let read = read_one("CustomKeys", &[("k1", "v1")]);
        let f = fetch(
            &read,
            &part(ConnectionPart::Credential("k1".into())),
            Decode::None,
        )
        .unwrap();
        assert_eq!(f.bytes, b"v1");
        assert_eq!(f.expires.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(f.updated.as_deref(), Some("2025-01-01T00:00:00Z"));
        let m = fetch(
            &read,
            &part(ConnectionPart::Metadata("region".into())),
            Decode::None,
        )
        .unwrap();
        assert_eq!(m.bytes, b"eu");
        let t = fetch(&read, &part(ConnectionPart::Target), Decode::None).unwrap();
        assert_eq!(t.bytes, b"https://t");
    }

    #[test]
    fn a_missing_field_names_the_fields_there_are_but_no_value() {
        let read = read_one("CustomKeys", &[("k1", "planted-v")]);
        let e = fetch(
            &read,
            &part(ConnectionPart::Credential("k2".into())),
            Decode::None,
        )
        .unwrap_err();
        assert_eq!(e.reason, reasons::SECRET_NOT_FOUND);
        assert!(
            e.message.contains("k1") && !e.message.contains("planted-v"),
            "{}",
            e.message
        );
    }

    #[test]
    fn identity_only_connections_are_a_note_for_whole_refs_and_an_error_for_fields() {
        let read = read_one("AAD", &[]);
        let e = fetch(
            &read,
            &part(ConnectionPart::Credential("key".into())),
            Decode::None,
        )
        .unwrap_err();
        assert!(e.message.contains("identity-based"), "{}", e.message);
        assert_eq!(
            connection_of("${{azureml://connections/c/target}}"),
            Some("c")
        );
        assert_eq!(connection_of("azureml://connections/c"), Some("c"));
        assert_eq!(connection_of("keyvault:x"), None);
    }
}
