//! The fetch step of a reconcile: per-identity views of vaults and connections shared by every
//! WorkspaceSecret, so a vault is listed (and a connection read) once per interval and a vault
//! value is fetched again only when it changed.

pub mod budget;
pub mod connection;
pub mod vault;

pub use connection::{ConnectionView, ConnectionViews};
pub use vault::{VaultView, VaultViews};
