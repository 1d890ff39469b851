//! Errors of Azure access, classified for people: each names what failed, who was refused, and what to check.

use std::time::Duration;

use crate::api::reasons;

/// Which Azure service answered (or failed to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The Entra ID token endpoint.
    EntraId,
    /// The Instance Metadata Service (managed identity).
    Imds,
    /// Azure Resource Manager.
    Arm,
    /// A Key Vault's data plane.
    KeyVault,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::EntraId => "Entra ID",
            Service::Imds => "the instance metadata service (IMDS)",
            Service::Arm => "Azure Resource Manager",
            Service::KeyVault => "Key Vault",
        })
    }
}

/// How a vault decides who may read it, as told by its 403 answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultPermissionModel {
    /// Azure RBAC (`ForbiddenByRbac`): a role assignment is missing.
    Rbac,
    /// Vault access policies: the caller is on no access policy, or the policy lacks the permission.
    AccessPolicy,
}

/// Why a network connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkFailure {
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (untrusted certificate, name mismatch, TLS-inspecting proxy).
    Tls,
    /// The TCP connection was refused or could not be made.
    Connect,
    /// No answer in time.
    Timeout,
    /// The connection broke while sending or receiving.
    Other,
}

impl std::fmt::Display for NetworkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkFailure::Dns => "DNS resolution failed",
            NetworkFailure::Tls => "the TLS handshake failed",
            NetworkFailure::Connect => "the connection could not be made",
            NetworkFailure::Timeout => "the request timed out",
            NetworkFailure::Other => "the connection failed",
        })
    }
}

/// Everything that can go wrong talking to Azure; messages never hold secret values or tokens.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum AzureError {
    /// Entra ID or IMDS refused to issue a token, or a given token was rejected.
    #[error("authentication failed for {principal}: {detail}{}", hint_suffix(.code))]
    AuthenticationFailed {
        /// Who tried (method, tenant and client ids).
        principal: String,
        /// The AADSTS error code, when Entra ID gave one.
        code: Option<u32>,
        /// What the service said (its description, without tokens).
        detail: String,
    },
    /// Azure answered 403: the principal lacks a role assignment or access policy.
    #[error("{principal} may not {action} on {resource}: {detail}")]
    Forbidden {
        /// Who was refused.
        principal: String,
        /// The missing permission (an ARM action or Key Vault data action).
        action: String,
        /// The resource (ARM id or vault URI).
        resource: String,
        /// For vaults: RBAC or access policies.
        model: Option<VaultPermissionModel>,
        /// What the service said and what to grant.
        detail: String,
    },
    /// ARM says the workspace (or its hub, resource group or subscription) does not exist.
    #[error("workspace {workspace} was not found ({code}): {detail}")]
    WorkspaceNotFound {
        /// The ARM id of the missing workspace.
        workspace: String,
        /// ARM's error code, e.g. `ResourceNotFound` or `ResourceGroupNotFound`.
        code: String,
        /// ARM's message.
        detail: String,
    },
    /// The vault does not resolve, refuses TLS or cannot be reached.
    #[error("vault {vault} is unreachable: {failure} ({detail})")]
    VaultUnreachable {
        /// The vault URI.
        vault: String,
        /// What kind of failure.
        failure: NetworkFailure,
        /// The underlying error, for a person.
        detail: String,
    },
    /// The secret (or that version of it) does not exist in the vault.
    #[error("secret {name}{} was not found in {vault}", version_suffix(.version))]
    SecretNotFound {
        /// The vault URI.
        vault: String,
        /// The secret's name.
        name: String,
        /// The version asked for, if any.
        version: Option<String>,
    },
    /// The workspace has no connection of that name (`listsecrets` or get answered 404).
    #[error(
        "workspace connection {connection} was not found in workspace {workspace} ({code}): check the name under Connections in Azure ML studio (names are case-sensitive) and that the identity reads the right workspace or project"
    )]
    ConnectionNotFound {
        /// The workspace's ARM id.
        workspace: String,
        /// The connection's name.
        connection: String,
        /// ARM's error code.
        code: String,
    },
    /// The workspace has no online endpoint, serverless endpoint or datastore of that name.
    #[error(
        "{kind} {name} was not found in workspace {workspace} ({code}): check the name in Azure ML studio (names are case-sensitive) and that the AzureMLWorkspace names the workspace or project that holds it"
    )]
    ResourceNotFound {
        /// The workspace's ARM id.
        workspace: String,
        /// What is missing: `online endpoint`, `serverless endpoint` or `datastore`.
        kind: String,
        /// Its name.
        name: String,
        /// ARM's error code.
        code: String,
    },
    /// The secret exists but is disabled, so its value cannot be read.
    #[error("secret {name} in {vault} is disabled; enable it in the vault or stop referencing it")]
    SecretDisabled {
        /// The vault URI.
        vault: String,
        /// The secret's name.
        name: String,
    },
    /// Azure throttled the caller (429) and retries ran out of time.
    #[error("{service} throttled the request{}", retry_suffix(.retry_after))]
    Throttled {
        /// Which service throttled.
        service: Service,
        /// How long the service asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A network failure reaching a service other than a vault.
    #[error("{service} at {endpoint} could not be reached: {failure} ({detail})")]
    Network {
        /// Which service.
        service: Service,
        /// Its endpoint (scheme, host and port).
        endpoint: String,
        /// What kind of failure.
        failure: NetworkFailure,
        /// The underlying error, for a person.
        detail: String,
    },
    /// The service answered with an error a retry did not fix, or that nothing here can fix.
    #[error("{service} answered {status} {code}: {detail}")]
    Server {
        /// Which service.
        service: Service,
        /// The HTTP status.
        status: u16,
        /// The service's error code, if any.
        code: String,
        /// The service's message.
        detail: String,
    },
    /// The credential material given to the operator is unusable (bad PEM, wrong PFX password, missing token).
    #[error("the credential is unusable: {0}")]
    InvalidCredential(String),
    /// The service answered in a shape this client does not understand.
    #[error("{service} answered unexpectedly: {detail}")]
    InvalidResponse {
        /// Which service.
        service: Service,
        /// What was wrong.
        detail: String,
    },
}

