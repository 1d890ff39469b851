//! Who claims which key of a target Secret: each WorkspaceSecret writes under a field manager of
//! its own, and the Secret's `managedFields` say which manager owns each data key. Pure: decides
//! which keys a WorkspaceSecret may write without taking a value from another writer.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use crate::api::workspace_secret::{ExistingKeys, SyncedKey, WorkspaceSecret};

/// The field manager of earlier versions, shared by every WorkspaceSecret (statuses still use it).
pub const LEGACY_MANAGER: &str = "amlsecrets";
/// The prefix of every WorkspaceSecret's own field manager.
pub const MANAGER_PREFIX: &str = "amlsecrets/";
/// The API server's limit on a field manager's length.
const MAX_MANAGER_LEN: usize = 128;

/// Returns the field manager a WorkspaceSecret writes its target Secret with:
/// `amlsecrets/<name>` (names too long for the API server's limit end in a digest of the name).
pub fn field_manager(ws: &WorkspaceSecret) -> String {
    let name = ws.metadata.name.as_deref().unwrap_or_default();
    let manager = format!("{MANAGER_PREFIX}{name}");
    if manager.len() <= MAX_MANAGER_LEN {
        return manager;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_MANAGER_LEN - MANAGER_PREFIX.len() - hex.len() - 1;
    format!(
        "{MANAGER_PREFIX}{}-{hex}",
        &name[..floor_char_boundary(name, keep)]
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Returns, per data key of `secret`, the field managers that own it.
pub fn key_managers(secret: &Secret) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        let Some(manager) = entry.manager.as_deref() else {
            continue;
        };
        let data = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:data"))
            .and_then(|d| d.as_object());
        for field in data.into_iter().flatten().map(|(k, _)| k) {
            if let Some(key) = field.strip_prefix("f:") {
                out.entry(key.to_string())
                    .or_default()
                    .insert(manager.to_string());
            }
        }
    }
    out
}

/// A key this WorkspaceSecret may not write, and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// The field manager holding it (`an unknown writer` when none is recorded).
    pub holder: String,
}

impl Conflict {
    /// Says what is wrong and what to do, for a person.
    pub fn message(&self, secret: &str) -> String {
        match self.holder.strip_prefix(MANAGER_PREFIX) {
            Some(other) => format!(
                "key {} of Secret {secret} is written by WorkspaceSecret {other}; a key has one writer (remove it from one of them or map it to another key)",
                self.key
            ),
            None => format!(
                "key {} of Secret {secret} already exists, written by {}; it is left untouched (set target.existingKeys: TakeOver to overwrite it, or map it to another key)",
                self.key, self.holder
            ),
        }
    }
}

/// Decides which of the `wanted` keys would take a value from another writer of `existing`.
///
/// A key is ours when our manager owns it, or when we synced it before (status `syncedKeys`, so
/// an edit by hand is repaired). Another WorkspaceSecret's key is never ours; any other writer's
/// key is ours only under `TakeOver`. Keys the Secret does not hold are free.
pub fn conflicts<'a>(
    existing: &Secret,
    wanted: impl IntoIterator<Item = &'a str>,
    me: &str,
    previous: &[SyncedKey],
    policy: ExistingKeys,
) -> Vec<Conflict> {
    let present: BTreeSet<&str> = existing
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .chain(
            existing
                .string_data
                .iter()
                .flatten()
                .map(|(k, _)| k.as_str()),
        )
        .collect();
    let managers = key_managers(existing);
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for key in wanted {
        if !present.contains(key) {
            continue;
        }
        let holders = managers.get(key).unwrap_or(&none);
        if holders.contains(me) {
            continue;
        }
        let other_ws = holders
            .iter()
            .find(|m| m.starts_with(MANAGER_PREFIX) && m.as_str() != me);
        let holder = match other_ws {
            Some(m) => m.clone(),
            None if previous.iter().any(|p| p.key == key) => continue,
            None if policy == ExistingKeys::TakeOver => continue,
            None => holders
                .iter()
                .next()
                .cloned()
                .unwrap_or_else(|| "an unknown writer".to_string()),
        };
        out.push(Conflict {
            key: key.to_string(),
            holder,
        });
    }
    out
}

