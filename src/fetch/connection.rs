//! A shared view of one workspace connection as one identity sees it: one `listsecrets` per
//! interval (single-flight) serves every WorkspaceSecret that references the connection; changes
//! are detected by a keyed HMAC of the credentials, and the values are dropped from memory once
//! nobody has used them for a while.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::clock::Reader;
use super::vault::Clock;
use crate::azure::{
    AzureApi, AzureError, ConnectionSecrets, Credential, Credentials, WorkspaceRef,
};
use crate::digest::{Digest, DigestKey};
use crate::idle_map::IdleMap;

/// How long a view nobody used is kept: its digest is what tells a change of the credentials
/// (and when they were first seen), so it is kept as long as an unused credential is.
const KEEP: Duration = crate::azure::registry::IDLE;

/// The views of every (identity, workspace, connection) in use, and the per-process HMAC key.
pub struct ConnectionViews {
    /// By (the credential's address, workspace resource ID, connection): a view holds its
    /// credential, so the address names one identity for as long as the view lives.
    views: IdleMap<(usize, String, String), ConnectionView>,
    key: DigestKey,
    clock: Option<Clock>,
}

impl Default for ConnectionViews {
    fn default() -> Self {
        ConnectionViews {
            views: IdleMap::new(|_| KEEP),
            key: DigestKey::random(),
            clock: None,
        }
    }
}

impl ConnectionViews {
    /// Creates the views, each reading its connection on its own clock (once per the shortest
    /// interval of its readers) and waking its readers through `clock` when the credentials
    /// changed.
    pub fn with_clock(clock: Clock) -> Self {
        ConnectionViews {
            clock: Some(clock),
            ..Self::default()
        }
    }

    /// Forgets every reader, so that the clocks stop (the controllers stopped).
    pub fn forget_all(&self) {
        for v in self.views.values() {
            v.readers.lock().expect("readers lock").clear();
        }
    }

    /// Forgets a reader (a deleted WorkspaceSecret) in every view.
    pub fn forget(&self, reader: &Reader) {
        for v in self.views.values() {
            v.readers.lock().expect("readers lock").remove(reader);
        }
    }

