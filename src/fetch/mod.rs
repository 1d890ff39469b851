//! The fetch step of a reconcile: per-identity, per-vault views shared by every WorkspaceSecret,
//! so a vault is listed once per interval and a value is fetched again only when it changed.

pub mod vault;

pub use vault::{VaultView, VaultViews};
