//! Workspace discovery: every kind, vaults in other subscriptions, hubs and projects.

use amlsecrets::azure::{AzureApi, AzureError, VaultSource, WorkspaceRef};
use testenv::azure::arm::{vault_id, workspace_id, workspace_json};

use super::support::{Env, SP_CLIENT, SP_OID};

fn ws(name: &str) -> WorkspaceRef {
    WorkspaceRef {
        subscription_id: "sub-1".into(),
        resource_group: "rg-ml".into(),
        workspace_name: name.into(),
    }
}

#[tokio::test]
async fn default_workspace_resolves_its_vault_uri_for_the_cloud() {
    let env = Env::start().await;
    env.fakes.arm.put(workspace_json(
        "sub-1",
        "rg-ml",
        "ws1",
        None,
        Some(&vault_id("sub-1", "rg-ml", "kv-ws1")),
        None,
    ));
    let w = env
        .client
        .get_workspace(&env.sp(), &ws("ws1"))
        .await
        .unwrap();
    assert_eq!(w.kind, "Default");
    assert_eq!(w.location.as_deref(), Some("eastus2"));
    assert_eq!(w.resource_id, workspace_id("sub-1", "rg-ml", "ws1"));
    assert!(w.workspace_id.is_some());
    let kv = w.key_vault.unwrap();
    assert_eq!(kv.uri, "https://kv-ws1.vault.test");
    assert_eq!(kv.source, VaultSource::Workspace);
}

#[tokio::test]
async fn vault_in_another_subscription_keeps_its_own_resource_id() {
    let env = Env::start().await;
    let other = vault_id("sub-2", "rg-shared", "kv-central");
    env.fakes.arm.put(workspace_json(
        "sub-1",
        "rg-ml",
        "ws2",
        Some("Default"),
        Some(&other),
        None,
    ));
    let w = env
        .client
        .get_workspace(&env.sp(), &ws("ws2"))
        .await
        .unwrap();
    let kv = w.key_vault.unwrap();
    assert_eq!(kv.resource_id.as_deref(), Some(other.as_str()));
    assert_eq!(kv.uri, "https://kv-central.vault.test");
}

#[tokio::test]
async fn hub_without_a_vault_is_a_normal_answer() {
    let env = Env::start().await;
    env.fakes.arm.put(workspace_json(
        "sub-1",
        "rg-ml",
        "hub1",
        Some("Hub"),
        None,
        None,
    ));
    let w = env
        .client
        .get_workspace(&env.sp(), &ws("hub1"))
        .await
        .unwrap();
    assert_eq!(w.kind, "Hub");
    assert!(w.key_vault.is_none());
}

#[tokio::test]
async fn project_without_a_vault_inherits_its_hubs_vault() {
    let env = Env::start().await;
    let hub = workspace_id("sub-1", "rg-hub", "hub2");
    env.fakes.arm.put(workspace_json(
        "sub-1",
        "rg-hub",
        "hub2",
        Some("Hub"),
        Some(&vault_id("sub-1", "rg-hub", "kv-hub")),
        None,
    ));
    env.fakes.arm.put(workspace_json(
        "sub-1",
        "rg-ml",
        "proj1",
        Some("Project"),
        None,
        Some(&hub),
    ));
    let w = env
        .client
        .get_workspace(&env.sp(), &ws("proj1"))
        .await
        .unwrap();
    assert_eq!(w.kind, "Project");
    assert_eq!(w.hub_resource_id.as_deref(), Some(hub.as_str()));
    let kv = w.key_vault.unwrap();
    assert_eq!(kv.source, VaultSource::Hub);
    assert_eq!(kv.uri, "https://kv-hub.vault.test");
    assert_eq!(env.fakes.arm.calls.count("workspace.get"), 2);
}

#[tokio::test]
async fn missing_workspace_is_workspace_not_found() {
    let env = Env::start().await;
    let err = env
        .client
        .get_workspace(&env.sp(), &ws("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AzureError::WorkspaceNotFound { code, .. } if code == "ResourceNotFound"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "WorkspaceNotFound");
    assert_eq!(
        env.fakes.arm.calls.count("workspace.get"),
        1,
        "404 is not retried"
    );
}

#[tokio::test]
async fn arm_authorization_failed_names_principal_and_action() {
    let env = Env::start().await;
    env.fakes
        .arm
        .put(workspace_json("sub-1", "rg-ml", "ws3", None, None, None));
    env.fakes.arm.deny(SP_OID);
    let err = env
        .client
        .get_workspace(&env.sp(), &ws("ws3"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Forbidden");
    let text = err.to_string();
    assert!(text.contains(SP_CLIENT) && text.contains(SP_OID), "{text}");
    assert!(
        text.contains("Microsoft.MachineLearningServices/workspaces/read"),
        "{text}"
    );
    assert!(text.contains("AuthorizationFailed"), "{text}");
    assert_eq!(
        env.fakes.arm.calls.count("workspace.get"),
        1,
        "403 is not retried"
    );
}
