//! The fake ARM's online endpoints, serverless endpoints and datastores, shaped like Microsoft's
//! examples (`OnlineEndpoint/get.json`, `listKeys.json`, `getToken.json`,
//! `ServerlessEndpoint/get.json`, `listKeys.json`, `Datastore/listSecrets.json`): GET without
//! secrets, `POST …/listKeys`, `POST …/token` (integer `expiryTimeUtc`/`refreshAfterTimeUtc`,
//! with a lifetime tests can shorten), `POST …/datastores/{name}/listSecrets` (no body); key
//! regeneration, 403 `AuthorizationFailed` naming the action per principal, 404 naming the
//! resource, and faults of their own (so a 429 hits these calls, not the workspace check). Every
//! call is counted (`onlineEndpoints.get`, `onlineEndpoints.listKeys`, `onlineEndpoints.token`,
//! `serverlessEndpoints.get`, `serverlessEndpoints.listKeys`, `datastores.listSecrets`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::common::{Calls, Fault, Faults, Grant, azure_error, now};

/// API versions whose endpoint and datastore operations the fake serves.
const API_VERSIONS: &[&str] = &[
    "2024-04-01",
    "2024-10-01",
    "2025-06-01",
    "2025-09-01",
    "2025-12-01",
];

const ACTION_PREFIX: &str = "Microsoft.MachineLearningServices/workspaces/";

struct Online {
    resource: Value,
    keys: (String, String),
    tokens: u64,
}

struct Serverless {
    resource: Value,
    keys: (String, String),
}

/// The endpoints and datastores of every workspace, keyed by (workspace id lowercase, name).
#[derive(Clone)]
pub struct FakeEndpoints {
    online: Arc<Mutex<HashMap<(String, String), Online>>>,
    serverless: Arc<Mutex<HashMap<(String, String), Serverless>>>,
    datastores: Arc<Mutex<HashMap<(String, String), Value>>>,
    denied: Arc<Mutex<HashSet<(String, String)>>>,
    token_lifetime: Arc<Mutex<Duration>>,
    calls: Calls,
    /// Faults answered only to endpoint and datastore requests.
    pub faults: Faults,
}

fn key(workspace_id: &str, name: &str) -> (String, String) {
    (workspace_id.to_lowercase(), name.to_string())
}

fn system_data() -> Value {
    json!({
        "createdAt": "2025-01-01T00:00:00Z", "createdBy": "someone@example.com", "createdByType": "User",
        "lastModifiedAt": "2025-01-01T00:00:00Z", "lastModifiedBy": "someone@example.com", "lastModifiedByType": "User",
    })
}

/// Builds an online endpoint resource like `OnlineEndpoint/get.json` (auth mode `Key`, `AMLToken`
/// or `AADToken`).
pub fn online_endpoint_json(workspace_id: &str, name: &str, auth_mode: &str) -> Value {
    json!({
        "id": format!("{workspace_id}/onlineEndpoints/{name}"),
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "properties": {
            "description": "test endpoint", "properties": {},
            "scoringUri": format!("https://{name}.eastus2.inference.ml.azure.com/score"),
            "swaggerUri": format!("https://{name}.eastus2.inference.ml.azure.com/swagger.json"),
            "authMode": auth_mode, "provisioningState": "Succeeded", "compute": null, "traffic": {"blue": 100},
        },
        "systemData": system_data(), "tags": {}, "location": "eastus2", "kind": "Managed",
        "identity": {"type": "SystemAssigned", "principalId": "00000000-1111-2222-3333-444444444444", "tenantId": "00000000-1111-2222-3333-444444444444"},
    })
}

/// Builds a serverless endpoint resource like `ServerlessEndpoint/get.json`.
pub fn serverless_endpoint_json(workspace_id: &str, name: &str, auth_mode: &str) -> Value {
    json!({
        "id": format!("{workspace_id}/serverlessEndpoints/{name}"),
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints",
        "properties": {
            "authMode": auth_mode,
            "contentSafety": {"contentSafetyStatus": "Enabled"},
            "endpointState": "Online",
            "inferenceEndpoint": {"headers": {}, "uri": format!("https://{name}.eastus2.models.ai.azure.com")},
            "marketplaceSubscriptionId": format!("{workspace_id}/marketplaceSubscriptions/{name}"),
            "modelSettings": {"modelId": "azureml://registries/azureml-meta/models/Llama-2-7b"},
            "provisioningState": "Succeeded",
        },
        "sku": {"name": "Consumption"}, "systemData": system_data(), "tags": {}, "location": "eastus2", "kind": "",
    })
}

