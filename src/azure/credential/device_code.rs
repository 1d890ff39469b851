//! Interactive sign-in on a laptop: the OAuth 2.0 device-code flow against Entra ID (RFC 8628),
//! with the public client id of the Azure CLI. The code and URL go to the caller's prompt (stderr);
//! the refresh token stays in memory, or, when asked, in a file readable only by the user, so the
//! next run signs in without a prompt. Tokens for further audiences come from the refresh token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::TokenSource;
use super::entra::{NumberOrString, token_error};
use super::login_cache::{CachedAccount, read_cache, write_cache};
use crate::azure::BoxFuture;
use crate::azure::error::{AzureError, Service};
use crate::azure::http::{Http, endpoint_of, retry_standard};
use crate::azure::redact::SecretString;
use crate::azure::token_cache::AccessToken;

/// The public client id of the Azure CLI, which Azure tools use for interactive sign-in.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// The tenant used when none is given: any work or school account.
pub const DEFAULT_TENANT: &str = "organizations";
/// The grant type of the device-code poll.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the user must do to sign in.
#[derive(Clone, Debug)]
pub struct DeviceCodePrompt {
    /// The page to open.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// Entra ID's own sentence, when it sent one.
    pub message: Option<String>,
}

/// Where prompts go (stderr in the CLI).
pub type Prompter = Box<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

#[derive(Deserialize)]
struct DeviceCodeResponse {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    expires_in: NumberOrString,
    #[serde(default)]
    interval: Option<NumberOrString>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: NumberOrString,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
}

/// The device-code sign-in of one tenant.
pub(crate) struct DeviceCodeSource {
    authority: String,
    tenant: String,
    client_id: String,
    cache_file: Option<PathBuf>,
    refresh: tokio::sync::Mutex<Option<SecretString>>,
    prompt: Prompter,
}

impl DeviceCodeSource {
    pub(crate) fn new(
        authority: &str,
        tenant: Option<String>,
        cache_file: Option<PathBuf>,
        prompt: Prompter,
    ) -> Result<Self, AzureError> {
        let authority = authority.trim_end_matches('/').to_string();
        let tenant = tenant.unwrap_or_else(|| DEFAULT_TENANT.to_string());
        let client_id = AZURE_CLI_CLIENT_ID.to_string();
        let refresh = match &cache_file {
            Some(path) => read_cache(path)?
                .accounts
                .into_iter()
                .find(|a| {
                    a.authority == authority && a.tenant == tenant && a.client_id == client_id
                })
                .map(|a| SecretString::new(a.refresh_token)),
            None => None,
        };
        Ok(DeviceCodeSource {
            authority,
            tenant,
            client_id,
            cache_file,
            refresh: tokio::sync::Mutex::new(refresh),
            prompt,
        })
    }

    fn url(&self, what: &str) -> String {
        format!("{}/{}/oauth2/v2.0/{what}", self.authority, self.tenant)
    }

    fn principal(&self) -> String {
        format!("the signed-in user (tenant {})", self.tenant)
    }

    async fn post(
        &self,
        http: &Http,
        operation: &'static str,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<crate::azure::http::HttpResponse, AzureError> {
        http.send(operation, |c| c.post(url).form(form), retry_standard)
            .await
            .map_err(|e| AzureError::Network {
                service: Service::EntraId,
                endpoint: endpoint_of(url),
                failure: e.failure,
                detail: e.detail,
            })
    }

    async fn run(&self, http: &Http, scope: &str) -> Result<AccessToken, AzureError> {
        // One sign-in at a time: a second audience waits and uses the first one's refresh token.
        let mut refresh = self.refresh.lock().await;
        if let Some(rt) = refresh.clone() {
            match self.redeem(http, scope, &rt).await {
                Ok((token, next)) => {
                    self.keep(&mut refresh, next)?;
                    return Ok(token);
                }
                Err(None) => {
                    tracing::debug!("the cached sign-in is no longer valid; signing in again");
                    *refresh = None;
                    self.forget()?;
                }
                Err(Some(e)) => return Err(e),
            }
        }
        let (token, next) = self.device_code(http, scope).await?;
        self.keep(&mut refresh, next)?;
        Ok(token)
    }

