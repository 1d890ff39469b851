//! Test environment for amlsecrets.
pub mod azure;
