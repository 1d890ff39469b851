//! Workspace connections end to end on the real API server with the fake ARM: every auth type's
//! credential shape, single fields and whole connections, rotation, one `listsecrets` per interval
//! shared by many WorkspaceSecrets, hubs without a vault, projects through their hub, typed
//! dockerconfigjson output, 403/404 explanations, and no value in logs, Events or status.

#[allow(unused_imports)]
#[path = "controller/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "azure_fakes/support.rs"]
mod fakes_support;

#[path = "connections/client.rs"]
mod client;

#[path = "connections/refusals.rs"]
mod refusals;

#[path = "connections/workspaces.rs"]
mod workspaces;

use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use kube::api::Api;
use serde_json::{Value, json};
use support::*;
use testenv::azure::arm::workspace_id;
use testenv::azure::connection_json;

const SUB: &str = "00000000-1111-2222-3333-444444444444";

/// The id of the workspace `World::workspace` points at.
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

/// Adds one connection of each auth type the acceptance names, with planted values.
fn put_every_auth_type(w: &World) {
    let id = ws_id();
    let c = &w.fakes.arm.connections;
    let put = |name: &str, auth: &str, cat: &str, target: &str, creds: Value| {
        c.put(&id, connection_json(&id, name, auth, cat, target, creds));
    };
    put(
        "openai",
        "ApiKey",
        "AzureOpenAI",
        "https://oai.openai.azure.com/",
        json!({"key": "planted-apikey-1"}),
    );
    put(
        "custom",
        "CustomKeys",
        "CustomKeys",
        "https://api.example.com",
        json!({"keys": {"api-key": "planted-custom-a", "clientToken": "planted-custom-b"}}),
    );
    put(
        "s3",
        "AccessKey",
        "S3",
        "s3://bucket",
        json!({"accessKeyId": "AKIAPLANTED", "secretAccessKey": "planted-s3-secret"}),
    );
    put(
        "git",
        "PAT",
        "Git",
        "https://github.com/org/repo",
        json!({"pat": "planted-pat-9"}),
    );
    put(
        "acr",
        "UsernamePassword",
        "ContainerRegistry",
        "https://myacr.azurecr.io",
        json!({"username": "acr-user", "password": "planted-acr-pw", "securityToken": null}),
    );
    put(
        "spn",
        "ServicePrincipal",
        "AzureBlob",
        "https://st.blob.core.windows.net",
        json!({"clientId": "cid-1", "clientSecret": "planted-sp-cs", "tenantId": "tid-1"}),
    );
    put(
        "aad",
        "AAD",
        "AzureOpenAI",
        "https://aad.openai.azure.com/",
        Value::Null,
    );
}

const PLANTED_CONN: &[&str] = &[
    "planted-apikey-1",
    "planted-custom-a",
    "planted-custom-b",
    "planted-s3-secret",
    "planted-pat-9",
    "planted-acr-pw",
    "planted-sp-cs",
];