fn not_found(kind: &str, name: &str) -> Response {
    let msg = format!("{kind} {name} not found in workspace");
    Fault::new(404, azure_error("UserError", &msg, Some("NotFound"))).response()
}

fn bad_request(msg: &str) -> Response {
    Fault::new(400, azure_error("UserError", msg, Some("BadArgument"))).response()
}

impl Default for FakeEndpoints {
    fn default() -> Self {
        FakeEndpoints::new(Calls::default())
    }
}

impl FakeEndpoints {
    /// Creates the store counting calls in `calls`; tokens live an hour.
    pub fn new(calls: Calls) -> Self {
        FakeEndpoints {
            online: Arc::default(),
            serverless: Arc::default(),
            datastores: Arc::default(),
            denied: Arc::default(),
            token_lifetime: Arc::new(Mutex::new(Duration::from_secs(3600))),
            calls,
            faults: Faults::default(),
        }
    }

    /// Adds (or replaces) an online endpoint with these keys (used by `Key` endpoints).
    pub fn put_online(&self, workspace_id: &str, name: &str, auth_mode: &str, keys: (&str, &str)) {
        self.online.lock().unwrap().insert(
            key(workspace_id, name),
            Online {
                resource: online_endpoint_json(workspace_id, name, auth_mode),
                keys: (keys.0.into(), keys.1.into()),
                tokens: 0,
            },
        );
    }

    /// Adds (or replaces) a serverless endpoint with auth mode `Key` and these keys.
    pub fn put_serverless(&self, workspace_id: &str, name: &str, keys: (&str, &str)) {
        self.serverless.lock().unwrap().insert(
            key(workspace_id, name),
            Serverless {
                resource: serverless_endpoint_json(workspace_id, name, "Key"),
                keys: (keys.0.into(), keys.1.into()),
            },
        );
    }

    /// Adds (or replaces) a datastore whose `listSecrets` answers `secrets`
    /// (e.g. `{"secretsType": "AccountKey", "key": "…"}`).
    pub fn put_datastore(&self, workspace_id: &str, name: &str, secrets: Value) {
        self.datastores
            .lock()
            .unwrap()
            .insert(key(workspace_id, name), secrets);
    }

    /// Regenerates an endpoint's keys (`regenerateKeys`), online or serverless.
    pub fn regenerate_keys(&self, workspace_id: &str, name: &str, keys: (&str, &str)) {
        let k = key(workspace_id, name);
        let new = (keys.0.to_string(), keys.1.to_string());
        if let Some(o) = self.online.lock().unwrap().get_mut(&k) {
            o.keys = new;
            return;
        }
        let mut serverless = self.serverless.lock().unwrap();
        serverless.get_mut(&k).expect("the endpoint exists").keys = new;
    }

    /// Sets how long the tokens issued from now on live (`refreshAfterTimeUtc` is at half).
    pub fn set_token_lifetime(&self, d: Duration) {
        *self.token_lifetime.lock().unwrap() = d;
    }

    /// Denies one action (e.g. `onlineEndpoints/listKeys/action`, after `workspaces/`) to a
    /// principal, by object id.
    pub fn deny(&self, oid: &str, action: &str) {
        self.denied
            .lock()
            .unwrap()
            .insert((oid.to_string(), format!("{ACTION_PREFIX}{action}")));
    }

