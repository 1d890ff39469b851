//! The pure parts of a `WorkspaceSecretPush` reconcile: which vault secrets the source Secret
//! should become (names mapped to Key Vault's rules), a keyed digest of each, and what to do per
//! item given the last status and the vault's listing; the report is `push_report`.

use std::collections::BTreeMap;

use ring::hmac;

pub use super::push_report::{Inputs, Outcome, Pushed, Report, report};
use crate::api::conditions::reasons;
use crate::api::workspace_secret_push::{
    PushMetadata, PushedItem, UpdatePolicy, WorkspaceSecretPushSpec,
};
use crate::azure::SecretProperties;

/// Tag marking a vault secret as written by amlsecrets.
pub const TAG_MANAGED_BY: &str = "amlsecrets-managed-by";
/// Tag naming the push (`namespace/name`) that wrote a vault secret.
pub const TAG_PUSH: &str = "amlsecrets-push";
/// Tag with the uid of the push that wrote a vault secret: ownership is decided by it.
pub const TAG_PUSH_UID: &str = "amlsecrets-push-uid";
/// The value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "amlsecrets";

/// Maps a Secret key to a Key Vault name: letters lowercased, `_` and `.` become `-`
/// (`DB_PASSWORD` → `db-password`). Key Vault names are case-insensitive, so nothing is lost.
pub fn vault_name(prefix: &str, key: &str) -> String {
    let mapped: String = key
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    format!("{prefix}{mapped}")
}

/// Tells whether a name is a valid Key Vault secret name.
pub fn valid_vault_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// One vault secret the source should become.
#[derive(Clone)]
pub struct Desired {
    /// The source key.
    pub secret_key: String,
    /// The vault name.
    pub remote_name: String,
    /// The value (text: Key Vault stores strings).
    pub value: String,
    /// Content type, tags, validity as asked.
    pub metadata: PushMetadata,
    /// `notBefore` in Unix seconds.
    pub not_before: Option<i64>,
    /// `expires` in Unix seconds.
    pub expires: Option<i64>,
}

impl std::fmt::Debug for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desired")
            .field("secret_key", &self.secret_key)
            .field("remote_name", &self.remote_name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// An item that cannot be pushed as the spec and source stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The source key.
    pub secret_key: String,
    /// The vault name, when known.
    pub remote_name: String,
    /// The condition reason (`SourceNotFound`, `InvalidSpec`).
    pub reason: &'static str,
    /// What is wrong (never a value).
    pub message: String,
}

fn seconds(field: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    text.map(|t| {
        t.parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| format!("{field} {t:?} is not an RFC 3339 time: {e}"))
    })
    .transpose()
}

