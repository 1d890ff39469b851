//! Managed identity through the Instance Metadata Service (IMDS): plain http, `Metadata: true`,
//! numbers as strings, and IMDS's retry rules (404, 410, 429, 5xx).

use std::time::Duration;

use serde::Deserialize;

use super::TokenSource;
use super::entra::{NumberOrString, token_error};
use crate::azure::BoxFuture;
use crate::azure::error::{AzureError, Service};
use crate::azure::http::{Http, endpoint_of, retry_imds};
use crate::azure::token_cache::AccessToken;

/// The IMDS address on Azure VMs and AKS nodes.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Which managed identity of the node to use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ManagedIdentityId {
    /// The system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity by client id.
    ClientId(String),
    /// A user-assigned identity by object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by ARM resource id.
    ResourceId(String),
}

impl ManagedIdentityId {
    /// Returns the IMDS query parameter selecting the identity, if any.
    pub fn selector(&self) -> Option<(&'static str, &str)> {
        match self {
            ManagedIdentityId::SystemAssigned => None,
            ManagedIdentityId::ClientId(v) => Some(("client_id", v)),
            ManagedIdentityId::ObjectId(v) => Some(("object_id", v)),
            ManagedIdentityId::ResourceId(v) => Some(("msi_res_id", v)),
        }
    }
}

#[derive(Deserialize)]
struct ImdsToken {
    access_token: String,
    expires_in: Option<NumberOrString>,
    expires_on: Option<NumberOrString>,
}

pub(crate) struct ImdsSource {
    which: ManagedIdentityId,
    url: String,
    principal: String,
}

impl ImdsSource {
    pub(crate) fn new(which: ManagedIdentityId, endpoint: String, principal: String) -> Self {
        let url = format!(
            "{}/metadata/identity/oauth2/token",
            endpoint.trim_end_matches('/')
        );
        ImdsSource {
            which,
            url,
            principal,
        }
    }
}

impl TokenSource for ImdsSource {
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(async move {
            // IMDS takes the v1 resource, not a v2 scope.
            let resource = scope.strip_suffix("/.default").unwrap_or(scope);
            let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
            if let Some(sel) = self.which.selector() {
                query.push(sel);
            }
            let resp = http
                .send(
                    "imds.token",
                    |c| c.get(&self.url).header("Metadata", "true").query(&query),
                    retry_imds,
                )
                .await
                .map_err(|e| AzureError::Network {
                    service: Service::Imds,
                    endpoint: endpoint_of(&self.url),
                    failure: e.failure,
                    detail: e.detail,
                })?;
            if !resp.status.is_success() {
                let mut err = token_error(
                    resp.status.as_u16(),
                    &resp.body,
                    &self.principal,
                    Service::Imds,
                );
                if let AzureError::AuthenticationFailed { detail, .. } = &mut err
                    && resp.status.as_u16() == 400
                {
                    detail.push_str(
                        " (IMDS answers 400 when this identity is not assigned to the node or pod: check the identity's assignment and the client/object/resource id)",
                    );
                }
                return Err(err);
            }
            let body: ImdsToken = resp.json(Service::Imds)?;
            let secret = body.access_token.into();
            if let Some(secs) = body.expires_in.as_ref().and_then(NumberOrString::as_u64) {
                Ok(AccessToken::new(secret, Duration::from_secs(secs)))
            } else if let Some(on) = body.expires_on.as_ref().and_then(NumberOrString::as_u64) {
                Ok(AccessToken::expiring_at(secret, on as i64))
            } else {
                Err(AzureError::InvalidResponse {
                    service: Service::Imds,
                    detail: "the token has neither expires_in nor expires_on".into(),
                })
            }
        })
    }
}
