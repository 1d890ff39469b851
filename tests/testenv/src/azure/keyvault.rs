//! A fake Key Vault secrets data plane: 401 challenge, paging with `nextLink`, versions, disabled
//! secrets, 403 for RBAC and access-policy vaults, 404 — shaped like Microsoft's examples.
//!
//! Like Key Vault it names itself by the host it was reached at (ids and `nextLink`s), serves
//! `…/secrets/{name}/` (empty version: the latest) as Microsoft's SDKs request it, updates
//! properties with PATCH, and soft-deletes: a deleted secret is listed under `/deletedsecrets`
//! until purged or recovered, and its name cannot be reused meanwhile (409).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::common::{Calls, Fault, Faults, TokenBook, azure_error, now, uuid_like};
use super::tls::{TestCa, bind, serve_https_with};

mod admit;
mod deleted;
mod inspect;
mod secrets;

pub use inspect::StoredVersion;

use deleted::{delete, get_deleted, list_deleted, purge, recover};
use secrets::{get_latest, get_version, list, set, update_latest, update_version, versions};

/// How the vault authorizes callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionModel {
    /// Azure RBAC: denials are `ForbiddenByRbac`.
    Rbac,
    /// Access policies: denials name the missing secret permission.
    AccessPolicy,
}

#[derive(Clone, Debug)]
struct Version {
    version: String,
    value: String,
    content_type: Option<String>,
    enabled: bool,
    tags: BTreeMap<String, String>,
    created: i64,
    updated: i64,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// A soft-deleted secret: its display name, versions, deletion and scheduled purge times.
#[derive(Clone)]
struct Deleted {
    display: String,
    versions: Vec<Version>,
    deleted_date: i64,
    scheduled_purge_date: i64,
}

#[derive(Default)]
struct Vault {
    secrets: BTreeMap<String, (String, Vec<Version>)>,
    deleted: BTreeMap<String, Deleted>,
    denied: HashSet<String>,
    /// Principals that may read but not write (set, update, delete, purge, recover).
    read_only: HashSet<String>,
}

/// Days a deleted secret stays recoverable (`recoverableDays`).
const RECOVERABLE_DAYS: i64 = 90;

/// Key Vault's service limit when enforced: at most `.0` requests per `.1`, and the times of
/// the requests within the current window.
type ServiceLimit = (
    usize,
    std::time::Duration,
    std::collections::VecDeque<std::time::Instant>,
);

/// The fake vault.
#[derive(Clone)]
pub struct FakeKeyVault {
    vault: Arc<Mutex<Vault>>,
    model: Arc<Mutex<PermissionModel>>,
    /// The token audience it accepts (default `https://vault.azure.net`).
    pub audience: String,
    tenant: String,
    /// Calls by operation (`get`, `list`, `versions`, `set`, `update`, `delete`, `deleted-get`,
    /// `deleted-list`, `purge`, `recover`).
    pub calls: Calls,
    /// Injected faults.
    pub faults: Faults,
    /// Key Vault's service limit, when enforced: at most `.0` requests per `.1`, else 429.
    limit: Arc<Mutex<Option<ServiceLimit>>>,
    /// Tokens it accepts.
    pub tokens: TokenBook,
    /// The vault URI (`https://127.0.0.1:PORT`).
    pub uri: String,
    /// The URI clients use when it differs from `uri` (a forwarded port, e.g. from pods).
    public_uri: Arc<Mutex<Option<String>>>,
    /// TLS connections accepted.
    tls: Arc<std::sync::atomic::AtomicUsize>,
}

const API: &str = "2025-07-01";

impl FakeKeyVault {
    /// Starts the fake over https (HTTP/2 or HTTP/1.1, as the client prefers).
    pub async fn start(ca: &TestCa, tokens: TokenBook, tenant: &str, audience: &str) -> Self {
        Self::start_with(ca.server_config(), tokens, tenant, audience).await
    }

