//! Failures of a push: 403 under each permission model, 429, a deleted source, names that map to
//! nothing valid. None of them deletes or blanks anything in the vault.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use testenv::azure::{Fault, PermissionModel};

use super::support::*;
use super::{push, setup, wait_push, wait_vault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_names_the_officer_role_or_the_set_permission_and_recovers() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", b"v-1")]).await;
    w.fakes.vault.deny_writes(SP_OID);
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "refreshInterval": "10s",
                "data": [{"secretKey": "k", "remoteName": "pushed"}] }),
    )
    .await;
    let rbac = wait_push(&w, "p", "False", "Forbidden").await;
    assert!(rbac.contains("Key Vault Secrets Officer"), "{rbac}");
    assert!(rbac.contains("setSecret"), "{rbac}");
    assert!(rbac.contains(SP_CLIENT), "names the principal: {rbac}");
    assert!(w.fakes.vault.value("pushed").is_none());

    w.fakes.vault.set_model(PermissionModel::AccessPolicy);
    let policy = eventually(
        "the access-policy advice",
        Duration::from_secs(45),
        || async {
            let m = wait_push(&w, "p", "False", "Forbidden").await;
            m.contains("access policy").then_some(m)
        },
    )
    .await;
    assert!(policy.contains("get, list and set"), "{policy}");
    assert!(
        policy.contains("secrets set permission"),
        "Key Vault's words: {policy}"
    );

    w.fakes.vault.allow(SP_OID);
    wait_push(&w, "p", "True", "Pushed").await;
    wait_vault(&w, "pushed", "v-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_reported_then_the_push_completes() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", b"v-1")]).await;
    w.wait_ws("ml", "True", "Resolved").await;
    let throttled = Fault::new(
        429,
        r#"{"error":{"code":"Throttled","message":"Rate limit is exceeded."}}"#,
    )
    .header("retry-after", "3");
    w.fakes.vault.faults.push_n(6, throttled);
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"},
                "data": [{"secretKey": "k", "remoteName": "pushed"}] }),
    )
    .await;
    let message = wait_push(&w, "p", "False", "Throttled").await;
    assert!(message.contains("throttled"), "{message}");
    wait_push(&w, "p", "True", "Pushed").await;
    wait_vault(&w, "pushed", "v-1").await;
    assert_eq!(w.fakes.vault.versions_of("pushed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_source_keeps_the_vault_data_even_under_delete() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", b"keep-me")]).await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "deletionPolicy": "Delete",
                "data": [{"secretKey": "k", "remoteName": "kept"}] }),
    )
    .await;
    wait_push(&w, "p", "True", "Pushed").await;
    Api::<Secret>::namespaced(w.client.clone(), &w.ns)
        .delete("src", &DeleteParams::default())
        .await
        .unwrap();
    let message = wait_push(&w, "p", "False", "SourceNotFound").await;
    assert!(
        message.contains("src") && message.contains("kept"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.fakes.vault.value("kept").as_deref(), Some("keep-me"));
    assert!(!w.fakes.vault.is_deleted("kept"));
    let items = super::get_push(&w, "p")
        .await
        .unwrap()
        .status
        .unwrap()
        .items;
    assert_eq!(items.len(), 1, "the record of what was pushed stays");

    // Created again (without the label), it is found by the backoff and pushed.
    w.put_secret("src", &[("k", b"back again")]).await;
    wait_vault(&w, "kept", "back again").await;
    wait_push(&w, "p", "True", "Pushed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_map_to_vault_names_and_unmappable_ones_are_reported_while_others_push() {
    let w = World::start(&[]).await;
    let long = "K".repeat(130);
    setup(
        &w,
        "src",
        &[
            ("DB_PASSWORD", b"p"),
            ("tls.crt", b"c"),
            ("a_b", b"1"),
            ("a.b", b"2"),
            (long.as_str(), b"x"),
        ],
    )
    .await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "allKeys": {} }),
    )
    .await;
    let message = wait_push(&w, "p", "False", "InvalidSpec").await;
    assert!(message.contains("a-b"), "{message}");
    assert!(message.contains("not a valid Key Vault name"), "{message}");
    wait_vault(&w, "db-password", "p").await;
    wait_vault(&w, "tls-crt", "c").await;
    assert!(w.fakes.vault.value("a-b").is_none());
    assert_eq!(w.fakes.vault.calls.count("set"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_secret_deleted_by_someone_else_is_created_again_or_reported() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", b"v")]).await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "refreshInterval": "10s",
                "data": [{"secretKey": "k", "remoteName": "gone"}] }),
    )
    .await;
    wait_vault(&w, "gone", "v").await;
    // Soft-deleted behind the push's back: the name is reserved, so the push says what to do.
    w.fakes.vault.soft_delete("gone");
    let message = wait_push(&w, "p", "False", "DeletedButRecoverable").await;
    assert!(message.contains("az keyvault secret recover"), "{message}");
    assert!(w.fakes.vault.value("gone").is_none());
    // Once purged, the name is free and the push writes it again (its record says it was ours).
    w.fakes.vault.purge_deleted("gone");
    wait_vault(&w, "gone", "v").await;
    wait_push(&w, "p", "True", "Pushed").await;
    let written = w.fakes.vault.versions_of("gone");
    assert_eq!(written.len(), 1, "one version written after the purge");
    let items = super::get_push(&w, "p")
        .await
        .unwrap()
        .status
        .unwrap()
        .items;
    assert_eq!(
        items[0].version.as_deref(),
        Some(written[0].version.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_may_not_delete_goes_with_a_warning_and_leaves_its_secrets() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", b"stays")]).await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "deletionPolicy": "Delete",
                "data": [{"secretKey": "k", "remoteName": "left-behind"}] }),
    )
    .await;
    wait_push(&w, "p", "True", "Pushed").await;
    w.fakes.vault.deny_writes(SP_OID);
    Api::<amlsecrets::api::WorkspaceSecretPush>::namespaced(w.client.clone(), &w.ns)
        .delete("p", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the push to be gone", Duration::from_secs(30), || async {
        super::get_push(&w, "p").await.is_none().then_some(())
    })
    .await;
    w.wait_event("p", "DeleteFailed", "left-behind").await;
    assert_eq!(w.fakes.vault.value("left-behind").as_deref(), Some("stays"));
    assert!(!w.fakes.vault.is_deleted("left-behind"));
}
