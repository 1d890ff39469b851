//! A fake Instance Metadata Service token endpoint (plain http): `Metadata: true`, numbers as
//! strings, identities selected by client_id, object_id or msi_res_id, and IMDS's error bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::common::{Calls, Fault, Faults, Grant, TokenBook, now};
use super::tls::{bind, serve_http};

/// One managed identity assigned to the fake node.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// The client id.
    pub client_id: String,
    /// The object id.
    pub object_id: String,
    /// The ARM resource id (user-assigned only).
    pub resource_id: Option<String>,
}

/// The fake IMDS.
#[derive(Clone)]
pub struct FakeImds {
    system: Arc<Mutex<Option<NodeIdentity>>>,
    user: Arc<Mutex<Vec<NodeIdentity>>>,
    tenant: String,
    /// Calls by operation (`token`).
    pub calls: Calls,
    /// Injected faults.
    pub faults: Faults,
    /// The tokens it issued.
    pub tokens: TokenBook,
    /// The base URL (`http://127.0.0.1:PORT`).
    pub endpoint: String,
}

fn imds_err(status: u16, error: &str, description: &str) -> Response {
    Fault::new(
        status,
        serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
    .response()
}

impl FakeImds {
    /// Starts the fake; tokens go into `tokens` for tenant `tenant`.
    pub async fn start(tenant: &str, tokens: TokenBook) -> Self {
        let (tcp, addr) = bind().await;
        let fake = FakeImds {
            system: Arc::default(),
            user: Arc::default(),
            tenant: tenant.into(),
            calls: Calls::default(),
            faults: Faults::default(),
            tokens,
            endpoint: format!("http://{addr}"),
        };
        let router = Router::new()
            .route("/metadata/identity/oauth2/token", get(token))
            .with_state(fake.clone());
        serve_http(tcp, router);
        fake
    }

    /// Assigns a system-assigned identity to the node.
    pub fn set_system_assigned(&self, id: NodeIdentity) {
        *self.system.lock().unwrap() = Some(id);
    }

    /// Assigns a user-assigned identity to the node.
    pub fn add_user_assigned(&self, id: NodeIdentity) {
        self.user.lock().unwrap().push(id);
    }
}

async fn token(
    State(fake): State<FakeImds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    fake.calls.hit("token");
    if let Some(f) = fake.faults.next().await {
        return f;
    }
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return imds_err(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if !q.contains_key("api-version") {
        return imds_err(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = q.get("resource").cloned() else {
        return imds_err(
            400,
            "invalid_request",
            "Required audience parameter not specified",
        );
    };
    let identity = if let Some(c) = q.get("client_id") {
        fake.user
            .lock()
            .unwrap()
            .iter()
            .find(|i| &i.client_id == c)
            .cloned()
    } else if let Some(o) = q.get("object_id") {
        fake.user
            .lock()
            .unwrap()
            .iter()
            .find(|i| &i.object_id == o)
            .cloned()
    } else if let Some(r) = q.get("msi_res_id") {
        fake.user
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.resource_id.as_ref() == Some(r))
            .cloned()
    } else {
        fake.system.lock().unwrap().clone()
    };
    let Some(identity) = identity else {
        return imds_err(400, "invalid_request", "Identity not found");
    };
    let exp = now() + 3599;
    let access_token = fake.tokens.issue(Grant {
        audience: resource.clone(),
        oid: identity.object_id,
        appid: identity.client_id.clone(),
        tid: fake.tenant.clone(),
        exp,
    });
    axum::Json(serde_json::json!({
        "access_token": access_token, "client_id": identity.client_id, "expires_in": "3599",
        "expires_on": exp.to_string(), "ext_expires_in": "3599", "not_before": now().to_string(),
        "resource": resource, "token_type": "Bearer",
    }))
    .into_response()
}
