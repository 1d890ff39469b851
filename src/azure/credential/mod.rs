//! Credentials: plain, kube-free inputs built by the controller, and the `Credential` that turns
//! them into cached bearer tokens and reports who it is (never the token).

mod azure_cli;
mod certificate;
pub mod device_code;
mod entra;
mod imds;
pub mod jwt;
pub mod login_cache;
mod static_tokens;
mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use certificate::CertificateMaterial;
pub use device_code::{DeviceCodePrompt, Prompter};
pub use imds::{DEFAULT_IMDS_ENDPOINT, ManagedIdentityId};
pub use workload::{AssertionSource, FileAssertionSource};

use super::BoxFuture;
use super::cloud::CloudEndpoints;
use super::error::AzureError;
use super::http::Http;
use super::redact::SecretString;
use super::token_cache::{AccessToken, TokenCache};

/// What the controller read from the spec and its Secrets: one way to authenticate.
#[derive(Clone)]
pub enum CredentialSpec {
    /// A service principal with a client secret.
    ClientSecret {
        /// The tenant id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        secret: SecretString,
    },
    /// A service principal with a certificate (PEM or PFX).
    ClientCertificate {
        /// The tenant id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The certificate and its private key.
        certificate: CertificateMaterial,
    },
    /// Workload identity federation: a service-account token exchanged at Entra ID.
    WorkloadIdentity {
        /// The tenant id.
        tenant_id: String,
        /// The application (client) id of the federated identity.
        client_id: String,
        /// Where fresh service-account tokens come from.
        assertion: Arc<dyn AssertionSource>,
    },
    /// A managed identity through IMDS.
    ManagedIdentity {
        /// Which identity of the node.
        identity: ManagedIdentityId,
        /// The IMDS base URL (default [`DEFAULT_IMDS_ENDPOINT`]).
        endpoint: String,
    },
    /// The account the Azure CLI (`az login`) signed in, on this machine.
    AzureCli {
        /// The tenant to ask the CLI for (`--tenant`); default: the CLI's current one.
        tenant_id: Option<String>,
    },
    /// Pre-issued bearer tokens per audience, kept fresh by someone else.
    Tokens {
        /// The ARM token, if given.
        arm: Option<SecretString>,
        /// The Key Vault token, if given.
        key_vault: Option<SecretString>,
    },
}

impl fmt::Debug for CredentialSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSpec::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            CredentialSpec::ClientCertificate {
                tenant_id,
                client_id,
                certificate,
            } => f
                .debug_struct("ClientCertificate")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("certificate", certificate)
                .finish(),
            CredentialSpec::WorkloadIdentity {
                tenant_id,
                client_id,
                assertion,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("assertion", &assertion.id())
                .finish(),
            CredentialSpec::ManagedIdentity { identity, endpoint } => f
                .debug_struct("ManagedIdentity")
                .field("identity", identity)
                .field("endpoint", endpoint)
                .finish(),
            CredentialSpec::AzureCli { tenant_id } => f
                .debug_struct("AzureCli")
                .field("tenant_id", tenant_id)
                .finish(),
            CredentialSpec::Tokens { arm, key_vault } => f
                .debug_struct("Tokens")
                .field("arm", &arm.as_ref().map(|_| "<redacted>"))
                .field("key_vault", &key_vault.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

impl CredentialSpec {
    /// Returns the method's name as status reports it.
    pub fn method(&self) -> &'static str {
        match self {
            CredentialSpec::ClientSecret { .. } => "ServicePrincipalSecret",
            CredentialSpec::ClientCertificate { .. } => "ServicePrincipalCertificate",
            CredentialSpec::WorkloadIdentity { .. } => "WorkloadIdentity",
            CredentialSpec::ManagedIdentity { .. } => "ManagedIdentity",
            CredentialSpec::AzureCli { .. } => AZURE_CLI_METHOD,
            CredentialSpec::Tokens { .. } => PRE_ISSUED_METHOD,
        }
    }
}

/// Who a credential authenticates as: method, tenant, client and object ids (from token claims).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The authentication method.
    pub method: String,
    /// The tenant id.
    pub tenant_id: Option<String>,
    /// The application (client) id.
    pub client_id: Option<String>,
    /// The principal's object id (the `oid` claim of a JWT access token).
    pub object_id: Option<String>,
    /// Extra facts, e.g. the ServiceAccount of workload identity or the managed identity selector.
    pub details: BTreeMap<String, String>,
}

