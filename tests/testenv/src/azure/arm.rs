//! A fake Azure Resource Manager serving ML workspaces of every kind (shaped like Microsoft's
//! `Workspaces_Get` example), with 401, 403 `AuthorizationFailed` and 404 `ResourceNotFound`, and
//! their connections (see `connections.rs`), endpoints and datastores (see `endpoints.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::common::{Calls, Fault, Faults, TokenBook, azure_error};
use super::connections::{FakeConnections, is_connection_path, post_resource};
use super::endpoints::{FakeEndpoints, is_endpoint_path};
use super::tls::{TestCa, bind, serve_https};

/// The fake ARM.
#[derive(Clone)]
pub struct FakeArm {
    resources: Arc<Mutex<HashMap<String, serde_json::Value>>>,
    denied: Arc<Mutex<HashSet<String>>>,
    /// Calls by operation (`workspace.get`, `connections.list`, `connections.get`, `connections.listsecrets`).
    pub calls: Calls,
    /// The workspaces' connections.
    pub connections: FakeConnections,
    /// The workspaces' online and serverless endpoints and datastores.
    pub endpoints: FakeEndpoints,
    /// Injected faults.
    pub faults: Faults,
    /// Tokens it accepts.
    pub tokens: TokenBook,
    /// The endpoint (`https://127.0.0.1:PORT`), also the token audience.
    pub endpoint: String,
}

/// Builds a workspace resource like Microsoft's example; `kind` `None` leaves it out (as the example does).
pub fn workspace_json(
    sub: &str,
    rg: &str,
    name: &str,
    kind: Option<&str>,
    key_vault_id: Option<&str>,
    hub_id: Option<&str>,
) -> serde_json::Value {
    let id = workspace_id(sub, rg, name);
    let mut props = serde_json::json!({
        "description": "test workspace", "friendlyName": name, "hbiWorkspace": false,
        "discoveryUrl": "https://eastus2.api.azureml.ms/discovery",
        "workspaceId": format!("{:08x}-0000-4000-8000-{:012x}", name.len(), name.bytes().map(u64::from).sum::<u64>()),
        "provisioningState": "Succeeded",
        "storageAccount": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/st{name}"),
        "publicNetworkAccess": "Enabled",
    });
    if let Some(kv) = key_vault_id {
        props["keyVault"] = kv.into();
    }
    if let Some(h) = hub_id {
        props["hubResourceId"] = h.into();
    }
    let mut ws = serde_json::json!({
        "id": id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces",
        "location": "eastus2", "identity": {"type": "SystemAssigned", "principalId": "00000000-1111-2222-3333-444444444444", "tenantId": "00000000-1111-2222-3333-444444444444"},
        "sku": {"name": "Basic", "tier": "Basic"}, "properties": props,
    });
    if let Some(k) = kind {
        ws["kind"] = k.into();
    }
    ws
}

/// Returns a workspace's ARM id.
pub fn workspace_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}"
    )
}

/// Returns a vault's ARM id.
pub fn vault_id(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}")
}

impl FakeArm {
    /// Starts the fake over https.
    pub async fn start(ca: &TestCa, tokens: TokenBook) -> Self {
        let (tcp, addr) = bind().await;
        let calls = Calls::default();
        let fake = FakeArm {
            resources: Arc::default(),
            denied: Arc::default(),
            connections: FakeConnections::new(calls.clone()),
            endpoints: FakeEndpoints::new(calls.clone()),
            calls,
            faults: Faults::default(),
            tokens,
            endpoint: format!("https://{addr}"),
        };
        let router = Router::new()
            .route(
                "/subscriptions/{*rest}",
                get(get_resource).post(post_resource),
            )
            .with_state(fake.clone());
        let _ = serve_https(tcp, router, ca);
        fake
    }

    /// Adds (or replaces) a resource.
    pub fn put(&self, resource: serde_json::Value) {
        let id = resource["id"].as_str().expect("resource id").to_lowercase();
        self.resources.lock().unwrap().insert(id, resource);
    }

    /// Denies every read to a principal (by object id): 403 AuthorizationFailed.
    pub fn deny(&self, oid: &str) {
        self.denied.lock().unwrap().insert(oid.into());
    }
}

async fn get_resource(
    State(fake): State<FakeArm>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !is_connection_path(uri.path()) && !is_endpoint_path(uri.path()) {
        fake.calls.hit("workspace.get");
    }
    if let Some(f) = fake.faults.next().await {
        return f;
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(grant) = fake.tokens.check(auth) else {
        let (code, msg) = if auth.is_none() {
            (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        } else {
            ("InvalidAuthenticationToken", "The access token is invalid.")
        };
        return Fault::new(401, azure_error(code, msg, None))
            .header("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\"")
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
    if !q.contains_key("api-version") {
        return Fault::new(
            400,
            azure_error(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
                None,
            ),
        )
        .response();
    }
    let path = uri.path().to_string();
    if let Some(answer) = fake
        .connections
        .answer(&fake.endpoint, &grant, false, &path, &q)
    {
        return answer;
    }
    if let Some(answer) = fake.endpoints.answer(&grant, false, &path, &q, true).await {
        return answer;
    }
    if fake.denied.lock().unwrap().contains(&grant.oid) {
        let msg = format!(
            "The client '{}' with object id '{}' does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/read' over scope '{path}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            grant.appid, grant.oid
        );
        return Fault::new(403, azure_error("AuthorizationFailed", &msg, None)).response();
    }
    match fake.resources.lock().unwrap().get(&path.to_lowercase()) {
        Some(r) => axum::Json(r.clone()).into_response(),
        None => {
            let name = path.rsplit('/').next().unwrap_or("");
            let msg = format!(
                "The Resource 'Microsoft.MachineLearningServices/workspaces/{name}' under resource group was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            );
            Fault::new(404, azure_error("ResourceNotFound", &msg, None)).response()
        }
    }
}
