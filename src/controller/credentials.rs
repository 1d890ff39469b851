//! Dereferences an `AzureMLWorkspace`'s auth into a [`CredentialSpec`]: reads its Secrets and
//! ServiceAccount (same namespace only) and enforces who may use the operator's ambient identities.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::Context;
use super::error::Error;
use crate::api::conditions::find_ready;
use crate::api::workspace::{AzureMLWorkspace, CertificateFormat, CertificateRef, ManagedIdentity};
use crate::azure::{
    AssertionSource, AzureError, BoxFuture, CertificateMaterial, CloudEndpoints, CredentialSpec,
    FileAssertionSource, ManagedIdentityId, SecretBytes, SecretString,
};
use crate::config::RunArgs;

/// The label that makes a credential Secret's changes (rotation) re-check its workspaces at once;
/// unlabelled credential Secrets are re-read at every check and sync.
pub const CREDENTIAL_LABEL: &str = "amlsecrets.io/credential";

/// The ServiceAccount annotation with the client id of a federated identity.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// The ServiceAccount annotation with the tenant id of a federated identity.
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";

/// Builds the credential inputs of a workspace, reading what the spec references.
pub async fn credential_spec(
    client: &Client,
    ws: &AzureMLWorkspace,
    cloud: &CloudEndpoints,
    args: &RunArgs,
) -> Result<CredentialSpec, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let auth = &ws.spec.auth;
    if let Some(sp) = &auth.service_principal {
        if let Some(r) = &sp.client_secret_ref {
            let secret = read_secret(client, &ns, &r.name).await?;
            let value = text_key(&secret, &r.name, &r.key)?;
            return Ok(CredentialSpec::ClientSecret {
                tenant_id: sp.tenant_id.clone(),
                client_id: sp.client_id.clone(),
                secret: SecretString::new(value),
            });
        }
        if let Some(r) = &sp.client_certificate_ref {
            let secret = read_secret(client, &ns, &r.name).await?;
            return Ok(CredentialSpec::ClientCertificate {
                tenant_id: sp.tenant_id.clone(),
                client_id: sp.client_id.clone(),
                certificate: certificate(&secret, r)?,
            });
        }
    }
    if let Some(wi) = &auth.workload_identity {
        return match &wi.service_account_name {
            Some(sa_name) => {
                let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
                let sa = sas
                    .get_opt(sa_name)
                    .await
                    .map_err(Error::Kube)?
                    .ok_or_else(|| {
                        Error::CredentialsUnavailable(format!(
                            "ServiceAccount {ns}/{sa_name} does not exist"
                        ))
                    })?;
                let annotation = |k: &str| sa.annotations().get(k).cloned();
                let client_id = wi.client_id.clone().or_else(|| annotation(CLIENT_ID_ANNOTATION)).ok_or_else(|| {
                    Error::CredentialsUnavailable(format!(
                        "workloadIdentity needs a client id: set spec.auth.workloadIdentity.clientId or annotate ServiceAccount {ns}/{sa_name} with {CLIENT_ID_ANNOTATION}"
                    ))
                })?;
                let tenant_id = wi.tenant_id.clone().or_else(|| annotation(TENANT_ID_ANNOTATION)).ok_or_else(|| {
                    Error::CredentialsUnavailable(format!(
                        "workloadIdentity needs a tenant id: set spec.auth.workloadIdentity.tenantId or annotate ServiceAccount {ns}/{sa_name} with {TENANT_ID_ANNOTATION}"
                    ))
                })?;
                Ok(CredentialSpec::WorkloadIdentity {
                    tenant_id,
                    client_id,
                    assertion: Arc::new(TokenRequestSource {
                        api: sas,
                        namespace: ns.clone(),
                        name: sa_name.clone(),
                        audience: cloud.token_exchange_audience.clone(),
                    }),
                })
            }
            None => {
                ambient_allowed(&ns, args, "the operator's own workload identity")?;
                let file = FileAssertionSource::from_env().ok_or_else(|| {
                    Error::CredentialsUnavailable(
                        "workloadIdentity without serviceAccountName uses the operator's own projected token, but AZURE_FEDERATED_TOKEN_FILE is not set in the operator's pod".into(),
                    )
                })?;
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let client_id = wi.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
                let tenant_id = wi.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"));
                match (client_id, tenant_id) {
                    (Some(client_id), Some(tenant_id)) => {
                        Ok(CredentialSpec::WorkloadIdentity { tenant_id, client_id, assertion: Arc::new(file) })
                    }
                    _ => Err(Error::CredentialsUnavailable(
                        "the operator's own workload identity needs AZURE_CLIENT_ID and AZURE_TENANT_ID (or clientId and tenantId in the spec)".into(),
                    )),
                }
            }
        };
    }
    if let Some(mi) = &auth.managed_identity {
        ambient_allowed(&ns, args, "the operator's managed identity")?;
        return Ok(CredentialSpec::ManagedIdentity {
            identity: managed_identity(mi),
            endpoint: args.imds_endpoint.clone(),
        });
    }
    if let Some(cli) = &auth.azure_cli {
        if !args.allow_azure_cli_auth {
            return Err(Error::CredentialsUnavailable(
                "auth.azureCli uses the Azure CLI's signed-in account on the operator's machine, which is only for running the operator on your own computer: start it with --allow-azure-cli-auth (a pod never has it), or use workloadIdentity, managedIdentity or servicePrincipal".into(),
            ));
        }
        ambient_allowed(&ns, args, "the Azure CLI's signed-in account")?;
        return Ok(CredentialSpec::AzureCli {
            tenant_id: cli.tenant_id.clone(),
        });
    }
    if let Some(token) = &auth.token {
        let r = &token.secret_ref;
        let secret = read_secret(client, &ns, &r.name).await?;
        let arm_key = r.arm_token_key.as_deref().unwrap_or("armToken");
        let kv_key = r.key_vault_token_key.as_deref().unwrap_or("keyVaultToken");
        let arm = optional_text_key(&secret, &r.name, arm_key)?.map(SecretString::new);
        let key_vault = optional_text_key(&secret, &r.name, kv_key)?.map(SecretString::new);
        if arm.is_none() && key_vault.is_none() {
            return Err(Error::CredentialsUnavailable(format!(
                "Secret {ns}/{} has neither {arm_key} nor {kv_key}",
                r.name
            )));
        }
        return Ok(CredentialSpec::Tokens { arm, key_vault });
    }
    Err(Error::InvalidSpec(
        "spec.auth sets no authentication method".into(),
    ))
}

