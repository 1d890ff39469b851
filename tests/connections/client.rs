//! The connections client against the fake ARM: paging, the category filter, credentials only
//! from `listsecrets`, and the error classes.

use amlsecrets::azure::connections::{LIST_SECRETS_ACTION, SECRETS_READER_ROLE};
use amlsecrets::azure::{AzureApi, AzureError, WorkspaceRef};
use serde_json::json;
use testenv::azure::arm::workspace_id;
use testenv::azure::connection_json;

use crate::fakes_support::{Env, SP_OID};

fn ws() -> (WorkspaceRef, String) {
    let w = WorkspaceRef {
        subscription_id: "sub-1".into(),
        resource_group: "rg-ml".into(),
        workspace_name: "hub1".into(),
    };
    let id = workspace_id("sub-1", "rg-ml", "hub1");
    (w, id)
}

#[tokio::test]
async fn list_follows_pages_filters_by_category_and_never_carries_credentials() {
    let env = Env::start().await;
    let (w, id) = ws();
    let conns = &env.fakes.arm.connections;
    for (name, cat) in [
        ("a", "ContainerRegistry"),
        ("b", "CustomKeys"),
        ("c", "ContainerRegistry"),
    ] {
        conns.put(
            &id,
            connection_json(
                &id,
                name,
                "ApiKey",
                cat,
                "https://t",
                json!({"key": "planted-k"}),
            ),
        );
    }
    conns.set_page_size(1);
    let all = env
        .client
        .list_connections(&env.sp(), &w, None)
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        env.fakes.arm.calls.count("connections.list"),
        3,
        "one call per page"
    );
    let registries = env
        .client
        .list_connections(&env.sp(), &w, Some("ContainerRegistry"))
        .await
        .unwrap();
    assert_eq!(registries.len(), 2);
    let one = env.client.get_connection(&env.sp(), &w, "b").await.unwrap();
    assert_eq!(one.kind(), "ApiKey/CustomKeys");
    assert!(!format!("{all:?}{one:?}").contains("planted-k"));
    let secrets = env
        .client
        .list_connection_secrets(&env.sp(), &w, "b")
        .await
        .unwrap();
    assert_eq!(
        secrets.credentials.get("key").unwrap().expose(),
        "planted-k"
    );
    assert!(
        !format!("{secrets:?}").contains("planted-k"),
        "Debug redacts values"
    );
}

#[tokio::test]
async fn forbidden_listsecrets_and_missing_connection_are_explained() {
    let env = Env::start().await;
    let (w, id) = ws();
    env.fakes.arm.connections.put(
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
    let missing = env
        .client
        .list_connection_secrets(&env.sp(), &w, "nope")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, AzureError::ConnectionNotFound { connection, .. } if connection == "nope"),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("nope") && missing.is_secret_not_found());

    env.fakes.arm.connections.deny_list_secrets(SP_OID);
    let denied = env
        .client
        .list_connection_secrets(&env.sp(), &w, "openai")
        .await
        .unwrap_err();
    let text = denied.to_string();
    assert!(
        text.contains(LIST_SECRETS_ACTION) && text.contains(SECRETS_READER_ROLE),
        "{text}"
    );
    assert_eq!(denied.reason(), "Forbidden");
    // Listing (no credentials) is still allowed: only listsecrets was denied.
    assert_eq!(
        env.client
            .list_connections(&env.sp(), &w, None)
            .await
            .unwrap()
            .len(),
        1
    );
}
