//! `AzureMLWorkspace`: one Azure ML workspace and the identity used to reach it.

// The `KubeSchema` derive emits a private copy of each type it builds a schema for, which
// `unreachable_pub` reports as an unexported `pub` item; the types themselves are exported.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::conditions::Condition;

/// Which Azure cloud the workspace lives in.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Cloud {
    /// Azure public cloud (login.microsoftonline.com, management.azure.com, *.vault.azure.net).
    #[default]
    AzurePublicCloud,
    /// Azure operated by 21Vianet (China).
    AzureChinaCloud,
    /// Azure US Government.
    AzureUSGovernmentCloud,
    /// Endpoints given in `customCloud` (Azure Stack, sovereign clouds, local emulators).
    Custom,
}

/// The spec of an `AzureMLWorkspace`: which workspace, in which cloud, reached how.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlsecrets.io",
    version = "v1alpha1",
    kind = "AzureMLWorkspace",
    plural = "azuremlworkspaces",
    shortname = "amlws",
    category = "amlsecrets",
    namespaced,
    status = "AzureMLWorkspaceStatus",
    doc = "An Azure Machine Learning workspace, how to authenticate to it, and what the operator found.",
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspaceName"}"#,
    printcolumn = r#"{"name":"Vault","type":"string","jsonPath":".status.keyVault.uri"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.cloud == 'Custom' ? has(self.customCloud) : !has(self.customCloud)").message("customCloud must be set exactly when cloud is Custom").field_path(".customCloud"))]
#[serde(rename_all = "camelCase")]
pub struct AzureMLWorkspaceSpec {
    /// The Azure subscription id (a GUID) that holds the workspace.
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("subscriptionId must be a GUID"))]
    pub subscription_id: String,
    /// The resource group of the workspace (1-90 characters: letters, digits, `_ - . ( )`, not ending in `.`).
    #[schemars(length(max = 90))]
    #[x_kube(validation = Rule::new("self.matches('^[-a-zA-Z0-9_.()]{0,89}[-a-zA-Z0-9_()]$')").message("resourceGroup must be 1-90 letters, digits, '_', '-', '.', '(' or ')' and must not end with '.'"))]
    pub resource_group: String,
    /// The Azure ML workspace name (3-33 characters: letters, digits, `-` and `_`, starting with a letter or digit).
    #[schemars(length(max = 33))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$')").message("workspaceName must be 3-33 letters, digits, '-' or '_', starting with a letter or digit"))]
    pub workspace_name: String,
    /// The Azure cloud: `AzurePublicCloud` (default), `AzureChinaCloud`, `AzureUSGovernmentCloud` or `Custom`.
    #[serde(default)]
    pub cloud: Cloud,
    /// The endpoints of a `Custom` cloud; required exactly when `cloud` is `Custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cloud: Option<CustomCloud>,
    /// Use this Key Vault instead of discovering the workspace's vault through ARM (then no ARM
    /// permission is needed for vault references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<KeyVaultOverride>,
    /// How the operator authenticates to Azure for this workspace: exactly one method.
    pub auth: Auth,
}

/// CEL rule text: the string is an https URL.
const HTTPS_CEL: &str = "self.matches('^https://[^ ]+$')";

/// Endpoints of a custom Azure cloud.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomCloud {
    /// The Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_CEL).message("authorityHost must be an https URL"))]
    pub authority_host: String,
    /// The Azure Resource Manager endpoint, e.g. `https://management.azure.com`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_CEL).message("resourceManagerEndpoint must be an https URL"))]
    pub resource_manager_endpoint: String,
    /// The token audience of ARM; defaults to `resourceManagerEndpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_CEL).message("resourceManagerAudience must be an https URL"))]
    pub resource_manager_audience: Option<String>,
    /// The DNS suffix of vaults, with its leading dot, e.g. `.vault.azure.net`.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[.][a-zA-Z0-9.-]+(:[0-9]{1,5})?$')").message("keyVaultDnsSuffix must start with '.' and be a DNS suffix, e.g. .vault.azure.net"))]
    pub key_vault_dns_suffix: String,
    /// The token audience of Key Vault, e.g. `https://vault.azure.net`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_CEL).message("keyVaultAudience must be an https URL"))]
    pub key_vault_audience: String,
}

/// An explicit vault for `keyvault:` references.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultOverride {
    /// The vault URI, e.g. `https://myvault.vault.azure.net`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_CEL).message("keyVault.uri must be an https URL"))]
    pub uri: String,
}

/// The authentication method; exactly one field is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("[has(self.workloadIdentity), has(self.managedIdentity), has(self.servicePrincipal), has(self.token), has(self.azureCli)].filter(x, x).size() == 1").message("auth must set exactly one of workloadIdentity, managedIdentity, servicePrincipal, token, azureCli"))]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Entra workload identity: a token of a ServiceAccount, exchanged at Entra ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// The managed identity of the node or pod (IMDS). Only allowed in namespaces the platform
    /// admin lists in the operator's `--ambient-identity-namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentity>,
    /// An Entra application (service principal) with a client secret or certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<ServicePrincipal>,
    /// Pre-issued bearer tokens, kept fresh by someone else, read from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAuth>,
    /// The account the Azure CLI signed in (`az login`) on the machine the operator runs on, for
    /// running the operator on your own computer against a dev cluster. Accepted only when the
    /// operator was started with `--allow-azure-cli-auth` (the chart never sets it), and only in
    /// namespaces allowed to use ambient identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_cli: Option<AzureCliAuth>,
}

