//! A shared view of one vault as one identity sees it: the latest listing (single-flight) and the
//! values of the secrets in use, fetched again only when their version changed.
//!
//! With a clock ([`VaultViews::with_clock`], as the operator runs), the view is its own clock: it
//! is listed once per the shortest interval of its readers, and a listing that shows a changed,
//! new, disabled or removed secret wakes exactly the readers of that secret at once. Readers then
//! reuse the latest listing, however old, instead of listing on their own schedule. Without a
//! clock (the CLI, unit tests), a listing is reused while younger than the caller's interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{Budget, Budgets};
use super::clock::{Interest, Reader, Readers, Wake};
use crate::azure::{AzureApi, AzureError, Credential, Secret, SecretListing, SecretProperties};
use crate::idle_map::IdleMap;

/// Key Vault's documented per-vault limit for secret reads: 4,000 transactions per 10 seconds.
pub const KEY_VAULT_LIMIT_PER_10S: u32 = 4000;

/// The views of every (identity, vault) pair in use, and one request budget per vault.
pub struct VaultViews {
    /// By (the credential's address, vault URI): a view holds its credential, so the address
    /// names one identity for as long as the view lives.
    views: IdleMap<(usize, String), VaultView>,
    budgets: Budgets,
    clock: Option<Clock>,
}

