//! No planted secret value, client secret or token appears in the logs at TRACE level, with a
//! global subscriber in a binary of its own.

#[path = "azure_fakes/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "azure_fakes/logs.rs"]
mod logs;