    /// Returns the view of a connection as seen by `cred`, creating it on first use.
    ///
    /// Views are per identity: two identities never share credentials, because their permissions
    /// may differ. Views of identities no longer in use are dropped, and values idle for long
    /// are forgotten.
    pub fn view(
        &self,
        cred: &Arc<Credential>,
        workspace: &WorkspaceRef,
        connection: &str,
    ) -> Arc<ConnectionView> {
        let key = (
            Arc::as_ptr(cred) as usize,
            workspace.resource_id().to_ascii_lowercase(),
            connection.to_ascii_lowercase(),
        );
        for v in self.views.values() {
            v.forget_if_idle();
        }
        self.views.get_or_insert_with(key, || ConnectionView {
            workspace: workspace.clone(),
            connection: connection.to_string(),
            _cred: cred.clone(),
            key: self.key.clone(),
            state: tokio::sync::Mutex::new(State::default()),
            clock: self.clock.clone(),
            readers: Mutex::default(),
            ticking: AtomicBool::new(false),
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

/// A connection's credentials as last read, with when they last changed.
#[derive(Debug)]
pub struct Current {
    /// The connection and its credentials.
    pub secrets: Arc<ConnectionSecrets>,
    /// When these credentials were first seen by this process (RFC 3339): the change time when
    /// ARM gives no `lastModifiedAt`.
    pub seen_since: String,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Current>>,
    at: Option<Instant>,
    used: Option<Instant>,
    idle: Duration,
    digest: Option<Digest>,
    /// The latest failure to read (cleared by the next success).
    failed: Option<(AzureError, Instant)>,
}

/// How long a failed read is reported as is before a caller may try again.
const FAILED_REUSE: Duration = Duration::from_secs(4);

/// One connection as one identity sees it.
pub struct ConnectionView {
    workspace: WorkspaceRef,
    connection: String,
    /// Held so that the identity (and its token cache) lives as long as the view.
    _cred: Arc<Credential>,
    key: DigestKey,
    state: tokio::sync::Mutex<State>,
    clock: Option<Clock>,
    /// The WorkspaceSecrets reading it, with their interval and when they last synced.
    readers: Mutex<HashMap<Reader, (Duration, Instant)>>,
    /// Whether the clock task runs.
    ticking: AtomicBool,
}

impl ConnectionView {
    /// Returns the connection's name.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Returns the connection with its credentials. With a clock running, that is the clock's
    /// latest read (it reads once per interval and wakes the readers when the credentials
    /// changed); otherwise it is read again with `listsecrets` when older than `max_age`.
    /// Concurrent callers share one call.
    pub async fn get(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        max_age: Duration,
    ) -> Result<Arc<Current>, AzureError> {
        let clocked = self.ticking.load(Ordering::Acquire) && !max_age.is_zero();
        let mut state = self.state.lock().await;
        state.used = Some(Instant::now());
        state.idle = max_age.max(Duration::from_secs(300)) * 2;
        match (&state.failed, &state.current, state.at) {
            (Some((e, at)), _, _) if at.elapsed() < FAILED_REUSE && !max_age.is_zero() => {
                return Err(e.clone());
            }
            // With the clock running, up to twice `max_age` (a reader that came in with a
            // shorter interval than the clock's sleeping period reads itself after that).
            (None, Some(c), Some(at))
                if at.elapsed() < if clocked { max_age * 2 } else { max_age } =>
            {
                return Ok(c.clone());
            }
            _ => {}
        }
        self.read(&mut state, azure, cred).await
    }

    /// Reads the connection now and wakes every reader when its credentials changed, or when
    /// reading starts or stops failing.
    async fn read(
        &self,
        state: &mut State,
        azure: &dyn AzureApi,
        cred: &Credential,
    ) -> Result<Arc<Current>, AzureError> {
        let secrets = match azure
            .list_connection_secrets(cred, &self.workspace, &self.connection)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let same = state.failed.as_ref().is_some_and(|(before, _)| {
                    std::mem::discriminant(before) == std::mem::discriminant(&e)
                });
                state.failed = Some((e.clone(), Instant::now()));
                state.at = Some(Instant::now());
                if !same {
                    self.wake();
                }
                return Err(e);
            }
        };
        let digest = digest(&self.key, &secrets.credentials);
        let changed = state.digest.as_ref() != Some(&digest);
        let seen_since = match (&state.current, changed) {
            (Some(c), false) => c.seen_since.clone(),
            _ => Timestamp::now().to_string(),
        };
        if changed && state.digest.is_some() {
            tracing::info!(
                connection = %self.connection,
                kind = %secrets.connection.kind(),
                "workspace connection credentials changed"
            );
        }
        let wake = (changed && state.digest.is_some()) || state.failed.is_some();
        let current = Arc::new(Current {
            secrets: Arc::new(secrets),
            seen_since,
        });
        state.current = Some(current.clone());
        state.at = Some(Instant::now());
        state.digest = Some(digest);
        state.failed = None;
        if wake {
            self.wake();
        }
        Ok(current)
    }

    fn wake(&self) {
        let readers: Vec<Reader> = self
            .readers
            .lock()
            .expect("readers lock")
            .keys()
            .cloned()
            .collect();
        if let (Some(clock), false) = (&self.clock, readers.is_empty()) {
            (clock.wake)(readers);
        }
    }

    /// Records that `reader` reads this connection every `interval`; with a clock, starts the
    /// clock if it is not running.
    pub fn follow(self: &Arc<Self>, reader: Reader, interval: Duration) {
        let mut readers = self.readers.lock().expect("readers lock");
        if interval.is_zero() {
            readers.remove(&reader);
            return;
        }
        readers.insert(reader, (interval, Instant::now()));
        drop(readers);
        self.start_clock();
    }

    /// The shortest interval of the readers, forgetting those silent for three of their
    /// intervals (plus a minute).
    fn period(&self) -> Option<Duration> {
        let mut readers = self.readers.lock().expect("readers lock");
        readers.retain(|_, (interval, at)| at.elapsed() < *interval * 3 + Duration::from_secs(60));
        readers.values().map(|(interval, _)| *interval).min()
    }

    fn start_clock(self: &Arc<Self>) {
        let Some(clock) = self.clock.clone() else {
            return;
        };
        if self.ticking.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(view) = weak.upgrade() else { return };
                let Some(period) = view.period() else {
                    view.ticking.store(false, Ordering::Release);
                    if view.period().is_some() && !view.ticking.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                    return;
                };
                let last = view.state.lock().await.at.unwrap_or_else(Instant::now);
                let due = last + period.mul_f64(1.0 - fastrand::f64() * 0.05);
                drop(view);
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                let Some(view) = weak.upgrade() else { return };
                let mut state = view.state.lock().await;
                if state
                    .at
                    .is_none_or(|at| at.elapsed() >= period.mul_f64(0.9))
                {
                    let cred = view._cred.clone();
                    let _ = view.read(&mut state, clock.azure.as_ref(), &cred).await;
                }
            }
        });
    }

    /// Drops the values (keeping the digest) when nobody asked for them within the idle time.
    fn forget_if_idle(&self) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if state
            .used
            .is_some_and(|u| u.elapsed() >= state.idle && state.current.is_some())
        {
            state.current = None;
            state.at = None;
        }
    }

    /// Tells whether the values are held in memory.
    pub fn holds_values(&self) -> bool {
        self.state
            .try_lock()
            .map(|s| s.current.is_some())
            .unwrap_or(true)
    }
}

/// Computes the keyed HMAC of credentials (field names and values, length-prefixed).
fn digest(key: &DigestKey, credentials: &Credentials) -> Digest {
    key.digest(
        credentials
            .iter()
            .flat_map(|(name, value)| [name.as_bytes(), value.expose().as_bytes()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DigestKey {
        ConnectionViews::default().key
    }

    #[test]
    fn digest_changes_with_any_value_or_name_and_only_then() {
        let k = key();
        let a = Credentials::from_fields([("key", "v1")]);
        let same = Credentials::from_fields([("key", "v1")]);
        let rotated = Credentials::from_fields([("key", "v2")]);
        let renamed = Credentials::from_fields([("key2", "v1")]);
        let shifted = Credentials::from_fields([("ke", "yv1")]);
        let d = |c: &Credentials| digest(&k, c);
        assert_eq!(d(&a), d(&same));
        assert_ne!(d(&a), d(&rotated));
        assert_ne!(d(&a), d(&renamed));
        assert_ne!(d(&a), d(&shifted));
    }

    #[test]
    fn digests_are_keyed_per_process() {
        let c = Credentials::from_fields([("key", "v1")]);
        assert_ne!(
            digest(&key(), &c),
            digest(&key(), &c),
            "two keys must give different digests"
        );
    }
}