fn hint_suffix(code: &Option<u32>) -> String {
    code.and_then(aadsts_hint)
        .map(|h| format!(" — {h}"))
        .unwrap_or_default()
}

fn version_suffix(version: &Option<String>) -> String {
    version
        .as_ref()
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!("; it asked to retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

/// Explains a common AADSTS error code: what it means and what to check.
pub fn aadsts_hint(code: u32) -> Option<&'static str> {
    Some(match code {
        7000215 => {
            "AADSTS7000215: the client secret is wrong. Check that the Secret holds the secret's value (not its id) and that it has not expired or been rotated"
        }
        7000222 => {
            "AADSTS7000222: the client secret has expired. Create a new one and update the Secret"
        }
        700016 => {
            "AADSTS700016: no application with this client id exists in the tenant. Check the client id and tenant id, and that the app is registered (or consented) in that tenant"
        }
        70021 => {
            "AADSTS70021: no federated identity credential matches. Check the app's federated credential: issuer must be the cluster's OIDC issuer URL, subject system:serviceaccount:<namespace>:<serviceaccount>, audience api://AzureADTokenExchange"
        }
        700024 => {
            "AADSTS700024: the client assertion is expired or not yet valid. Check the clocks of the cluster and the projected token's lifetime"
        }
        700027 => {
            "AADSTS700027: the client assertion's signature did not verify. Check that the certificate uploaded to the app matches the private key in the Secret"
        }
        90002 => {
            "AADSTS90002: the tenant does not exist. Check the tenant id and the cloud (public, China, US Government)"
        }
        _ => return None,
    })
}

impl AzureError {
    /// Returns the condition reason (DESIGN.md) this error becomes in status, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AzureError::AuthenticationFailed { .. } => reasons::AUTHENTICATION_FAILED,
            AzureError::Forbidden { .. } => reasons::FORBIDDEN,
            AzureError::WorkspaceNotFound { .. } => reasons::WORKSPACE_NOT_FOUND,
            AzureError::VaultUnreachable { .. } => reasons::VAULT_UNREACHABLE,
            AzureError::SecretNotFound { .. }
            | AzureError::ConnectionNotFound { .. }
            | AzureError::ResourceNotFound { .. } => reasons::SECRET_NOT_FOUND,
            AzureError::SecretDisabled { .. } => reasons::SECRET_DISABLED,
            AzureError::Throttled { .. } => reasons::THROTTLED,
            AzureError::InvalidCredential(_) => reasons::CREDENTIALS_UNAVAILABLE,
            AzureError::Network { .. }
            | AzureError::Server { .. }
            | AzureError::InvalidResponse { .. } => reasons::AZURE_ERROR,
        }
    }

    /// Tells whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AzureError::Throttled { .. }
                | AzureError::Network { .. }
                | AzureError::VaultUnreachable { .. }
                | AzureError::Server { .. }
        )
    }

    /// Tells whether this is a definite per-secret (or per-connection) not-found: the only error
    /// that may delete data.
    pub fn is_secret_not_found(&self) -> bool {
        matches!(
            self,
            AzureError::SecretNotFound { .. }
                | AzureError::ConnectionNotFound { .. }
                | AzureError::ResourceNotFound { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_failure_message_explains_common_aadsts_codes() {
        for code in [7000215, 700016, 70021, 700024, 90002] {
            let e = AzureError::AuthenticationFailed {
                principal: "client 1".into(),
                code: Some(code),
                detail: format!("AADSTS{code}: x"),
            };
            let text = e.to_string();
            assert!(text.contains("Check"), "{text}");
            assert_eq!(e.reason(), "AuthenticationFailed");
        }
        assert!(aadsts_hint(12345).is_none());
    }

    #[test]
    fn every_error_class_maps_to_a_design_reason() {
        let vault = || "https://v".to_string();
        let cases = [
            (
                AzureError::Forbidden {
                    principal: "p".into(),
                    action: "a".into(),
                    resource: "r".into(),
                    model: Some(VaultPermissionModel::Rbac),
                    detail: "d".into(),
                },
                "Forbidden",
            ),
            (
                AzureError::WorkspaceNotFound {
                    workspace: "w".into(),
                    code: "c".into(),
                    detail: "d".into(),
                },
                "WorkspaceNotFound",
            ),
            (
                AzureError::VaultUnreachable {
                    vault: vault(),
                    failure: NetworkFailure::Dns,
                    detail: "d".into(),
                },
                "VaultUnreachable",
            ),
            (
                AzureError::SecretNotFound {
                    vault: vault(),
                    name: "n".into(),
                    version: None,
                },
                "SecretNotFound",
            ),
            (
                AzureError::SecretDisabled {
                    vault: vault(),
                    name: "n".into(),
                },
                "SecretDisabled",
            ),
            (
                AzureError::Throttled {
                    service: Service::KeyVault,
                    retry_after: None,
                },
                "Throttled",
            ),
            (
                AzureError::Server {
                    service: Service::Arm,
                    status: 500,
                    code: "c".into(),
                    detail: "d".into(),
                },
                "AzureError",
            ),
            (
                AzureError::InvalidCredential("bad pem".into()),
                "CredentialsUnavailable",
            ),
        ];
        for (e, reason) in cases {
            assert_eq!(e.reason(), reason, "{e}");
        }
    }

    #[test]
    fn only_secret_not_found_allows_deletion() {
        assert!(
            AzureError::SecretNotFound {
                vault: "v".into(),
                name: "n".into(),
                version: None
            }
            .is_secret_not_found()
        );
        assert!(
            !AzureError::Throttled {
                service: Service::KeyVault,
                retry_after: None
            }
            .is_secret_not_found()
        );
    }
}
