//! What users read when an endpoint or datastore cannot be read: 403/404/429 with their reasons,
//! the action and the role to grant; the wrong auth mode (`AADToken`) as `InvalidSpec` naming it;
//! and no key, token or credential in logs, Events or status.

use std::time::Duration;

use amlsecrets::azure::endpoints::{
    DATASTORE_LIST_SECRETS, ENDPOINT_SECRETS_ROLE, ONLINE_LIST_KEYS, ONLINE_TOKEN,
};
use serde_json::json;
use testenv::azure::Fault;
use testenv::azure::common::azure_error;

use crate::support::*;
use crate::{PLANTED, items, put_everything, status_of, text, ws_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_missing_and_throttled_calls_report_their_reasons() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "onlineEndpoints/listKeys/action");
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "onlineEndpoints/token/action");
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "datastores/listSecrets/action");
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    w.workspace_secret("no-keys", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://onlineEndpoints/scorer/keys/primary")]) })).await;
    w.workspace_secret("no-token", json!({ "workspaceRef": { "name": "ml" }, "dataFrom": [{ "ref": "azureml://onlineEndpoints/tokened" }] })).await;
    w.workspace_secret("no-storage", json!({ "workspaceRef": { "name": "ml" }, "allowDatastoreCredentials": true, "data": items(&[("k", "azureml://datastores/blobs/credentials/key")]) })).await;
    w.workspace_secret("missing", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://serverlessEndpoints/no-such-endpoint/keys/primary"), ("d", "azureml://onlineEndpoints/gone/scoringUri")]) })).await;
    for (name, action) in [
        ("no-keys", ONLINE_LIST_KEYS),
        ("no-token", ONLINE_TOKEN),
        ("no-storage", DATASTORE_LIST_SECRETS),
    ] {
        let c = w.wait_wsec(name, "False", "Forbidden").await;
        assert!(
            c.message.contains(action) && c.message.contains(ENDPOINT_SECRETS_ROLE),
            "{name}: {}",
            c.message
        );
        w.wait_event(name, "Forbidden", action).await;
    }
    let c = w.wait_wsec("missing", "False", "SecretNotFound").await;
    assert!(
        c.message
            .contains("serverless endpoint no-such-endpoint was not found")
            && c.message.contains("online endpoint gone was not found"),
        "{}",
        c.message
    );

    // A long Retry-After is not waited out in place: the WorkspaceSecret says Throttled.
    let throttled = Fault::new(
        429,
        azure_error("TooManyRequests", "Too many requests.", None),
    )
    .header("retry-after", "30");
    w.fakes.arm.endpoints.faults.push_n(4, throttled);
    w.workspace_secret("throttled", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("uri", "azureml://serverlessEndpoints/llm/uri")]) })).await;
    let c = w.wait_wsec("throttled", "False", "Throttled").await;
    assert!(c.message.contains("throttled"), "{}", c.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_auth_modes_are_invalid_spec_and_nothing_secret_reaches_logs_events_or_status() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.fakes
        .arm
        .endpoints
        .set_token_lifetime(Duration::from_secs(6));
    w.sp_workspace().await;
    w.workspace_secret("aad-key", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://onlineEndpoints/entra/keys/primary")]) })).await;
    w.workspace_secret("aad-whole", json!({ "workspaceRef": { "name": "ml" }, "dataFrom": [{ "ref": "azureml://onlineEndpoints/entra" }] })).await;
    w.workspace_secret("aad-uri", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("uri", "azureml://onlineEndpoints/entra/scoringUri")]) })).await;
    w.workspace_secret("key-token", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("t", "azureml://onlineEndpoints/scorer/token"), ("k", "azureml://onlineEndpoints/tokened/keys/primary")]) })).await;
    w.workspace_secret("everything", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "allowDatastoreCredentials": true,
        "dataFrom": [
            { "ref": "azureml://onlineEndpoints/scorer", "keys": { "rewrite": [{ "regex": "^", "replace": "scorer-" }] } },
            { "ref": "azureml://onlineEndpoints/tokened", "keys": { "rewrite": [{ "regex": "^", "replace": "tokened-" }] } },
            { "ref": "azureml://serverlessEndpoints/llm", "keys": { "rewrite": [{ "regex": "^", "replace": "llm-" }] } },
            { "ref": "azureml://datastores/blobs", "keys": { "rewrite": [{ "regex": "^", "replace": "blobs-" }] } },
            { "ref": "azureml://datastores/sas", "keys": { "rewrite": [{ "regex": "^", "replace": "sas-" }] } },
        ] })).await;

    for name in ["aad-key", "aad-whole"] {
        let c = w.wait_wsec(name, "False", "InvalidSpec").await;
        assert!(
            c.message.contains("authMode AADToken") && c.message.contains("workload identity"),
            "{name}: {}",
            c.message
        );
    }
    let uri = w.wait_wsec("aad-uri", "True", "Synced").await;
    assert!(uri.message.contains("1 keys synced"), "{}", uri.message);
    let c = w.wait_wsec("key-token", "False", "InvalidSpec").await;
    assert!(
        c.message.contains("authMode Key") && c.message.contains("authMode AMLToken"),
        "{}",
        c.message
    );
    w.wait_wsec("everything", "True", "Synced").await;
    let data = w.secret_data("everything").await.unwrap();
    assert_eq!(text(&data, "blobs-key"), "planted-account-key-1");
    // Let a few token refreshes and key reads pass, with the values changing in between.
    w.fakes.arm.endpoints.regenerate_keys(
        &ws_id(),
        "llm",
        ("planted-sl-primary-3", "planted-sl-secondary-3"),
    );
    w.wait_secret("everything", "the regenerated serverless key", |d| {
        text(d, "llm-primaryKey") == "planted-sl-primary-3"
    })
    .await;
    // An `Updated` Event exists for the check below. Its note is not asserted: kube's Event
    // recorder folds repeats of one reason into a series that keeps the first note, and the
    // token's own refreshes may come first.
    w.wait_event("everything", "Updated", "").await;

    let mut everything = String::new();
    for name in ["aad-key", "aad-whole", "aad-uri", "key-token", "everything"] {
        everything.push_str(&format!(
            "{:?}{:?}",
            status_of(&w, name).await,
            w.events_for(name).await
        ));
    }
    for p in PLANTED {
        assert!(!everything.contains(p), "{p} leaked into status or Events");
    }
    assert_logs_clean(PLANTED);
}
