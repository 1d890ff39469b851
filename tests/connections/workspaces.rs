//! Workspace kinds and typed output: a hub without a vault, a project through its hub, and a
//! registry connection as a `kubernetes.io/dockerconfigjson` Secret.

use std::time::Duration;

use serde_json::{Value, json};
use testenv::azure::arm::{vault_id, workspace_id, workspace_json};
use testenv::azure::connection_json;

use crate::support::{self, *};
use crate::{SUB, items, put_every_auth_type};

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