    fn forbidden(&self, grant: &Grant, action: &str, path: &str) -> Option<Response> {
        let action = format!("{ACTION_PREFIX}{action}");
        if !self
            .denied
            .lock()
            .unwrap()
            .contains(&(grant.oid.clone(), action.clone()))
        {
            return None;
        }
        let msg = format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{path}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            grant.appid, grant.oid
        );
        Some(Fault::new(403, azure_error("AuthorizationFailed", &msg, None)).response())
    }

    /// Answers a request for a path under `…/workspaces/{ws}/onlineEndpoints|serverlessEndpoints|datastores`,
    /// or `None` for other paths.
    pub async fn answer(
        &self,
        grant: &Grant,
        post: bool,
        path: &str,
        q: &HashMap<String, String>,
        body_empty: bool,
    ) -> Option<Response> {
        let (ws, kind, name, op) = split(path)?;
        let op_name = match (kind.as_str(), op.as_deref(), post) {
            ("onlineEndpoints", None, false) => "onlineEndpoints.get",
            ("onlineEndpoints", Some("listKeys"), true) => "onlineEndpoints.listKeys",
            ("onlineEndpoints", Some("token"), true) => "onlineEndpoints.token",
            ("serverlessEndpoints", None, false) => "serverlessEndpoints.get",
            ("serverlessEndpoints", Some("listKeys"), true) => "serverlessEndpoints.listKeys",
            ("datastores", Some("listSecrets"), true) => "datastores.listSecrets",
            _ => {
                let msg = format!("No route for {path}");
                return Some(Fault::new(404, azure_error("NotFound", &msg, None)).response());
            }
        };
        self.calls.hit(op_name);
        if let Some(f) = self.faults.next().await {
            return Some(f);
        }
        let version = q.get("api-version").map(String::as_str).unwrap_or("");
        if !API_VERSIONS.contains(&version) {
            let msg = format!("No registered resource provider found for API version '{version}'.");
            return Some(
                Fault::new(400, azure_error("NoRegisteredProviderFound", &msg, None)).response(),
            );
        }
        if post && !body_empty {
            return Some(bad_request("This action takes no request body."));
        }
        let action = match op.as_deref() {
            None => format!("{kind}/read"),
            Some(op) => format!("{kind}/{op}/action"),
        };
        if let Some(denied) = self.forbidden(grant, &action, path) {
            return Some(denied);
        }
        let k = (ws.to_lowercase(), name.clone());
        Some(match kind.as_str() {
            "onlineEndpoints" => self.online_answer(&k, op.as_deref()),
            "serverlessEndpoints" => {
                let store = self.serverless.lock().unwrap();
                match (store.get(&k), op.as_deref()) {
                    (None, _) => not_found("Serverless endpoint", &name),
                    (Some(e), None) => axum::Json(e.resource.clone()).into_response(),
                    (Some(e), _) => {
                        axum::Json(json!({"primaryKey": e.keys.0, "secondaryKey": e.keys.1}))
                            .into_response()
                    }
                }
            }
            _ => match self.datastores.lock().unwrap().get(&k) {
                Some(secrets) => axum::Json(secrets.clone()).into_response(),
                None => not_found("Datastore", &name),
            },
        })
    }

    fn online_answer(&self, k: &(String, String), op: Option<&str>) -> Response {
        let mut store = self.online.lock().unwrap();
        let Some(e) = store.get_mut(k) else {
            return not_found("Online endpoint", &k.1);
        };
        let mode = e.resource["properties"]["authMode"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match op {
            None => axum::Json(e.resource.clone()).into_response(),
            Some("listKeys") if mode == "Key" => {
                axum::Json(json!({"primaryKey": e.keys.0, "secondaryKey": e.keys.1}))
                    .into_response()
            }
            Some("listKeys") => bad_request(&format!(
                "Keys are not supported for endpoints with auth mode {mode}."
            )),
            Some(_) if mode == "AMLToken" => {
                e.tokens += 1;
                let lifetime = self.token_lifetime.lock().unwrap().as_secs() as i64;
                let issued = now();
                axum::Json(json!({
                    "accessToken": format!("planted-aml-token-{}-{}-{issued}", k.1, e.tokens),
                    "expiryTimeUtc": issued + lifetime,
                    "refreshAfterTimeUtc": issued + lifetime / 2,
                    "tokenType": "Bearer",
                }))
                .into_response()
            }
            Some(_) => bad_request(&format!(
                "Tokens are not supported for endpoints with auth mode {mode}."
            )),
        }
    }
}

/// Splits `…/workspaces/{ws}/{kind}/{name}[/{op}]` into the workspace id, kind, name and op.
fn split(path: &str) -> Option<(String, String, String, Option<String>)> {
    let marker = "/providers/microsoft.machinelearningservices/workspaces/";
    let start = path.to_ascii_lowercase().find(marker)? + marker.len();
    let name_end = start + path[start..].find('/')?;
    let rest: Vec<&str> = path[name_end..]
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (kind, name, op) = match rest.as_slice() {
        [kind, name] => (*kind, *name, None),
        [kind, name, op] => (*kind, *name, Some(op.to_string())),
        _ => return None,
    };
    ["onlineEndpoints", "serverlessEndpoints", "datastores"]
        .contains(&kind)
        .then(|| {
            (
                path[..name_end].to_string(),
                kind.to_string(),
                name.to_string(),
                op,
            )
        })
}

/// Tells whether a path is under a workspace's endpoints or datastores.
pub fn is_endpoint_path(path: &str) -> bool {
    split(path).is_some()
}
