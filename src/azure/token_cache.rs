//! A token cache per identity: one token per audience, renewed shortly before it expires, and one
//! refresh shared by every concurrent caller (single flight), failures included.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::error::AzureError;
use super::redact::SecretString;

/// The longest margin before expiry at which a token is renewed.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token and when to renew it.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The token; never log it.
    pub secret: SecretString,
    /// When the token expires.
    pub expires_on: SystemTime,
    /// When to fetch a new one: 5 minutes or 10 % of its lifetime before expiry, whichever is sooner.
    pub refresh_at: SystemTime,
}

impl AccessToken {
    /// Builds a token that expires `lifetime` from now.
    pub fn new(secret: SecretString, lifetime: Duration) -> Self {
        let now = SystemTime::now();
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
        AccessToken {
            secret,
            expires_on: now + lifetime,
            refresh_at: now + lifetime - margin,
        }
    }

    /// Builds a token that expires at a Unix time (seconds).
    pub fn expiring_at(secret: SecretString, unix_seconds: i64) -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        Self::new(
            secret,
            Duration::from_secs((unix_seconds - now).max(0) as u64),
        )
    }

    /// Tells whether the token can still be used without renewing it.
    pub fn is_fresh(&self) -> bool {
        SystemTime::now() < self.refresh_at
    }
}

#[derive(Default)]
struct Slot {
    token: Option<AccessToken>,
    failure: Option<(Instant, AzureError)>,
}

/// Tokens of one identity, by scope.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "TokenCache {{ scopes: {n} }}")
    }
}

impl TokenCache {
    /// Returns the cached token of `scope`, or fetches one with `fetch`; callers arriving while a
    /// fetch runs wait for it and share its token or its error.
    pub async fn get<F, Fut>(&self, scope: &str, fetch: F) -> Result<AccessToken, AzureError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AzureError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().expect("token cache lock");
            slots.entry(scope.to_string()).or_default().clone()
        };
        let arrived = Instant::now();
        let mut slot = slot.lock().await;
        if let Some(t) = slot.token.as_ref().filter(|t| t.is_fresh()) {
            return Ok(t.clone());
        }
        if let Some((at, e)) = &slot.failure
            && *at >= arrived
        {
            return Err(e.clone());
        }
        match fetch().await {
            Ok(t) => {
                slot.token = Some(t.clone());
                slot.failure = None;
                Ok(t)
            }
            Err(e) => {
                slot.failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Forgets the token of `scope` (after the service rejected it), so the next call fetches anew.
    pub async fn invalidate(&self, scope: &str) {
        let slot = self
            .slots
            .lock()
            .expect("token cache lock")
            .get(scope)
            .cloned();
        if let Some(slot) = slot {
            slot.lock().await.token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn refresh_margin_is_five_minutes_or_ten_percent() {
        let t = AccessToken::new("x".into(), Duration::from_secs(3600));
        let margin = t.expires_on.duration_since(t.refresh_at).unwrap();
        assert_eq!(margin, Duration::from_secs(300));
        let t = AccessToken::new("x".into(), Duration::from_secs(600));
        assert_eq!(
            t.expires_on.duration_since(t.refresh_at).unwrap(),
            Duration::from_secs(60)
        );
        assert!(t.is_fresh());
        assert!(!AccessToken::new("x".into(), Duration::ZERO).is_fresh());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("s", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(AccessToken::new("tok".into(), Duration::from_secs(3600)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().secret.expose(), "tok");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_failure_and_a_later_call_retries() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("s", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(AzureError::InvalidCredential("nope".into()))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = cache
            .get("s", || async {
                Ok(AccessToken::new("t2".into(), Duration::from_secs(60)))
            })
            .await;
        assert_eq!(again.unwrap().secret.expose(), "t2");
    }

    #[tokio::test]
    async fn expired_or_invalidated_tokens_are_fetched_again() {
        let cache = TokenCache::default();
        let n = AtomicUsize::new(0);
        let fetch = || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            let life = if i == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            };
            Ok(AccessToken::new(format!("t{i}").into(), life))
        };
        assert_eq!(cache.get("s", fetch).await.unwrap().secret.expose(), "t0");
        assert_eq!(cache.get("s", fetch).await.unwrap().secret.expose(), "t1");
        assert_eq!(cache.get("s", fetch).await.unwrap().secret.expose(), "t1");
        cache.invalidate("s").await;
        assert_eq!(cache.get("s", fetch).await.unwrap().secret.expose(), "t2");
    }
}
