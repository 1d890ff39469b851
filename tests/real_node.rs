//! End to end as users run it, on a real single-node cluster (`testenv::node`: kubelet,
//! containerd + runc, bridge CNI, controller-manager, scheduler): the image built from our
//! Dockerfile (`scripts/build-image.sh`), installed by `helm install` of the chart, syncing
//! Secrets that real pods mount and `envFrom`, rotation reaching a running pod, workload
//! identity from a projected token as on AKS, leader failover, a rolling restart, the chart's
//! RBAC as the pod's only rights, and memory under load against the chart's limit.
//!
//! One node serves every test; the tests take turns (each installs its own release and removes
//! it at the end) because an operator watching all namespaces would otherwise act on the other
//! tests' objects. Measured figures are printed as `real-node measurement: …` lines.

#[path = "real_node/support.rs"]
mod support;

#[path = "real_node/pods.rs"]
mod pods;
#[path = "real_node/release.rs"]
mod release;
#[path = "real_node/tenants.rs"]
mod tenants;
#[path = "real_node/workloads.rs"]
mod workloads;

#[path = "real_node/identity.rs"]
mod identity;
#[path = "real_node/install.rs"]
mod install;
#[path = "real_node/memory.rs"]
mod memory;
#[path = "real_node/rbac.rs"]
mod rbac;
#[path = "real_node/rollout.rs"]
mod rollout;
