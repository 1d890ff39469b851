//! Azure access: credentials and token caches, ARM workspace discovery, connections, endpoints and
//! datastores, and the Key Vault data plane, all behind one narrow, object-safe trait
//! ([`AzureApi`]) that tests and benchmarks can substitute.
//!
//! The controller builds a [`CredentialSpec`] from the spec and its Secrets, asks the shared
//! [`CredentialRegistry`] for the [`Credential`] of that identity in the workspace's [`CloudEndpoints`],
//! and passes it to every [`AzureApi`] call.

pub mod arm;
pub mod cloud;
pub mod connections;
pub mod credential;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod keyvault;
pub mod redact;
pub mod registry;
mod request;
pub mod token_cache;

use std::future::Future;
use std::pin::Pin;

pub use arm::{VaultLocation, VaultSource, Workspace, WorkspaceRef};
pub use cloud::CloudEndpoints;
pub use connections::{Connection, ConnectionSecrets, Credentials};
pub use credential::{
    AssertionSource, CertificateMaterial, Credential, CredentialSpec, DEFAULT_IMDS_ENDPOINT,
    DeviceCodePrompt, FileAssertionSource, Identity, ManagedIdentityId, Prompter, method_label,
};
pub use endpoints::{DatastoreSecrets, Endpoint, EndpointKeys, EndpointToken};
pub use error::AzureError;
pub use http::{Http, HttpConfig, RetryPolicy};
pub use keyvault::{DeletedSecret, NewSecret, Secret, SecretListing, SecretProperties};
pub use redact::{SecretBytes, SecretString};
pub use registry::CredentialRegistry;

/// A boxed, sendable future: what the object-safe trait methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the operator asks of Azure; hold it as `Arc<dyn AzureApi>`.
pub trait AzureApi: Send + Sync {
    /// Gets a workspace from ARM and resolves its Key Vault (a project's through its hub);
    /// `key_vault` is `None` for a workspace without a customer vault.
    fn get_workspace<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
    ) -> BoxFuture<'a, Result<Workspace, AzureError>>;

    /// Lists the properties (no values) of every secret of a vault.
    fn list_secret_properties<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>>;

    /// Gets a secret's value, the latest version or the one given.
    fn get_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Secret, AzureError>>;

    /// Lists the versions (no values) of one secret.
    fn list_secret_versions<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>>;

    /// Writes a secret (a new version).
    fn set_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        secret: &'a NewSecret,
    ) -> BoxFuture<'a, Result<Secret, AzureError>>;

    /// Writes a secret with its validity, content type and tags (a new version); a soft-deleted
    /// name fails as [`keyvault::write::is_deleted_but_recoverable`] tells. Test doubles that
    /// never write may keep the default, which refuses.
    fn put_secret_with_attributes<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        secret: &'a keyvault::write::PushedSecret,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        let _ = (cred, secret);
        Box::pin(async move {
            Err(AzureError::InvalidResponse {
                service: error::Service::KeyVault,
                detail: format!("this Azure client cannot write secrets ({vault}, {name})"),
            })
        })
    }

    /// Deletes a secret.
    fn delete_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<DeletedSecret, AzureError>>;

    /// Lists a workspace's connections (no credentials), optionally of one category.
    fn list_connections<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        category: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Connection>, AzureError>>;

    /// Gets one connection (no credentials).
    fn get_connection<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Connection, AzureError>>;

    /// Reads a connection with its credentials (ARM `listsecrets`).
    fn list_connection_secrets<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ConnectionSecrets, AzureError>>;

    /// Gets an online endpoint: auth mode and scoring URI (no secret).
    fn get_online_endpoint<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>>;

    /// Lists an online endpoint's keys (`listKeys`).
    fn list_online_endpoint_keys<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>>;

    /// Gets an `AMLToken` online endpoint's token (`token`).
    fn get_online_endpoint_token<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointToken, AzureError>>;

    /// Gets a serverless endpoint: auth mode and inference URI (no secret).
    fn get_serverless_endpoint<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>>;

    /// Lists a serverless endpoint's keys (`listKeys`).
    fn list_serverless_endpoint_keys<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>>;

    /// Reads a datastore's credentials (`listSecrets`).
    fn list_datastore_secrets<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSecrets, AzureError>>;
}

/// The real [`AzureApi`]: hand-written REST over reqwest and rustls.
#[derive(Clone, Debug)]
pub struct AzureClient {
    http: Http,
}

impl AzureClient {
    /// Builds the client on a shared HTTP transport.
    pub fn new(http: Http) -> Self {
        AzureClient { http }
    }
}

impl AzureApi for AzureClient {
    fn get_workspace<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
    ) -> BoxFuture<'a, Result<Workspace, AzureError>> {
        Box::pin(arm::get_workspace(&self.http, cred, workspace))
    }

    fn list_secret_properties<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>> {
        Box::pin(keyvault::list_secret_properties(&self.http, cred, vault))
    }

    fn get_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        Box::pin(keyvault::get_secret(&self.http, cred, vault, name, version))
    }

    fn list_secret_versions<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>> {
        Box::pin(keyvault::list_secret_versions(
            &self.http, cred, vault, name,
        ))
    }

    fn set_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        secret: &'a NewSecret,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        Box::pin(keyvault::set_secret(&self.http, cred, vault, name, secret))
    }

    fn delete_secret<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<DeletedSecret, AzureError>> {
        Box::pin(keyvault::delete_secret(&self.http, cred, vault, name))
    }

    fn put_secret_with_attributes<'a>(
        &'a self,
        cred: &'a Credential,
        vault: &'a str,
        name: &'a str,
        secret: &'a keyvault::write::PushedSecret,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        Box::pin(keyvault::write::put_secret_with_attributes(
            &self.http, cred, vault, name, secret,
        ))
    }

    fn list_connections<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        category: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Connection>, AzureError>> {
        Box::pin(connections::list_connections(
            &self.http, cred, workspace, category,
        ))
    }

    fn get_connection<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Connection, AzureError>> {
        Box::pin(connections::get_connection(
            &self.http, cred, workspace, name,
        ))
    }

    fn list_connection_secrets<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ConnectionSecrets, AzureError>> {
        Box::pin(connections::list_connection_secrets(
            &self.http, cred, workspace, name,
        ))
    }

    fn get_online_endpoint<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>> {
        Box::pin(endpoints::get_online_endpoint(
            &self.http, cred, workspace, name,
        ))
    }

    fn list_online_endpoint_keys<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>> {
        Box::pin(endpoints::list_online_endpoint_keys(
            &self.http, cred, workspace, name,
        ))
    }

    fn get_online_endpoint_token<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointToken, AzureError>> {
        Box::pin(endpoints::get_online_endpoint_token(
            &self.http, cred, workspace, name,
        ))
    }

    fn get_serverless_endpoint<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>> {
        Box::pin(endpoints::get_serverless_endpoint(
            &self.http, cred, workspace, name,
        ))
    }

    fn list_serverless_endpoint_keys<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>> {
        Box::pin(endpoints::list_serverless_endpoint_keys(
            &self.http, cred, workspace, name,
        ))
    }

    fn list_datastore_secrets<'a>(
        &'a self,
        cred: &'a Credential,
        workspace: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSecrets, AzureError>> {
        Box::pin(endpoints::list_datastore_secrets(
            &self.http, cred, workspace, name,
        ))
    }
}
