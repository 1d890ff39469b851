//! A fake Key Vault secrets data plane: 401 challenge, paging with `nextLink`, versions, disabled
//! secrets, 403 for RBAC and access-policy vaults, 404 — shaped like Microsoft's examples.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::common::{Calls, Fault, Faults, Grant, TokenBook, azure_error, now, uuid_like};
use super::tls::{TestCa, bind, serve_https};

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
}

#[derive(Default)]
struct Vault {
    secrets: BTreeMap<String, (String, Vec<Version>)>,
    denied: HashSet<String>,
}

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
    /// Calls by operation (`get`, `list`, `versions`, `set`, `delete`).
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
}

const API: &str = "2025-07-01";

impl FakeKeyVault {
    /// Starts the fake over https.
    pub async fn start(ca: &TestCa, tokens: TokenBook, tenant: &str, audience: &str) -> Self {
        let (tcp, addr) = bind().await;
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
        };
        let router = Router::new()
            .route("/secrets", get(list))
            .route("/secrets/{name}", get(get_latest).put(set).delete(delete))
            .route("/secrets/{name}/versions", get(versions))
            .route("/secrets/{name}/{version}", get(get_version))
            .with_state(fake.clone());
        serve_https(tcp, router, ca);
        fake
    }

    /// Makes ids and `nextLink`s use `uri`, the address clients reach the vault at (e.g. the
    /// real node's address that forwards to this vault's loopback port).
    pub fn set_public_uri(&self, uri: &str) {
        *self.public_uri.lock().unwrap() = Some(uri.trim_end_matches('/').to_owned());
    }

    /// Returns the base of ids and `nextLink`s: the public URI if set, else `uri`.
    fn base(&self) -> String {
        let public = self.public_uri.lock().unwrap().clone();
        public.unwrap_or_else(|| self.uri.clone())
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
        };
        let id = v.version.clone();
        let mut vault = self.vault.lock().unwrap();
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

    fn bundle(&self, name: &str, v: &Version, with_value: bool) -> serde_json::Value {
        let mut b = serde_json::json!({
            "id": format!("{}/secrets/{name}/{}", self.base(), v.version),
            "attributes": {"enabled": v.enabled, "created": v.created, "updated": v.created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
        });
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

    /// Checks faults, api-version and authorization; returns the caller's grant or the answer.
    #[allow(clippy::result_large_err)]
    async fn admit(
        &self,
        op: &str,
        headers: &HeaderMap,
        q: &HashMap<String, String>,
    ) -> Result<Grant, Response> {
        self.calls.hit(op);
        if let Some(f) = self.faults.next().await {
            return Err(f);
        }
        if let Some((max, window, seen)) = self.limit.lock().unwrap().as_mut() {
            let now = std::time::Instant::now();
            while seen
                .front()
                .is_some_and(|t| now.duration_since(*t) >= *window)
            {
                seen.pop_front();
            }
            if seen.len() >= *max {
                self.calls.hit("throttled");
                let wait = *window - now.duration_since(*seen.front().unwrap());
                return Err(Fault::new(
                    429,
                    azure_error(
                        "Throttled",
                        "Rate limit is exceeded. Try again later.",
                        None,
                    ),
                )
                .header("retry-after", &wait.as_secs().max(1).to_string())
                .response());
            }
            seen.push_back(now);
        }
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{}\"",
            self.tenant, self.audience
        );
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let Some(grant) = self.tokens.check(auth) else {
            let msg = if auth.is_none() {
                "AKV10000: Request is missing a Bearer or PoP token."
            } else {
                "AKV10032: Invalid issuer."
            };
            return Err(Fault::new(401, azure_error("Unauthorized", msg, None))
                .header("www-authenticate", &challenge)
                .response());
        };
        if grant.audience.trim_end_matches('/') != self.audience || grant.exp < now() {
            let msg = format!(
                "AKV10022: Invalid audience. Expected {}, found: {}.",
                self.audience, grant.audience
            );
            return Err(Fault::new(401, azure_error("Unauthorized", &msg, None))
                .header("www-authenticate", &challenge)
                .response());
        }
        if !q.contains_key("api-version") {
            return Err(Fault::new(
                400,
                azure_error(
                    "BadParameter",
                    "The request URI contains an invalid or missing api-version.",
                    None,
                ),
            )
            .response());
        }
        if self.vault.lock().unwrap().denied.contains(&grant.oid) {
            let (action, perm) = match op {
                "get" => ("Microsoft.KeyVault/vaults/secrets/getSecret/action", "get"),
                "set" => ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "set"),
                "delete" => ("Microsoft.KeyVault/vaults/secrets/delete", "delete"),
                _ => (
                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                    "list",
                ),
            };
            let body = match *self.model.lock().unwrap() {
                PermissionModel::Rbac => azure_error(
                    "Forbidden",
                    &format!(
                        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: '{action}'\r\nResource: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/fakevault/secrets'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: fakevault;location=eastus2",
                        grant.appid, grant.oid, grant.tid
                    ),
                    Some("ForbiddenByRbac"),
                ),
                PermissionModel::AccessPolicy => azure_error(
                    "Forbidden",
                    &format!(
                        "The user, group or application 'appid={};oid={};iss=https://sts.windows.net/{}/' does not have secrets {perm} permission on key vault 'fakevault;location=eastus2'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                        grant.appid, grant.oid, grant.tid
                    ),
                    Some("AccessDenied"),
                ),
            };
            return Err(Fault::new(403, body).response());
        }
        Ok(grant)
    }
}

