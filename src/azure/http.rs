//! The HTTP transport of Azure access: rustls (ring) with bundled roots plus an optional extra CA,
//! bounded retries with backoff, jitter and `Retry-After`, and debug logs without values or tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::{AzureError, NetworkFailure, Service};

/// How requests are retried: exponential backoff with jitter, bounded in attempts and total time.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// The most attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it.
    pub initial_backoff: Duration,
    /// The largest single backoff.
    pub max_backoff: Duration,
    /// The most time one request may take, retries and waits included.
    pub max_total: Duration,
    /// The most time one request waits in place for 429 answers, all waits added up; a longer
    /// `Retry-After` returns `Throttled` at once, so that status says so while the caller's shared
    /// pause (per vault) and backoff honour the wait.
    pub max_throttle_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(800),
            max_backoff: Duration::from_secs(30),
            max_total: Duration::from_secs(90),
            max_throttle_wait: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Returns the wait before retry number `retry` (0-based): doubling, capped, with ±25 % jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let base = base.min(self.max_backoff);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        base.mul_f64(jitter)
    }
}

/// Settings of the HTTP client shared by all Azure calls.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// PEM certificates trusted in addition to the bundled Mozilla roots (Azure Stack, TLS-inspecting proxies, tests).
    pub extra_ca_pem: Option<String>,
    /// The timeout of one attempt.
    pub request_timeout: Duration,
    /// The timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// The retry policy.
    pub retry: RetryPolicy,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            extra_ca_pem: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, service: Service) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::InvalidResponse {
            service,
            detail: format!("status {}: {e}", self.status.as_u16()),
        })
    }
}

/// A failed attempt that never got an answer.
#[derive(Debug, Clone)]
pub struct TransportError {
    /// What kind of failure.
    pub failure: NetworkFailure,
    /// The error chain, for a person.
    pub detail: String,
}

