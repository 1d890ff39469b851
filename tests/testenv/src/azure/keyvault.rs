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
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

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
    updated: i64,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// One stored version of a secret, as a test inspects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// The version id.
    pub version: String,
    /// The value.
    pub value: String,
    /// The content type.
    pub content_type: Option<String>,
    /// The tags.
    pub tags: BTreeMap<String, String>,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expires (Unix seconds).
    pub exp: Option<i64>,
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
        serve_https(tcp, router, ca);
        fake
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

    /// Lets a principal (by object id) read but not write: a reader's role on the vault.
    pub fn deny_writes(&self, oid: &str) {
        self.vault.lock().unwrap().read_only.insert(oid.into());
    }

    /// Lifts every denial of a principal.
    pub fn allow(&self, oid: &str) {
        let mut vault = self.vault.lock().unwrap();
        vault.denied.remove(oid);
        vault.read_only.remove(oid);
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

    /// Returns every version of a secret, oldest first, with value and metadata.
    pub fn versions_of(&self, name: &str) -> Vec<StoredVersion> {
        let vault = self.vault.lock().unwrap();
        vault
            .secrets
            .get(&name.to_lowercase())
            .map(|(_, vs)| {
                vs.iter()
                    .map(|v| StoredVersion {
                        version: v.version.clone(),
                        value: v.value.clone(),
                        content_type: v.content_type.clone(),
                        tags: v.tags.clone(),
                        nbf: v.nbf,
                        exp: v.exp,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Soft-deletes a secret as someone else would (`DELETE`): its name stays reserved.
    pub fn soft_delete(&self, name: &str) {
        let mut vault = self.vault.lock().unwrap();
        if let Some((display, versions)) = vault.secrets.remove(&name.to_lowercase()) {
            let d = Deleted {
                display,
                versions,
                deleted_date: now(),
                scheduled_purge_date: now() + RECOVERABLE_DAYS * 86400,
            };
            vault.deleted.insert(name.to_lowercase(), d);
        }
    }

    /// Purges a soft-deleted secret as someone with the purge permission would: the name is free.
    pub fn purge_deleted(&self, name: &str) {
        self.vault
            .lock()
            .unwrap()
            .deleted
            .remove(&name.to_lowercase());
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
        let refused = {
            let vault = self.vault.lock().unwrap();
            vault.denied.contains(&grant.oid)
                || (vault.read_only.contains(&grant.oid)
                    && matches!(op, "set" | "update" | "delete" | "purge" | "recover"))
        };
        if refused {
            let (action, perm) = match op {
                "get" => ("Microsoft.KeyVault/vaults/secrets/getSecret/action", "get"),
                "set" | "update" => ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "set"),
                "delete" => ("Microsoft.KeyVault/vaults/secrets/delete", "delete"),
                "deleted-get" | "deleted-list" => {
                    ("Microsoft.KeyVault/vaults/deletedSecrets/read", "list")
                }
                "purge" => ("Microsoft.KeyVault/vaults/deletedSecrets/delete", "purge"),
                "recover" => (
                    "Microsoft.KeyVault/vaults/deletedSecrets/recover/action",
                    "recover",
                ),
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

fn read(fake: &FakeKeyVault, base: &str, name: &str, version: Option<&str>) -> Response {
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
    axum::Json(FakeKeyVault::bundle(base, display, v, true)).into_response()
}

type Q = Query<HashMap<String, String>>;

async fn get_latest(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    match f.admit("get", &h, &q).await {
        Ok(_) => read(&f, &base(&f, &h), &name, None),
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
        Ok(_) => read(&f, &base(&f, &h), &name, Some(&version)),
        Err(r) => r,
    }
}

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

async fn list(State(f): State<FakeKeyVault>, h: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = f.admit("list", &h, &q).await {
        return r;
    }
    let base = base(&f, &h);
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
            let mut b = FakeKeyVault::bundle(&base, name, v, false);
            b["id"] = format!("{base}/secrets/{name}").into();
            b
        })
        .collect();
    page(&base, "/secrets", items, &q)
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
    let base = base(&f, &h);
    let items = vs
        .iter()
        .map(|v| FakeKeyVault::bundle(&base, &display, v, false))
        .collect();
    page(&base, &format!("/secrets/{display}/versions"), items, &q)
}

/// Reads `attributes.{enabled,nbf,exp}`, `contentType` and `tags` of a SetSecret or UpdateSecret
/// body into `v`; only fields present are changed (`null` clears `nbf`, `exp` and `contentType`).
#[allow(clippy::result_large_err)]
fn apply_properties(v: &mut Version, body: &serde_json::Value) -> Result<(), Response> {
    let attrs = &body["attributes"];
    if let Some(e) = attrs.get("enabled").filter(|e| !e.is_null()) {
        v.enabled = e
            .as_bool()
            .ok_or_else(|| bad_parameter("attributes.enabled must be a boolean."))?;
    }
    for (field, slot) in [("nbf", &mut v.nbf), ("exp", &mut v.exp)] {
        match attrs.get(field) {
            None => {}
            Some(serde_json::Value::Null) => *slot = None,
            Some(t) => {
                *slot = Some(t.as_i64().ok_or_else(|| {
                    bad_parameter(&format!("attributes.{field} must be Unix seconds."))
                })?)
            }
        }
    }
    match body.get("contentType") {
        None => {}
        Some(serde_json::Value::Null) => v.content_type = None,
        Some(ct) => {
            let ct = ct
                .as_str()
                .ok_or_else(|| bad_parameter("contentType must be a string."))?;
            if ct.len() > 255 {
                return Err(bad_parameter("contentType is longer than 255 characters."));
            }
            v.content_type = Some(ct.to_string());
        }
    }
    if let Some(tags) = body.get("tags").filter(|t| !t.is_null()) {
        v.tags = serde_json::from_value(tags.clone())
            .map_err(|_| bad_parameter("tags must map names to strings."))?;
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
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
        return bad_parameter("The request body is not valid JSON.");
    };
    let Some(value) = body["value"].as_str() else {
        return bad_parameter("Property 'value' is required.");
    };
    if !valid_name(&name) {
        return bad_parameter("The request URI contains an invalid name.");
    }
    let mut v = Version {
        version: uuid_like(),
        value: value.into(),
        content_type: None,
        enabled: true,
        tags: BTreeMap::new(),
        created: now(),
        updated: now(),
        nbf: None,
        exp: None,
    };
    if let Err(r) = apply_properties(&mut v, &body) {
        return r;
    }
    let mut vault = f.vault.lock().unwrap();
    if vault.deleted.contains_key(&name.to_lowercase()) {
        let msg = format!(
            "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
        );
        return Fault::new(
            409,
            azure_error("Conflict", &msg, Some("ObjectIsDeletedButRecoverable")),
        )
        .response();
    }
    let (display, vs) = vault
        .secrets
        .entry(name.to_lowercase())
        .or_insert_with(|| (name.clone(), Vec::new()));
    vs.push(v);
    axum::Json(FakeKeyVault::bundle(
        &base(&f, &h),
        display,
        vs.last().unwrap(),
        true,
    ))
    .into_response()
}

/// UpdateSecret (PATCH): changes a version's attributes, content type or tags, never its value;
/// the answer carries no value (Microsoft's `UpdateSecret-example.json`).
async fn update(
    f: FakeKeyVault,
    h: HeaderMap,
    name: String,
    version: Option<String>,
    q: HashMap<String, String>,
    body: String,
) -> Response {
    if let Err(r) = f.admit("update", &h, &q).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return bad_parameter("The request body is not valid JSON.");
    };
    let mut vault = f.vault.lock().unwrap();
    let Some((display, vs)) = vault.secrets.get_mut(&name.to_lowercase()) else {
        return not_found(&name);
    };
    let v = match &version {
        None => vs.last_mut(),
        Some(id) => vs.iter_mut().find(|v| &v.version == id),
    };
    let Some(v) = v else { return not_found(&name) };
    let mut changed = v.clone();
    if let Err(r) = apply_properties(&mut changed, &body) {
        return r;
    }
    changed.updated = now();
    *v = changed;
    axum::Json(FakeKeyVault::bundle(&base(&f, &h), display, v, false)).into_response()
}

async fn update_latest(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
    body: String,
) -> Response {
    update(f, h, name, None, q, body).await
}

async fn update_version(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Query(q): Q,
    body: String,
) -> Response {
    update(f, h, name, Some(version), q, body).await
}

/// A DeletedSecretBundle or DeletedSecretItem: the latest version without its value, with
/// `recoveryId`, `deletedDate` and `scheduledPurgeDate` (`DeleteSecret-example.json`).
fn deleted_bundle(base: &str, d: &Deleted, item: bool) -> serde_json::Value {
    let mut b = FakeKeyVault::bundle(base, &d.display, d.versions.last().unwrap(), false);
    if item {
        b["id"] = format!("{base}/secrets/{}", d.display).into();
    }
    b["recoveryId"] = format!("{base}/deletedsecrets/{}", d.display).into();
    b["deletedDate"] = d.deleted_date.into();
    b["scheduledPurgeDate"] = d.scheduled_purge_date.into();
    b
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
    let mut vault = f.vault.lock().unwrap();
    let Some((display, versions)) = vault.secrets.remove(&name.to_lowercase()) else {
        return not_found(&name);
    };
    let d = Deleted {
        display,
        versions,
        deleted_date: now(),
        scheduled_purge_date: now() + RECOVERABLE_DAYS * 86400,
    };
    let body = deleted_bundle(&base(&f, &h), &d, false);
    vault.deleted.insert(name.to_lowercase(), d);
    axum::Json(body).into_response()
}

async fn get_deleted(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("deleted-get", &h, &q).await {
        return r;
    }
    let vault = f.vault.lock().unwrap();
    match vault.deleted.get(&name.to_lowercase()) {
        Some(d) => axum::Json(deleted_bundle(&base(&f, &h), d, false)).into_response(),
        None => deleted_not_found(),
    }
}

async fn list_deleted(State(f): State<FakeKeyVault>, h: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = f.admit("deleted-list", &h, &q).await {
        return r;
    }
    let base = base(&f, &h);
    let items = f
        .vault
        .lock()
        .unwrap()
        .deleted
        .values()
        .map(|d| deleted_bundle(&base, d, true))
        .collect();
    page(&base, "/deletedsecrets", items, &q)
}

/// PurgeDeletedSecret: 204 with no body.
async fn purge(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("purge", &h, &q).await {
        return r;
    }
    match f.vault.lock().unwrap().deleted.remove(&name.to_lowercase()) {
        Some(_) => axum::http::StatusCode::NO_CONTENT.into_response(),
        None => deleted_not_found(),
    }
}

/// RecoverDeletedSecret: the latest version back in place, answered without its value.
async fn recover(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("recover", &h, &q).await {
        return r;
    }
    let mut vault = f.vault.lock().unwrap();
    let Some(d) = vault.deleted.remove(&name.to_lowercase()) else {
        return deleted_not_found();
    };
    let body = FakeKeyVault::bundle(&base(&f, &h), &d.display, d.versions.last().unwrap(), false);
    vault
        .secrets
        .insert(name.to_lowercase(), (d.display, d.versions));
    axum::Json(body).into_response()
}
