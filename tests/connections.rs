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

use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::azure::connections::{LIST_SECRETS_ACTION, SECRETS_READER_ROLE};
use kube::api::Api;
use serde_json::{Value, json};
use support::*;
use testenv::azure::arm::{vault_id, workspace_id, workspace_json};
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
    assert!(
        w.events_for("oai")
            .await
            .iter()
            .any(|(r, m)| r == "Updated" && m.contains("key"))
    );
    let status = status_of(&w, "oai").await;
    assert_ne!(
        status.synced_keys[0].updated.as_deref(),
        Some("2025-01-01T00:00:00Z"),
        "lastModifiedAt moved"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_without_a_vault_serves_connections_and_reports_no_key_vault_for_vault_refs() {
    let w = World::start(&[]).await;
    let hub = workspace_id(SUB, "rg-ml", "hub-novault");
    w.fakes.arm.put(workspace_json(
        SUB,
        "rg-ml",
        "hub-novault",
        Some("Hub"),
        None,
        None,
    ));
    w.fakes.arm.connections.put(
        &hub,
        connection_json(
            &hub,
            "search",
            "ApiKey",
            "CognitiveSearch",
            "https://s.search.windows.net",
            json!({"key": "search-key"}),
        ),
    );
    w.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    let spec = json!({
        "subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "hub-novault",
        "cloud": "Custom", "customCloud": w.custom_cloud(),
        "auth": { "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } },
    });
    w.workspace_spec("hub", spec).await;
    let ready = w.wait_ws("hub", "True", "Resolved").await;
    assert!(
        ready.message.contains("no customer Key Vault")
            && ready.message.contains("1 connections listed"),
        "{}",
        ready.message
    );
    assert!(
        w.fakes.arm.calls.count("connections.list") >= 1,
        "Ready means a page of connections was listed"
    );

    w.workspace_secret("conn-only", json!({ "workspaceRef": { "name": "hub" }, "data": items(&[("SEARCH_KEY", "azureml://connections/search/credentials/key")]) })).await;
    w.wait_wsec("conn-only", "True", "Synced").await;
    w.workspace_secret(
        "mixed",
        json!({ "workspaceRef": { "name": "hub" },
                "data": items(&[("SEARCH_KEY", "azureml://connections/search/credentials/key"), ("DB", "keyvault:db-password")]),
                "dataFrom": [{ "find": { "nameRegex": "^app-" } }] }),
    )
    .await;
    let c = w.wait_wsec("mixed", "False", "NoKeyVault").await;
    assert!(
        c.message.contains("DB") && c.message.contains("dataFrom[0]"),
        "{}",
        c.message
    );
    let data = w.secret_data("mixed").await.unwrap();
    assert_eq!(
        data["SEARCH_KEY"], b"search-key",
        "connection refs are served beside failing vault refs"
    );
    assert!(!data.contains_key("DB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_without_a_vault_probes_its_hubs_vault() {
    let w = World::start(&[]).await;
    let hub = workspace_id(SUB, "rg-hub", "hub-with-vault");
    w.fakes.arm.put(workspace_json(
        SUB,
        "rg-hub",
        "hub-with-vault",
        Some("Hub"),
        Some(&vault_id(SUB, "rg-hub", "kv-hub")),
        None,
    ));
    w.fakes.arm.put(workspace_json(
        SUB,
        "rg-ml",
        "proj",
        Some("Project"),
        None,
        Some(&hub),
    ));
    w.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    w.workspace_spec(
        "proj",
        json!({
            "subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "proj",
            "cloud": "Custom", "customCloud": w.custom_cloud(),
            "auth": { "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } },
        }),
    )
    .await;
    // The hub's vault URI is derived as https://kv-hub.vault.test, which cannot resolve here:
    // the operator reaching for exactly that vault proves the project resolved its hub's vault.
    let c = support::eventually(
        "the project probing its hub's vault",
        Duration::from_secs(45),
        || async {
            w.ws_ready("proj")
                .await
                .filter(|c| c.status == "False" && c.message.contains("kv-hub.vault.test"))
        },
    )
    .await;
    assert_ne!(c.reason, "NoKeyVault", "{c:?}");
    assert!(
        w.fakes.arm.calls.count("workspace.get") >= 2,
        "project, then its hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_connection_becomes_a_dockerconfigjson_secret() {
    let w = World::start(&[]).await;
    put_every_auth_type(&w);
    w.sp_workspace().await;
    w.workspace_secret("pull", json!({ "workspaceRef": { "name": "ml" }, "target": { "type": "kubernetes.io/dockerconfigjson" }, "dataFrom": [{ "ref": "azureml://connections/acr" }] })).await;
    w.wait_wsec("pull", "True", "Synced").await;
    let secret = w.secret("pull").await.unwrap();
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let data = secret.data.unwrap();
    let config: Value = serde_json::from_slice(&data[".dockerconfigjson"].0).unwrap();
    let entry = &config["auths"]["myacr.azurecr.io"];
    assert_eq!(
        (entry["username"].as_str(), entry["password"].as_str()),
        (Some("acr-user"), Some("planted-acr-pw"))
    );
    assert_eq!(data.len(), 1);

    w.workspace_secret("pull-pat", json!({ "workspaceRef": { "name": "ml" }, "target": { "type": "kubernetes.io/dockerconfigjson" }, "dataFrom": [{ "ref": "azureml://connections/git" }] })).await;
    let c = w.wait_wsec("pull-pat", "False", "InvalidSpec").await;
    assert!(
        c.message.contains("only ContainerRegistry"),
        "{}",
        c.message
    );
}

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
    let events = support::eventually("the expiry Event", Duration::from_secs(20), || async {
        let e = w.events_for("all").await;
        e.iter().any(|(r, _)| r == "ConnectionExpired").then_some(e)
    })
    .await;
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