/// Returns the data keys the legacy shared manager still owns, when that manager must shrink to
/// them after `ours` moved to a WorkspaceSecret's own manager: `None` when it owns nothing.
pub fn legacy_keys(existing: &Secret) -> Option<BTreeSet<String>> {
    let owns_anything = existing.metadata.managed_fields.iter().flatten().any(|e| {
        e.manager.as_deref() == Some(LEGACY_MANAGER) && e.operation.as_deref() == Some("Apply")
    });
    owns_anything.then(|| {
        key_managers(existing)
            .into_iter()
            .filter(|(_, m)| m.contains(LEGACY_MANAGER))
            .map(|(k, _)| k)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, ObjectMeta,
    };
    use serde_json::json;

    fn entry(manager: &str, op: &str, keys: &[&str]) -> ManagedFieldsEntry {
        let data: serde_json::Map<String, serde_json::Value> =
            keys.iter().map(|k| (format!("f:{k}"), json!({}))).collect();
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            fields_v1: Some(FieldsV1(json!({ "f:data": data }))),
            ..ManagedFieldsEntry::default()
        }
    }

    fn secret(keys: &[&str], entries: Vec<ManagedFieldsEntry>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("shared".into()),
                managed_fields: Some(entries),
                ..ObjectMeta::default()
            },
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn synced(key: &str) -> SyncedKey {
        SyncedKey {
            key: key.into(),
            ..SyncedKey::default()
        }
    }

    #[test]
    fn a_key_written_by_someone_else_is_refused_unless_taken_over() {
        let s = secret(
            &["theirs", "mine"],
            vec![
                entry("kubectl-create", "Update", &["theirs"]),
                entry("amlsecrets/a", "Apply", &["mine"]),
            ],
        );
        let c = conflicts(
            &s,
            ["theirs", "mine", "new"],
            "amlsecrets/a",
            &[],
            ExistingKeys::Refuse,
        );
        assert_eq!(
            c,
            [Conflict {
                key: "theirs".into(),
                holder: "kubectl-create".into()
            }]
        );
        assert!(c[0].message("shared").contains("written by kubectl-create"));
        assert!(conflicts(&s, ["theirs"], "amlsecrets/a", &[], ExistingKeys::TakeOver).is_empty());
    }

    #[test]
    fn another_workspace_secrets_key_is_never_taken_even_when_synced_before() {
        let s = secret(&["k"], vec![entry("amlsecrets/b", "Apply", &["k"])]);
        for policy in [ExistingKeys::Refuse, ExistingKeys::TakeOver] {
            let c = conflicts(&s, ["k"], "amlsecrets/a", &[synced("k")], policy);
            assert_eq!(c.len(), 1, "{policy:?}");
            assert!(
                c[0].message("shared").contains("WorkspaceSecret b"),
                "{c:?}"
            );
        }
        // Co-owned (both applied the same value at once): the one holding it keeps it.
        let both = secret(
            &["k"],
            vec![
                entry("amlsecrets/b", "Apply", &["k"]),
                entry("amlsecrets/a", "Apply", &["k"]),
            ],
        );
        assert!(conflicts(&both, ["k"], "amlsecrets/a", &[], ExistingKeys::Refuse).is_empty());
    }

    #[test]
    fn a_key_we_synced_before_and_someone_edited_is_repaired() {
        let s = secret(&["k"], vec![entry("kubectl-edit", "Update", &["k"])]);
        assert!(
            conflicts(
                &s,
                ["k"],
                "amlsecrets/a",
                &[synced("k")],
                ExistingKeys::Refuse
            )
            .is_empty()
        );
        let unknown = secret(&["k"], vec![]);
        let c = conflicts(&unknown, ["k"], "amlsecrets/a", &[], ExistingKeys::Refuse);
        assert_eq!(c[0].holder, "an unknown writer");
    }

    #[test]
    fn field_managers_are_per_workspace_secret_and_within_the_limit() {
        let spec = serde_json::from_value(json!({ "workspaceRef": { "name": "ml" } })).unwrap();
        let mut ws = WorkspaceSecret::new("db", spec);
        assert_eq!(field_manager(&ws), "amlsecrets/db");
        ws.metadata.name = Some("n".repeat(253));
        let long = field_manager(&ws);
        assert!(long.len() <= MAX_MANAGER_LEN, "{}", long.len());
        ws.metadata.name = Some(format!("{}x", "n".repeat(252)));
        assert_ne!(field_manager(&ws), long);
    }

    #[test]
    fn the_legacy_manager_is_found_only_when_it_applied() {
        let s = secret(
            &["a", "b"],
            vec![
                entry(LEGACY_MANAGER, "Apply", &["a", "b"]),
                entry("amlsecrets/x", "Apply", &["a"]),
            ],
        );
        assert_eq!(
            legacy_keys(&s).unwrap().into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        let none = secret(&["a"], vec![entry("amlsecrets/x", "Apply", &["a"])]);
        assert!(legacy_keys(&none).is_none());
    }
}