/// Decides the vault secrets a source Secret's data becomes (pure): explicit items first, then
/// every other key under `allKeys`; names that collide (Key Vault ignores case) are refused.
pub fn desired(
    spec: &WorkspaceSecretPushSpec,
    source: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> (Vec<Desired>, Vec<Problem>) {
    let mut wanted: Vec<(String, String, PushMetadata, bool)> = spec
        .data
        .iter()
        .map(|i| {
            (
                i.secret_key.clone(),
                i.remote_name.clone(),
                i.metadata(),
                true,
            )
        })
        .collect();
    if let Some(all) = &spec.all_keys {
        let prefix = all.prefix.as_deref().unwrap_or_default();
        for key in data.keys() {
            if !spec.data.iter().any(|i| &i.secret_key == key) {
                wanted.push((key.clone(), vault_name(prefix, key), all.metadata(), false));
            }
        }
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let problem = |key: &str, name: &str, reason, message: String| Problem {
        secret_key: key.to_string(),
        remote_name: name.to_string(),
        reason,
        message,
    };
    for (key, name, metadata, explicit) in &wanted {
        let lower = name.to_ascii_lowercase();
        let rivals: Vec<&String> = wanted
            .iter()
            .filter(|(k, n, _, e)| n.to_ascii_lowercase() == lower && (k != key || e != explicit))
            .map(|(k, _, _, _)| k)
            .collect();
        // An explicit item wins over a mapped key of the same name; two mapped keys both lose.
        let beaten = !rivals.is_empty()
            && (!*explicit
                || wanted
                    .iter()
                    .any(|(k, n, _, e)| *e && k != key && n.to_ascii_lowercase() == lower));
        if beaten {
            problems.push(problem(key, name, reasons::INVALID_SPEC, format!(
                "key {key} maps to vault name {name}, which key {} also maps to (Key Vault names ignore case); name one of them explicitly in data",
                rivals.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
            continue;
        }
        if !valid_vault_name(name) {
            problems.push(problem(key, name, reasons::INVALID_SPEC, format!(
                "key {key} maps to {name:?}, which is not a valid Key Vault name (1-127 of letters, digits and '-'); name it explicitly in data"
            )));
            continue;
        }
        let Some(bytes) = data.get(key) else {
            problems.push(problem(
                key,
                name,
                reasons::SOURCE_NOT_FOUND,
                format!("Secret {source} has no key {key}"),
            ));
            continue;
        };
        let Ok(value) = String::from_utf8(bytes.clone()) else {
            problems.push(problem(key, name, reasons::INVALID_SPEC, format!(
                "key {key} of Secret {source} is not UTF-8 text; Key Vault stores text (base64-encode binary values in the source)"
            )));
            continue;
        };
        if value.len() > 25 * 1024 {
            problems.push(problem(
                key,
                name,
                reasons::INVALID_SPEC,
                format!(
                    "key {key} of Secret {source} holds {} bytes; Key Vault takes at most 25 KiB",
                    value.len()
                ),
            ));
            continue;
        }
        let times = seconds("notBefore", metadata.not_before.as_deref()).and_then(|nbf| {
            let exp = seconds("expires", metadata.expires.as_deref())?;
            match (nbf, exp) {
                (Some(n), Some(e)) if n >= e => Err("notBefore is not before expires".to_string()),
                _ => Ok((nbf, exp)),
            }
        });
        let (not_before, expires) = match times {
            Ok(t) => t,
            Err(why) => {
                problems.push(problem(
                    key,
                    name,
                    reasons::INVALID_SPEC,
                    format!("{name}: {why}"),
                ));
                continue;
            }
        };
        out.push(Desired {
            secret_key: key.clone(),
            remote_name: name.clone(),
            value,
            metadata: metadata.clone(),
            not_before,
            expires,
        });
    }
    (out, problems)
}

/// The tags a pushed version carries: the user's and the ownership tags.
pub fn tags_of(d: &Desired, push: &str, uid: &str) -> BTreeMap<String, String> {
    let mut tags = d.metadata.tags.clone();
    tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
    // Key Vault tag values hold at most 256 characters.
    tags.insert(TAG_PUSH.into(), push.chars().take(256).collect());
    tags.insert(TAG_PUSH_UID.into(), uid.into());
    tags
}

/// The process's digest key: random, never stored; its id goes with every digest so a digest
/// made under another key (another process) is recognised as such.
pub struct DigestKey {
    key: hmac::Key,
    id: String,
}

impl DigestKey {
    /// Creates a random key from the system's secure random generator.
    pub fn random() -> Self {
        use ring::rand::{SecureRandom, SystemRandom};
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random generator works");
        Self::from_bytes(&bytes)
    }

    /// Creates a key from bytes (tests).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let id = hex(&hmac::sign(&key, b"amlsecrets key id").as_ref()[..4]);
        DigestKey { key, id }
    }

    /// Returns `<key id>:<HMAC of name, value and metadata>`.
    pub fn digest(&self, d: &Desired, tags: &BTreeMap<String, String>) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        let mut field = |b: &[u8]| {
            ctx.update(&(b.len() as u64).to_be_bytes());
            ctx.update(b);
        };
        field(d.remote_name.to_ascii_lowercase().as_bytes());
        field(d.value.as_bytes());
        field(d.metadata.content_type.as_deref().unwrap_or("").as_bytes());
        for (k, v) in tags {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&d.not_before.unwrap_or(i64::MIN).to_be_bytes());
        field(&d.expires.unwrap_or(i64::MIN).to_be_bytes());
        format!("{}:{}", self.id, hex(&ctx.sign().as_ref()[..16]))
    }

    /// Tells whether a digest was made under this key.
    pub fn made_here(&self, digest: &str) -> bool {
        digest.split_once(':').is_some_and(|(id, _)| id == self.id)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Who wrote a vault secret, by its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This push (same uid).
    This,
    /// Another push, named `namespace/name` (maybe this one before it was re-created).
    OtherPush(String),
    /// Anyone else.
    Foreign,
}

/// Decides who owns a vault secret from its tags.
pub fn owner(tags: &BTreeMap<String, String>, uid: &str) -> Owner {
    if tags.get(TAG_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return Owner::Foreign;
    }
    match tags.get(TAG_PUSH_UID) {
        Some(u) if u == uid => Owner::This,
        _ => Owner::OtherPush(tags.get(TAG_PUSH).cloned().unwrap_or_default()),
    }
}

/// What to do for one desired item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The vault holds what the source holds: nothing to write.
    Unchanged,
    /// Write a new version; the text says why (for the Event).
    Put(&'static str),
    /// Not pushed before: look the name up in the vault (versions, no value) first.
    Lookup,
    /// Pushed before by another process (the digest key differs): compare with the vault's
    /// value once, write only when it differs.
    Verify,
    /// Compared with the vault: it holds what is wanted (version and updated time of it).
    Verified(Option<String>, Option<i64>),
    /// Leave it: `IfNotExists` and it exists.
    Keep,
    /// Someone else owns it now.
    Conflict(String),
}

/// Decides the step of an item from its last record and the vault's listing (pure).
#[allow(clippy::too_many_arguments)]
pub fn step(
    d: &Desired,
    record: Option<&PushedItem>,
    listed: Option<&SecretProperties>,
    digest: &str,
    key: &DigestKey,
    policy: UpdatePolicy,
    adopt: bool,
    uid: &str,
) -> Step {
    let Some(record) = record else {
        return Step::Lookup;
    };
    let Some(listed) = listed else {
        // The listing is never older than this operator's last write: the secret was deleted
        // in the vault (or purged) by someone else. Create it again.
        return Step::Put("it was deleted in the vault");
    };
    match owner(&listed.tags, uid) {
        Owner::This => {}
        _ if adopt && policy == UpdatePolicy::Replace => return Step::Put("adopted"),
        Owner::OtherPush(p) => {
            return Step::Conflict(format!(
                "vault secret {} was last written by WorkspaceSecretPush {p}, not by this one; it is left untouched",
                d.remote_name
            ));
        }
        Owner::Foreign => {
            return Step::Conflict(format!(
                "vault secret {} has a newer version not written by amlsecrets (its ownership tags are gone); it is left untouched (set adoptExisting: true to take it over)",
                d.remote_name
            ));
        }
    }
    if policy == UpdatePolicy::IfNotExists {
        return Step::Unchanged;
    }
    let recorded = record.digest.as_deref().unwrap_or_default();
    if !key.made_here(recorded) {
        return Step::Verify;
    }
    if recorded == digest {
        return Step::Unchanged;
    }
    // The source changed, and so did the vault since this push wrote it (someone wrote a
    // version with its tags, or a WorkspaceSecret brought a vault change into the source):
    // compare once before writing, so a value that came from the vault is not written back.
    let written = record
        .updated
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second());
    match (listed.updated, written) {
        (Some(l), Some(w)) if l > w => Step::Verify,
        _ => Step::Put("the source changed"),
    }
}

/// Decides the step of an item not pushed before, once the vault told whether the name exists
/// and the tags of its latest version (pure).
pub fn step_after_lookup(
    d: &Desired,
    latest: Option<&SecretProperties>,
    policy: UpdatePolicy,
    adopt: bool,
    uid: &str,
) -> Step {
    let Some(latest) = latest else {
        return Step::Put("created");
    };
    match (owner(&latest.tags, uid), policy, adopt) {
        (Owner::This, UpdatePolicy::IfNotExists, _) => Step::Keep,
        (Owner::This, UpdatePolicy::Replace, _) => Step::Verify,
        (_, UpdatePolicy::IfNotExists, _) => Step::Keep,
        (_, UpdatePolicy::Replace, true) => Step::Put("adopted"),
        (Owner::OtherPush(p), _, false) => Step::Conflict(format!(
            "vault secret {} exists and was written by WorkspaceSecretPush {p}; it is left untouched (set adoptExisting: true to take it over)",
            d.remote_name
        )),
        (Owner::Foreign, _, false) => Step::Conflict(format!(
            "vault secret {} exists and was not written by this WorkspaceSecretPush; it is left untouched (set adoptExisting: true to take it over)",
            d.remote_name
        )),
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