/// The Azure CLI's signed-in account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AzureCliAuth {
    /// The tenant to ask the CLI for (`az account get-access-token --tenant`); default: the
    /// CLI's current tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("tenantId must be a GUID"))]
    pub tenant_id: Option<String>,
}

/// Workload identity federation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// A ServiceAccount in this namespace whose token (audience `api://AzureADTokenExchange`)
    /// is exchanged at Entra ID. When omitted, the operator's own projected token is used, which
    /// is only allowed in namespaces listed in `--ambient-identity-namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("serviceAccountName must be a valid object name"))]
    pub service_account_name: Option<String>,
    /// The application (client) id of the federated identity; defaults to the ServiceAccount's
    /// `azure.workload.identity/client-id` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("clientId must be a GUID"))]
    pub client_id: Option<String>,
    /// The tenant id; defaults to the ServiceAccount's `azure.workload.identity/tenant-id` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("tenantId must be a GUID"))]
    pub tenant_id: Option<String>,
}

/// A managed identity reached through IMDS; none of the fields means system-assigned.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("[has(self.clientId), has(self.objectId), has(self.resourceId)].filter(x, x).size() <= 1").message("managedIdentity takes at most one of clientId, objectId, resourceId"))]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentity {
    /// The client id of a user-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("clientId must be a GUID"))]
    pub client_id: Option<String>,
    /// The object (principal) id of a user-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("objectId must be a GUID"))]
    pub object_id: Option<String>,
    /// The ARM resource id of a user-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("self.matches('^/subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/Microsoft.ManagedIdentity/userAssignedIdentities/[^/]+$')").message("resourceId must be the ARM id of a user-assigned identity"))]
    pub resource_id: Option<String>,
}

/// An Entra application with a secret or a certificate kept in a Secret of this namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.clientSecretRef) != has(self.clientCertificateRef)").message("servicePrincipal takes exactly one of clientSecretRef, clientCertificateRef"))]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The tenant id (a GUID).
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("tenantId must be a GUID"))]
    pub tenant_id: String,
    /// The application (client) id (a GUID).
    #[schemars(length(max = 36))]
    #[x_kube(validation = Rule::new(super::GUID_CEL).message("clientId must be a GUID"))]
    pub client_id: String,
    /// The Secret key holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// The Secret holding the client certificate and its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<CertificateRef>,
}

/// One key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("name must be a valid object name"))]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("key must be a valid Secret key"))]
    pub key: String,
}

/// How a client certificate is stored.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum CertificateFormat {
    /// PEM: the certificate and an RSA private key, in one Secret key or two.
    #[default]
    Pem,
    /// PKCS#12 (PFX), optionally protected by a password.
    Pfx,
}

/// A client certificate in a Secret of the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRef {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("name must be a valid object name"))]
    pub name: String,
    /// `Pem` (default) or `Pfx`.
    #[serde(default)]
    pub format: CertificateFormat,
    /// The key holding the PEM certificate (default `tls.crt`) or the PFX file (default `certificate.pfx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("certificateKey must be a valid Secret key"))]
    pub certificate_key: Option<String>,
    /// For `Pem`: the key holding the private key (default `tls.key`); may name the same key as
    /// `certificateKey` when one PEM holds both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("privateKeyKey must be a valid Secret key"))]
    pub private_key_key: Option<String>,
    /// For `Pfx`: the key holding the PFX password, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("passwordKey must be a valid Secret key"))]
    pub password_key: Option<String>,
}

/// Pre-issued bearer tokens per audience, read from a Secret of the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuth {
    /// The Secret holding the tokens.
    pub secret_ref: TokenSecretRef,
}

/// Where the pre-issued tokens are.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::OBJECT_NAME_CEL).message("name must be a valid object name"))]
    pub name: String,
    /// The key with the ARM (management) token (default `armToken`); needed for discovery and connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("armTokenKey must be a valid Secret key"))]
    pub arm_token_key: Option<String>,
    /// The key with the Key Vault token (default `keyVaultToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(super::SECRET_KEY_CEL).message("keyVaultTokenKey must be a valid Secret key"))]
    pub key_vault_token_key: Option<String>,
}

/// What the operator found out about the workspace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureMLWorkspaceStatus {
    /// `Ready` says whether a real call to the workspace's vault (or connections) succeeded, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The workspace as ARM describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceInfo>,
    /// The Key Vault that serves `keyvault:` references; absent when the workspace has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<KeyVaultInfo>,
    /// Who the operator authenticated as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityInfo>,
    /// When the operator last checked access (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<String>,
}

/// The workspace as ARM describes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceInfo {
    /// The ARM resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// `Default`, `Hub`, `Project` or `FeatureStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Azure region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The workspace's immutable GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// For a project: the hub it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_resource_id: Option<String>,
}

/// The vault that serves `keyvault:` references.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultInfo {
    /// The vault's ARM resource id (absent when `spec.keyVault.uri` was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The vault's data-plane URI.
    pub uri: String,
    /// Where the vault came from: `Spec`, `Workspace` or `Hub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Who the operator authenticated as (from the token's claims; never the token).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityInfo {
    /// The authentication method used.
    pub method: String,
    /// The tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The principal's object id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Extra facts, e.g. the ServiceAccount used for workload identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}
