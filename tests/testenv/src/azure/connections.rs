//! The fake ARM's workspace connections, shaped like Microsoft's `WorkspaceConnection_*` examples:
//! paged list with a category filter and get (never credentials), `POST …/listsecrets` (lowercase,
//! no body) with them, rotation, 403 `AuthorizationFailed` on listsecrets only, and 404 naming the
//! connection. Every call is counted (`connections.list`, `connections.get`, `connections.listsecrets`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::arm::FakeArm;
use super::common::{Calls, Fault, Grant, azure_error};

/// API versions whose `listsecrets` the fake serves (GA since 2024-04-01).
const API_VERSIONS: &[&str] = &[
    "2024-04-01",
    "2024-10-01",
    "2025-01-01-preview",
    "2025-06-01",
    "2025-09-01",
    "2025-12-01",
];

/// The connections of every workspace, by workspace id (lowercase) and name.
#[derive(Clone, Default)]
pub struct FakeConnections {
    store: Arc<Mutex<HashMap<String, BTreeMap<String, Value>>>>,
    denied: Arc<Mutex<HashSet<String>>>,
    page_size: Arc<Mutex<usize>>,
    calls: Calls,
}

/// Builds a connection resource with credentials, like `WorkspaceConnection_listSecrets.json`.
pub fn connection_json(
    workspace_id: &str,
    name: &str,
    auth_type: &str,
    category: &str,
    target: &str,
    credentials: Value,
) -> Value {
    json!({
        "id": format!("{workspace_id}/connections/{name}"),
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/connections",
        "properties": {
            "authType": auth_type, "category": category, "target": target,
            "credentials": credentials, "metadata": {}, "isSharedToAll": false,
        },
        "systemData": {
            "createdAt": "2025-01-01T00:00:00Z", "createdBy": "someone@example.com", "createdByType": "User",
            "lastModifiedAt": "2025-01-01T00:00:00Z", "lastModifiedBy": "someone@example.com", "lastModifiedByType": "User",
        },
    })
}

fn without_credentials(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(p) = c["properties"].as_object_mut() {
        p.remove("credentials");
    }
    c
}

impl FakeConnections {
    /// Creates the store counting calls in `calls`.
    pub fn new(calls: Calls) -> Self {
        FakeConnections {
            page_size: Arc::new(Mutex::new(50)),
            calls,
            ..Default::default()
        }
    }

    /// Adds (or replaces) a connection of the workspace `workspace_id`.
    pub fn put(&self, workspace_id: &str, connection: Value) {
        let name = connection["name"]
            .as_str()
            .expect("connection name")
            .to_string();
        self.store
            .lock()
            .unwrap()
            .entry(workspace_id.to_lowercase())
            .or_default()
            .insert(name, connection);
    }

    /// Replaces a connection's credentials (a rotation), updating `lastModifiedAt`.
    pub fn rotate(&self, workspace_id: &str, name: &str, credentials: Value) {
        let mut store = self.store.lock().unwrap();
        let c = store
            .get_mut(&workspace_id.to_lowercase())
            .and_then(|w| w.get_mut(name))
            .expect("the connection exists");
        c["properties"]["credentials"] = credentials;
        c["systemData"]["lastModifiedAt"] = json!(now_rfc3339());
    }

    /// Sets a property of a connection (e.g. `expiryTime`, `metadata`).
    pub fn set_property(&self, workspace_id: &str, name: &str, key: &str, value: Value) {
        let mut store = self.store.lock().unwrap();
        let c = store
            .get_mut(&workspace_id.to_lowercase())
            .and_then(|w| w.get_mut(name))
            .expect("the connection exists");
        c["properties"][key] = value;
    }

    /// Denies `listsecrets` (only) to a principal, by object id.
    pub fn deny_list_secrets(&self, oid: &str) {
        self.denied.lock().unwrap().insert(oid.into());
    }

    /// Sets how many connections a list page holds.
    pub fn set_page_size(&self, n: usize) {
        *self.page_size.lock().unwrap() = n.max(1);
    }

