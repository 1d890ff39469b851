//! The custom resource types of `amlsecrets.io/v1alpha1`: plain data, schema and CEL rules; no IO.

pub mod conditions;
pub mod duration;
pub mod reference;
pub mod resource_ref;
pub mod workspace;
pub mod workspace_secret;
pub mod workspace_secret_push;

pub use conditions::{Condition, reasons};
pub use reference::{ConnectionPart, Reference, ReferenceError};
pub use resource_ref::{ResourceKind, ResourcePart, ResourceRef};
pub use workspace::{AzureMLWorkspace, AzureMLWorkspaceSpec, AzureMLWorkspaceStatus};
pub use workspace_secret::{WorkspaceSecret, WorkspaceSecretSpec, WorkspaceSecretStatus};
pub use workspace_secret_push::{
    WorkspaceSecretPush, WorkspaceSecretPushSpec, WorkspaceSecretPushStatus,
};

/// The API group of both kinds.
pub const GROUP: &str = "amlsecrets.io";
/// The API version of both kinds.
pub const VERSION: &str = "v1alpha1";

/// CEL fragment: a GUID as Azure prints it (case-insensitive hex, 8-4-4-4-12).
pub(crate) const GUID_CEL: &str =
    "self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')";
/// CEL fragment: a Kubernetes object name (RFC 1123 DNS subdomain).
pub(crate) const OBJECT_NAME_CEL: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// CEL fragment: a valid key of a Secret's `data` map.
pub(crate) const SECRET_KEY_CEL: &str = "self.matches('^[-._a-zA-Z0-9]+$')";

#[cfg(test)]
mod admission_tests;
