//! What the fakes share: call counters, fault injection, the book of issued tokens, and JWT helpers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Returns the current Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Counts calls by operation.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<String, usize>>>);

impl Calls {
    /// Records one call of `op`.
    pub fn hit(&self, op: &str) {
        *self.0.lock().unwrap().entry(op.to_string()).or_default() += 1;
    }

    /// Returns how many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Returns the total number of calls.
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    /// Forgets all counts.
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A canned answer to inject.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

impl Fault {
    /// Builds a fault answering `status` with `body`.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Fault {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Turns the fault into a response.
    pub fn response(&self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (k, v) in &self.headers {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        (
            StatusCode::from_u16(self.status).unwrap(),
            headers,
            self.body.clone(),
        )
            .into_response()
    }
}

/// Injected faults and delays of one fake.
#[derive(Clone, Default)]
pub struct Faults {
    queue: Arc<Mutex<VecDeque<Fault>>>,
    delay: Arc<Mutex<Option<Duration>>>,
}

impl Faults {
    /// Answers the next request with `fault` (queued after earlier faults).
    pub fn push(&self, fault: Fault) {
        self.queue.lock().unwrap().push_back(fault);
    }

    /// Answers the next `n` requests with `fault`.
    pub fn push_n(&self, n: usize, fault: Fault) {
        for _ in 0..n {
            self.push(fault.clone());
        }
    }

    /// Drops every queued fault.
    pub fn clear(&self) {
        self.queue.lock().unwrap().clear();
    }

    /// Delays every answer by `d` (`None` removes the delay).
    pub fn set_delay(&self, d: Option<Duration>) {
        *self.delay.lock().unwrap() = d;
    }

    /// Waits the configured delay, then returns the next queued fault, if any.
    pub async fn next(&self) -> Option<Response> {
        let delay = *self.delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.queue.lock().unwrap().pop_front().map(|f| f.response())
    }
}

/// Who a token was issued to, and for what.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The audience (resource, without `/.default`).
    pub audience: String,
    /// The principal's object id.
    pub oid: String,
    /// The application (client) id.
    pub appid: String,
    /// The tenant.
    pub tid: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// Tokens issued by the fake Entra ID and IMDS, checked by the fake ARM and Key Vault.
#[derive(Clone, Default)]
pub struct TokenBook(Arc<Mutex<HashMap<String, Grant>>>);

impl TokenBook {
    /// Issues a JWT-shaped access token for `grant` (unsigned: the fakes look it up here).
    pub fn issue(&self, grant: Grant) -> String {
        let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "aud": grant.audience, "oid": grant.oid, "appid": grant.appid, "tid": grant.tid,
            "exp": grant.exp, "iat": now(), "jti": uuid_like(),
        });
        let token = format!("{header}.{}.fake", b64url(claims.to_string().as_bytes()));
        self.0.lock().unwrap().insert(token.clone(), grant);
        token
    }

    /// Looks up a bearer token from an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Option<Grant> {
        let token = authorization?.strip_prefix("Bearer ")?;
        self.0.lock().unwrap().get(token).cloned()
    }

    /// Returns every token issued so far (to look for leaks).
    pub fn issued(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

/// Returns a random 32-hex-digit id (Key Vault versions, jti).
pub fn uuid_like() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds the `{"error":{"code","message"[,"innererror"]}}` body of ARM and Key Vault.
pub fn azure_error(code: &str, message: &str, inner: Option<&str>) -> String {
    let mut e = serde_json::json!({"error": {"code": code, "message": message}});
    if let Some(i) = inner {
        e["error"]["innererror"] = serde_json::json!({"code": i});
    }
    e.to_string()
}