async fn status_of(
    w: &World,
    name: &str,
) -> amlsecrets::api::workspace_secret::WorkspaceSecretStatus {
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_auth_type_syncs_as_single_fields_and_whole_connections_with_provenance() {
    let w = World::start(&[]).await;
    put_every_auth_type(&w);
    let soon = "2099-01-01T00:00:00Z";
    w.fakes
        .arm
        .connections
        .set_property(&ws_id(), "openai", "expiryTime", json!(soon));
    w.fakes.arm.connections.set_property(
        &ws_id(),
        "openai",
        "metadata",
        json!({"ApiVersion": "2024-10-21"}),
    );
    w.sp_workspace().await;
    w.workspace_secret(
        "single",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "data": items(&[
                    ("OPENAI_KEY", "azureml://connections/openai/credentials/key"),
                    ("OPENAI_ENDPOINT", "${{azureml://connections/openai/target}}"),
                    ("OPENAI_API_VERSION", "azureml://connections/openai/metadata/ApiVersion"),
                    ("CUSTOM", "azureml://connections/custom/credentials/api-key"),
                    ("S3_SECRET", "azureml://connections/s3/credentials/secretAccessKey"),
                    ("PAT", "azureml://connections/git/credentials/pat"),
                    ("ACR_PASSWORD", "azureml://connections/acr/credentials/password"),
                    ("SP_SECRET", "azureml://connections/spn/credentials/clientSecret"),
                ]) }),
    )
    .await;
    let whole = |c: &str, prefix: &str| json!({ "ref": format!("azureml://connections/{c}"), "keys": { "rewrite": [{ "regex": "^", "replace": prefix }], "style": "UpperSnake" } });
    w.workspace_secret(
        "whole",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "dataFrom": [whole("openai", "oai-"), whole("custom", ""), whole("s3", "aws-"), whole("git", "git-"), whole("acr", "acr-"), whole("spn", "sp-"), whole("aad", "aad-")] }),
    )
    .await;
    w.wait_wsec("single", "True", "Synced").await;
    let single = w.secret_data("single").await.unwrap();
    let want = [
        ("OPENAI_KEY", "planted-apikey-1"),
        ("OPENAI_ENDPOINT", "https://oai.openai.azure.com/"),
        ("OPENAI_API_VERSION", "2024-10-21"),
        ("CUSTOM", "planted-custom-a"),
        ("S3_SECRET", "planted-s3-secret"),
        ("PAT", "planted-pat-9"),
        ("ACR_PASSWORD", "planted-acr-pw"),
        ("SP_SECRET", "planted-sp-cs"),
    ];
    for (k, v) in want {
        assert_eq!(single.get(k).map(Vec::as_slice), Some(v.as_bytes()), "{k}");
    }
    let ready = w.wait_wsec("whole", "True", "Synced").await;
    assert!(
        ready.message.contains("aad") && ready.message.contains("identity-based"),
        "identity-only is a note: {}",
        ready.message
    );
    let whole_data = w.secret_data("whole").await.unwrap();
    let mut keys: Vec<&str> = whole_data.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ACR_PASSWORD",
            "ACR_USERNAME",
            "API_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "CLIENT_TOKEN",
            "GIT_PAT",
            "OAI_KEY",
            "SP_CLIENT_ID",
            "SP_CLIENT_SECRET",
            "SP_TENANT_ID",
        ]
    );
    assert_eq!(whole_data["CLIENT_TOKEN"], b"planted-custom-b");
    assert_eq!(whole_data["AWS_ACCESS_KEY_ID"], b"AKIAPLANTED");
    assert_eq!(whole_data["ACR_USERNAME"], b"acr-user");

    let status = status_of(&w, "single").await;
    let key = status
        .synced_keys
        .iter()
        .find(|k| k.key == "OPENAI_KEY")
        .unwrap();
    assert_eq!(key.connection_kind.as_deref(), Some("ApiKey/AzureOpenAI"));
    assert_eq!(key.expires.as_deref(), Some(soon));
    assert_eq!(key.updated.as_deref(), Some("2025-01-01T00:00:00Z"));
    assert!(key.version.is_none());
    let s3 = status
        .synced_keys
        .iter()
        .find(|k| k.key == "S3_SECRET")
        .unwrap();
    assert_eq!(s3.connection_kind.as_deref(), Some("AccessKey/S3"));
    // One listsecrets per connection, shared by both WorkspaceSecrets.
    assert_eq!(w.fakes.arm.calls.count("connections.listsecrets"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_connection_key_updates_the_secret_within_the_interval() {
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
            json!({"key": "key-v1"}),
        ),
    );
    w.sp_workspace().await;
    w.workspace_secret("oai", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("key", "azureml://connections/openai/credentials/key")]) })).await;
    w.wait_secret("oai", "first sync", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"key-v1")
    })
    .await;
    w.fakes
        .arm
        .connections
        .rotate(&id, "openai", json!({"key": "key-v2"}));
    let rotated = Instant::now();
    w.wait_secret("oai", "the rotated key", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"key-v2")
    })
    .await;
    assert!(
        rotated.elapsed() < Duration::from_secs(12),
        "rotation took {:?}",
        rotated.elapsed()
    );
    // The Event follows the Secret write in the same reconcile.
    w.wait_event("oai", "Updated", "key").await;
    // The Secret is written before the status in the same reconcile: wait for the status too.
    eventually(
        "the provenance shows the new lastModifiedAt",
        Duration::from_secs(10),
        || async {
            let status = status_of(&w, "oai").await;
            (status.synced_keys[0].updated.as_deref() != Some("2025-01-01T00:00:00Z")).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workspace_secrets_share_one_listsecrets_per_interval() {
    let w = World::start(&[]).await;
    let id = ws_id();
    w.fakes.arm.connections.put(
        &id,
        connection_json(
            &id,
            "shared",
            "CustomKeys",
            "CustomKeys",
            "https://t",
            json!({"keys": {"token": "round-1"}}),
        ),
    );
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    for i in 0..20 {
        w.workspace_secret(&format!("s{i}"), json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "dataFrom": [{ "ref": "azureml://connections/shared" }] })).await;
    }
    for i in 0..20 {
        w.wait_secret(&format!("s{i}"), "round 1", |d| {
            d.get("token").map(Vec::as_slice) == Some(b"round-1")
        })
        .await;
    }
    assert_eq!(
        w.fakes.arm.calls.count("connections.listsecrets"),
        1,
        "first interval"
    );
    w.fakes
        .arm
        .connections
        .rotate(&id, "shared", json!({"keys": {"token": "round-2"}}));
    for i in 0..20 {
        w.wait_secret(&format!("s{i}"), "round 2", |d| {
            d.get("token").map(Vec::as_slice) == Some(b"round-2")
        })
        .await;
    }
    assert_eq!(
        w.fakes.arm.calls.count("connections.listsecrets"),
        2,
        "second interval"
    );
}