/// The method of pre-issued tokens (`spec.auth.token`), as status and metrics name it.
pub const PRE_ISSUED_METHOD: &str = "Token";

/// The method of the Azure CLI's signed-in account (`spec.auth.azureCli`, `--auth azure-cli`).
pub const AZURE_CLI_METHOD: &str = "AzureCli";

/// The method of an interactive (device-code) sign-in on a laptop.
pub const INTERACTIVE_METHOD: &str = "Interactive";

/// Returns how messages name an authentication method: its status name, except `Token`, which
/// reads "pre-issued token" everywhere (status keeps `Token`).
pub fn method_label(method: &str) -> &str {
    if method == PRE_ISSUED_METHOD {
        "pre-issued token"
    } else {
        method
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", method_label(&self.method))?;
        if let Some(c) = &self.client_id {
            write!(f, " client {c}")?;
        }
        if let Some(o) = &self.object_id {
            write!(f, " (object {o})")?;
        }
        if let Some(t) = &self.tenant_id {
            write!(f, " in tenant {t}")?;
        }
        for (k, v) in &self.details {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

impl Identity {
    /// Learns tenant, client and object ids from an access token's claims, when it is a JWT.
    pub fn learn_from_token(&mut self, token: &str) {
        let Some(claims) = jwt::claims(token) else {
            return;
        };
        let get = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(oid) = get("oid") {
            self.object_id = Some(oid);
        }
        if self.tenant_id.is_none() {
            self.tenant_id = get("tid");
        }
        // A signed-in user's token names the tool's app (the Azure CLI's), not the principal.
        let user = matches!(self.method.as_str(), AZURE_CLI_METHOD | INTERACTIVE_METHOD);
        if self.client_id.is_none() && !user {
            self.client_id = get("appid").or_else(|| get("azp"));
        }
        // A signed-in user (Azure CLI, interactive) is named by its sign-in name.
        if let Some(user) = get("upn").or_else(|| get("unique_name")) {
            self.details.insert("user".into(), user);
        }
    }
}

/// Fetches tokens for one identity; one implementation per method.
pub(crate) trait TokenSource: Send + Sync {
    /// Fetches a new token for a v2 scope (`{audience}/.default`).
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>>;
}

/// One identity with its token cache, shared by everything that uses it.
pub struct Credential {
    cloud: CloudEndpoints,
    source: Box<dyn TokenSource>,
    cache: TokenCache,
    http: Http,
    identity: Mutex<Identity>,
    fetches: AtomicU64,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("identity", &self.identity())
            .field("cloud", &self.cloud.name)
            .finish()
    }
}

impl Credential {
    /// Builds a credential for a cloud; checks certificate material up front.
    pub fn new(
        spec: CredentialSpec,
        cloud: &CloudEndpoints,
        http: Http,
    ) -> Result<Self, AzureError> {
        let mut identity = Identity {
            method: spec.method().to_string(),
            ..Default::default()
        };
        let source: Box<dyn TokenSource> = match spec {
            CredentialSpec::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                identity.tenant_id = Some(tenant_id.clone());
                identity.client_id = Some(client_id.clone());
                Box::new(entra::ClientSecretSource::new(
                    cloud,
                    tenant_id,
                    client_id,
                    secret,
                    identity.to_string(),
                ))
            }
            CredentialSpec::ClientCertificate {
                tenant_id,
                client_id,
                certificate,
            } => {
                identity.tenant_id = Some(tenant_id.clone());
                identity.client_id = Some(client_id.clone());
                let signer = certificate::AssertionSigner::load(&certificate)?;
                Box::new(certificate::CertificateSource::new(
                    cloud,
                    tenant_id,
                    client_id,
                    signer,
                    identity.to_string(),
                ))
            }
            CredentialSpec::WorkloadIdentity {
                tenant_id,
                client_id,
                assertion,
            } => {
                identity.tenant_id = Some(tenant_id.clone());
                identity.client_id = Some(client_id.clone());
                identity.details.insert("assertion".into(), assertion.id());
                Box::new(workload::WorkloadSource::new(
                    cloud,
                    tenant_id,
                    client_id,
                    assertion,
                    identity.to_string(),
                ))
            }
            CredentialSpec::ManagedIdentity {
                identity: which,
                endpoint,
            } => {
                if let Some((k, v)) = which.selector() {
                    identity.details.insert(k.into(), v.into());
                }
                Box::new(imds::ImdsSource::new(which, endpoint, identity.to_string()))
            }
            CredentialSpec::AzureCli { tenant_id } => {
                identity.tenant_id = tenant_id.clone();
                Box::new(azure_cli::AzureCliSource::new(tenant_id))
            }
            CredentialSpec::Tokens { arm, key_vault } => {
                for t in arm.iter().chain(key_vault.iter()) {
                    identity.learn_from_token(t.expose());
                }
                Box::new(static_tokens::StaticTokens::new(cloud, arm, key_vault))
            }
        };
        Ok(Credential {
            cloud: cloud.clone(),
            source,
            cache: TokenCache::default(),
            http,
            identity: Mutex::new(identity),
            fetches: AtomicU64::new(0),
        })
    }

    /// Builds an interactive (device-code) credential for a laptop: the prompt goes to `prompt`,
    /// the refresh token stays in memory, or also in `cache_file` (mode 0600) when given.
    pub fn interactive(
        cloud: &CloudEndpoints,
        http: Http,
        tenant_id: Option<String>,
        cache_file: Option<std::path::PathBuf>,
        prompt: Prompter,
    ) -> Result<Self, AzureError> {
        let identity = Identity {
            method: INTERACTIVE_METHOD.to_string(),
            tenant_id: tenant_id.clone(),
            ..Default::default()
        };
        let source = device_code::DeviceCodeSource::new(
            &cloud.authority_host,
            tenant_id,
            cache_file,
            prompt,
        )?;
        Ok(Credential {
            cloud: cloud.clone(),
            source: Box::new(source),
            cache: TokenCache::default(),
            http,
            identity: Mutex::new(identity),
            fetches: AtomicU64::new(0),
        })
    }

    /// Returns a bearer token for a v2 scope, from the cache while it is fresh.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, AzureError> {
        let token = self
            .cache
            .get(scope, || async {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let method = self.identity().method;
                tracing::debug!(%method, scope, "fetching token");
                let fetched = self.source.fetch(&self.http, scope).await;
                if let Some(m) = self.http.metrics() {
                    m.token_acquired(&method, fetched.is_ok());
                }
                fetched
            })
            .await?;
        self.identity
            .lock()
            .expect("identity lock")
            .learn_from_token(token.secret.expose());
        Ok(token)
    }

    /// Forgets a token the service rejected, so the next call fetches a new one.
    pub async fn invalidate(&self, scope: &str) {
        self.cache.invalidate(scope).await;
    }

    /// Returns who this credential is (object id once a JWT token was seen).
    pub fn identity(&self) -> Identity {
        self.identity.lock().expect("identity lock").clone()
    }

    /// Tells whether this credential hands out pre-issued tokens (nothing here can renew them).
    pub fn is_pre_issued(&self) -> bool {
        self.identity().method == PRE_ISSUED_METHOD
    }

    /// Returns the cloud the credential authenticates in.
    pub fn cloud(&self) -> &CloudEndpoints {
        &self.cloud
    }

    /// Returns how many tokens this credential has fetched (for metrics and tests).
    pub fn token_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}
