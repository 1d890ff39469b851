//! Shared setup: the fakes, a client trusting their CA with fast retries, and a credential registry.

use std::sync::Arc;
use std::time::Duration;

use amlsecrets::api::workspace::CustomCloud;
use amlsecrets::azure::{
    AzureApi, AzureClient, AzureError, CloudEndpoints, Credential, CredentialRegistry,
    CredentialSpec, Http, HttpConfig, RetryPolicy,
};
use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};

/// The service principal registered with a secret.
pub const SP_CLIENT: &str = "11111111-0000-0000-0000-000000000001";
/// Its object id.
pub const SP_OID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// Its secret.
pub const SP_SECRET: &str = "planted-client-secret-Zq8~";

/// Everything a test needs.
pub struct Env {
    pub fakes: AzureFakes,
    pub cloud: CloudEndpoints,
    pub client: AzureClient,
    pub registry: CredentialRegistry,
}

/// Returns fast retries so tests stay quick.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_total: Duration::from_secs(3),
        ..RetryPolicy::default()
    }
}

/// Builds an HTTP client trusting `ca_pem`.
pub fn http(ca_pem: Option<String>, timeout: Duration) -> Http {
    Http::new(&HttpConfig {
        extra_ca_pem: ca_pem,
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(2),
        retry: fast_retry(),
    })
    .unwrap()
}

impl Env {
    /// Starts the fakes and registers the secret service principal.
    pub async fn start() -> Env {
        let fakes = AzureFakes::start().await;
        fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
        let cloud = CloudEndpoints::custom(&CustomCloud {
            authority_host: fakes.entra.authority_host.clone(),
            resource_manager_endpoint: fakes.arm.endpoint.clone(),
            resource_manager_audience: None,
            key_vault_dns_suffix: ".vault.test".into(),
            key_vault_audience: VAULT_AUDIENCE.into(),
        });
        let http = http(Some(fakes.ca.pem()), Duration::from_secs(5));
        Env {
            client: AzureClient::new(http.clone()),
            registry: CredentialRegistry::new(http),
            fakes,
            cloud,
        }
    }

    /// Returns the shared credential for `spec`.
    pub fn cred(&self, spec: CredentialSpec) -> Arc<Credential> {
        self.registry.credential(&self.cloud, spec).unwrap()
    }

    /// Returns the secret service principal's credential.
    pub fn sp(&self) -> Arc<Credential> {
        self.cred(CredentialSpec::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: SP_CLIENT.into(),
            secret: SP_SECRET.into(),
        })
    }

    /// Returns the vault URI of the default fake vault.
    pub fn vault(&self) -> String {
        self.fakes.vault.uri.clone()
    }
}

/// Puts `db-password` in the vault and reads it back with `cred`.
pub async fn reads_a_secret(
    env: &Env,
    cred: &amlsecrets::azure::Credential,
) -> Result<String, AzureError> {
    env.fakes
        .vault
        .put_secret("db-password", "s3cret-value", true, None);
    let s = env
        .client
        .get_secret(cred, &env.vault(), "db-password", None)
        .await?;
    Ok(s.value.expose().to_string())
}