    /// Redeems a refresh token for `scope`; `Err(None)` when Entra ID no longer accepts it.
    async fn redeem(
        &self,
        http: &Http,
        scope: &str,
        rt: &SecretString,
    ) -> Result<(AccessToken, Option<String>), Option<AzureError>> {
        let scopes = format!("{scope} offline_access");
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", rt.expose()),
            ("scope", scopes.as_str()),
        ];
        let resp = self
            .post(http, "entra.token", &self.url("token"), &form)
            .await
            .map_err(Some)?;
        if resp.status.is_success() {
            return token_of(&resp).map_err(Some);
        }
        let err: OAuthError = serde_json::from_slice(&resp.body).unwrap_or_default();
        if resp.status.as_u16() == 400 && err.error == "invalid_grant" {
            return Err(None);
        }
        Err(Some(token_error(
            resp.status.as_u16(),
            &resp.body,
            &self.principal(),
            Service::EntraId,
        )))
    }

    async fn device_code(
        &self,
        http: &Http,
        scope: &str,
    ) -> Result<(AccessToken, Option<String>), AzureError> {
        let scopes = format!("{scope} offline_access openid profile");
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", scopes.as_str()),
        ];
        let resp = self
            .post(http, "entra.devicecode", &self.url("devicecode"), &form)
            .await?;
        if !resp.status.is_success() {
            return Err(token_error(
                resp.status.as_u16(),
                &resp.body,
                &self.principal(),
                Service::EntraId,
            ));
        }
        let code: DeviceCodeResponse = resp.json(Service::EntraId)?;
        (self.prompt)(&DeviceCodePrompt {
            verification_uri: code.verification_uri.clone(),
            user_code: code.user_code.clone(),
            message: code.message.clone(),
        });
        let expires_in = code.expires_in.as_u64().unwrap_or(900);
        let deadline = Instant::now() + Duration::from_secs(expires_in);
        let mut interval = code
            .interval
            .as_ref()
            .and_then(NumberOrString::as_u64)
            .unwrap_or(5)
            .max(1);
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", self.client_id.as_str()),
            ("device_code", code.device_code.as_str()),
        ];
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            let resp = self
                .post(http, "entra.token", &self.url("token"), &form)
                .await?;
            if resp.status.is_success() {
                return token_of(&resp);
            }
            let err: OAuthError = serde_json::from_slice(&resp.body).unwrap_or_default();
            match err.error.as_str() {
                "authorization_pending" if Instant::now() < deadline => {}
                // RFC 8628 §3.5: wait 5 seconds longer from now on.
                "slow_down" if Instant::now() < deadline => interval += 5,
                "authorization_pending" | "slow_down" | "expired_token" => {
                    return Err(AzureError::AuthenticationFailed {
                        principal: self.principal(),
                        code: None,
                        detail: format!(
                            "the sign-in code {} expired before it was used ({}s); run the command again and enter the code within that time",
                            code.user_code, expires_in
                        ),
                    });
                }
                "authorization_declined" | "access_denied" => {
                    return Err(AzureError::AuthenticationFailed {
                        principal: self.principal(),
                        code: None,
                        detail: "the sign-in was declined in the browser".into(),
                    });
                }
                _ => {
                    return Err(token_error(
                        resp.status.as_u16(),
                        &resp.body,
                        &self.principal(),
                        Service::EntraId,
                    ));
                }
            }
        }
    }

    /// Keeps the newest refresh token in memory, and in the cache file when asked to.
    fn keep(
        &self,
        slot: &mut Option<SecretString>,
        next: Option<String>,
    ) -> Result<(), AzureError> {
        let Some(next) = next else { return Ok(()) };
        *slot = Some(SecretString::new(next.clone()));
        let Some(path) = &self.cache_file else {
            return Ok(());
        };
        let mut file = read_cache(path)?;
        file.accounts.retain(|a| !self.is(a));
        file.accounts.push(CachedAccount {
            authority: self.authority.clone(),
            tenant: self.tenant.clone(),
            client_id: self.client_id.clone(),
            refresh_token: next,
        });
        write_cache(path, &file)
    }

    fn forget(&self) -> Result<(), AzureError> {
        let Some(path) = &self.cache_file else {
            return Ok(());
        };
        let mut file = read_cache(path)?;
        file.accounts.retain(|a| !self.is(a));
        write_cache(path, &file)
    }

    fn is(&self, a: &CachedAccount) -> bool {
        a.authority == self.authority && a.tenant == self.tenant && a.client_id == self.client_id
    }
}

impl TokenSource for DeviceCodeSource {
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(self.run(http, scope))
    }
}

fn token_of(
    resp: &crate::azure::http::HttpResponse,
) -> Result<(AccessToken, Option<String>), AzureError> {
    let body: TokenResponse = resp.json(Service::EntraId)?;
    let lifetime = body
        .expires_in
        .as_u64()
        .ok_or_else(|| AzureError::InvalidResponse {
            service: Service::EntraId,
            detail: "expires_in is not a number".into(),
        })?;
    Ok((
        AccessToken::new(body.access_token.into(), Duration::from_secs(lifetime)),
        body.refresh_token,
    ))
}
