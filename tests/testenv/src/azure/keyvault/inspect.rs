//! What tests inspect and steer beyond the REST surface: every stored version of a secret,
//! soft deletes and purges made "by someone else", and read-only principals.

use std::collections::BTreeMap;

use super::{Deleted, FakeKeyVault, RECOVERABLE_DAYS};
use crate::azure::common::now;

/// One stored version of a secret, as a test inspects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// The version id.
    pub version: String,
    /// The value.
    pub value: String,
    /// The content type.
    pub content_type: Option<String>,
    /// The tags.
    pub tags: BTreeMap<String, String>,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expires (Unix seconds).
    pub exp: Option<i64>,
}

impl FakeKeyVault {
    /// Lets a principal (by object id) read but not write: a reader's role on the vault.
    pub fn deny_writes(&self, oid: &str) {
        self.vault.lock().unwrap().read_only.insert(oid.into());
    }

    /// Lifts every denial of a principal.
    pub fn allow(&self, oid: &str) {
        let mut vault = self.vault.lock().unwrap();
        vault.denied.remove(oid);
        vault.read_only.remove(oid);
    }

    /// Returns every version of a secret, oldest first, with value and metadata.
    pub fn versions_of(&self, name: &str) -> Vec<StoredVersion> {
        let vault = self.vault.lock().unwrap();
        vault
            .secrets
            .get(&name.to_lowercase())
            .map(|(_, vs)| {
                vs.iter()
                    .map(|v| StoredVersion {
                        version: v.version.clone(),
                        value: v.value.clone(),
                        content_type: v.content_type.clone(),
                        tags: v.tags.clone(),
                        nbf: v.nbf,
                        exp: v.exp,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Soft-deletes a secret as someone else would (`DELETE`): its name stays reserved.
    pub fn soft_delete(&self, name: &str) {
        let mut vault = self.vault.lock().unwrap();
        if let Some((display, versions)) = vault.secrets.remove(&name.to_lowercase()) {
            let d = Deleted {
                display,
                versions,
                deleted_date: now(),
                scheduled_purge_date: now() + RECOVERABLE_DAYS * 86400,
            };
            vault.deleted.insert(name.to_lowercase(), d);
        }
    }

    /// Purges a soft-deleted secret as someone with the purge permission would: the name is free.
    pub fn purge_deleted(&self, name: &str) {
        self.vault
            .lock()
            .unwrap()
            .deleted
            .remove(&name.to_lowercase());
    }
}
