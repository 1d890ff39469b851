//! A shared view of one online endpoint, serverless endpoint or datastore as one identity sees
//! it: one read of each (GET, `listKeys`, `listSecrets`) per interval serves every WorkspaceSecret
//! that references it (single-flight); an `AMLToken` endpoint's token is refreshed on its own
//! schedule (before `refreshAfterTimeUtc`, spread with jitter, never served past
//! `expiryTimeUtc`); when each value was first seen is tracked with a keyed HMAC; values are
//! dropped once nobody has asked for them for a while.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::api::{ResourceKind, ResourceRef};
use crate::azure::{
    AzureApi, AzureError, Credential, DatastoreSecrets, Endpoint, EndpointKeys, EndpointToken,
    SecretString, WorkspaceRef,
};

/// The earliest a token is refreshed after it was issued, whatever it says.
const MIN_TOKEN_REFRESH: Duration = Duration::from_secs(1);

/// The views of every (identity, workspace, resource) in use, and the per-process HMAC key.
pub struct EndpointViews {
    views: Mutex<Vec<Arc<ResourceView>>>,
    key: hmac::Key,
}

impl Default for EndpointViews {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the system random generator works");
        EndpointViews {
            views: Mutex::new(Vec::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }
}

impl EndpointViews {
    /// Returns the view of a resource as seen by `cred`, creating it on first use. Views of
    /// identities no longer in use are dropped, and values idle for long are forgotten.
    pub fn view(
        &self,
        cred: &Arc<Credential>,
        workspace: &WorkspaceRef,
        resource: &ResourceRef,
    ) -> Arc<ResourceView> {
        let ws_id = workspace.resource_id().to_ascii_lowercase();
        let mut views = self.views.lock().expect("views lock");
        views.retain(|v| v.cred.strong_count() > 0);
        for v in views.iter() {
            v.forget_if_idle();
        }
        if let Some(v) = views.iter().find(|v| {
            v.ws_id == ws_id
                && v.resource == *resource
                && v.cred.upgrade().is_some_and(|c| Arc::ptr_eq(&c, cred))
        }) {
            return v.clone();
        }
        let view = Arc::new(ResourceView {
            ws_id,
            workspace: workspace.clone(),
            resource: resource.clone(),
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

/// One value of a resource, with its provenance.
#[derive(Debug, Clone)]
pub struct Field {
    /// The value (`Debug` shows `<redacted>`).
    pub value: SecretString,
    /// When this process first saw this value (RFC 3339).
    pub seen_since: String,
    /// When it expires (RFC 3339): tokens only.
    pub expires: Option<String>,
}

/// A resource's values as last read.
#[derive(Debug)]
pub struct Current {
    /// The resource.
    pub resource: ResourceRef,
    /// How it authenticates: the endpoint's `authMode` or the datastore's `secretsType`.
    pub auth: String,
    /// Its values by field name (`primaryKey`, `token`, `scoringUri`, `sasToken`, …).
    pub fields: BTreeMap<String, Field>,
    /// How long until the token must be read again, when it has one.
    pub refresh_in: Option<Duration>,
}

impl Current {
    /// Returns `onlineEndpoint/Key`, `datastore/Sas`, …, as status shows it.
    pub fn kind(&self) -> String {
        let kind = match self.resource.kind {
            ResourceKind::OnlineEndpoint => "onlineEndpoint",
            ResourceKind::ServerlessEndpoint => "serverlessEndpoint",
            ResourceKind::Datastore => "datastore",
        };
        format!("{kind}/{}", self.auth)
    }

    /// Tells whether the resource offers no secret at all (an Entra-only endpoint, a
    /// credential-less datastore), with why, naming what to use instead.
    pub fn no_secrets(&self) -> Option<String> {
        let r = &self.resource;
        let auth = &self.auth;
        match r.kind {
            ResourceKind::Datastore if self.fields.is_empty() => Some(format!(
                "datastore {} uses identity-based access (credentials type {auth}) and has no credentials to sync; the workload reading it needs its own identity with a data role on the storage",
                r.name
            )),
            ResourceKind::Datastore => None,
            _ if self.fields.contains_key("primaryKey") || self.fields.contains_key("token") => {
                None
            }
            _ if is_mode(auth, "Key") || is_mode(auth, "AMLToken") => None,
            _ => Some(format!(
                "{} uses Microsoft Entra ID authentication (authMode {auth}): it has no keys or token to sync; give the workload that calls it its own identity (Azure workload identity) with a role that may invoke the endpoint, and sync only its URI ({}/{})",
                r.describe(),
                r,
                if r.kind == ResourceKind::OnlineEndpoint {
                    "scoringUri"
                } else {
                    "uri"
                }
            )),
        }
    }
}

pub(crate) use crate::azure::endpoints::mode_is as is_mode;

struct TokenState {
    token: EndpointToken,
    refresh_at: Instant,
}

#[derive(Default)]
struct State {
    endpoint: Option<(Endpoint, Instant)>,
    keys: Option<(EndpointKeys, Instant)>,
    token: Option<TokenState>,
    datastore: Option<(DatastoreSecrets, Instant)>,
    seen: BTreeMap<String, (hmac::Tag, String)>,
    used: Option<Instant>,
    idle: Duration,
}

impl State {
    fn drop_values(&mut self) {
        self.endpoint = None;
        self.keys = None;
        self.token = None;
        self.datastore = None;
    }
}

/// One resource as one identity sees it.
pub struct ResourceView {
    ws_id: String,
    workspace: WorkspaceRef,
    resource: ResourceRef,
    cred: Weak<Credential>,
    key: hmac::Key,
    state: tokio::sync::Mutex<State>,
}

fn fresh<T>(slot: &Option<(T, Instant)>, max_age: Duration) -> bool {
    slot.as_ref().is_some_and(|(_, at)| at.elapsed() < max_age)
}

/// When to refresh a token: a random point between 75% and 90% of the way to its
/// `refreshAfterTimeUtc` (or its expiry, whichever comes first and is still ahead), so many
/// endpoints never refresh at once; without either time, after `fallback`.
fn token_refresh_in(token: &EndpointToken, now: i64, fallback: Duration) -> Duration {
    // The earliest of the two that is still ahead: a `refreshAfterTimeUtc` already past (or a
    // placeholder) leaves the expiry.
    let target = [token.refresh_after, token.expiry]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min();
    let Some(target) = target else {
        return fallback.max(MIN_TOKEN_REFRESH);
    };
    let span = Duration::from_secs((target - now) as u64);
    span.mul_f64(0.75 + 0.15 * fastrand::f64())
        .max(MIN_TOKEN_REFRESH)
}

fn expired(token: &EndpointToken, now: i64) -> bool {
    token.expiry.is_some_and(|e| e <= now)
}

impl ResourceView {
    /// Returns the resource's values, reading again whatever is older than `max_age` (the token:
    /// whatever its own schedule says); `secrets` also reads keys, token or credentials, not only
    /// the endpoint's URI. Concurrent callers share one read.
    pub async fn get(
        &self,
        azure: &dyn AzureApi,
        cred: &Credential,
        max_age: Duration,
        secrets: bool,
    ) -> Result<Arc<Current>, AzureError> {
        let mut state = self.state.lock().await;
        state.used = Some(Instant::now());
        state.idle = max_age.max(Duration::from_secs(300)) * 2;
        let (ws, name) = (&self.workspace, self.resource.name.as_str());
        let mut values: Vec<(String, SecretString, Option<String>)> = Vec::new();
        let mut refresh_in = None;
        let auth = match self.resource.kind {
            ResourceKind::Datastore => {
                if !fresh(&state.datastore, max_age) {
                    let d = azure.list_datastore_secrets(cred, ws, name).await?;
                    state.datastore = Some((d, Instant::now()));
                }
                let (d, _) = state.datastore.as_ref().expect("just read");
                for (field, value) in d.credentials.iter() {
                    values.push((field.to_string(), value.clone(), None));
                }
                d.secrets_type.clone()
            }
            kind => {
                let online = kind == ResourceKind::OnlineEndpoint;
                if !fresh(&state.endpoint, max_age) {
                    let e = if online {
                        azure.get_online_endpoint(cred, ws, name).await?
                    } else {
                        azure.get_serverless_endpoint(cred, ws, name).await?
                    };
                    state.endpoint = Some((e, Instant::now()));
                }
                let endpoint = state.endpoint.as_ref().expect("just read").0.clone();
                if secrets && endpoint.uses_keys() && !fresh(&state.keys, max_age) {
                    let k = if online {
                        azure.list_online_endpoint_keys(cred, ws, name).await?
                    } else {
                        azure.list_serverless_endpoint_keys(cred, ws, name).await?
                    };
                    state.keys = Some((k, Instant::now()));
                }
                let now = Timestamp::now().as_second();
                if online && secrets && endpoint.uses_aml_token() {
                    let due = state
                        .token
                        .as_ref()
                        .is_none_or(|t| Instant::now() >= t.refresh_at || expired(&t.token, now));
                    if due {
                        state.token = None;
                        let token = azure.get_online_endpoint_token(cred, ws, name).await?;
                        // A token without times is read again at the interval (5 min when
                        // syncing once).
                        let fallback = if max_age.is_zero() {
                            Duration::from_secs(300)
                        } else {
                            max_age
                        };
                        let wait = token_refresh_in(&token, now, fallback);
                        tracing::debug!(endpoint = %name, refresh_in_s = wait.as_secs(), "online endpoint token refreshed");
                        state.token = Some(TokenState {
                            token,
                            refresh_at: Instant::now() + wait,
                        });
                    }
                }
                // Only callers that asked for secrets get them (and wake for the token's refresh).
                if secrets
                    && endpoint.uses_keys()
                    && let Some((k, _)) = &state.keys
                {
                    for (field, v) in [("primaryKey", &k.primary), ("secondaryKey", &k.secondary)] {
                        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                            values.push((field.into(), v.clone(), None));
                        }
                    }
                }
                if secrets
                    && endpoint.uses_aml_token()
                    && let Some(t) = &state.token
                    && !expired(&t.token, now)
                {
                    let expires = t
                        .token
                        .expiry
                        .and_then(|e| Timestamp::from_second(e).ok())
                        .map(|e| e.to_string());
                    values.push(("token".into(), t.token.access_token.clone(), expires));
                    refresh_in = Some(t.refresh_at.saturating_duration_since(Instant::now()));
                }
                if let Some(uri) = &endpoint.uri {
                    let field = if online { "scoringUri" } else { "uri" };
                    values.push((field.into(), SecretString::new(uri.clone()), None));
                }
                endpoint.auth_mode.clone()
            }
        };
        let fields = self.provenance(&mut state, values);
        Ok(Arc::new(Current {
            resource: self.resource.clone(),
            auth,
            fields,
            refresh_in,
        }))
    }

    /// Attaches to each value when it was first seen, by a keyed HMAC of it.
    fn provenance(
        &self,
        state: &mut State,
        values: Vec<(String, SecretString, Option<String>)>,
    ) -> BTreeMap<String, Field> {
        let now = Timestamp::now().to_string();
        let mut out = BTreeMap::new();
        for (name, value, expires) in values {
            let tag = hmac::sign(&self.key, value.expose().as_bytes());
            let seen_since = match state.seen.get(&name) {
                Some((old, since)) if old.as_ref() == tag.as_ref() => since.clone(),
                previous => {
                    if previous.is_some() && name != "token" {
                        tracing::info!(resource = %self.resource, field = %name, "value changed");
                    }
                    now.clone()
                }
            };
            state.seen.insert(name.clone(), (tag, seen_since.clone()));
            out.insert(
                name,
                Field {
                    value,
                    seen_since,
                    expires,
                },
            );
        }
        out
    }

    /// Drops the values (keeping the digests) when nobody asked for them within the idle time.
    fn forget_if_idle(&self) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if state.used.is_some_and(|u| u.elapsed() >= state.idle) {
            state.drop_values();
        }
    }

    /// Tells whether any value is held in memory.
    pub fn holds_values(&self) -> bool {
        self.state
            .try_lock()
            .map(|s| {
                s.endpoint.is_some()
                    || s.keys.is_some()
                    || s.token.is_some()
                    || s.datastore.is_some()
            })
            .unwrap_or(true)
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
