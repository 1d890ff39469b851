//! Test environment for amlsecrets.
pub mod control_plane;
pub mod azure;