fn ambient_allowed(ns: &str, args: &RunArgs, what: &str) -> Result<(), Error> {
    if args.ambient_allowed(ns) {
        Ok(())
    } else {
        Err(Error::CredentialsUnavailable(format!(
            "namespace {ns} may not use {what}; a platform admin can allow it with --ambient-identity-namespaces, or use a ServiceAccount (workloadIdentity.serviceAccountName) or a service principal"
        )))
    }
}

fn managed_identity(mi: &ManagedIdentity) -> ManagedIdentityId {
    match (&mi.client_id, &mi.object_id, &mi.resource_id) {
        (Some(c), _, _) => ManagedIdentityId::ClientId(c.clone()),
        (_, Some(o), _) => ManagedIdentityId::ObjectId(o.clone()),
        (_, _, Some(r)) => ManagedIdentityId::ResourceId(r.clone()),
        _ => ManagedIdentityId::SystemAssigned,
    }
}

async fn read_secret(client: &Client, ns: &str, name: &str) -> Result<Secret, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(Error::Kube)?
        .ok_or_else(|| {
            Error::CredentialsUnavailable(format!("credential Secret {ns}/{name} does not exist"))
        })
}

fn bytes_key<'a>(secret: &'a Secret, name: &str, key: &str) -> Option<&'a [u8]> {
    let _ = name;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
}

fn optional_text_key(secret: &Secret, name: &str, key: &str) -> Result<Option<String>, Error> {
    match bytes_key(secret, name, key) {
        None => Ok(None),
        Some(b) => String::from_utf8(b.to_vec())
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| {
                Error::CredentialsUnavailable(format!(
                    "key {key} of Secret {name} is not UTF-8 text"
                ))
            }),
    }
}

