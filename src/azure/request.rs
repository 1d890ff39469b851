//! Authorized requests: a bearer token from the credential, one fresh-token retry after a 401,
//! and the common shape of ARM and Key Vault error bodies.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::credential::Credential;
use super::error::AzureError;
use super::http::{HttpResponse, TransportError, retry_standard};
use super::redact::SecretString;

/// What failed before an answer: no token, or no connection.
pub(crate) enum CallError {
    Token(AzureError),
    Transport(TransportError),
}

/// Sends an authorized request; after a 401 the token is replaced once and the request sent again.
pub(crate) async fn authorized(
    http: &super::http::Http,
    cred: &Credential,
    scope: &str,
    operation: &'static str,
    method: Method,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<HttpResponse, CallError> {
    let mut renewed = false;
    loop {
        let token = cred.token(scope).await.map_err(CallError::Token)?;
        let bearer: SecretString = format!("Bearer {}", token.secret.expose()).into();
        let resp = http
            .send(
                operation,
                |c| {
                    let mut req = c
                        .request(method.clone(), url)
                        .header("Authorization", bearer.expose());
                    if let Some(b) = body {
                        req = req.json(b);
                    }
                    req
                },
                retry_standard,
            )
            .await
            .map_err(CallError::Transport)?;
        if resp.status == StatusCode::UNAUTHORIZED && !renewed {
            renewed = true;
            cred.invalidate(scope).await;
            continue;
        }
        return Ok(resp);
    }
}

/// The `{"error":{"code","message","innererror"}}` body of ARM and Key Vault.
#[derive(Deserialize, Default, Debug)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: ErrorDetail,
}

/// One error (possibly nested).
#[derive(Deserialize, Default, Debug)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub innererror: Option<Box<ErrorDetail>>,
}

impl ErrorBody {
    /// Parses an error body; an unparsable one yields empty fields.
    pub(crate) fn parse(resp: &HttpResponse) -> Self {
        serde_json::from_slice(&resp.body).unwrap_or_default()
    }

    /// Returns the innermost error code.
    pub(crate) fn inner_code(&self) -> &str {
        let mut d = &self.error;
        while let Some(i) = &d.innererror {
            d = i;
        }
        &d.code
    }

    /// Returns the message's lines, at most `n` of them, joined and bounded in length.
    pub(crate) fn message_lines(&self, n: usize) -> String {
        let text: Vec<&str> = self
            .error
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(n)
            .collect();
        text.join(" ").chars().take(600).collect()
    }
}
