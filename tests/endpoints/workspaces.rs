//! Workspace kinds: a project reads its own endpoints, not its hub's.

use serde_json::json;
use testenv::azure::arm::workspace_id;

use crate::support::*;
use crate::{SUB, items, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_endpoints_are_its_own_and_not_its_hubs() {
    let w = World::start(&[]).await;
    let hub = workspace_id(SUB, "rg-ml", "hub1");
    let project = workspace_id(SUB, "rg-ml", "proj1");
    let e = &w.fakes.arm.endpoints;
    e.put_online(&hub, "scorer", "Key", ("planted-online-primary-hub", "h2"));
    e.put_online(
        &project,
        "scorer",
        "Key",
        ("planted-online-primary-proj", "p2"),
    );
    w.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    w.workspace_spec(
        "proj",
        json!({
            "subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "proj1",
            "cloud": "Custom", "customCloud": w.custom_cloud(),
            "keyVault": { "uri": w.fakes.vault.uri },
            "auth": { "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } },
        }),
    )
    .await;
    w.workspace_secret("p", json!({ "workspaceRef": { "name": "proj" }, "data": items(&[("key", "azureml://onlineEndpoints/scorer/keys/primary")]) })).await;
    w.wait_wsec("p", "True", "Synced").await;
    let data = w.secret_data("p").await.unwrap();
    assert_eq!(text(&data, "key"), "planted-online-primary-proj");
}
