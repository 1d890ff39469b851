//! A shared view of one vault as one identity sees it: the latest listing (single-flight, reused
//! while fresh) and the values of the secrets in use, fetched again only when their version changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::budget::{Budget, Budgets};
use crate::azure::{AzureApi, AzureError, Credential, Secret, SecretProperties};
use crate::idle_map::IdleMap;

/// Key Vault's documented per-vault limit for secret reads: 4,000 transactions per 10 seconds.
pub const KEY_VAULT_LIMIT_PER_10S: u32 = 4000;

/// The views of every (identity, vault) pair in use, and one request budget per vault.
pub struct VaultViews {
    /// By (the credential's address, vault URI): a view holds its credential, so the address
    /// names one identity for as long as the view lives.
    views: IdleMap<(usize, String), VaultView>,
    budgets: Budgets,
}

impl Default for VaultViews {
    fn default() -> Self {
        Self::new(KEY_VAULT_LIMIT_PER_10S / 10)
    }
}

/// The shortest time a view is kept after its last use.
const MIN_IDLE: Duration = Duration::from_secs(600);

/// How long every caller of a vault waits after a 429 that named no `Retry-After`.
const DEFAULT_THROTTLE_PAUSE: Duration = Duration::from_secs(10);

impl VaultViews {
    /// Creates the views with a budget of `requests_per_10s` requests per vault.
    pub fn new(requests_per_10s: u32) -> Self {
        VaultViews {
            views: IdleMap::new(VaultView::keep),
            budgets: Budgets::new(requests_per_10s, Duration::from_secs(10)),
        }
    }

