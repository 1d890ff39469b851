//! amlsecrets: a Kubernetes operator that syncs the secrets of Azure Machine Learning
//! workspaces (Key Vault items and workspace connection credentials) into Kubernetes Secrets.
//!
//! Pipeline: [`api`] (types) → `azure` (remote IO) → `sync` (pure) → `controller` (kube IO).

// A `pub` item the crate does not export is `pub(crate)` (or gone), so `pub` means API.
#![warn(unreachable_pub)]

pub mod api;
pub mod azure;
pub mod cli;
pub mod config;
pub mod controller;
pub mod crds;
mod digest;
pub mod fetch;
pub mod health;
mod idle_map;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod rollout;
pub mod server;
pub mod sync;
pub mod telemetry;
