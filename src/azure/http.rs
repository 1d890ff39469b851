//! The HTTP transport of Azure access: rustls (ring) with bundled roots plus an optional extra CA,
//! bounded retries with backoff, jitter and `Retry-After`, and debug logs without values or tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::{AzureError, NetworkFailure, Service};

mod retry;

pub use retry::{RetryPolicy, retry_after, retry_imds, retry_standard};

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
    hosts: Arc<Hosts>,
}

/// At most this many requests are in flight to one host (a vault, Entra ID, Resource Manager),
/// so that a cold start of hundreds of objects opens about this many HTTP/1.1 connections to it
/// and reuses them afterwards (a request that finds no idle connection in the instant another is
/// being handed back to the pool opens one more, which then joins the pool); over HTTP/2
/// (negotiated where the server offers it) they share one connection.
pub const MAX_REQUESTS_PER_HOST: usize = 8;

/// One request slot pool per host.
#[derive(Debug, Default)]
struct Hosts(std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>);

impl Hosts {
    async fn slot(&self, url: &reqwest::Url) -> tokio::sync::OwnedSemaphorePermit {
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let pool = self
            .0
            .lock()
            .expect("hosts lock")
            .entry(host)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_REQUESTS_PER_HOST)))
            .clone();
        pool.acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
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
        let mut tls = tls_config(config.extra_ca_pem.as_deref())?;
        // Offer HTTP/2 (many requests over one connection), else HTTP/1.1.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .pool_max_idle_per_host(MAX_REQUESTS_PER_HOST)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("amlsecrets/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AzureError::InvalidCredential(format!("HTTP client setup: {e}")))?;
        Ok(Http {
            client,
            retry: config.retry.clone(),
            metrics: None,
            hosts: Arc::default(),
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
            let result = self.attempt(build(&self.client)).await;
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

    async fn attempt(&self, req: RequestBuilder) -> Result<HttpResponse, TransportError> {
        let req = req.build().map_err(transport_error)?;
        let _slot = self.hosts.slot(req.url()).await;
        let resp = self.client.execute(req).await.map_err(transport_error)?;
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
    fn extra_ca_bundle_without_certificates_is_rejected() {
        assert!(tls_config(Some("not a pem")).is_err());
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn endpoint_of_drops_path_and_query() {
        assert_eq!(endpoint_of("https://h:8443/a/b?x=y"), "https://h:8443");
    }
}
