//! When Azure requests are retried: the backoff policy, which statuses are transient (for Entra
//! ID, ARM and Key Vault, and for IMDS), and how long the service asked us to wait.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

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
}