fn not_found(name: &str) -> Response {
    let msg = format!(
        "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    );
    Fault::new(404, azure_error("SecretNotFound", &msg, None)).response()
}

fn read(fake: &FakeKeyVault, name: &str, version: Option<&str>) -> Response {
    let vault = fake.vault.lock().unwrap();
    let Some((display, versions)) = vault.secrets.get(&name.to_lowercase()) else {
        return not_found(name);
    };
    let v = match version {
        None => versions.last(),
        Some(id) => versions.iter().find(|v| v.version == id),
    };
    let Some(v) = v else { return not_found(name) };
    if !v.enabled {
        return Fault::new(
            403,
            azure_error(
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                Some("SecretDisabled"),
            ),
        )
        .response();
    }
    axum::Json(fake.bundle(display, v, true)).into_response()
}

type Q = Query<HashMap<String, String>>;

async fn get_latest(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    match f.admit("get", &h, &q).await {
        Ok(_) => read(&f, &name, None),
        Err(r) => r,
    }
}

async fn get_version(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    match f.admit("get", &h, &q).await {
        Ok(_) => read(&f, &name, Some(&version)),
        Err(r) => r,
    }
}

fn page(
    f: &FakeKeyVault,
    path: &str,
    items: Vec<serde_json::Value>,
    q: &HashMap<String, String>,
) -> Response {
    let max: usize = match q.get("maxresults").map(|m| m.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=25).contains(&n) => n,
        _ => {
            return Fault::new(
                400,
                azure_error(
                    "BadParameter",
                    "invalid maxresults; it must be between 1 and 25",
                    None,
                ),
            )
            .response();
        }
    };
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| super::common::b64url_decode(t))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = (skip + max).min(items.len());
    let next = (end < items.len()).then(|| {
        format!(
            "{}{path}?api-version={API}&$skiptoken={}&maxresults={max}",
            f.base(),
            super::common::b64url(end.to_string().as_bytes())
        )
    });
    axum::Json(serde_json::json!({"value": items[skip.min(end)..end], "nextLink": next}))
        .into_response()
}

async fn list(State(f): State<FakeKeyVault>, h: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = f.admit("list", &h, &q).await {
        return r;
    }
    let items: Vec<_> = {
        let vault = f.vault.lock().unwrap();
        vault
            .secrets
            .values()
            .filter_map(|(name, vs)| vs.last().map(|v| (name.clone(), v.clone())))
            .collect()
    };
    let items = items
        .iter()
        .map(|(name, v)| {
            let mut b = f.bundle(name, v, false);
            b["id"] = format!("{}/secrets/{name}", f.base()).into();
            b
        })
        .collect();
    page(&f, "/secrets", items, &q)
}

async fn versions(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("versions", &h, &q).await {
        return r;
    }
    let found = f
        .vault
        .lock()
        .unwrap()
        .secrets
        .get(&name.to_lowercase())
        .cloned();
    let Some((display, vs)) = found else {
        return not_found(&name);
    };
    let items = vs.iter().map(|v| f.bundle(&display, v, false)).collect();
    page(&f, &format!("/secrets/{display}/versions"), items, &q)
}

async fn set(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
    body: String,
) -> Response {
    if let Err(r) = f.admit("set", &h, &q).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Fault::new(
            400,
            azure_error("BadParameter", "The request body is not valid JSON.", None),
        )
        .response();
    };
    let Some(value) = body["value"].as_str() else {
        return Fault::new(
            400,
            azure_error("BadParameter", "Property 'value' is required.", None),
        )
        .response();
    };
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Fault::new(
            400,
            azure_error(
                "BadParameter",
                "The request URI contains an invalid name.",
                None,
            ),
        )
        .response();
    }
    let enabled = body["attributes"]["enabled"].as_bool().unwrap_or(true);
    f.put_secret(&name, value, enabled, body["contentType"].as_str());
    if let Some(tags) = body
        .get("tags")
        .and_then(|t| serde_json::from_value::<BTreeMap<String, String>>(t.clone()).ok())
    {
        let mut vault = f.vault.lock().unwrap();
        if let Some(v) = vault
            .secrets
            .get_mut(&name.to_lowercase())
            .and_then(|(_, vs)| vs.last_mut())
        {
            v.tags = tags;
        }
    }
    read_any(&f, &name)
}

fn read_any(f: &FakeKeyVault, name: &str) -> Response {
    let vault = f.vault.lock().unwrap();
    let (display, vs) = &vault.secrets[&name.to_lowercase()];
    axum::Json(f.bundle(display, vs.last().unwrap(), true)).into_response()
}

async fn delete(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("delete", &h, &q).await {
        return r;
    }
    let removed = f.vault.lock().unwrap().secrets.remove(&name.to_lowercase());
    let Some((display, vs)) = removed else {
        return not_found(&name);
    };
    let mut b = f.bundle(&display, vs.last().unwrap(), false);
    b["recoveryId"] = format!("{}/deletedsecrets/{display}", f.base()).into();
    b["deletedDate"] = now().into();
    b["scheduledPurgeDate"] = (now() + 90 * 86400).into();
    axum::Json(b).into_response()
}