fn text_key(secret: &Secret, name: &str, key: &str) -> Result<String, Error> {
    optional_text_key(secret, name, key)?.ok_or_else(|| {
        Error::CredentialsUnavailable(format!("credential Secret {name} has no key {key}"))
    })
}

fn certificate(secret: &Secret, r: &CertificateRef) -> Result<CertificateMaterial, Error> {
    match r.format {
        CertificateFormat::Pem => {
            let cert_key = r.certificate_key.as_deref().unwrap_or("tls.crt");
            let key_key = r.private_key_key.as_deref().unwrap_or("tls.key");
            let certificate = text_key(secret, &r.name, cert_key)?;
            let private_key = if key_key == cert_key {
                None
            } else {
                match optional_text_key(secret, &r.name, key_key)? {
                    Some(k) => Some(SecretString::new(k)),
                    None if certificate.contains("PRIVATE KEY") => None,
                    None => {
                        return Err(Error::CredentialsUnavailable(format!(
                            "certificate Secret {} has no key {key_key} and its {cert_key} holds no private key",
                            r.name
                        )));
                    }
                }
            };
            Ok(CertificateMaterial::Pem {
                certificate,
                private_key,
            })
        }
        CertificateFormat::Pfx => {
            let pfx_key = r.certificate_key.as_deref().unwrap_or("certificate.pfx");
            let der = bytes_key(secret, &r.name, pfx_key).ok_or_else(|| {
                Error::CredentialsUnavailable(format!(
                    "certificate Secret {} has no key {pfx_key}",
                    r.name
                ))
            })?;
            let password = match &r.password_key {
                Some(k) => Some(SecretString::new(text_key(secret, &r.name, k)?)),
                None => None,
            };
            Ok(CertificateMaterial::Pfx {
                der: SecretBytes::new(der.to_vec()),
                password,
            })
        }
    }
}

/// Yields service-account tokens through the Kubernetes TokenRequest API.
struct TokenRequestSource {
    api: Api<ServiceAccount>,
    namespace: String,
    name: String,
    audience: String,
}

impl AssertionSource for TokenRequestSource {
    fn id(&self) -> String {
        format!("serviceaccount {}/{}", self.namespace, self.name)
    }

    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, AzureError>> {
        Box::pin(async move {
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(vec![self.audience.clone()]),
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            };
            let issued = self
                .api
                .create_token_request(&self.name, &PostParams::default(), &request)
                .await
                .map_err(|e| {
                    AzureError::InvalidCredential(format!(
                        "TokenRequest for ServiceAccount {}/{} failed: {e}",
                        self.namespace, self.name
                    ))
                })?;
            let token = issued.status.and_then(|s| s.token).unwrap_or_default();
            Ok(SecretString::new(token))
        })
    }
}