/// The shared HTTP client with its retry policy.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    retry: RetryPolicy,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Builds the rustls configuration: ring provider, Mozilla roots, plus the extra PEM CAs.
pub fn tls_config(extra_ca_pem: Option<&str>) -> Result<rustls::ClientConfig, AzureError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert =
                cert.map_err(|e| AzureError::InvalidCredential(format!("extra CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| AzureError::InvalidCredential(format!("extra CA bundle: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(AzureError::InvalidCredential(
                "extra CA bundle holds no PEM certificate".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AzureError::InvalidCredential(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Http {
    /// Builds the client from its configuration.
    pub fn new(config: &HttpConfig) -> Result<Self, AzureError> {
        let tls = tls_config(config.extra_ca_pem.as_deref())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("amlsecrets/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AzureError::InvalidCredential(format!("HTTP client setup: {e}")))?;
        Ok(Http {
            client,
            retry: config.retry.clone(),
            metrics: None,
        })
    }

    /// Records every request attempt and token acquisition in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Returns the metrics requests are recorded in, if any.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_deref()
    }

    /// Returns the underlying reqwest client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Returns the retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends a request built by `build` (once per attempt), retrying connection errors and the
    /// statuses `retryable` accepts; returns the last answer, or the last transport error.
    pub async fn send(
        &self,
        operation: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        retryable: fn(StatusCode) -> bool,
    ) -> Result<HttpResponse, TransportError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut throttled_wait = Duration::ZERO;
        loop {
            attempt += 1;
            let t0 = Instant::now();
            let result = Self::attempt(build(&self.client)).await;
            let elapsed = t0.elapsed();
            if let Some(m) = &self.metrics {
                let status = match &result {
                    Ok(resp) => resp.status.as_u16().to_string(),
                    Err(e) => failure_label(&e.failure).to_string(),
                };
                m.azure_request(operation, &status, elapsed);
            }
            let wait = match &result {
                Ok(resp) => {
                    tracing::debug!(
                        operation,
                        status = resp.status.as_u16(),
                        duration_ms = elapsed.as_millis() as u64,
                        attempt,
                        "azure request"
                    );
                    if !retryable(resp.status) {
                        return result;
                    }
                    let wait = retry_after(&resp.headers)
                        .unwrap_or_else(|| self.retry.backoff(attempt - 1));
                    if resp.status == StatusCode::TOO_MANY_REQUESTS {
                        throttled_wait += wait;
                        if throttled_wait > self.retry.max_throttle_wait {
                            return result;
                        }
                    }
                    wait
                }
                Err(e) => {
                    tracing::debug!(
                        operation,
                        failure = %e.failure,
                        duration_ms = elapsed.as_millis() as u64,
                        attempt,
                        "azure request failed"
                    );
                    self.retry.backoff(attempt - 1)
                }
            };
            let out_of_time = started.elapsed() + wait > self.retry.max_total;
            if attempt >= self.retry.max_attempts || out_of_time {
                return result;
            }
            tracing::debug!(
                operation,
                wait_ms = wait.as_millis() as u64,
                attempt,
                "azure request retry"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(req: RequestBuilder) -> Result<HttpResponse, TransportError> {
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport_error)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Tells whether a status is worth retrying for Entra ID, ARM and Key Vault: 408, 429 and 5xx.
pub fn retry_standard(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Tells whether an IMDS status is worth retrying: 404, 410 (IMDS upgrading), 429 and 5xx.
pub fn retry_imds(status: StatusCode) -> bool {
    status == StatusCode::NOT_FOUND || status == StatusCode::GONE || retry_standard(status)
}

/// Reads `Retry-After` (seconds or an HTTP date), or `x-ms-retry-after-ms`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("x-ms-retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = when.as_second() - jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(delta.max(0) as u64))
}

/// The `status` label of an attempt that got no answer.
fn failure_label(failure: &NetworkFailure) -> &'static str {
    match failure {
        NetworkFailure::Dns => "dns_error",
        NetworkFailure::Tls => "tls_error",
        NetworkFailure::Connect => "connect_error",
        NetworkFailure::Timeout => "timeout",
        NetworkFailure::Other => "network_error",
    }
}

fn transport_error(e: reqwest::Error) -> TransportError {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    let mut tls = false;
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        let text = s.to_string();
        if text.contains("certificate") || text.contains("handshake") {
            tls = true;
        }
        chain.push_str(": ");
        chain.push_str(&text);
        source = s.source();
    }
    let failure = if e.is_timeout() {
        NetworkFailure::Timeout
    } else if e.is_dns() {
        NetworkFailure::Dns
    } else if tls {
        NetworkFailure::Tls
    } else if e.is_connect() {
        NetworkFailure::Connect
    } else {
        NetworkFailure::Other
    };
    TransportError {
        failure,
        detail: chain,
    }
}

/// Returns scheme, host and port of a URL, for messages (never the query).
pub fn endpoint_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_with_jitter() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_total: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let b0 = p.backoff(0);
            assert!(
                b0 >= Duration::from_millis(75) && b0 <= Duration::from_millis(125),
                "{b0:?}"
            );
            let b2 = p.backoff(2);
            assert!(
                b2 >= Duration::from_millis(300) && b2 <= Duration::from_millis(500),
                "{b2:?}"
            );
            assert!(p.backoff(20) <= Duration::from_millis(1250));
        }
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("x-ms-retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retry_standard(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409] {
            assert!(!retry_standard(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        assert!(retry_imds(StatusCode::NOT_FOUND) && retry_imds(StatusCode::GONE));
        assert!(!retry_imds(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn extra_ca_bundle_without_certificates_is_rejected() {
        assert!(tls_config(Some("not a pem")).is_err());
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn endpoint_of_drops_path_and_query() {
        assert_eq!(endpoint_of("https://h:8443/a/b?x=y"), "https://h:8443");
    }
}
