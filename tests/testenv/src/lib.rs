//! Test environment for amlsecrets.
pub mod azure;
pub mod control_plane;
pub mod manifests;
pub mod node;
pub mod support;