    /// Answers a request for a path under `…/workspaces/{ws}/connections`, or `None` for other paths.
    pub fn answer(
        &self,
        endpoint: &str,
        grant: &Grant,
        post: bool,
        path: &str,
        q: &HashMap<String, String>,
    ) -> Option<Response> {
        let (ws, rest) = split(path)?;
        let ws_key = ws.to_lowercase();
        let store = self.store.lock().unwrap();
        let conns = store.get(&ws_key).cloned().unwrap_or_default();
        drop(store);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        Some(match (post, segments.as_slice()) {
            (false, []) => {
                self.calls.hit("connections.list");
                self.list(endpoint, path, &conns, q)
            }
            (false, [name]) => {
                self.calls.hit("connections.get");
                match conns.get(*name) {
                    Some(c) => axum::Json(without_credentials(c)).into_response(),
                    None => not_found(name),
                }
            }
            (true, [name, "listsecrets"]) => {
                self.calls.hit("connections.listsecrets");
                let version = q.get("api-version").map(String::as_str).unwrap_or("");
                if !API_VERSIONS.contains(&version) {
                    return Some(
                        Fault::new(
                            400,
                            azure_error(
                                "NoRegisteredProviderFound",
                                &format!("No registered resource provider found for API version '{version}'."),
                                None,
                            ),
                        )
                        .response(),
                    );
                }
                if self.denied.lock().unwrap().contains(&grant.oid) {
                    let msg = format!(
                        "The client '{}' with object id '{}' does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/connections/listsecrets/action' over scope '{path}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                        grant.appid, grant.oid
                    );
                    return Some(
                        Fault::new(403, azure_error("AuthorizationFailed", &msg, None)).response(),
                    );
                }
                match conns.get(*name) {
                    Some(c) => axum::Json(c.clone()).into_response(),
                    None => not_found(name),
                }
            }
            _ => Fault::new(
                404,
                azure_error("NotFound", &format!("No route for {path}"), None),
            )
            .response(),
        })
    }

    fn list(
        &self,
        endpoint: &str,
        path: &str,
        conns: &BTreeMap<String, Value>,
        q: &HashMap<String, String>,
    ) -> Response {
        let category = q.get("category");
        let all: Vec<Value> = conns
            .values()
            .filter(|c| {
                category.is_none_or(|cat| {
                    c["properties"]["category"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(cat))
                })
            })
            .map(without_credentials)
            .collect();
        let size = *self.page_size.lock().unwrap();
        let skip: usize = q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
        let page: Vec<Value> = all.iter().skip(skip).take(size).cloned().collect();
        let mut body = json!({ "value": page });
        if skip + size < all.len() {
            let mut next = format!(
                "{endpoint}{path}?api-version={}&$skip={}",
                q.get("api-version").cloned().unwrap_or_default(),
                skip + size
            );
            if let Some(c) = category {
                next.push_str(&format!("&category={c}"));
            }
            body["nextLink"] = json!(next);
        }
        axum::Json(body).into_response()
    }
}

fn not_found(name: &str) -> Response {
    let msg = format!("Connection {name} can't be found in this workspace");
    Fault::new(404, azure_error("UserError", &msg, Some("NotFound"))).response()
}

/// Splits `…/workspaces/{ws}/connections[/rest]` into the workspace id and the rest.
fn split(path: &str) -> Option<(&str, &str)> {
    let marker = "/providers/microsoft.machinelearningservices/workspaces/";
    let start = path.to_ascii_lowercase().find(marker)? + marker.len();
    let name_end = start + path[start..].find('/')?;
    let rest = path[name_end..].strip_prefix("/connections")?;
    (rest.is_empty() || rest.starts_with('/')).then_some((&path[..name_end], rest))
}

/// Returns the current UTC time as RFC 3339 (whole seconds).
fn now_rfc3339() -> String {
    let secs = super::common::now();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Tells whether a path is under a workspace's connections.
pub fn is_connection_path(path: &str) -> bool {
    split(path).is_some()
}

/// Answers `POST` requests: `…/connections/{name}/listsecrets` (lowercase), and the endpoint and
/// datastore actions of `endpoints.rs`.
pub async fn post_resource(
    State(fake): State<FakeArm>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(f) = fake.faults.next().await {
        return f;
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(grant) = fake.tokens.check(auth) else {
        return Fault::new(
            401,
            azure_error(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                None,
            ),
        )
        .response();
    };
    if grant.audience.trim_end_matches('/') != fake.endpoint || grant.exp < super::common::now() {
        return Fault::new(
            401,
            azure_error(
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource.",
                None,
            ),
        )
        .response();
    }
    let path = uri.path().to_string();
    if let Some(answer) = fake
        .endpoints
        .answer(&grant, true, &path, &q, body.is_empty())
        .await
    {
        return answer;
    }
    if !body.is_empty() {
        return Fault::new(
            400,
            azure_error("InvalidRequestContent", "listsecrets takes no body.", None),
        )
        .response();
    }
    fake.connections
        .answer(&fake.endpoint, &grant, true, &path, &q)
        .unwrap_or_else(|| {
            Fault::new(
                404,
                azure_error("NotFound", &format!("No route for POST {path}"), None),
            )
            .response()
        })
}
