//! Who a laptop command runs as: the local identity of `--auth` (the Azure CLI's account, an
//! interactive sign-in, a service principal or managed identity from the environment), or a
//! manifest's `spec.auth` built as the operator builds it.

use std::sync::Arc;

use super::args::{AuthMethod, LocalArgs};
use super::target::{Target, Usage};
use crate::azure::{
    CertificateMaterial, CloudEndpoints, Credential, CredentialRegistry, CredentialSpec,
    DeviceCodePrompt, Http, ManagedIdentityId, SecretBytes, SecretString,
};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Builds the local identity named by `--auth`.
pub fn local_credential(
    local: &LocalArgs,
    cloud: &CloudEndpoints,
    http: &Http,
) -> Result<Arc<Credential>, Usage> {
    let spec = match local.auth {
        AuthMethod::AzureCli => CredentialSpec::AzureCli {
            tenant_id: local.tenant.clone(),
        },
        AuthMethod::Interactive => {
            let path = crate::azure::credential::login_cache::login_cache_path();
            let cache = path.filter(|p| local.cache_login || p.exists());
            let prompt: crate::azure::Prompter = Box::new(|p: &DeviceCodePrompt| {
                let text = p.message.clone().unwrap_or_else(|| {
                    format!(
                        "To sign in, open {} in a browser and enter the code {}",
                        p.verification_uri, p.user_code
                    )
                });
                eprintln!("{text}");
            });
            let cred =
                Credential::interactive(cloud, http.clone(), local.tenant.clone(), cache, prompt)
                    .map_err(|e| Usage(e.to_string()))?;
            return Ok(Arc::new(cred));
        }
        AuthMethod::ServicePrincipal => {
            let missing = |k: &str| {
                Usage(format!(
                    "--auth service-principal reads {k} from the environment, and it is not set"
                ))
            };
            let tenant_id = local
                .tenant
                .clone()
                .or_else(|| env("AZURE_TENANT_ID"))
                .ok_or_else(|| missing("AZURE_TENANT_ID"))?;
            let client_id = env("AZURE_CLIENT_ID").ok_or_else(|| missing("AZURE_CLIENT_ID"))?;
            if let Some(secret) = env("AZURE_CLIENT_SECRET") {
                CredentialSpec::ClientSecret {
                    tenant_id,
                    client_id,
                    secret: SecretString::new(secret),
                }
            } else if let Some(path) = env("AZURE_CLIENT_CERTIFICATE_PATH") {
                let bytes = std::fs::read(&path).map_err(|e| {
                    Usage(format!(
                        "cannot read AZURE_CLIENT_CERTIFICATE_PATH {path}: {e}"
                    ))
                })?;
                let password = env("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(SecretString::new);
                let certificate = match String::from_utf8(bytes.clone()) {
                    Ok(pem) if pem.contains("-----BEGIN") => CertificateMaterial::Pem {
                        certificate: pem,
                        private_key: None,
                    },
                    _ => CertificateMaterial::Pfx {
                        der: SecretBytes::new(bytes),
                        password,
                    },
                };
                CredentialSpec::ClientCertificate {
                    tenant_id,
                    client_id,
                    certificate,
                }
            } else {
                return Err(missing(
                    "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
                ));
            }
        }
        AuthMethod::ManagedIdentity => CredentialSpec::ManagedIdentity {
            identity: match env("AZURE_CLIENT_ID") {
                Some(c) => ManagedIdentityId::ClientId(c),
                None => ManagedIdentityId::SystemAssigned,
            },
            endpoint: local.imds_endpoint.clone(),
        },
    };
    Credential::new(spec, cloud, http.clone())
        .map(Arc::new)
        .map_err(|e| Usage(e.to_string()))
}

/// Builds the identity of a manifest's `spec.auth`, reading its Secrets through the kubeconfig as
/// the operator would. This is your machine, so it builds it as an operator run here would be
/// started: every namespace may use ambient identities, `azureCli` is accepted, and managed
/// identities use `--imds-endpoint`.
pub async fn manifest_credential(
    local: &LocalArgs,
    target: &mut Target,
    http: &Http,
) -> Result<Arc<Credential>, crate::controller::error::Error> {
    use clap::Parser;
    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        run: crate::config::RunArgs,
    }
    let args = Run::parse_from([
        "amlsecrets".to_string(),
        "--ambient-identity-namespaces=*".into(),
        "--allow-azure-cli-auth".into(),
        format!("--imds-endpoint={}", local.imds_endpoint),
    ])
    .run;
    let auth = &target.workspace.spec.auth;
    let reads_cluster = !crate::controller::credentials::referenced_secrets(&target.workspace)
        .is_empty()
        || auth
            .workload_identity
            .as_ref()
            .is_some_and(|w| w.service_account_name.is_some());
    let client = match target.client.clone() {
        Some(c) => c,
        // Nothing to read: a client that is never used (no kubeconfig needed).
        None if !reads_cluster => {
            let unused = kube::Config::new("https://127.0.0.1:9".parse().expect("a valid URI"));
            kube::Client::try_from(unused).map_err(crate::controller::error::Error::Kube)?
        }
        None => {
            let c = kube::Client::try_default().await.map_err(|e| {
                crate::controller::error::Error::CredentialsUnavailable(format!(
                    "the manifest's auth reads the cluster, which cannot be reached (kubeconfig): {e}; use --as-me to check with your own identity"
                ))
            })?;
            target.client = Some(c.clone());
            c
        }
    };
    if target.workspace.metadata.namespace.is_none() {
        let ns = kube::Config::infer()
            .await
            .map(|c| c.default_namespace)
            .unwrap_or_else(|_| "default".into());
        target.workspace.metadata.namespace = Some(ns);
    }
    let spec = crate::controller::credentials::credential_spec(
        &client,
        &target.workspace,
        &target.cloud,
        &args,
    )
    .await?;
    let registry = CredentialRegistry::new(http.clone());
    Ok(registry.credential(&target.cloud, spec)?)
}
