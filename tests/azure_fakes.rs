//! Azure access against the in-process fakes: every credential type, token caching, workspace
//! discovery, the Key Vault client, every error class, and no secret in the logs.

mod azure_fakes {
    pub mod arm;
    pub mod credentials;
    pub mod errors;
    pub mod keyvault;
    pub mod logs;
    pub mod support;
    pub mod workload_k8s;
}
