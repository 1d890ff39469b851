//! Azure access against the in-process fakes: every credential type, token caching, workspace
//! discovery, the Key Vault client and every error class. (The log-hygiene test runs in its own
//! binary, `tests/azure_logs.rs`, so that its subscriber sees every thread.)

mod azure_fakes {
    pub mod arm;
    pub mod certificates;
    pub mod credentials;
    pub mod errors;
    pub mod keyvault;
    pub mod support;
    pub mod transient;
    pub mod workload_k8s;
}
