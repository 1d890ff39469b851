//! Failures of the vault or the workspace's identity: a secret deleted at the source keeps or
//! removes its data as the policy says, failures never touch synced bytes nor hot-loop, and slow
//! vaults and bad credentials are reported without losing data.

use std::time::Duration;

use amlsecrets::api::WorkspaceSecret;
use kube::api::Api;
use serde_json::json;
use testenv::azure::Fault;

use crate::items;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_deletion_keeps_data_under_retain_and_removes_it_under_delete() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("a", "value-a", true, None);
    w.fakes.vault.put_secret("b", "value-b", true, None);
    w.sp_workspace().await;
    w.workspace_secret("retain", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("a", "keyvault:a"), ("b", "keyvault:b")]) })).await;
    w.workspace_secret("delete", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "target": { "deletionPolicy": "Delete" }, "data": items(&[("a", "keyvault:a"), ("b", "keyvault:b")]) })).await;
    w.wait_wsec("retain", "True", "Synced").await;
    w.wait_wsec("delete", "True", "Synced").await;

    delete_vault_secret(&w, "b").await;
    let c = w.wait_wsec("retain", "False", "SecretNotFound").await;
    assert!(c.message.contains("b"), "{}", c.message);
    assert_eq!(w.secret_data("retain").await.unwrap()["b"], b"value-b");
    w.wait_wsec("delete", "False", "SecretNotFound").await;
    let d = w
        .wait_secret("delete", "key b removed", |d| !d.contains_key("b"))
        .await;
    assert_eq!(d["a"], b"value-a");
}

async fn delete_vault_secret(w: &World, name: &str) {
    use amlsecrets::azure::{
        AzureApi, CloudEndpoints, CredentialRegistry, CredentialSpec, Http, HttpConfig,
    };
    let http = Http::new(&HttpConfig {
        extra_ca_pem: Some(w.fakes.ca.pem()),
        ..HttpConfig::default()
    })
    .unwrap();
    let cloud = CloudEndpoints::from_spec(
        amlsecrets::api::workspace::Cloud::Custom,
        Some(&serde_json::from_value(w.custom_cloud()).unwrap()),
    )
    .unwrap();
    let registry = CredentialRegistry::new(http.clone());
    let cred = registry
        .credential(
            &cloud,
            CredentialSpec::ClientSecret {
                tenant_id: testenv::azure::TENANT.into(),
                client_id: SP_CLIENT.into(),
                secret: SP_SECRET.into(),
            },
        )
        .unwrap();
    amlsecrets::azure::AzureClient::new(http)
        .delete_secret(&cred, &w.fakes.vault.uri, name)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_failures_never_touch_synced_bytes_and_do_not_hot_loop() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("pw", PLANTED, true, None);
    w.sp_workspace().await;
    w.workspace_secret("db", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("pw", "keyvault:pw")]) })).await;
    w.wait_wsec("db", "True", "Synced").await;
    let before = w.secret("db").await.unwrap();
    let events_before = w.events_for("db").await.len();

    // 429 with Retry-After on every call: Throttled, bytes unchanged, calls bounded.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.fakes
        .vault
        .put_secret("pw", "rotated-but-unreachable", true, None);
    w.fakes.vault.faults.push_n(
        10_000,
        Fault::new(
            429,
            r#"{"error":{"code":"Throttled","message":"Too many requests"}}"#,
        )
        .header("Retry-After", "1"),
    );
    w.fakes.vault.calls.reset();
    w.wait_wsec("db", "False", "Throttled").await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let calls = w.fakes.vault.calls.total();
    assert!(
        calls <= 20,
        "{calls} vault calls in ~15 s while throttled: a hot loop"
    );
    let after = w.secret("db").await.unwrap();
    assert_eq!(
        after.data, before.data,
        "throttling changed the Secret's bytes"
    );
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the Secret was written"
    );
    assert!(
        w.events_for("db").await.len() > events_before,
        "no Event for the transition"
    );
    let status = Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get("db")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(
        status.synced_keys.iter().all(|k| k.stale),
        "status does not say the data is stale"
    );

    // 5xx, then 403 from the vault: the right reasons, bytes still unchanged.
    w.fakes.vault.faults.clear();
    w.fakes.vault.faults.push_n(
        10_000,
        Fault::new(
            503,
            r#"{"error":{"code":"ServiceUnavailable","message":"down"}}"#,
        ),
    );
    w.wait_wsec("db", "False", "AzureError").await;
    w.fakes.vault.faults.clear();
    w.fakes.vault.deny(SP_OID);
    let c = w.wait_wsec("db", "False", "Forbidden").await;
    assert!(
        c.message.contains(SP_OID) || c.message.contains(SP_CLIENT),
        "the message does not name the principal: {}",
        c.message
    );
    assert_eq!(w.secret("db").await.unwrap().data, before.data);
    w.fakes.vault.calls.reset();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let calls = w.fakes.vault.calls.total();
    assert!(
        calls <= 6,
        "{calls} vault calls in 12 s while forbidden: a hot loop"
    );
    assert_eq!(w.secret("db").await.unwrap().data, before.data);
    assert_logs_clean(&[PLANTED, "rotated-but-unreachable", SP_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_vault_and_bad_credentials_are_reported_without_losing_data() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("pw", "kept", true, None);
    w.sp_workspace().await;
    w.workspace_secret("db", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("pw", "keyvault:pw")]) })).await;
    w.wait_wsec("db", "True", "Synced").await;
    let before = w.secret("db").await.unwrap();

    w.fakes.vault.faults.set_delay(Some(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.fakes.vault.put_secret("pw", "new", true, None);
    let c = w.wait_wsec("db", "False", "VaultUnreachable").await;
    assert!(c.message.to_lowercase().contains("time"), "{}", c.message);
    assert_eq!(w.secret("db").await.unwrap().data, before.data);
    w.fakes.vault.faults.set_delay(None);
    // The vault answers again: the rotated value arrives.
    w.wait_wsec("db", "True", "Synced").await;
    eventually("the rotated value", Duration::from_secs(30), || async {
        (w.secret_data("db").await?.get("pw")? == b"new").then_some(())
    })
    .await;
    let before = w.secret("db").await.unwrap();

    // A wrong client secret: AuthenticationFailed with the AADSTS code, data untouched.
    w.put_secret("sp", &[("clientSecret", b"wrong-secret")])
        .await;
    let c = w.wait_ws("ml", "False", "AuthenticationFailed").await;
    assert!(c.message.contains("AADSTS7000215"), "{}", c.message);
    let c = w.wait_wsec("db", "False", "AuthenticationFailed").await;
    assert!(c.message.contains("AADSTS7000215"), "{}", c.message);
    assert_eq!(w.secret("db").await.unwrap().data, before.data);
}
