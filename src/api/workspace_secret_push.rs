//! `WorkspaceSecretPush`: which keys of a Kubernetes Secret are written into the workspace's Key
//! Vault, under which names and with which metadata — the other direction of `WorkspaceSecret`.

// The `KubeSchema` derive emits a private copy of each type it builds a schema for, which
// `unreachable_pub` reports as an unexported `pub` item; the types themselves are exported.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::workspace_secret::{DeletionPolicy, WorkspaceRef};

/// CEL: a Key Vault secret name (1–127 of letters, digits and `-`).
const VAULT_NAME_CEL: &str = "self.matches('^[0-9a-zA-Z-]{1,127}$')";
/// CEL: an RFC 3339 time with a zone (`2027-01-31T00:00:00Z`).
const TIME_CEL: &str = "self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$')";
/// CEL: user tags leave room for the ownership tags and never use their prefix.
const TAGS_CEL: &str = "size(self) <= 12 && self.all(k, !k.startsWith('amlsecrets') && size(k) <= 512 && size(self[k]) <= 256)";
const TAGS_MESSAGE: &str = "tags: at most 12 (Key Vault allows 15 and amlsecrets adds its 3 ownership tags), names up to 512 and values up to 256 characters, no name starting with 'amlsecrets' (reserved)";

/// The spec of a `WorkspaceSecretPush`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlsecrets.io",
    version = "v1alpha1",
    kind = "WorkspaceSecretPush",
    plural = "workspacesecretpushes",
    shortname = "wspush",
    category = "amlsecrets",
    namespaced,
    status = "WorkspaceSecretPushStatus",
    doc = "Pushes keys of a Kubernetes Secret into the Key Vault of an Azure ML workspace, for jobs and endpoints to read (Run.get_secret).",
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspaceRef.name"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.source.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Checked","type":"date","jsonPath":".status.refreshTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("(has(self.data) && size(self.data) > 0) || has(self.allKeys)").message("set at least one item in data, or allKeys").field_path(".data"))]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSecretPushSpec {
    /// The `AzureMLWorkspace` in this namespace whose Key Vault is written.
    pub workspace_ref: WorkspaceRef,
    /// The Secret in this namespace whose keys are pushed.
    pub source: SourceRef,
    /// How often the vault is re-checked for changes made there (a change of the source Secret
    /// is pushed within seconds, independently): a duration between `10s` and `720h`. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('720h')").message("refreshInterval must be a duration between 10s and 720h (30 days), e.g. 1h"))]
    pub refresh_interval: Option<String>,
    /// Explicit items: one vault secret per source key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.remoteName == x.remoteName))").message("data has duplicate remoteNames: each vault secret may be written by one item"))]
    pub data: Vec<PushItem>,
    /// Every key of the source Secret, named by Key Vault's rules (`DB_PASSWORD` becomes
    /// `db-password`); an explicit `data` item for the same key wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_keys: Option<AllKeys>,
    /// `Replace` (default: write a new version whenever the value or metadata changes) or
    /// `IfNotExists` (create the vault secret once, never update it).
    #[serde(default)]
    pub update_policy: UpdatePolicy,
    /// `Retain` (default: vault secrets stay when the push or an item goes) or `Delete` (the
    /// vault secrets this push wrote are deleted when the push, an item or an `allKeys` key goes).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over vault secrets of the same names that exist already and were not written by this
    /// push (default `false`: such a name is `TargetConflict` and left untouched).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
}

/// A Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("source.name must be a valid object name"))]
    pub name: String,
}

/// When an existing vault secret is written again.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum UpdatePolicy {
    /// Write a new version whenever the value or its metadata changed (default).
    #[default]
    Replace,
    /// Create the vault secret when it does not exist; never write it again.
    IfNotExists,
}

/// Content type, tags and validity of a vault secret, as one item asks for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushMetadata {
    /// The content type.
    pub content_type: Option<String>,
    /// The user's tags.
    pub tags: BTreeMap<String, String>,
    /// Expiry (RFC 3339).
    pub expires: Option<String>,
    /// Not valid before (RFC 3339).
    pub not_before: Option<String>,
}

macro_rules! metadata_of {
    ($t:ty) => {
        impl $t {
            /// Returns the content type, tags and validity this item asks for.
            pub fn metadata(&self) -> PushMetadata {
                PushMetadata {
                    content_type: self.content_type.clone(),
                    tags: self.tags.clone(),
                    expires: self.expires.clone(),
                    not_before: self.not_before.clone(),
                }
            }
        }
    };
}
metadata_of!(PushItem);
metadata_of!(AllKeys);

/// One explicit item: a key of the source Secret and the vault secret it becomes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushItem {
    /// The key of the source Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("secretKey must be a valid Secret key: letters, digits, '-', '_' or '.'"))]
    pub secret_key: String,
    /// The vault secret's name: 1–127 of letters, digits and `-` (Key Vault compares names
    /// case-insensitively).
    // The schema's bound only caps the CEL cost; the rule says what Key Vault accepts.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(VAULT_NAME_CEL).message("remoteName must be 1-127 letters, digits or '-' (Key Vault's rule for secret names)"))]
    pub remote_name: String,
    /// The vault secret's content type (up to 255 characters), e.g. `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub content_type: Option<String>,
    /// Tags of the vault secret (besides the ownership tags amlsecrets adds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 15))]
    #[x_kube(validation = Rule::new(TAGS_CEL).message(TAGS_MESSAGE))]
    pub tags: BTreeMap<String, String>,
    /// When the vault secret expires (RFC 3339, e.g. `2027-01-31T00:00:00Z`); Key Vault then
    /// refuses to serve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(TIME_CEL).message("expires must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"))]
    pub expires: Option<String>,
    /// When the vault secret becomes valid (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(TIME_CEL).message("notBefore must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"))]
    pub not_before: Option<String>,
}

/// Every key of the source Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AllKeys {
    /// Put before every mapped name, e.g. `app1-` (letters, digits, `-`; up to 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-zA-Z-]*$')").message("allKeys.prefix may hold only letters, digits and '-'"))]
    pub prefix: Option<String>,
    /// The vault secret's content type (up to 255 characters), e.g. `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub content_type: Option<String>,
    /// Tags of the vault secret (besides the ownership tags amlsecrets adds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 15))]
    #[x_kube(validation = Rule::new(TAGS_CEL).message(TAGS_MESSAGE))]
    pub tags: BTreeMap<String, String>,
    /// When the vault secret expires (RFC 3339, e.g. `2027-01-31T00:00:00Z`); Key Vault then
    /// refuses to serve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(TIME_CEL).message("expires must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"))]
    pub expires: Option<String>,
    /// When the vault secret becomes valid (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(TIME_CEL).message("notBefore must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"))]
    pub not_before: Option<String>,
}

/// What the operator last pushed, with provenance (never values).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSecretPushStatus {
    /// `Ready` says whether every item is in the vault as the source holds it, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The vault written (its URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// When the source and the vault were last compared (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// The vault secrets this push wrote (or adopted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<PushedItem>,
}

/// One vault secret this push wrote.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushedItem {
    /// The key of the source Secret.
    pub secret_key: String,
    /// The vault secret's name.
    pub remote_name: String,
    /// The version written last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When that version was written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// A keyed digest (HMAC-SHA256 under a key held only in the operator's memory, prefixed
    /// with that key's id) of what was written, to tell a change without reading the vault:
    /// never the value, nor a plain hash of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}
