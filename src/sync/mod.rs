//! Pure sync logic: plan keys from the spec and listing, map keys, decode, assemble data while
//! keeping last good values, build the Secret. No IO.

pub mod assemble;
pub mod build;
pub mod claims;
pub mod connections;
pub mod decode;
pub mod dockerconfig;
pub mod endpoints;
pub mod keys;
pub mod plan;
pub mod push;
pub mod push_report;
pub mod report;
pub mod size;
pub mod status;
