//! The controllers' errors: what failed, classified into condition reasons and retry behaviour.

use crate::api::conditions::reasons;
use crate::azure::AzureError;

/// Why a reconcile could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed (reading a referenced object, applying, updating status).
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// A named Kubernetes API call failed.
    #[error("Kubernetes API: cannot {call} {object}: {}", kube_message(.source))]
    KubeCall {
        /// What was being done (`apply Secret`, `read Secret`…).
        call: &'static str,
        /// The object's name.
        object: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
    /// The data would not fit in a Secret.
    #[error("{0}")]
    TooLarge(String),
    /// Azure refused or failed.
    #[error("{0}")]
    Azure(#[from] AzureError),
    /// The credentials named by the spec cannot be used (missing Secret or key, ambient identity not allowed).
    #[error("{0}")]
    CredentialsUnavailable(String),
    /// The spec is invalid in a way admission cannot catch.
    #[error("{0}")]
    InvalidSpec(String),
    /// The referenced workspace is missing or not Ready.
    #[error("{0}")]
    WorkspaceNotReady(String),
    /// The referenced workspace has not been checked yet since it was created or changed: not a
    /// failure, so no Warning; its status change wakes the WorkspaceSecret.
    #[error("{0}")]
    WorkspacePending(String),
    /// The workspace has no Key Vault but a vault reference asks for one.
    #[error("{0}")]
    NoKeyVault(String),
    /// The target Secret is not ours to write.
    #[error("{0}")]
    TargetConflict(String),
}

impl Error {
    /// Returns the condition reason (also the Event reason and metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) | Error::KubeCall { .. } => reasons::KUBERNETES_ERROR,
            Error::TooLarge(_) => reasons::SECRET_TOO_LARGE,
            Error::Azure(e) => e.reason(),
            Error::CredentialsUnavailable(_) => reasons::CREDENTIALS_UNAVAILABLE,
            Error::InvalidSpec(_) => reasons::INVALID_SPEC,
            Error::WorkspaceNotReady(_) | Error::WorkspacePending(_) => {
                reasons::WORKSPACE_NOT_READY
            }
            Error::NoKeyVault(_) => reasons::NO_KEY_VAULT,
            Error::TargetConflict(_) => reasons::TARGET_CONFLICT,
        }
    }

    /// Tells whether retrying soon may help without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(_) | Error::KubeCall { .. } => true,
            Error::Azure(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl Error {
    /// Wraps a failed Kubernetes call with what it was doing and on which object.
    pub fn kube(call: &'static str, object: &str, source: kube::Error) -> Self {
        Error::KubeCall {
            call,
            object: object.to_string(),
            source,
        }
    }
}

/// The API server's own message for an API error (its status text), else the error's display.
fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