    /// Returns the view of `vault` as seen by `cred`, creating it on first use.
    ///
    /// Views are per identity: two identities never share listings or values, because their
    /// permissions may differ.
    pub fn view(&self, cred: &Arc<Credential>, vault: &str) -> Arc<VaultView> {
        let vault = vault.trim_end_matches('/').to_ascii_lowercase();
        // A view keeps its credential (and so the shared token cache) alive while it is in use;
        // views idle for longer than twice the longest interval they served are dropped, which
        // also retires the credentials of rotated secrets.
        let key = (Arc::as_ptr(cred) as usize, vault.clone());
        self.views.get_or_insert_with(key, || VaultView {
            budget: self.budgets.of(&vault),
            pages: std::sync::atomic::AtomicU32::new(1),
            vault,
            _cred: cred.clone(),
            keep: Mutex::new(MIN_IDLE),
            listing: tokio::sync::Mutex::new(None),
            values: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// Returns how many views are alive.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Tells whether no view is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Listing {
    at: Instant,
    secrets: Arc<Vec<SecretProperties>>,
}

struct Cached {
    secret: Arc<Secret>,
    used: Instant,
}

/// One vault as one identity sees it.
pub struct VaultView {
    vault: String,
    budget: Arc<Budget>,
    pages: std::sync::atomic::AtomicU32,
    /// Held so that the identity (and its token cache) lives as long as the view.
    _cred: Arc<Credential>,
    /// How long the view is kept unused: twice the longest listing age any caller accepted.
    keep: Mutex<Duration>,
    listing: tokio::sync::Mutex<Option<Listing>>,
    values: Mutex<HashMap<String, Cached>>,
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl VaultView {
    /// Returns the vault's URI.
    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// Returns the listing, refreshed when older than `max_age`; concurrent callers share one refresh.
    pub async fn list(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        max_age: Duration,
    ) -> Result<Arc<Vec<SecretProperties>>, AzureError> {
        self.touch(max_age);
        let mut listing = self.listing.lock().await;
        if let Some(l) = listing.as_ref().filter(|l| l.at.elapsed() < max_age) {
            return Ok(l.secrets.clone());
        }
        let pages = self.pages.load(std::sync::atomic::Ordering::Relaxed);
        self.budget.acquire(pages).await;
        let secrets =
            Arc::new(self.throttled(azure.list_secret_properties(cred, &self.vault).await)?);
        let listed_pages = secrets
            .len()
            .div_ceil(crate::azure::keyvault::PAGE_SIZE as usize)
            .max(1);
        self.pages
            .store(listed_pages as u32, std::sync::atomic::Ordering::Relaxed);
        *listing = Some(Listing {
            at: Instant::now(),
            secrets: secrets.clone(),
        });
        drop(listing);
        self.sweep(max_age.max(Duration::from_secs(300)) * 2);
        Ok(secrets)
    }

    /// Returns the latest value of a listed secret, from memory while its version is unchanged.
    pub async fn latest(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        listed: &SecretProperties,
    ) -> Result<Arc<Secret>, AzureError> {
        let key = listed.name.to_ascii_lowercase();
        let fresh =
            |c: &Cached| c.secret.properties.updated == listed.updated && listed.updated.is_some();
        self.fetch_once(&key, fresh, || {
            azure.get_secret(cred, &self.vault, &listed.name, None)
        })
        .await
    }

    /// Returns a pinned version of a secret; versions never change, so it is fetched once.
    pub async fn pinned(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        name: &str,
        version: &str,
    ) -> Result<Arc<Secret>, AzureError> {
        let key = format!(
            "{}/{}",
            name.to_ascii_lowercase(),
            version.to_ascii_lowercase()
        );
        self.fetch_once(
            &key,
            |_| true,
            || azure.get_secret(cred, &self.vault, name, Some(version)),
        )
        .await
    }

    /// Returns the cached value under `key` when `fresh` says so, else fetches it with one call
    /// shared by every concurrent caller of the same key.
    async fn fetch_once<'a, F>(
        &self,
        key: &str,
        fresh: impl Fn(&Cached) -> bool,
        fetch: impl FnOnce() -> F,
    ) -> Result<Arc<Secret>, AzureError>
    where
        F: std::future::Future<Output = Result<Secret, AzureError>> + 'a,
    {
        if let Some(s) = self.cached(key, &fresh) {
            return Ok(s);
        }
        let gate = {
            let mut fetching = self.fetching.lock().expect("fetching lock");
            fetching.entry(key.to_string()).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(s) = self.cached(key, &fresh) {
            return Ok(s);
        }
        self.budget.acquire(1).await;
        let result = self.throttled(fetch().await);
        self.fetching.lock().expect("fetching lock").remove(key);
        let secret = Arc::new(result?);
        self.values.lock().expect("values lock").insert(
            key.to_string(),
            Cached {
                secret: secret.clone(),
                used: Instant::now(),
            },
        );
        Ok(secret)
    }

    fn touch(&self, max_age: Duration) {
        let mut keep = self.keep.lock().expect("keep lock");
        *keep = (*keep).max(max_age * 2);
    }

    /// Returns how long the view is kept after its last use.
    fn keep(&self) -> Duration {
        *self.keep.lock().expect("keep lock")
    }

    /// Pauses every caller of this vault when it throttled us.
    fn throttled<T>(&self, result: Result<T, AzureError>) -> Result<T, AzureError> {
        if let Err(AzureError::Throttled { retry_after, .. }) = &result {
            self.budget
                .pause(retry_after.unwrap_or(DEFAULT_THROTTLE_PAUSE));
        }
        result
    }

    fn cached(&self, key: &str, fresh: &impl Fn(&Cached) -> bool) -> Option<Arc<Secret>> {
        let mut values = self.values.lock().expect("values lock");
        let c = values.get_mut(key).filter(|c| fresh(c))?;
        c.used = Instant::now();
        Some(c.secret.clone())
    }

    /// Forgets values nobody asked for within `idle`, so memory follows what is in use.
    fn sweep(&self, idle: Duration) {
        self.values
            .lock()
            .expect("values lock")
            .retain(|_, c| c.used.elapsed() < idle);
    }

    /// Sends one request of a writer (a push) through this vault's budget, pausing every caller
    /// of the vault when it answers 429; a write also makes the next listing fresh, so what is
    /// listed is never older than what this operator wrote.
    pub async fn budgeted<T, F>(&self, write: bool, request: F) -> Result<T, AzureError>
    where
        F: std::future::Future<Output = Result<T, AzureError>>,
    {
        self.touch(Duration::ZERO);
        self.budget.acquire(1).await;
        let result = self.throttled(request.await);
        if write {
            *self.listing.lock().await = None;
        }
        result
    }

    /// Returns how many values are held in memory.
    pub fn cached_values(&self) -> usize {
        self.values.lock().expect("values lock").len()
    }
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;
