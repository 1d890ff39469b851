//! The wire and public shapes of Key Vault secrets: properties, values (redacted), writes, deletes.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::azure::redact::SecretString;

/// A secret's metadata, as lists show it: never its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretProperties {
    /// The secret's id as the vault gives it (versioned for gets and version lists).
    pub id: String,
    /// The secret's name.
    pub name: String,
    /// The version, when the id carries one.
    pub version: Option<String>,
    /// Whether the secret is enabled (disabled ones cannot be read).
    pub enabled: bool,
    /// The content type, if set.
    pub content_type: Option<String>,
    /// The tags.
    pub tags: BTreeMap<String, String>,
    /// Created (Unix seconds).
    pub created: Option<i64>,
    /// Last updated (Unix seconds); changes with each new version.
    pub updated: Option<i64>,
    /// Not valid before (Unix seconds).
    pub not_before: Option<i64>,
    /// Expires (Unix seconds).
    pub expires: Option<i64>,
    /// Whether the secret backs a Key Vault certificate.
    pub managed: bool,
}

/// A vault's listing: its secrets in the order listed, found by name in constant time (Key Vault
/// names are case-insensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretListing {
    secrets: Vec<SecretProperties>,
    /// Lowercased name → index in `secrets`.
    by_name: HashMap<String, usize>,
    /// (tag, value) → the indexes in `secrets` of those that carry it, in order.
    by_tag: HashMap<(String, String), Vec<usize>>,
}

impl SecretListing {
    /// Indexes a listing.
    pub fn new(secrets: Vec<SecretProperties>) -> Self {
        let by_name = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.to_ascii_lowercase(), i))
            .collect();
        let mut by_tag: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, s) in secrets.iter().enumerate() {
            for (k, v) in &s.tags {
                by_tag.entry((k.clone(), v.clone())).or_default().push(i);
            }
        }
        Self {
            secrets,
            by_name,
            by_tag,
        }
    }

    /// The secrets that carry tag `name` with `value`, in listing order.
    pub fn tagged<'a>(
        &'a self,
        name: &str,
        value: &str,
    ) -> impl Iterator<Item = &'a SecretProperties> + 'a {
        self.by_tag
            .get(&(name.to_string(), value.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|i| self.secrets.get(*i))
    }

    /// The secret named `name`, whatever its case.
    pub fn get(&self, name: &str) -> Option<&SecretProperties> {
        let i = self.by_name.get(&name.to_ascii_lowercase())?;
        self.secrets.get(*i)
    }
}

impl From<Vec<SecretProperties>> for SecretListing {
    fn from(secrets: Vec<SecretProperties>) -> Self {
        Self::new(secrets)
    }
}

impl std::ops::Deref for SecretListing {
    type Target = [SecretProperties];

    fn deref(&self) -> &[SecretProperties] {
        &self.secrets
    }
}

/// A secret with its value; `Debug` redacts the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The metadata (with version).
    pub properties: SecretProperties,
    /// The value.
    pub value: SecretString,
}

/// A secret to write: each write creates a version.
#[derive(Clone, Debug, Default)]
pub struct NewSecret {
    /// The value.
    pub value: SecretString,
    /// The content type, if any.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Whether the new version is enabled (the vault's default: yes).
    pub enabled: Option<bool>,
}

/// What a delete returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedSecret {
    /// The metadata of the deleted secret.
    pub properties: SecretProperties,
    /// The id to recover it by (soft-delete vaults).
    pub recovery_id: Option<String>,
    /// When it will be purged (Unix seconds), for soft-delete vaults.
    pub scheduled_purge_date: Option<i64>,
}

#[derive(Deserialize, Default)]
pub(super) struct Attributes {
    pub(super) enabled: Option<bool>,
    pub(super) nbf: Option<i64>,
    pub(super) exp: Option<i64>,
    pub(super) created: Option<i64>,
    pub(super) updated: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Item {
    pub(super) id: String,
    #[serde(default)]
    pub(super) attributes: Attributes,
    #[serde(default)]
    pub(super) tags: Option<BTreeMap<String, String>>,
    pub(super) content_type: Option<String>,
    pub(super) managed: Option<bool>,
    pub(super) value: Option<String>,
    pub(super) recovery_id: Option<String>,
    pub(super) scheduled_purge_date: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page {
    #[serde(default)]
    pub(super) value: Vec<Item>,
    pub(super) next_link: Option<String>,
}

impl Item {
    pub(super) fn properties(&self) -> SecretProperties {
        let (name, version) = split_id(&self.id);
        SecretProperties {
            id: self.id.clone(),
            name,
            version,
            enabled: self.attributes.enabled.unwrap_or(true),
            content_type: self.content_type.clone(),
            tags: self.tags.clone().unwrap_or_default(),
            created: self.attributes.created,
            updated: self.attributes.updated,
            not_before: self.attributes.nbf,
            expires: self.attributes.exp,
            managed: self.managed.unwrap_or(false),
        }
    }
}

/// Splits `https://{vault}/secrets/{name}[/{version}]` into name and version.
pub fn split_id(id: &str) -> (String, Option<String>) {
    let path = reqwest::Url::parse(id)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| id.to_string());
    let mut segs = path
        .trim_matches('/')
        .split('/')
        .skip_while(|s| *s != "secrets")
        .skip(1);
    let name = segs.next().unwrap_or_default().to_string();
    let version = segs.next().filter(|v| !v.is_empty()).map(str::to_string);
    (name, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_finds_a_secret_by_name_whatever_its_case_and_keeps_the_order() {
        let named = |n: &str| SecretProperties {
            name: n.into(),
            ..SecretProperties::default()
        };
        let listing = SecretListing::new(vec![named("Db-Password"), named("api-key")]);
        assert_eq!(
            listing.get("db-password").map(|s| s.name.as_str()),
            Some("Db-Password")
        );
        assert_eq!(
            listing.get("API-KEY").map(|s| s.name.as_str()),
            Some("api-key")
        );
        assert_eq!(listing.get("other"), None);
        let order: Vec<&str> = listing.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["Db-Password", "api-key"]);
        let tagged = |n: &str, team: &str| SecretProperties {
            tags: BTreeMap::from([("team".to_string(), team.to_string())]),
            ..named(n)
        };
        let listing =
            SecretListing::new(vec![tagged("a", "x"), tagged("b", "y"), tagged("c", "x")]);
        let x: Vec<&str> = listing
            .tagged("team", "x")
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(x, ["a", "c"]);
        assert_eq!(listing.tagged("team", "z").count(), 0);
        assert_eq!(listing.tagged("owner", "x").count(), 0);
    }
}
