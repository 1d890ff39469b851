//! The connection side of fetching: read each referenced connection once through the shared
//! views, and turn a connection reference into its value with provenance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::Deps;
use super::clock::Reader;
use super::connection::Current;
use crate::api::conditions::reasons;
use crate::api::workspace_secret::Decode;
use crate::api::{ConnectionPart, Reference};
use crate::azure::{AzureError, Credential, WorkspaceRef};
use crate::sync::assemble::{Fetched, ItemError};
use crate::sync::decode::decode;
use crate::sync::dockerconfig::docker_config;

/// The connections read for one sync, by name: the value or why there is none.
pub type Read = BTreeMap<String, Result<Arc<Current>, AzureError>>;

/// Reads every connection in `names`, concurrently, each through its shared view (one
/// `listsecrets` per connection and interval, whoever asks). With `reader`, the views also
/// record that it reads them every `interval`, and wake it when the credentials change.
pub async fn read(
    deps: Deps<'_>,
    cred: &Arc<Credential>,
    workspace: &WorkspaceRef,
    names: &BTreeSet<String>,
    max_age: Duration,
    reader: Option<(&Reader, Duration)>,
) -> Read {
    let reads = names.iter().map(|name| async move {
        let view = deps.connections.view(cred, workspace, name);
        if let Some((reader, interval)) = reader {
            view.follow(reader.clone(), interval);
        }
        let got = view.get(deps.azure, cred, max_age).await;
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
    ItemError::new(reason, message, not_found)
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
        Some(Err(e)) => return Err(ItemError::from_azure(e)),
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
    }
}
