//! `WorkspaceSecret`: which workspace secrets become which Kubernetes Secret, refreshed how often.

// The `KubeSchema` derive emits a private copy of each type it builds a schema for, which
// `unreachable_pub` reports as an unexported `pub` item; the types themselves are exported.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::reference::{cel_quote, data_from_ref_regex, data_ref_regex};

/// The default `refreshInterval`.
pub const DEFAULT_REFRESH_INTERVAL: &str = "1h";

fn data_ref_rule() -> String {
    format!("self.matches({})", cel_quote(&data_ref_regex()))
}

fn data_from_ref_rule() -> String {
    format!("self.matches({})", cel_quote(&data_from_ref_regex()))
}

/// Datastore credentials are account-wide: a WorkspaceSecret reads them only when it says so.
const DATASTORE_OPT_IN_RULE: &str = "(has(self.allowDatastoreCredentials) && self.allowDatastoreCredentials) || ((!has(self.data) || self.data.all(d, !d.ref.contains('azureml://datastores/'))) && (!has(self.dataFrom) || self.dataFrom.all(d, !has(d.ref) || !d.ref.contains('azureml://datastores/'))))";

/// The spec of a `WorkspaceSecret`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlsecrets.io",
    version = "v1alpha1",
    kind = "WorkspaceSecret",
    plural = "workspacesecrets",
    shortname = "wsec",
    category = "amlsecrets",
    namespaced,
    status = "WorkspaceSecretStatus",
    doc = "Syncs secrets of an Azure ML workspace (Key Vault items, connection credentials, endpoint keys and tokens, datastore credentials) into a Kubernetes Secret.",
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspaceRef.name"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.targetName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Refreshed","type":"date","jsonPath":".status.refreshTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0)").message("set at least one item in data or dataFrom").field_path(".data"))]
#[x_kube(validation = Rule::new(DATASTORE_OPT_IN_RULE).message("azureml://datastores/ references read account-wide storage credentials: set allowDatastoreCredentials: true to opt in").field_path(".allowDatastoreCredentials"))]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSecretSpec {
    /// The `AzureMLWorkspace` in this namespace to read from.
    pub workspace_ref: WorkspaceRef,
    /// How often to re-check the sources: a duration between `10s` and `720h` (30 days), or `0`
    /// to sync once. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self == '0' || (self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('720h'))").message("refreshInterval must be 0 or a duration between 10s and 720h (30 days), e.g. 1h or 90s"))]
    pub refresh_interval: Option<String>,
    /// The Kubernetes Secret to write.
    #[serde(default)]
    pub target: Target,
    /// Explicit items: one Secret key per reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.key == x.key))").message("data has duplicate keys: each key may appear once"))]
    pub data: Vec<DataItem>,
    /// Bulk items: every secret of the vault matching a filter, or every value of a connection,
    /// endpoint or datastore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub data_from: Vec<DataFrom>,
    /// Opt in to `azureml://datastores/…` references. A datastore's credentials (an account key,
    /// a SAS token, a service principal's secret) reach the whole storage account or container,
    /// not one path, so reading them is never implied. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_datastore_credentials: bool,
}

/// A reference to an `AzureMLWorkspace` in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRef {
    /// The `AzureMLWorkspace`'s name.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("workspaceRef.name must be a valid object name (lowercase letters, digits, '-' and '.')"))]
    pub name: String,
}

/// Who owns the target Secret.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum CreationPolicy {
    /// The operator creates and owns the Secret (ownerReference); it never takes over a Secret it does not own.
    #[default]
    Owner,
    /// The operator writes only its keys into an existing Secret, which must exist.
    Merge,
    /// Like `Owner` but without an ownerReference: the Secret outlives the WorkspaceSecret.
    Orphan,
}

/// What happens to synced data when its source is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Keep the last good value and report `SecretNotFound`.
    #[default]
    Retain,
    /// Remove the key (or the whole Secret when the operator owns it and no key remains).
    Delete,
}

/// The Kubernetes Secret the operator writes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The Secret's name; defaults to the WorkspaceSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("target.name must be a valid object name"))]
    pub name: Option<String>,
    /// The Secret's type (default `Opaque`); never `kubernetes.io/service-account-token` or a bootstrap token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self != 'kubernetes.io/service-account-token' && self != 'bootstrap.kubernetes.io/token'").message("target.type may not be kubernetes.io/service-account-token or bootstrap.kubernetes.io/token"))]
    pub r#type: Option<String>,
    /// Labels to set on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Owner` (default), `Merge` or `Orphan`.
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    /// `Retain` (default) or `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// What to do with a key that already exists in the Secret, written by someone else:
    /// `Refuse` (default: `TargetConflict` naming the key and its manager) or `TakeOver` (the
    /// value is overwritten and the key removed when this WorkspaceSecret releases it; the
    /// original value is not restored). A key another WorkspaceSecret writes is never taken over.
    #[serde(default)]
    pub existing_keys: ExistingKeys,
}

/// What happens to a key of the target Secret that someone else wrote.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ExistingKeys {
    /// Leave it alone and report `TargetConflict` naming the key and its current manager.
    #[default]
    Refuse,
    /// Overwrite it and own it from then on; the original value is not restored later.
    TakeOver,
}

