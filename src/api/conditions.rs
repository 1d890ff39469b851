//! Status conditions shaped like `metav1.Condition`, and every reason the operator reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type both kinds report.
pub const READY: &str = "Ready";

/// Condition reasons, in one place: they are the vocabulary of status, Events and metric labels.
pub mod reasons {
    /// The workspace was resolved and a real call to its vault (or connections) succeeded.
    pub const RESOLVED: &str = "Resolved";
    /// Every item of a WorkspaceSecret is in its target Secret.
    pub const SYNCED: &str = "Synced";
    /// Entra ID (or IMDS) refused to issue a token.
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// Azure answered 403: the identity lacks a role or access policy.
    pub const FORBIDDEN: &str = "Forbidden";
    /// The workspace does not exist, or its resource group or subscription does not.
    pub const WORKSPACE_NOT_FOUND: &str = "WorkspaceNotFound";
    /// The Key Vault does not resolve, refuses TLS or cannot be reached.
    pub const VAULT_UNREACHABLE: &str = "VaultUnreachable";
    /// Azure throttled the operator; it backs off.
    pub const THROTTLED: &str = "Throttled";
    /// The spec is invalid in a way the schema cannot express.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The referenced AzureMLWorkspace is missing or not Ready.
    pub const WORKSPACE_NOT_READY: &str = "WorkspaceNotReady";
    /// The workspace has no customer Key Vault, so `keyvault:` references cannot be served.
    pub const NO_KEY_VAULT: &str = "NoKeyVault";
    /// A referenced secret (or connection) does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A referenced secret is disabled, expired or not yet valid.
    pub const SECRET_DISABLED: &str = "SecretDisabled";
    /// The target Secret exists and is not ours to write.
    pub const TARGET_CONFLICT: &str = "TargetConflict";
    /// The operator may not use the credentials this object asks for (ambient identity from a
    /// namespace that is not allowed, or a credential Secret that is missing).
    pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
    /// A network or server error that a retry may fix.
    pub const AZURE_ERROR: &str = "AzureError";
    /// A Kubernetes API call failed (the message names the call); retried with backoff.
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The synced data would exceed the 1 MiB a Secret may hold; nothing is written.
    pub const SECRET_TOO_LARGE: &str = "SecretTooLarge";
    /// Every item of a WorkspaceSecretPush is in the vault as its source Secret holds it.
    pub const PUSHED: &str = "Pushed";
    /// A WorkspaceSecretPush's source Secret, or a key it names, does not exist.
    pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
    /// A vault secret of that name is soft-deleted: the name cannot be written until it is
    /// recovered or purged (Key Vault's 409 `ObjectIsDeletedButRecoverable`).
    pub const DELETED_BUT_RECOVERABLE: &str = "DeletedButRecoverable";
}

/// Event reasons that are not condition reasons (a condition change is an Event with its reason).
pub mod events {
    /// Keys of the target Secret changed (the note names them, never values).
    pub const UPDATED: &str = "Updated";
    /// A synced vault secret expires within `--expiry-warning`.
    pub const SECRET_EXPIRING_SOON: &str = "SecretExpiringSoon";
    /// A workspace connection's credentials expire within `--expiry-warning`.
    pub const CONNECTION_EXPIRING: &str = "ConnectionExpiring";
    /// A workspace connection's credentials have expired.
    pub const CONNECTION_EXPIRED: &str = "ConnectionExpired";
    /// A WorkspaceSecretPush wrote new versions into the vault (the note names them, never values).
    pub const PUSHED_VERSIONS: &str = "PushedVersions";
    /// A WorkspaceSecretPush deleted vault secrets it had written (`deletionPolicy: Delete`).
    pub const DELETED_FROM_VAULT: &str = "DeletedFromVault";
    /// A deleted WorkspaceSecretPush (`deletionPolicy: Delete`) could not delete what it wrote
    /// for a reason a retry will not fix; the vault secrets remain (Warning).
    pub const DELETE_FAILED: &str = "DeleteFailed";
    /// Workloads following the target Secret were rolled (on the WorkspaceSecret and on each
    /// workload; the note names the Secret and the changed keys, never values).
    pub const ROLLED_OUT: &str = "RolledOut";
    /// A workload following the target Secret could not be rolled (the sync itself succeeded).
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    /// The operator may not read or patch workloads here, so rollout annotations are ignored.
    pub const ROLLOUT_NOT_PERMITTED: &str = "RolloutNotPermitted";
}

/// One observation of the object's state, shaped like `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type; `Ready` is the one both kinds report.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, one of the reasons documented in README.
    pub reason: String,
    /// What happened and what to do about it, for a person.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// Builds a `Ready` condition, keeping the previous transition time when the status did not change.
    pub fn ready(
        ok: bool,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
        previous: Option<&Condition>,
        now: &str,
    ) -> Self {
        let status = if ok { "True" } else { "False" };
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.to_string(),
        };
        Condition {
            r#type: READY.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time,
            observed_generation: generation,
        }
    }

    /// Tells whether this condition says `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Finds the `Ready` condition in a list.
pub fn find_ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.r#type == READY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_is_unchanged() {
        let first = Condition::ready(false, reasons::FORBIDDEN, "a", Some(1), None, "t1");
        let same = Condition::ready(false, reasons::THROTTLED, "b", Some(1), Some(&first), "t2");
        assert_eq!(same.last_transition_time, "t1");
        let flipped = Condition::ready(true, reasons::SYNCED, "c", Some(1), Some(&same), "t3");
        assert_eq!(flipped.last_transition_time, "t3");
        assert!(flipped.is_true());
    }
}
