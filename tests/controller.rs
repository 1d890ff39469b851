//! The controllers end to end on the real API server with the fake Azure: syncing, rotation,
//! drift repair, ownership policies, failure behaviour, tenant isolation and log hygiene.

#[path = "controller/support.rs"]
mod support;

#[path = "controller/defects.rs"]
mod defects;

#[path = "controller/identities.rs"]
mod identities;

#[path = "controller/rollout.rs"]
mod rollout;

use std::time::Duration;

use amlsecrets::api::WorkspaceSecret;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::*;
use testenv::azure::Fault;

fn items(pairs: &[(&str, &str)]) -> serde_json::Value {
    json!(
        pairs
            .iter()
            .map(|(k, r)| json!({ "key": k, "ref": r }))
            .collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_workspace_syncs_items_with_provenance() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("db-password", PLANTED, true, None);
    w.fakes.vault.put_secret("db-user", "ml-reader", true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "db",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "data": items(&[("password", "keyvault:db-password"), ("username", "${{keyvault:db-user}}")]) }),
    )
    .await;
    let ws = w.wait_ws("ml", "True", "Resolved").await;
    assert!(ws.message.contains(SP_CLIENT), "{}", ws.message);
    w.wait_wsec("db", "True", "Synced").await;
    let data = w.secret_data("db").await.unwrap();
    assert_eq!(data["password"], PLANTED.as_bytes());
    assert_eq!(data["username"], b"ml-reader");

    let secret = w.secret("db").await.unwrap();
    let owner = &secret.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("WorkspaceSecret", "db")
    );
    let status = Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get("db")
        .await
        .unwrap()
        .status
        .unwrap();
    let keys: Vec<_> = status
        .synced_keys
        .iter()
        .map(|k| (k.key.as_str(), k.reference.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("password", "keyvault:db-password"),
            ("username", "keyvault:db-user")
        ]
    );
    assert!(
        status
            .synced_keys
            .iter()
            .all(|k| k.version.as_ref().is_some_and(|v| v.len() == 32) && k.updated.is_some())
    );
    let amlws = Api::<amlsecrets::api::AzureMLWorkspace>::namespaced(w.client.clone(), &w.ns)
        .get("ml")
        .await
        .unwrap();
    let identity = amlws.status.unwrap().identity.unwrap();
    assert_eq!(identity.client_id.as_deref(), Some(SP_CLIENT));
    assert_eq!(identity.object_id.as_deref(), Some(SP_OID));

    let table = printer_columns(&w, "workspacesecrets", "db").await;
    assert_eq!(
        table.get("Ready").map(String::as_str),
        Some("True"),
        "{table:?}"
    );
    assert_eq!(table.get("Reason").map(String::as_str), Some("Synced"));
    assert_eq!(table.get("Workspace").map(String::as_str), Some("ml"));
    let table = printer_columns(&w, "azuremlworkspaces", "ml").await;
    assert_eq!(table.get("Reason").map(String::as_str), Some("Resolved"));
    assert_eq!(
        table.get("Vault").map(String::as_str),
        Some(w.fakes.vault.uri.as_str())
    );

    let events = w.events_for("db").await;
    assert!(events.iter().any(|(r, _)| r == "Synced"), "{events:?}");
    let everything = format!("{events:?}{status:?}");
    assert!(!everything.contains(PLANTED));
    assert_logs_clean(&[PLANTED, SP_SECRET]);

    let mut w = w;
    let stopping = std::time::Instant::now();
    w.stop_operator().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

