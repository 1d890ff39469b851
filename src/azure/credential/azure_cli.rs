//! The Azure CLI's signed-in account, the way Azure's own SDKs use it: run
//! `az account get-access-token --output json --resource AUDIENCE [--tenant T]`, read `accessToken`
//! and its expiry (`expires_on`, Unix seconds; older CLIs only print `expiresOn`, a local time),
//! and never show the token, not even in an error that quotes the CLI.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use super::TokenSource;
use crate::azure::BoxFuture;
use crate::azure::error::AzureError;
use crate::azure::http::Http;
use crate::azure::token_cache::AccessToken;

/// The program run; found on `PATH`.
pub(super) const AZ_PROGRAM: &str = "az";

/// How long one `az` run may take (the Azure SDKs wait 10 s).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(10);

/// What `az account get-access-token --output json` prints.
#[derive(Deserialize)]
struct CliToken {
    #[serde(rename = "accessToken")]
    access_token: String,
    #[serde(default)]
    expires_on: Option<super::entra::NumberOrString>,
    #[serde(rename = "expiresOn", default)]
    expires_on_local: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// Tokens of the account `az login` signed in.
pub(crate) struct AzureCliSource {
    tenant: Option<String>,
}

impl AzureCliSource {
    pub(crate) fn new(tenant: Option<String>) -> Self {
        AzureCliSource { tenant }
    }

    async fn run(&self, scope: &str) -> Result<AccessToken, AzureError> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut command = tokio::process::Command::new(AZ_PROGRAM);
        command
            .args([
                "account",
                "get-access-token",
                "--output",
                "json",
                "--resource",
                resource,
            ])
            .env("AZURE_CORE_NO_COLOR", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &self.tenant {
            command.args(["--tenant", t]);
        }
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AzureError::InvalidCredential(
                    "the Azure CLI (az) was not found on PATH: install it and run `az login`, or sign in another way (--auth interactive)".into(),
                )
            } else {
                AzureError::InvalidCredential(format!("cannot run the Azure CLI (az): {e}"))
            }
        })?;
        let output = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| {
                AzureError::InvalidCredential(format!(
                    "the Azure CLI (az account get-access-token) did not answer within {}s",
                    PROCESS_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| AzureError::InvalidCredential(format!("cannot run the Azure CLI: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(classify_failure(
                output.status.code(),
                &stderr,
                self.tenant.as_deref(),
            ));
        }
        let token = parse(&output.stdout)?;
        if let (Some(want), Some(got)) = (&self.tenant, &token.1)
            && !want.eq_ignore_ascii_case(got)
        {
            return Err(AzureError::AuthenticationFailed {
                principal: "the Azure CLI's account".into(),
                code: None,
                detail: format!(
                    "the Azure CLI gave a token of tenant {got}, not of tenant {want}; run `az login --tenant {want}`"
                ),
            });
        }
        Ok(token.0)
    }
}

impl TokenSource for AzureCliSource {
    fn fetch<'a>(
        &'a self,
        _http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(self.run(scope))
    }
}

/// Parses the CLI's JSON into a token and the tenant it names.
fn parse(stdout: &[u8]) -> Result<(AccessToken, Option<String>), AzureError> {
    let unexpected = |why: &str| {
        AzureError::InvalidCredential(format!(
            "the Azure CLI answered `az account get-access-token` unexpectedly ({why}); is it older than 2.0.80?"
        ))
    };
    // serde's error would quote the input (the token) — say only what was wrong.
    let token: CliToken = serde_json::from_slice(stdout).map_err(|e| {
        unexpected(match e.classify() {
            serde_json::error::Category::Data => "a field is missing or of another type",
            _ => "not JSON",
        })
    })?;
    let expires = match token.expires_on.as_ref().and_then(|n| n.as_u64()) {
        Some(unix) => unix as i64,
        None => token
            .expires_on_local
            .as_deref()
            .and_then(local_time_to_unix)
            .ok_or_else(|| unexpected("no expires_on or expiresOn"))?,
    };
    Ok((
        AccessToken::expiring_at(token.access_token.into(), expires),
        token.tenant,
    ))
}

