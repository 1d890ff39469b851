//! The fetch step of a reconcile, in one home: per-identity views of vaults, connections, endpoints
//! and datastores shared by every WorkspaceSecret (a vault is listed, and a connection, endpoint
//! or datastore read, once per interval; a vault value is fetched again only when it changed), and
//! the per-item fetches over them. Everything here takes its dependencies explicitly ([`Deps`]),
//! not the controller's context.

pub mod budget;
pub mod clock;
pub mod connection;
pub mod connections;
pub mod endpoint;
pub mod endpoints;
pub mod items;
pub mod vault;

pub use clock::{Interest, Reader, Wake};
pub use connection::{ConnectionView, ConnectionViews};
pub use endpoint::{EndpointViews, ResourceView};
pub use vault::{Clock, VaultView, VaultViews};

use crate::azure::AzureApi;

/// What fetching needs: Azure access and the shared views.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    /// The Azure calls (the narrow trait tests and benchmarks count and fault).
    pub azure: &'a dyn AzureApi,
    /// The shared vault views.
    pub vaults: &'a VaultViews,
    /// The shared connection views.
    pub connections: &'a ConnectionViews,
    /// The shared endpoint and datastore views.
    pub endpoints: &'a EndpointViews,
}
