//! Workload identity federation: a fresh service-account token exchanged at Entra ID as a client assertion.

use std::path::PathBuf;

use super::TokenSource;
use super::entra::{Grant, request_token};
use crate::azure::BoxFuture;
use crate::azure::cloud::CloudEndpoints;
use crate::azure::error::AzureError;
use crate::azure::http::Http;
use crate::azure::redact::SecretString;
use crate::azure::token_cache::AccessToken;

/// Yields a fresh service-account JWT for the token exchange (a Kubernetes TokenRequest, or a projected file).
pub trait AssertionSource: Send + Sync {
    /// Returns a stable description that identifies the source, e.g. `serviceaccount ns/sa` (never a token).
    fn id(&self) -> String;

    /// Fetches a fresh assertion (audience `api://AzureADTokenExchange`).
    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, AzureError>>;
}

/// Reads the operator's own projected token from a file (`AZURE_FEDERATED_TOKEN_FILE`), anew on each fetch.
#[derive(Clone, Debug)]
pub struct FileAssertionSource {
    path: PathBuf,
}

impl FileAssertionSource {
    /// Reads tokens from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileAssertionSource { path: path.into() }
    }

    /// Builds the source from `AZURE_FEDERATED_TOKEN_FILE`, if it is set.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").map(Self::new)
    }
}

impl AssertionSource for FileAssertionSource {
    fn id(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, AzureError>> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
                AzureError::InvalidCredential(format!(
                    "cannot read the federated token file {}: {e}",
                    self.path.display()
                ))
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(AzureError::InvalidCredential(format!(
                    "the federated token file {} is empty",
                    self.path.display()
                )));
            }
            Ok(SecretString::new(token))
        })
    }
}

/// Exchanges service-account tokens at Entra ID.
pub(crate) struct WorkloadSource {
    token_endpoint: String,
    client_id: String,
    assertion: std::sync::Arc<dyn AssertionSource>,
    principal: String,
}

impl WorkloadSource {
    pub(crate) fn new(
        cloud: &CloudEndpoints,
        tenant_id: String,
        client_id: String,
        assertion: std::sync::Arc<dyn AssertionSource>,
        principal: String,
    ) -> Self {
        WorkloadSource {
            token_endpoint: cloud.token_endpoint(&tenant_id),
            client_id,
            assertion,
            principal,
        }
    }
}

impl TokenSource for WorkloadSource {
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(async move {
            let assertion = self.assertion.assertion().await?;
            request_token(
                http,
                &self.token_endpoint,
                &self.client_id,
                scope,
                Grant::Assertion(assertion),
                &self.principal,
            )
            .await
        })
    }
}