/// Reads `expiresOn` (`2023-10-31 21:59:10.000000`, the machine's local time).
fn local_time_to_unix(s: &str) -> Option<i64> {
    let civil: jiff::civil::DateTime = s.trim().parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::system())
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// Removes anything shaped like a token from the CLI's text and keeps its error lines.
fn sanitize(stderr: &str) -> String {
    let re = regex::Regex::new(
        r#"("accessToken"\s*:\s*")[^"]*"?|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*"#,
    )
    .expect("valid regex");
    let clean = re.replace_all(stderr, "<redacted>");
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    lines.join(" ").chars().take(600).collect()
}

/// Turns a failed `az` run into a reason: not installed, not signed in, or Entra ID refused (with
/// the AADSTS code and its hint).
fn classify_failure(code: Option<i32>, stderr: &str, tenant: Option<&str>) -> AzureError {
    let said = sanitize(stderr);
    if code == Some(127) || stderr.contains("is not recognized as") {
        return AzureError::InvalidCredential(
            "the Azure CLI (az) was not found: install it and run `az login`, or sign in another way (--auth interactive)".into(),
        );
    }
    let login = match tenant {
        Some(t) => format!("az login --tenant {t}"),
        None => "az login".to_string(),
    };
    if let Some(aadsts) = aadsts_in(stderr) {
        return AzureError::AuthenticationFailed {
            principal: "the Azure CLI's account".into(),
            code: Some(aadsts),
            detail: format!("the Azure CLI said: {said}. Run `{login}` again"),
        };
    }
    if stderr.contains("az login") || stderr.contains("az account set") {
        return AzureError::InvalidCredential(format!(
            "the Azure CLI is not signed in{}: run `{login}`. It said: {said}",
            tenant
                .map(|t| format!(" to tenant {t}"))
                .unwrap_or_default()
        ));
    }
    AzureError::AuthenticationFailed {
        principal: "the Azure CLI's account".into(),
        code: None,
        detail: format!(
            "`az account get-access-token` failed (exit code {}): {said}",
            code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
        ),
    }
}

fn aadsts_in(s: &str) -> Option<u32> {
    let rest = &s[s.find("AADSTS")? + 6..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_on_wins_over_the_local_expires_on() {
        let json = br#"{"accessToken":"tok","expiresOn":"2000-01-01 00:00:00.000000","expires_on":4102444800,"subscription":"s","tenant":"t1","tokenType":"Bearer"}"#;
        let (t, tenant) = parse(json).unwrap();
        assert_eq!(tenant.as_deref(), Some("t1"));
        assert!(t.is_fresh());
        let secs = t
            .expires_on
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((4102444799..=4102444801).contains(&secs), "{secs}");
    }

    #[test]
    fn older_clis_local_expiry_is_read() {
        let json = br#"{"accessToken":"tok","expiresOn":"2099-12-31 23:00:00.000000","subscription":"s","tenant":"t1","tokenType":"Bearer"}"#;
        assert!(parse(json).unwrap().0.is_fresh());
    }

    #[test]
    fn unexpected_output_never_quotes_the_token() {
        let e = parse(br#"{"accessToken":"secret-tok"}"#).unwrap_err();
        assert!(!e.to_string().contains("secret-tok"), "{e}");
        let e = parse(b"secret-tok garbage").unwrap_err();
        assert!(!e.to_string().contains("secret-tok"), "{e}");
    }

    #[test]
    fn failures_are_classified() {
        let e = classify_failure(
            Some(1),
            "ERROR: Please run 'az login' to setup account.\n",
            None,
        );
        assert_eq!(e.reason(), "CredentialsUnavailable");
        assert!(e.to_string().contains("run `az login`"), "{e}");
        let e = classify_failure(
            Some(1),
            "ERROR: AADSTS90002: Tenant 'x' not found. Trace ID: 1\n",
            Some("x"),
        );
        assert_eq!(e.reason(), "AuthenticationFailed");
        assert!(e.to_string().contains("tenant does not exist"), "{e}");
        assert!(e.to_string().contains("az login --tenant x"), "{e}");
        let e = classify_failure(Some(2), r#"boom {"accessToken": "eyJabc.def.ghi"}"#, None);
        assert!(!e.to_string().contains("eyJabc"), "{e}");
    }
}
