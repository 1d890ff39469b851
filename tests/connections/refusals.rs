//! What users read when a connection cannot be read: a refused `listsecrets` names the action
//! and the role to grant, a missing connection is named, and no connection value ever reaches
//! logs, Events or status.

use amlsecrets::azure::connections::{LIST_SECRETS_ACTION, SECRETS_READER_ROLE};
use serde_json::json;
use testenv::azure::connection_json;

use crate::support::*;
use crate::{PLANTED_CONN, items, put_every_auth_type, status_of, ws_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_listsecrets_names_action_and_role_and_a_missing_connection_is_named() {
    let w = World::start(&[]).await;
    let id = ws_id();
    w.fakes.arm.connections.put(
        &id,
        connection_json(
            &id,
            "openai",
            "ApiKey",
            "AzureOpenAI",
            "https://t",
            json!({"key": "k"}),
        ),
    );
    w.sp_workspace().await;
    w.workspace_secret("missing", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://connections/no-such-conn/credentials/key")]) })).await;
    let c = w.wait_wsec("missing", "False", "SecretNotFound").await;
    assert!(
        c.message
            .contains("workspace connection no-such-conn was not found"),
        "{}",
        c.message
    );

    w.fakes.arm.connections.deny_list_secrets(SP_OID);
    w.workspace_secret("denied", json!({ "workspaceRef": { "name": "ml" }, "dataFrom": [{ "ref": "azureml://connections/openai" }] })).await;
    let c = w.wait_wsec("denied", "False", "Forbidden").await;
    assert!(
        c.message.contains(LIST_SECRETS_ACTION) && c.message.contains(SECRETS_READER_ROLE),
        "{}",
        c.message
    );
    let events = w.events_for("denied").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Forbidden" && m.contains(LIST_SECRETS_ACTION)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_value_reaches_logs_events_or_status() {
    let w = World::start(&[]).await;
    put_every_auth_type(&w);
    let id = ws_id();
    let expiring = "2000-01-01T00:00:00Z";
    w.fakes
        .arm
        .connections
        .set_property(&id, "s3", "expiryTime", json!(expiring));
    w.sp_workspace().await;
    let every = ["openai", "custom", "s3", "git", "acr", "spn", "aad"].map(|c| json!({ "ref": format!("azureml://connections/{c}"), "keys": { "rewrite": [{ "regex": "^", "replace": format!("{c}-") }], "style": "UpperSnake" } }));
    w.workspace_secret(
        "all",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "dataFrom": every }),
    )
    .await;
    w.workspace_secret("bad", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("X", "azureml://connections/openai/credentials/nope"), ("Y", "azureml://connections/aad/credentials/key"), ("Z", "azureml://connections/custom/credentials/api-key")]) })).await;
    w.wait_wsec("all", "True", "Synced").await;
    let data = w.secret_data("all").await.unwrap();
    assert_eq!(data["S3_SECRET_ACCESS_KEY"], b"planted-s3-secret");
    let c = w.wait_wsec("bad", "False", "SecretNotFound").await;
    assert!(
        c.message
            .contains("has no credential nope; its credentials are: key"),
        "{}",
        c.message
    );
    assert!(c.message.contains("identity-based"), "{}", c.message);
    // An expired connection is an Event (once), and its expiry is in the provenance the metric reads.
    let events = w.wait_event("all", "ConnectionExpired", "").await;
    let status = status_of(&w, "all").await;
    assert!(
        status
            .synced_keys
            .iter()
            .any(|k| k.expires.as_deref() == Some(expiring))
    );

    let everything = format!(
        "{events:?}{status:?}{:?}{:?}",
        status_of(&w, "bad").await,
        w.events_for("bad").await
    );
    for p in PLANTED_CONN {
        assert!(!everything.contains(p), "{p} leaked into status or Events");
    }
    assert_logs_clean(PLANTED_CONN);
}
