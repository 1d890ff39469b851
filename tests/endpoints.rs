//! Online endpoints, serverless endpoints and datastores end to end on the real API server with
//! the fake ARM: every reference form, single values and whole resources, key regeneration and
//! token expiry (short clocks) reaching the Secret, one call per endpoint and interval shared by
//! twenty WorkspaceSecrets, 403/404/429 with their reasons, the wrong auth mode (`AADToken`) as
//! `InvalidSpec` naming it, the datastore opt-in, a project's endpoints (not its hub's), and no
//! value in logs, Events or status.

#[allow(unused_imports)]
#[path = "controller/support.rs"]
mod support;

#[path = "endpoints/forms.rs"]
mod forms;

#[path = "endpoints/refusals.rs"]
mod refusals;

#[path = "endpoints/rotation.rs"]
mod rotation;

#[path = "endpoints/workspaces.rs"]
mod workspaces;

use std::collections::BTreeMap;

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::api::workspace_secret::{SyncedKey, WorkspaceSecretStatus};
use kube::api::Api;
use serde_json::{Value, json};
use support::*;
use testenv::azure::arm::workspace_id;

const SUB: &str = "00000000-1111-2222-3333-444444444444";

/// Values planted in the fakes, searched for in logs, Events and status.
const PLANTED: &[&str] = &[
    "planted-online-primary",
    "planted-online-secondary",
    "planted-sl-primary",
    "planted-sl-secondary",
    "planted-account-key",
    "planted-sas-token",
    "planted-aml-token",
];

/// The id of the workspace `World::sp_workspace` points at.
fn ws_id() -> String {
    workspace_id(SUB, "rg-ml", "mlw-test")
}

fn items(pairs: &[(&str, &str)]) -> Value {
    json!(
        pairs
            .iter()
            .map(|(k, r)| json!({ "key": k, "ref": r }))
            .collect::<Vec<_>>()
    )
}

/// Adds one resource of each kind and auth mode: `scorer` (Key), `tokened` (AMLToken), `entra`
/// (AADToken), serverless `llm`, datastores `blobs` (AccountKey), `sas` (Sas), `identity` (None).
fn put_everything(w: &World) {
    let id = ws_id();
    let e = &w.fakes.arm.endpoints;
    e.put_online(
        &id,
        "scorer",
        "Key",
        ("planted-online-primary-1", "planted-online-secondary-1"),
    );
    e.put_online(&id, "tokened", "AMLToken", ("", ""));
    e.put_online(&id, "entra", "AADToken", ("", ""));
    e.put_serverless(
        &id,
        "llm",
        ("planted-sl-primary-1", "planted-sl-secondary-1"),
    );
    e.put_datastore(
        &id,
        "blobs",
        json!({"secretsType": "AccountKey", "key": "planted-account-key-1"}),
    );
    e.put_datastore(
        &id,
        "sas",
        json!({"secretsType": "Sas", "sasToken": "planted-sas-token-1"}),
    );
    e.put_datastore(&id, "identity", json!({"secretsType": "None"}));
}

async fn status_of(w: &World, name: &str) -> WorkspaceSecretStatus {
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn key_of<'a>(status: &'a WorkspaceSecretStatus, key: &str) -> &'a SyncedKey {
    status
        .synced_keys
        .iter()
        .find(|k| k.key == key)
        .unwrap_or_else(|| panic!("no status for key {key}: {status:?}"))
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> String {
    String::from_utf8_lossy(data.get(key).map(Vec::as_slice).unwrap_or_default()).to_string()
}