/// Returns the names of the Secrets a workspace's auth reads (same namespace).
pub fn referenced_secrets(ws: &AzureMLWorkspace) -> Vec<&str> {
    let auth = &ws.spec.auth;
    let sp = auth.service_principal.as_ref();
    [
        sp.and_then(|s| s.client_secret_ref.as_ref())
            .map(|r| r.name.as_str()),
        sp.and_then(|s| s.client_certificate_ref.as_ref())
            .map(|r| r.name.as_str()),
        auth.token.as_ref().map(|t| t.secret_ref.name.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Explains, after a credential failure, when the workspace is checked again and how to make a
/// fix of its credential Secrets count at once: label them (or create them labelled)
/// `amlsecrets.io/credential=true`. `None` when every referenced Secret is labelled or the auth
/// reads no Secret.
pub async fn rotation_hint(
    client: &Client,
    ws: &AzureMLWorkspace,
    check_interval: std::time::Duration,
) -> Option<String> {
    let ns = ws.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let label = format!("{}=true", CREDENTIAL_LABEL);
    let mut unlabelled = Vec::new();
    let mut missing = Vec::new();
    for name in referenced_secrets(ws) {
        match api.get_metadata_opt(name).await {
            Ok(Some(meta))
                if meta.labels().get(CREDENTIAL_LABEL).map(String::as_str) == Some("true") => {}
            Ok(Some(_)) => unlabelled.push(format!("{ns}/{name}")),
            Ok(None) => missing.push(format!("{ns}/{name}")),
            Err(_) => return None,
        }
    }
    if unlabelled.is_empty() && missing.is_empty() {
        return None;
    }
    let mut advice = Vec::new();
    if !unlabelled.is_empty() {
        advice.push(format!("label Secret {} {label}", unlabelled.join(", ")));
    }
    if !missing.is_empty() {
        advice.push(format!(
            "create Secret {} with the label {label}",
            missing.join(", ")
        ));
    }
    Some(format!(
        "It is re-checked with backoff, from seconds up to every {}; for a fix to count at once, {}",
        crate::api::duration::format(check_interval),
        advice.join(" and ")
    ))
}

/// Resolves a workspace's cloud and its shared credential.
pub async fn workspace_credential(
    ctx: &super::Context,
    ws: &AzureMLWorkspace,
) -> Result<(CloudEndpoints, Arc<crate::azure::Credential>), Error> {
    let cloud = CloudEndpoints::from_spec(ws.spec.cloud, ws.spec.custom_cloud.as_ref())
        .ok_or_else(|| Error::InvalidSpec("cloud is Custom but customCloud is missing".into()))?;
    let spec = credential_spec(&ctx.client, ws, &cloud, &ctx.args).await?;
    let cred = ctx.credential(&cloud, spec)?;
    Ok((cloud, cred))
}

/// Resolves the credential of a workspace a WorkspaceSecret or a push reads through: the one
/// resolved for this very version of the workspace when there is one (a workspace check, which
/// re-reads its credential Secrets, changes the version), else resolved now.
pub(super) async fn reader_credential(
    ctx: &super::Context,
    ws: &AzureMLWorkspace,
) -> Result<(CloudEndpoints, Arc<crate::azure::Credential>), Error> {
    if let Some(known) = ctx.caches.credential(ws) {
        return Ok(known);
    }
    let (cloud, cred) = workspace_credential(ctx, ws).await?;
    ctx.caches.remember_credential(ws, &cloud, &cred);
    Ok((cloud, cred))
}

/// Reads the AzureMLWorkspace `ns/name` that a WorkspaceSecret or a push names, if it is usable:
/// checked since its last change, and Ready or resolved once. The watch's copy is used when it
/// has one (no API request); the API server is asked otherwise.
pub(super) async fn usable_workspace(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<AzureMLWorkspace, Error> {
    let workspace = match ctx.caches.workspace(ns, name) {
        Some(w) => AzureMLWorkspace::clone(&w),
        None => Api::<AzureMLWorkspace>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| Error::kube("read AzureMLWorkspace", name, e))?
            .ok_or_else(|| {
                Error::WorkspaceNotReady(format!("AzureMLWorkspace {ns}/{name} does not exist"))
            })?,
    };
    // A workspace resolved once stays usable while Azure has a bad moment: each WorkspaceSecret
    // (or push) then reports its own, more precise reason instead of WorkspaceNotReady.
    let status = workspace.status.clone().unwrap_or_default();
    if status.observed_generation.is_none() {
        return Err(Error::WorkspacePending(format!(
            "waiting for the first check of AzureMLWorkspace {name}"
        )));
    }
    if status.observed_generation != workspace.metadata.generation {
        return Err(Error::WorkspacePending(format!(
            "waiting for AzureMLWorkspace {name} to be checked after its last change"
        )));
    }
    let resolved = status.workspace.is_some() || status.key_vault.is_some();
    match find_ready(&status.conditions) {
        Some(r) if r.is_true() || resolved => Ok(workspace),
        Some(r) => Err(Error::WorkspaceNotReady(format!(
            "AzureMLWorkspace {name} is not Ready ({}): {}",
            r.reason, r.message
        ))),
        None => Err(Error::WorkspacePending(format!(
            "waiting for the first check of AzureMLWorkspace {name}"
        ))),
    }
}