/// How a fetched value is turned into Secret bytes.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Decode {
    /// Use the value as it is (default).
    #[default]
    None,
    /// The value is base64: decode it, and fail the item when it is not valid base64.
    Base64,
    /// Decode when the value is valid base64, else use it as it is.
    Auto,
}

/// One explicit item.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataItem {
    /// The key in the target Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("key must be a valid Secret key: letters, digits, '-', '_' or '.'"))]
    pub key: String,
    /// What to read: `keyvault:<name>[/<version>]`, `keyvault:https://<vault>/secrets/<name>[/<version>]`,
    /// `azureml://connections/<c>/credentials/<field>`, `…/metadata/<key>` or `…/target`,
    /// `azureml://onlineEndpoints/<e>/keys/primary|secondary`, `…/token` or `…/scoringUri`,
    /// `azureml://serverlessEndpoints/<e>/keys/primary|secondary` or `…/uri`,
    /// `azureml://datastores/<d>/credentials/<field>`; the `${{ }}` wrapper is optional.
    #[serde(rename = "ref")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new(data_ref_rule()).message("ref must be keyvault:<name>[/<32-hex version>], keyvault:https://<vault>/secrets/<name>[/<version>], azureml://connections/<name>/credentials/<key>, .../metadata/<key> or .../target, azureml://onlineEndpoints/<name>/keys/primary|secondary, .../token or .../scoringUri, azureml://serverlessEndpoints/<name>/keys/primary|secondary or .../uri, or azureml://datastores/<name>/credentials/<field> (optionally wrapped in ${{ }})"))]
    pub reference: String,
    /// `None` (default), `Base64` or `Auto`.
    #[serde(default)]
    pub decode: Decode,
}

/// One bulk item: exactly one of `find` and `ref`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.find) != has(self.ref)").message("each dataFrom item takes exactly one of find, ref"))]
#[serde(rename_all = "camelCase")]
pub struct DataFrom {
    /// Every enabled secret of the workspace's vault that matches these filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<Find>,
    /// Every value of a workspace connection, endpoint or datastore: `azureml://connections/<name>`,
    /// `azureml://onlineEndpoints/<name>`, `azureml://serverlessEndpoints/<name>` or
    /// `azureml://datastores/<name>`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new(data_from_ref_rule()).message("dataFrom ref must be azureml://connections/<name>, azureml://onlineEndpoints/<name>, azureml://serverlessEndpoints/<name> or azureml://datastores/<name> (optionally wrapped in ${{ }})"))]
    pub reference: Option<String>,
    /// How source names become Secret keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyMapping>,
    /// `None` (default), `Base64` or `Auto`.
    #[serde(default)]
    pub decode: Decode,
}

/// A filter over the vault's secrets; at least one of `nameRegex` and `tags` (syncing a whole
/// workspace vault, which also holds Azure ML's own secrets, is never implied).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.nameRegex) || (has(self.tags) && size(self.tags) > 0)").message("find needs nameRegex or tags"))]
#[serde(rename_all = "camelCase")]
pub struct Find {
    /// A regular expression (RE2 syntax) the secret name must match, e.g. `^app1-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub name_regex: Option<String>,
    /// Tags the secret must carry, all of them, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Key style applied after the rewrites.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum KeyStyle {
    /// Keep the name as it is (default).
    #[default]
    Preserve,
    /// `db-password` becomes `DB_PASSWORD`, `apiKey` becomes `API_KEY`: ready for `envFrom`.
    UpperSnake,
}

/// How source names become Secret keys: first each rewrite in order, then the style.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyMapping {
    /// Regex rewrites applied in order, e.g. `{regex: "^app1-", replace: ""}` strips a prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rewrite: Vec<Rewrite>,
    /// `Preserve` (default) or `UpperSnake`.
    #[serde(default)]
    pub style: KeyStyle,
}

/// One regex rewrite of a key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// The regular expression to match in the name.
    #[schemars(length(max = 1024))]
    pub regex: String,
    /// The replacement; `$1`, `${name}` refer to capture groups.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub replace: String,
}

/// What the operator last synced, with provenance (never values).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSecretStatus {
    /// `Ready` says whether the target Secret holds every item, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The name of the Secret written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    /// When a sync last changed this status (RFC 3339): a key's version or source, a condition,
    /// an expiry warning. A refresh that finds nothing changed writes no status, so this is not
    /// the time of the last check (the metric amlsecrets_secret_last_sync_timestamp_seconds is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// Where each key of the target Secret came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synced_keys: Vec<SyncedKey>,
}

/// The provenance of one key of the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncedKey {
    /// The key in the target Secret.
    pub key: String,
    /// The reference it was read from.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The Key Vault secret version, when the source is a vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the source last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// When the source expires (RFC 3339), if it has an expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// For connections: the authType and category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_kind: Option<String>,
    /// For endpoints and datastores: the kind and how it authenticates, e.g.
    /// `onlineEndpoint/Key`, `onlineEndpoint/AMLToken`, `datastore/AccountKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_kind: Option<String>,
    /// Whether this key holds an older value because the source could not be read (see `Ready`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}