    /// Starts the fake over https with a server TLS configuration of `ca` offering HTTP/1.1 only
    /// (a vault reached through a proxy that does not speak HTTP/2).
    pub async fn start_http1(ca: &TestCa, tokens: TokenBook, tenant: &str, audience: &str) -> Self {
        let mut config = ca.server_config();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::start_with(config, tokens, tenant, audience).await
    }

    /// How many TLS connections clients opened to this vault.
    pub fn tls_connections(&self) -> usize {
        self.tls.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn start_with(
        config: rustls::ServerConfig,
        tokens: TokenBook,
        tenant: &str,
        audience: &str,
    ) -> Self {
        let (tcp, addr) = bind().await;
        let tls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = FakeKeyVault {
            vault: Arc::default(),
            model: Arc::new(Mutex::new(PermissionModel::Rbac)),
            audience: audience.trim_end_matches('/').into(),
            tenant: tenant.into(),
            calls: Calls::default(),
            faults: Faults::default(),
            limit: Arc::default(),
            tokens,
            uri: format!("https://{addr}"),
            public_uri: Arc::default(),
            tls,
        };
        let router = Router::new()
            .route("/secrets", get(list))
            .route("/secrets/{name}", get(get_latest).put(set).delete(delete))
            // An empty version is the latest: Microsoft's SDKs request `/secrets/{name}/`.
            .route("/secrets/{name}/", get(get_latest).patch(update_latest))
            .route("/secrets/{name}/versions", get(versions))
            .route(
                "/secrets/{name}/{version}",
                get(get_version).patch(update_version),
            )
            .route("/deletedsecrets", get(list_deleted))
            .route("/deletedsecrets/{name}", get(get_deleted).delete(purge))
            .route("/deletedsecrets/{name}/recover", post(recover))
            .with_state(fake.clone());
        let accepted = serve_https_with(tcp, router, config);
        FakeKeyVault {
            tls: accepted,
            ..fake
        }
    }

    /// Makes ids and `nextLink`s use `uri`, the address clients reach the vault at (e.g. the
    /// real node's address that forwards to this vault's loopback port).
    pub fn set_public_uri(&self, uri: &str) {
        *self.public_uri.lock().unwrap() = Some(uri.trim_end_matches('/').to_owned());
    }

    /// Enforces a service limit like Key Vault's (4,000 secret transactions per 10 s per vault):
    /// past `max` requests within `window`, answers 429 with `Retry-After`, counted as `throttled`.
    pub fn enforce_limit(&self, max: usize, window: std::time::Duration) {
        *self.limit.lock().unwrap() = Some((max, window, Default::default()));
    }

    /// Adds a version of a secret carrying tags; returns the version id.
    pub fn put_secret_tagged(&self, name: &str, value: &str, tags: &[(&str, &str)]) -> String {
        let id = self.put_secret(name, value, true, None);
        let mut vault = self.vault.lock().unwrap();
        if let Some(v) = vault
            .secrets
            .get_mut(&name.to_lowercase())
            .and_then(|(_, v)| v.last_mut())
        {
            v.tags = tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        id
    }

    /// Sets the permission model.
    pub fn set_model(&self, model: PermissionModel) {
        *self.model.lock().unwrap() = model;
    }

    /// Denies a principal (by object id) every operation.
    pub fn deny(&self, oid: &str) {
        self.vault.lock().unwrap().denied.insert(oid.into());
    }

    /// Adds a version of a secret; returns the version id.
    pub fn put_secret(
        &self,
        name: &str,
        value: &str,
        enabled: bool,
        content_type: Option<&str>,
    ) -> String {
        let v = Version {
            version: uuid_like(),
            value: value.into(),
            content_type: content_type.map(str::to_string),
            enabled,
            tags: BTreeMap::new(),
            created: now(),
            updated: now(),
            nbf: None,
            exp: None,
        };
        let id = v.version.clone();
        let mut vault = self.vault.lock().unwrap();
        // Seeding a name that is soft-deleted purges the deleted one first (a test's shortcut;
        // over HTTP a deleted name cannot be reused until purged or recovered).
        vault.deleted.remove(&name.to_lowercase());
        let entry = vault
            .secrets
            .entry(name.to_lowercase())
            .or_insert_with(|| (name.to_string(), Vec::new()));
        entry.1.push(v);
        id
    }

    /// Returns the latest value of a secret, if it exists.
    pub fn value(&self, name: &str) -> Option<String> {
        let vault = self.vault.lock().unwrap();
        vault
            .secrets
            .get(&name.to_lowercase())
            .and_then(|(_, v)| v.last())
            .map(|v| v.value.clone())
    }

    /// Returns whether a secret of that name is soft-deleted (and not yet purged).
    pub fn is_deleted(&self, name: &str) -> bool {
        self.vault
            .lock()
            .unwrap()
            .deleted
            .contains_key(&name.to_lowercase())
    }

    fn bundle(base: &str, name: &str, v: &Version, with_value: bool) -> serde_json::Value {
        let mut b = serde_json::json!({
            "id": format!("{base}/secrets/{name}/{}", v.version),
            "attributes": {"enabled": v.enabled, "created": v.created, "updated": v.updated, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": RECOVERABLE_DAYS},
        });
        if let Some(nbf) = v.nbf {
            b["attributes"]["nbf"] = nbf.into();
        }
        if let Some(exp) = v.exp {
            b["attributes"]["exp"] = exp.into();
        }
        if with_value {
            b["value"] = v.value.clone().into();
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = ct.clone().into();
        }
        if !v.tags.is_empty() {
            b["tags"] = serde_json::to_value(&v.tags).unwrap();
        }
        b
    }
}

fn not_found(name: &str) -> Response {
    let msg = format!(
        "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    );
    Fault::new(404, azure_error("SecretNotFound", &msg, None)).response()
}

fn deleted_not_found() -> Response {
    Fault::new(
        404,
        azure_error("SecretNotFound", "Deleted Secret not found", None),
    )
    .response()
}

fn bad_parameter(msg: &str) -> Response {
    Fault::new(400, azure_error("BadParameter", msg, None)).response()
}

/// The vault's base URL as the caller reached it (`https://{Host}`), as Key Vault names itself in
/// ids and `nextLink`s; the listening address when the request has no Host.
/// Returns the base of ids and `nextLink`s: the public URI if set, else the host the client
/// asked for (as Key Vault names itself by the name it was reached by), else `uri`.
fn base(f: &FakeKeyVault, h: &HeaderMap) -> String {
    if let Some(public) = f.public_uri.lock().unwrap().clone() {
        return public;
    }
    match h.get("host").and_then(|v| v.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("https://{host}"),
        _ => f.uri.clone(),
    }
}

/// One page of a listing (`maxresults`, at most 25) and the `nextLink` of the next, if any.
fn page(
    base: &str,
    path: &str,
    items: Vec<serde_json::Value>,
    q: &HashMap<String, String>,
) -> Response {
    let max: usize = match q.get("maxresults").map(|m| m.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=25).contains(&n) => n,
        _ => return bad_parameter("invalid maxresults; it must be between 1 and 25"),
    };
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| super::common::b64url_decode(t))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = (skip + max).min(items.len());
    // Key Vault's nextLink names the port even when it is the default (`…vault.azure.net:443/…`).
    let authority = base.trim_start_matches("https://");
    let link_base = if authority.rsplit(']').next().unwrap_or("").contains(':') {
        base.to_string()
    } else {
        format!("{base}:443")
    };
    let next = (end < items.len()).then(|| {
        format!(
            "{link_base}{path}?api-version={API}&$skiptoken={}&maxresults={max}",
            super::common::b64url(end.to_string().as_bytes())
        )
    });
    axum::Json(serde_json::json!({"value": items[skip.min(end)..end], "nextLink": next}))
        .into_response()
}

/// The query of every request (`api-version`, `maxresults`, `$skiptoken`).
type Q = Query<HashMap<String, String>>;
