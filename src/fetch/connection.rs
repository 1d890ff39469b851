//! A shared view of one workspace connection as one identity sees it: one `listsecrets` per
//! interval (single-flight) serves every WorkspaceSecret that references the connection; changes
//! are detected by a keyed HMAC of the credentials, and the values are dropped from memory once
//! nobody has used them for a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

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
}

impl Default for ConnectionViews {
    fn default() -> Self {
        ConnectionViews {
            views: IdleMap::new(|_| KEEP),
            key: DigestKey::random(),
        }
    }
}

impl ConnectionViews {
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
}

/// One connection as one identity sees it.
pub struct ConnectionView {
    workspace: WorkspaceRef,
    connection: String,
    /// Held so that the identity (and its token cache) lives as long as the view.
    _cred: Arc<Credential>,
    key: DigestKey,
    state: tokio::sync::Mutex<State>,
}

impl ConnectionView {
    /// Returns the connection's name.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Returns the connection with its credentials, read again with `listsecrets` when older than
    /// `max_age`; concurrent callers share one call.
    pub async fn get(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        max_age: Duration,
    ) -> Result<Arc<Current>, AzureError> {
        let mut state = self.state.lock().await;
        state.used = Some(Instant::now());
        state.idle = max_age.max(Duration::from_secs(300)) * 2;
        if let (Some(c), Some(at)) = (&state.current, state.at)
            && at.elapsed() < max_age
        {
            return Ok(c.clone());
        }
        let secrets = azure
            .list_connection_secrets(cred, &self.workspace, &self.connection)
            .await?;
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
        let current = Arc::new(Current {
            secrets: Arc::new(secrets),
            seen_since,
        });
        state.current = Some(current.clone());
        state.at = Some(Instant::now());
        state.digest = Some(digest);
        Ok(current)
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
