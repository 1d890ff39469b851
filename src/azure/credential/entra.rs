//! The Entra ID v2 token endpoint: client-secret and client-assertion grants, and its errors.

use std::time::Duration;

use serde::Deserialize;

use super::TokenSource;
use crate::azure::BoxFuture;
use crate::azure::cloud::CloudEndpoints;
use crate::azure::error::{AzureError, Service};
use crate::azure::http::{Http, endpoint_of, retry_standard};
use crate::azure::redact::SecretString;
use crate::azure::token_cache::AccessToken;

/// The assertion type of JWT client assertions.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves who it is.
pub(crate) enum Grant<'a> {
    Secret(&'a SecretString),
    Assertion(SecretString),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: NumberOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrString {
    Number(u64),
    String(String),
}

impl NumberOrString {
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            NumberOrString::Number(n) => Some(*n),
            NumberOrString::String(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// Requests a token from `{authority}/{tenant}/oauth2/v2.0/token`.
pub(crate) async fn request_token(
    http: &Http,
    token_endpoint: &str,
    client_id: &str,
    scope: &str,
    grant: Grant<'_>,
    principal: &str,
) -> Result<AccessToken, AzureError> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope),
    ];
    match &grant {
        Grant::Secret(s) => form.push(("client_secret", s.expose())),
        Grant::Assertion(a) => {
            form.push(("client_assertion_type", JWT_BEARER));
            form.push(("client_assertion", a.expose()));
        }
    }
    let resp = http
        .send(
            "entra.token",
            |c| c.post(token_endpoint).form(&form),
            retry_standard,
        )
        .await
        .map_err(|e| AzureError::Network {
            service: Service::EntraId,
            endpoint: endpoint_of(token_endpoint),
            failure: e.failure,
            detail: e.detail,
        })?;
    if resp.status.is_success() {
        let body: TokenResponse = resp.json(Service::EntraId)?;
        let lifetime = body
            .expires_in
            .as_u64()
            .ok_or_else(|| AzureError::InvalidResponse {
                service: Service::EntraId,
                detail: "expires_in is not a number".into(),
            })?;
        return Ok(AccessToken::new(
            body.access_token.into(),
            Duration::from_secs(lifetime),
        ));
    }
    Err(token_error(
        resp.status.as_u16(),
        &resp.body,
        principal,
        Service::EntraId,
    ))
}

/// Classifies an error answer of Entra ID (or IMDS, same JSON shape).
pub(crate) fn token_error(
    status: u16,
    body: &[u8],
    principal: &str,
    service: Service,
) -> AzureError {
    let err: TokenError = serde_json::from_slice(body).unwrap_or_default();
    if status == 429 {
        return AzureError::Throttled {
            service,
            retry_after: None,
        };
    }
    if status >= 500 {
        return AzureError::Server {
            service,
            status,
            code: err.error,
            detail: first_line(&err.error_description),
        };
    }
    let code = err
        .error_codes
        .first()
        .copied()
        .or_else(|| aadsts_in(&err.error_description));
    let detail = if err.error_description.is_empty() {
        format!("{} answered {status} {}", service, err.error)
    } else {
        first_line(&err.error_description)
    };
    AzureError::AuthenticationFailed {
        principal: principal.to_string(),
        code,
        detail,
    }
}

/// Keeps the first line of an Entra description (drops trace and correlation ids), bounded in length.
pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    line.chars().take(400).collect()
}

fn aadsts_in(s: &str) -> Option<u32> {
    let rest = &s[s.find("AADSTS")? + 6..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// A service principal with a client secret.
pub(crate) struct ClientSecretSource {
    token_endpoint: String,
    client_id: String,
    secret: SecretString,
    principal: String,
}

impl ClientSecretSource {
    pub(crate) fn new(
        cloud: &CloudEndpoints,
        tenant_id: String,
        client_id: String,
        secret: SecretString,
        principal: String,
    ) -> Self {
        ClientSecretSource {
            token_endpoint: cloud.token_endpoint(&tenant_id),
            client_id,
            secret,
            principal,
        }
    }
}

impl TokenSource for ClientSecretSource {
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(request_token(
            http,
            &self.token_endpoint,
            &self.client_id,
            scope,
            Grant::Secret(&self.secret),
            &self.principal,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_error_body_becomes_authentication_failed_with_code() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[7000215],"trace_id":"x"}"#;
        let e = token_error(401, body, "sp client c", Service::EntraId);
        match &e {
            AzureError::AuthenticationFailed { code, detail, .. } => {
                assert_eq!(*code, Some(7000215));
                assert_eq!(detail, "AADSTS7000215: Invalid client secret provided.");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("not its id"));
    }

    #[test]
    fn aadsts_code_is_found_in_description_without_error_codes() {
        let body = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        match token_error(400, body, "p", Service::EntraId) {
            AzureError::AuthenticationFailed { code, .. } => assert_eq!(code, Some(90002)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_not_authentication_failures() {
        assert_eq!(
            token_error(429, b"{}", "p", Service::EntraId).reason(),
            "Throttled"
        );
        assert_eq!(
            token_error(503, b"", "p", Service::Imds).reason(),
            "AzureError"
        );
    }
}