/// What a view needs to list on its own and wake its readers.
#[derive(Clone)]
pub struct Clock {
    /// Azure access for the listings the clock makes.
    pub azure: Arc<dyn AzureApi>,
    /// Wakes the readers a listing concerns.
    pub wake: Wake,
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
            clock: None,
        }
    }

    /// Creates the views with a budget of `requests_per_10s` requests per vault, each listing on
    /// its own clock and waking its readers through `clock`.
    pub fn with_clock(requests_per_10s: u32, clock: Clock) -> Self {
        VaultViews {
            clock: Some(clock),
            ..Self::new(requests_per_10s)
        }
    }

    /// Forgets every reader, so that the clocks stop (the controllers stopped).
    pub fn forget_all(&self) {
        for view in self.views.values() {
            view.readers.clear();
        }
    }

    /// Forgets a reader (a deleted WorkspaceSecret) in every view.
    pub fn forget(&self, reader: &Reader) {
        for view in self.views.values() {
            view.readers.forget(reader);
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
            pages: AtomicU32::new(1),
            vault,
            _cred: cred.clone(),
            keep: Mutex::new(MIN_IDLE),
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
            values: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            clock: self.clock.clone(),
            readers: Readers::default(),
            ticking: AtomicBool::new(false),
            attempted: Mutex::new(Instant::now()),
            took: Mutex::new(Duration::ZERO),
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
    secrets: Arc<SecretListing>,
    /// How many writes of this operator had been made when the listing started.
    writes: u64,
}

/// The latest listing and the latest failure to list (cleared by the next success).
#[derive(Default)]
struct State {
    listing: Option<Listing>,
    failed: Option<(AzureError, Instant)>,
    /// Writes of this operator to the vault: a listing that started before the latest one is
    /// stale, and the next caller lists again.
    writes: u64,
}

/// How long a failed listing is reported as is before a caller may try again (callers back off
/// on their own too; this only keeps a burst of them from each listing).
const FAILED_REUSE: Duration = Duration::from_secs(4);

struct Cached {
    secret: Arc<Secret>,
    used: Instant,
}

/// One vault as one identity sees it.
pub struct VaultView {
    vault: String,
    budget: Arc<Budget>,
    pages: AtomicU32,
    /// Held so that the identity (and its token cache) lives as long as the view.
    _cred: Arc<Credential>,
    /// How long the view is kept unused: twice the longest listing age any caller accepted.
    keep: Mutex<Duration>,
    /// The latest listing; locked only to read or replace it, never while listing.
    state: Mutex<State>,
    /// Held while the vault is listed: one listing at a time, shared by whoever waits for it.
    flight: tokio::sync::Mutex<()>,
    values: Mutex<HashMap<String, Cached>>,
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    clock: Option<Clock>,
    readers: Readers,
    /// Whether the clock task runs.
    ticking: AtomicBool,
    /// When the vault was last listed (or a listing was last tried).
    attempted: Mutex<Instant>,
    /// How long that listing took, from its first page to its last.
    took: Mutex<Duration>,
}

impl VaultView {
    /// Returns the vault's URI.
    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// Returns the latest listing. With a clock running, that is the clock's latest listing
    /// (the clock keeps it fresh and wakes the readers of what changed); otherwise, or when
    /// `interval` is zero (sync once), the vault is listed when the listing is older than 90% of
    /// `interval`. Concurrent callers share one listing. A failed listing is returned as its
    /// error until a caller tries again a few seconds later.
    pub async fn list(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        interval: Duration,
    ) -> Result<Arc<SecretListing>, AzureError> {
        self.touch(interval);
        if let Some(latest) = self.reusable(interval) {
            return latest;
        }
        // One listing at a time; whoever waited for another's listing takes it.
        let _flight = self.flight.lock().await;
        if let Some(latest) = self.reusable(interval) {
            return latest;
        }
        self.refresh(azure, cred).await
    }

    /// The latest listing (or failure to list), when a caller with `interval` may take it: a
    /// failure for a few seconds, a listing while it is young enough and no write of this
    /// operator came after it started. Readers never wait for a listing under way while the
    /// previous one is young enough.
    fn reusable(&self, interval: Duration) -> Option<Result<Arc<SecretListing>, AzureError>> {
        let clocked = self.ticking.load(Ordering::Acquire) && !interval.is_zero();
        let state = self.state.lock().expect("state lock");
        match (&state.failed, &state.listing) {
            (Some((e, at)), _) if at.elapsed() < FAILED_REUSE && !interval.is_zero() => {
                Some(Err(e.clone()))
            }
            // The clock keeps the listing younger than the shortest interval of the readers; a
            // reader that came in with a shorter interval than the clock's sleeping period lists
            // itself once the listing is half an interval older than it accepts.
            (None, Some(l))
                if l.writes == state.writes
                    && l.at.elapsed()
                        < if clocked {
                            interval.mul_f64(1.5)
                        } else {
                            interval.mul_f64(0.9)
                        } =>
            {
                Some(Ok(l.secrets.clone()))
            }
            _ => None,
        }
    }

    /// Lists the vault now (the caller holds `flight`), remembers the listing, and wakes the
    /// readers it concerns: those of changed secrets, or every reader when listing starts or
    /// stops failing.
    async fn refresh(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
    ) -> Result<Arc<SecretListing>, AzureError> {
        *self.attempted.lock().expect("attempted lock") = Instant::now();
        let writes = self.state.lock().expect("state lock").writes;
        let pages = self.pages.load(Ordering::Relaxed);
        self.budget.acquire(pages).await;
        let started = Instant::now();
        let result = self.throttled(azure.list_secret_properties(cred, &self.vault).await);
        *self.took.lock().expect("took lock") = started.elapsed();
        let mut state = self.state.lock().expect("state lock");
        let (woken, result) = match result {
            Ok(secrets) => {
                let secrets = Arc::new(SecretListing::new(secrets));
                let listed_pages = secrets
                    .len()
                    .div_ceil(crate::azure::keyvault::PAGE_SIZE as usize)
                    .max(1);
                self.pages.store(listed_pages as u32, Ordering::Relaxed);
                let woken = match (&state.failed, &state.listing) {
                    (Some(_), _) => self.readers.all(),
                    (None, Some(old)) => self.readers.concerned(&old.secrets, &secrets),
                    (None, None) => Vec::new(),
                };
                state.listing = Some(Listing {
                    at: Instant::now(),
                    secrets: secrets.clone(),
                    writes,
                });
                state.failed = None;
                (woken, Ok(secrets))
            }
            Err(e) => {
                let woken = match &state.failed {
                    Some((before, _))
                        if std::mem::discriminant(before) == std::mem::discriminant(&e) =>
                    {
                        Vec::new()
                    }
                    _ => self.readers.all(),
                };
                state.failed = Some((e.clone(), Instant::now()));
                (woken, Err(e))
            }
        };
        drop(state);
        self.sweep(self.keep().max(Duration::from_secs(600)));
        self.wake(woken);
        result
    }

    fn wake(&self, readers: Vec<Reader>) {
        if let (Some(clock), false) = (&self.clock, readers.is_empty()) {
            (clock.wake)(readers);
        }
    }

    /// Records what `reader` reads here; with a clock, starts the clock if it is not running.
    pub fn follow(self: &Arc<Self>, reader: Reader, interest: Interest) {
        if interest.interval.is_zero() {
            self.readers.forget(&reader);
            return;
        }
        self.readers.follow(reader, interest);
        self.start_clock();
    }

    /// Forgets a reader.
    pub fn unfollow(&self, reader: &Reader) {
        self.readers.forget(reader);
    }

    /// Starts the clock task unless it runs: it lists the vault once per the shortest interval
    /// of the readers, and ends when no reader is left or the view is dropped.
    fn start_clock(self: &Arc<Self>) {
        let Some(clock) = self.clock.clone() else {
            return;
        };
        if self.ticking.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(view) = weak.upgrade() else { return };
                let Some(period) = view.readers.period() else {
                    view.ticking.store(false, Ordering::Release);
                    // A reader that came in meanwhile found the clock still running.
                    if view.readers.period().is_some() && !view.ticking.swap(true, Ordering::AcqRel)
                    {
                        continue;
                    }
                    return;
                };
                // The first tick comes at a random point of the second half of the period, so
                // that views started together (an operator start) do not list, and wake their
                // readers, at the same moments; later ones up to 5% early, and earlier still by
                // the time the last listing took (up to a tenth of the period): a listing wakes
                // the readers of a change only once its last page is in, and that is to happen
                // within one period of the change.
                let (early, lead) = if first {
                    (0.5, Duration::ZERO)
                } else {
                    let took = *view.took.lock().expect("took lock");
                    (0.05, took.min(period / 10))
                };
                first = false;
                let due = *view.attempted.lock().expect("attempted lock")
                    + period.mul_f64(1.0 - fastrand::f64() * early)
                    - lead;
                drop(view);
                tokio::time::sleep_until(due).await;
                let Some(view) = weak.upgrade() else { return };
                let _flight = view.flight.lock().await;
                let last = *view.attempted.lock().expect("attempted lock");
                if last.elapsed() >= period.mul_f64(0.8) {
                    let cred = view._cred.clone();
                    let _ = view.refresh(clock.azure.as_ref(), &cred).await;
                }
            }
        });
    }

    /// Returns how many readers follow this view.
    pub fn readers(&self) -> usize {
        self.readers.len()
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
            self.state.lock().expect("state lock").writes += 1;
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
