//! A shared view of one workspace connection as one identity sees it: one `listsecrets` per
//! interval (single-flight) serves every WorkspaceSecret that references the connection; changes
//! are detected by a keyed HMAC of the credentials, and the values are dropped from memory once
//! nobody has used them for a while.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::azure::{
    AzureApi, AzureError, ConnectionSecrets, Credential, Credentials, WorkspaceRef,
};

/// The views of every (identity, workspace, connection) in use, and the per-process HMAC key.
pub struct ConnectionViews {
    views: Mutex<Vec<Arc<ConnectionView>>>,
    key: hmac::Key,
}

impl Default for ConnectionViews {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the system random generator works");
        ConnectionViews {
            views: Mutex::new(Vec::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
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
        let ws_id = workspace.resource_id().to_ascii_lowercase();
        let name = connection.to_ascii_lowercase();
        let mut views = self.views.lock().expect("views lock");
        views.retain(|v| v.cred.strong_count() > 0);
        for v in views.iter() {
            v.forget_if_idle();
        }
        if let Some(v) = views.iter().find(|v| {
            v.ws_id == ws_id
                && v.name == name
                && v.cred.upgrade().is_some_and(|c| Arc::ptr_eq(&c, cred))
        }) {
            return v.clone();
        }
        let view = Arc::new(ConnectionView {
            ws_id,
            name,
            workspace: workspace.clone(),
            connection: connection.to_string(),
            cred: Arc::downgrade(cred),
            key: self.key.clone(),
            state: tokio::sync::Mutex::new(State::default()),
        });
        views.push(view.clone());
        view
    }

    /// Returns how many views are alive.
    pub fn len(&self) -> usize {
        self.views.lock().expect("views lock").len()
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
    digest: Option<hmac::Tag>,
}

/// One connection as one identity sees it.
pub struct ConnectionView {
    ws_id: String,
    name: String,
    workspace: WorkspaceRef,
    connection: String,
    cred: Weak<Credential>,
    key: hmac::Key,
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
        let changed = state
            .digest
            .as_ref()
            .is_none_or(|d| d.as_ref() != digest.as_ref());
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
fn digest(key: &hmac::Key, credentials: &Credentials) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    for (name, value) in credentials.iter() {
        for part in [name.as_bytes(), value.expose().as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
    }
    ctx.sign()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
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
        let d = |c: &Credentials| digest(&k, c).as_ref().to_vec();
        assert_eq!(d(&a), d(&same));
        assert_ne!(d(&a), d(&rotated));
        assert_ne!(d(&a), d(&renamed));
        assert_ne!(d(&a), d(&shifted));
    }

    #[test]
    fn digests_are_keyed_per_process() {
        let c = Credentials::from_fields([("key", "v1")]);
        assert_ne!(
            digest(&key(), &c).as_ref(),
            digest(&key(), &c).as_ref(),
            "two keys must give different digests"
        );
    }
}