/// Reads an object's printer columns through the API server's Table output, as kubectl does.
async fn printer_columns(
    w: &World,
    plural: &str,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    let url = format!(
        "/apis/amlsecrets.io/v1alpha1/namespaces/{}/{plural}/{name}",
        w.ns
    );
    let req = http::Request::get(url)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = w.client.request(req).await.unwrap();
    let names: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    names
        .into_iter()
        .zip(cells.iter().map(|c| {
            c.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c.to_string())
        }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_value_and_edited_or_deleted_target_are_restored() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("api-key", "v1", true, None);
    w.sp_workspace().await;
    w.workspace_secret("api", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("key", "keyvault:api-key")]) })).await;
    w.wait_secret("api", "first sync", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"v1")
    })
    .await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.fakes.vault.put_secret("api-key", "v2", true, None);
    let rotated = std::time::Instant::now();
    w.wait_secret("api", "the rotated value", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"v2")
    })
    .await;
    assert!(
        rotated.elapsed() < Duration::from_secs(12),
        "rotation took {:?}",
        rotated.elapsed()
    );
    // The Event follows the Secret write in the same reconcile.
    w.wait_event("api", "Updated", "key").await;

    let api: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let edit = json!({ "data": { "key": "ZWRpdGVk" } });
    api.patch("api", &PatchParams::default(), &Patch::Merge(edit))
        .await
        .unwrap();
    w.wait_secret("api", "the edit repaired", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"v2")
    })
    .await;

    api.delete("api", &DeleteParams::default()).await.unwrap();
    w.wait_secret("api", "the deleted Secret restored", |d| {
        d.get("key").map(Vec::as_slice) == Some(b"v2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_policies_never_take_over_foreign_secrets_and_clean_up_as_declared() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("token", "from-vault", true, None);
    w.sp_workspace().await;

    // Owner: a pre-existing foreign Secret is never overwritten.
    w.put_secret("foreign", &[("token", b"theirs")]).await;
    w.workspace_secret("owner", json!({ "workspaceRef": { "name": "ml" }, "target": { "name": "foreign" }, "data": items(&[("token", "keyvault:token")]) })).await;
    let c = w.wait_wsec("owner", "False", "TargetConflict").await;
    assert!(c.message.contains("foreign"), "{}", c.message);
    assert_eq!(w.secret_data("foreign").await.unwrap()["token"], b"theirs");

    // Merge: writes only its key; deleting the WorkspaceSecret removes only its key.
    w.put_secret("shared", &[("other", b"keep-me")]).await;
    w.workspace_secret("merge", json!({ "workspaceRef": { "name": "ml" }, "target": { "name": "shared", "creationPolicy": "Merge" }, "data": items(&[("token", "keyvault:token")]) })).await;
    w.wait_secret("shared", "merged key", |d| {
        d.get("token").map(Vec::as_slice) == Some(b"from-vault")
    })
    .await;
    assert_eq!(w.secret_data("shared").await.unwrap()["other"], b"keep-me");
    assert!(
        w.secret("shared")
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .delete("merge", &DeleteParams::default())
        .await
        .unwrap();
    let left = w
        .wait_secret("shared", "merged key released", |d| {
            !d.contains_key("token")
        })
        .await;
    assert_eq!(left["other"], b"keep-me");

    // Merge into a missing Secret is a conflict, not a create.
    w.workspace_secret("merge-missing", json!({ "workspaceRef": { "name": "ml" }, "target": { "name": "absent", "creationPolicy": "Merge" }, "data": items(&[("token", "keyvault:token")]) })).await;
    w.wait_wsec("merge-missing", "False", "TargetConflict")
        .await;
    assert!(w.secret("absent").await.is_none());

    // Orphan: no ownerReference, and the Secret outlives the WorkspaceSecret.
    w.workspace_secret("orphan", json!({ "workspaceRef": { "name": "ml" }, "target": { "creationPolicy": "Orphan" }, "data": items(&[("token", "keyvault:token")]) })).await;
    w.wait_wsec("orphan", "True", "Synced").await;
    assert!(
        w.secret("orphan")
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.secret_data("orphan").await.unwrap()["token"],
        b"from-vault"
    );
}

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

    // A wrong client secret: AuthenticationFailed with the AADSTS code, data untouched.
    w.put_secret("sp", &[("clientSecret", b"wrong-secret")])
        .await;
    let c = w.wait_ws("ml", "False", "AuthenticationFailed").await;
    assert!(c.message.contains("AADSTS7000215"), "{}", c.message);
    let c = w.wait_wsec("db", "False", "AuthenticationFailed").await;
    assert!(c.message.contains("AADSTS7000215"), "{}", c.message);
    assert_eq!(w.secret("db").await.unwrap().data, before.data);
}
