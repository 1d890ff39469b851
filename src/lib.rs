//! amlsecrets: a Kubernetes operator that syncs the secrets of Azure Machine Learning
//! workspaces (Key Vault items and workspace connection credentials) into Kubernetes Secrets.
//!
//! Pipeline: [`api`] (types) → `azure` (remote IO) → `sync` (pure) → `controller` (kube IO).

pub mod api;
pub mod azure;
pub mod config;
pub mod controller;
pub mod crds;
pub mod fetch;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod rollout;
pub mod server;
pub mod sync;
pub mod telemetry;
