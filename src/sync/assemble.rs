//! Assembles the target Secret's data and the status provenance from per-item results, keeping
//! last good data: only a definite not-found under `deletionPolicy: Delete` removes a key.

use std::collections::BTreeMap;

use crate::api::workspace_secret::{DeletionPolicy, SyncedKey};

/// A value fetched for one key, with its provenance.
#[derive(Clone)]
pub struct Fetched {
    /// The bytes for the Secret.
    pub bytes: Vec<u8>,
    /// Provenance: the version, when the source is a vault.
    pub version: Option<String>,
    /// Provenance: when the source last changed (RFC 3339).
    pub updated: Option<String>,
    /// Provenance: when the source expires (RFC 3339).
    pub expires: Option<String>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("bytes", &"<redacted>")
            .field("version", &self.version)
            .finish()
    }
}

/// Why one key could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The condition reason.
    pub reason: &'static str,
    /// What is wrong, for a person (never a value).
    pub message: String,
    /// Whether the source definitely does not exist (the only case that may delete data).
    pub not_found: bool,
    /// Whether a retry soon may help without anyone changing anything (from `AzureError`).
    pub transient: bool,
}

impl ItemError {
    /// An error that only a change fixes.
    pub fn new(reason: &'static str, message: impl Into<String>, not_found: bool) -> Self {
        ItemError {
            reason,
            message: message.into(),
            not_found,
            transient: false,
        }
    }

    /// Classifies an Azure error: its reason, whether it is a definite not-found, its transience.
    pub fn from_azure(e: &crate::azure::AzureError) -> Self {
        ItemError {
            reason: e.reason(),
            message: e.to_string(),
            not_found: e.is_secret_not_found(),
            transient: e.is_transient(),
        }
    }
}

/// The outcome of one key.
#[derive(Debug)]
pub struct ItemResult {
    /// The key in the target Secret.
    pub key: String,
    /// The reference, as status shows it.
    pub reference: String,
    /// The value, or why there is none.
    pub outcome: Result<Fetched, ItemError>,
}

/// The assembled data and what to report.
#[derive(Debug, Default)]
pub struct Assembled {
    /// The data the Secret should hold.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Provenance per key, in key order.
    pub synced_keys: Vec<SyncedKey>,
    /// Failed keys with why.
    pub errors: Vec<(String, ItemError)>,
    /// Keys whose bytes differ from the existing Secret (new or changed).
    pub changed: Vec<String>,
}

/// Combines fresh results with the existing Secret's data and the previous provenance.
pub fn assemble(
    results: Vec<ItemResult>,
    existing: Option<&BTreeMap<String, Vec<u8>>>,
    previous: &[SyncedKey],
    policy: DeletionPolicy,
) -> Assembled {
    let mut out = Assembled::default();
    for r in results {
        let old = existing.and_then(|e| e.get(&r.key));
        match r.outcome {
            Ok(f) => {
                if old != Some(&f.bytes) {
                    out.changed.push(r.key.clone());
                }
                out.synced_keys.push(SyncedKey {
                    key: r.key.clone(),
                    reference: r.reference,
                    version: f.version,
                    updated: f.updated,
                    expires: f.expires,
                    connection_kind: None,
                    source_kind: None,
                    stale: false,
                });
                out.data.insert(r.key, f.bytes);
            }
            Err(e) => {
                let delete = e.not_found && policy == DeletionPolicy::Delete;
                if let (Some(old), false) = (old, delete) {
                    let mut key = previous
                        .iter()
                        .find(|p| p.key == r.key)
                        .cloned()
                        .unwrap_or_else(|| SyncedKey {
                            key: r.key.clone(),
                            reference: r.reference.clone(),
                            ..SyncedKey::default()
                        });
                    key.stale = true;
                    out.synced_keys.push(key);
                    out.data.insert(r.key.clone(), old.clone());
                }
                out.errors.push((r.key, e));
            }
        }
    }
    out.synced_keys.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Summarises failed keys for a condition message: the first few, and how many keys are stale.
pub fn summary(a: &Assembled) -> Option<(&'static str, String)> {
    let (_, first) = a.errors.first()?;
    let shown: Vec<String> = a
        .errors
        .iter()
        .take(5)
        .map(|(k, e)| format!("{k}: {}", e.message))
        .collect();
    let more = a.errors.len().saturating_sub(5);
    let stale = a.synced_keys.iter().filter(|k| k.stale).count();
    let mut msg = format!(
        "{} of {} keys failed: {}",
        a.errors.len(),
        a.errors.len() + a.synced_keys.len() - stale,
        shown.join("; ")
    );
    if more > 0 {
        msg.push_str(&format!("; and {more} more"));
    }
    if stale > 0 {
        msg.push_str(&format!(
            ". {stale} keys keep their last good value (stale)"
        ));
    }
    Some((first.reason, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::reasons;

    fn ok(key: &str, v: &str) -> ItemResult {
        ItemResult {
            key: key.into(),
            reference: format!("keyvault:{key}"),
            outcome: Ok(Fetched {
                bytes: v.as_bytes().to_vec(),
                version: Some("v1".into()),
                updated: None,
                expires: None,
            }),
        }
    }

    fn failed(key: &str, reason: &'static str, not_found: bool) -> ItemResult {
        ItemResult {
            key: key.into(),
            reference: format!("keyvault:{key}"),
            outcome: Err(ItemError::new(reason, "failed", not_found)),
        }
    }

    fn existing() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("a".to_string(), b"old-a".to_vec()),
            ("b".to_string(), b"old-b".to_vec()),
        ])
    }

    #[test]
    fn ambiguous_errors_keep_last_good_data_under_both_policies() {
        for policy in [DeletionPolicy::Retain, DeletionPolicy::Delete] {
            let a = assemble(
                vec![ok("a", "new-a"), failed("b", reasons::FORBIDDEN, false)],
                Some(&existing()),
                &[],
                policy,
            );
            assert_eq!(a.data["a"], b"new-a");
            assert_eq!(a.data["b"], b"old-b", "{policy:?}");
            assert_eq!(a.changed, ["a"]);
            assert!(a.synced_keys.iter().find(|k| k.key == "b").unwrap().stale);
        }
    }

    #[test]
    fn not_found_removes_only_under_delete() {
        let retain = assemble(
            vec![failed("b", reasons::SECRET_NOT_FOUND, true)],
            Some(&existing()),
            &[],
            DeletionPolicy::Retain,
        );
        assert_eq!(retain.data["b"], b"old-b");
        let delete = assemble(
            vec![failed("b", reasons::SECRET_NOT_FOUND, true)],
            Some(&existing()),
            &[],
            DeletionPolicy::Delete,
        );
        assert!(!delete.data.contains_key("b"));
        assert_eq!(summary(&delete).unwrap().0, reasons::SECRET_NOT_FOUND);
    }

    #[test]
    fn summary_names_failed_keys_and_stale_count() {
        let a = assemble(
            vec![ok("a", "x"), failed("b", reasons::THROTTLED, false)],
            Some(&existing()),
            &[],
            DeletionPolicy::Retain,
        );
        let (reason, msg) = summary(&a).unwrap();
        assert_eq!(reason, reasons::THROTTLED);
        assert!(msg.contains("1 of 2 keys failed: b: failed"), "{msg}");
        assert!(msg.contains("1 keys keep their last good value"), "{msg}");
        assert!(
            summary(&assemble(
                vec![ok("a", "x")],
                None,
                &[],
                DeletionPolicy::Retain
            ))
            .is_none()
        );
    }
}
