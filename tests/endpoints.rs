//! Online endpoints, serverless endpoints and datastores end to end on the real API server with
//! the fake ARM: every reference form, single values and whole resources, key regeneration and
//! token expiry (short clocks) reaching the Secret, one call per endpoint and interval shared by
//! twenty WorkspaceSecrets, 403/404/429 with their reasons, the wrong auth mode (`AADToken`) as
//! `InvalidSpec` naming it, the datastore opt-in, a project's endpoints (not its hub's), and no
//! value in logs, Events or status.

#[allow(unused_imports)]
#[path = "controller/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::api::workspace_secret::{SyncedKey, WorkspaceSecretStatus};
use amlsecrets::azure::endpoints::{
    DATASTORE_LIST_SECRETS, ENDPOINT_SECRETS_ROLE, ONLINE_LIST_KEYS, ONLINE_TOKEN,
};
use kube::api::Api;
use serde_json::{Value, json};
use support::*;
use testenv::azure::Fault;
use testenv::azure::arm::workspace_id;
use testenv::azure::common::azure_error;

const SUB: &str = "00000000-1111-2222-3333-444444444444";

/// Values planted in the fakes, searched for in logs, Events and status.
const PLANTED: &[&str] = &[
    "planted-online-primary",
    "planted-online-secondary",
    "planted-sl-primary",
    "planted-sl-secondary",
    "planted-account-key",
    "planted-sas-token",
    "planted-aml-token",
];

/// The id of the workspace `World::sp_workspace` points at.
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

/// Adds one resource of each kind and auth mode: `scorer` (Key), `tokened` (AMLToken), `entra`
/// (AADToken), serverless `llm`, datastores `blobs` (AccountKey), `sas` (Sas), `identity` (None).
fn put_everything(w: &World) {
    let id = ws_id();
    let e = &w.fakes.arm.endpoints;
    e.put_online(
        &id,
        "scorer",
        "Key",
        ("planted-online-primary-1", "planted-online-secondary-1"),
    );
    e.put_online(&id, "tokened", "AMLToken", ("", ""));
    e.put_online(&id, "entra", "AADToken", ("", ""));
    e.put_serverless(
        &id,
        "llm",
        ("planted-sl-primary-1", "planted-sl-secondary-1"),
    );
    e.put_datastore(
        &id,
        "blobs",
        json!({"secretsType": "AccountKey", "key": "planted-account-key-1"}),
    );
    e.put_datastore(
        &id,
        "sas",
        json!({"secretsType": "Sas", "sasToken": "planted-sas-token-1"}),
    );
    e.put_datastore(&id, "identity", json!({"secretsType": "None"}));
}

async fn status_of(w: &World, name: &str) -> WorkspaceSecretStatus {
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn key_of<'a>(status: &'a WorkspaceSecretStatus, key: &str) -> &'a SyncedKey {
    status
        .synced_keys
        .iter()
        .find(|k| k.key == key)
        .unwrap_or_else(|| panic!("no status for key {key}: {status:?}"))
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> String {
    String::from_utf8_lossy(data.get(key).map(Vec::as_slice).unwrap_or_default()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_syncs_as_single_values_and_whole_resources_with_provenance() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.sp_workspace().await;
    w.workspace_secret(
        "single",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "data": items(&[
                    ("SCORER_KEY", "azureml://onlineEndpoints/scorer/keys/primary"),
                    ("SCORER_KEY2", "${{azureml://onlineEndpoints/scorer/keys/secondary}}"),
                    ("SCORER_URI", "azureml://onlineEndpoints/scorer/scoringUri"),
                    ("TOKEN", "azureml://onlineEndpoints/tokened/token"),
                    ("LLM_KEY", "azureml://serverlessEndpoints/llm/keys/primary"),
                    ("LLM_URI", "azureml://serverlessEndpoints/llm/uri"),
                ]) }),
    )
    .await;
    let whole = |r: &str, prefix: &str| json!({ "ref": r, "keys": { "rewrite": [{ "regex": "^", "replace": prefix }], "style": "UpperSnake" } });
    w.workspace_secret(
        "whole",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "dataFrom": [
                    whole("azureml://onlineEndpoints/scorer", "scorer-"),
                    whole("azureml://onlineEndpoints/tokened", "tokened-"),
                    whole("azureml://serverlessEndpoints/llm", "llm-"),
                ] }),
    )
    .await;
    w.workspace_secret(
        "storage",
        json!({ "workspaceRef": { "name": "ml" }, "allowDatastoreCredentials": true,
                "data": items(&[("ACCOUNT_KEY", "azureml://datastores/blobs/credentials/key")]),
                "dataFrom": [{ "ref": "azureml://datastores/sas" }, { "ref": "azureml://datastores/identity" }] }),
    )
    .await;

    w.wait_wsec("single", "True", "Synced").await;
    let single = w.secret_data("single").await.unwrap();
    assert_eq!(text(&single, "SCORER_KEY"), "planted-online-primary-1");
    assert_eq!(text(&single, "SCORER_KEY2"), "planted-online-secondary-1");
    assert_eq!(
        text(&single, "SCORER_URI"),
        "https://scorer.eastus2.inference.ml.azure.com/score"
    );
    assert!(text(&single, "TOKEN").starts_with("planted-aml-token-tokened-"));
    assert_eq!(text(&single, "LLM_KEY"), "planted-sl-primary-1");
    assert_eq!(
        text(&single, "LLM_URI"),
        "https://llm.eastus2.models.ai.azure.com"
    );
    let status = status_of(&w, "single").await;
    let token = key_of(&status, "TOKEN");
    assert_eq!(token.reference, "azureml://onlineEndpoints/tokened/token");
    assert_eq!(
        token.source_kind.as_deref(),
        Some("onlineEndpoint/AMLToken")
    );
    let expires: jiff::Timestamp = token.expires.as_deref().unwrap().parse().unwrap();
    assert!(
        expires > jiff::Timestamp::now(),
        "the token's expiry is ahead"
    );
    let key = key_of(&status, "SCORER_KEY");
    assert_eq!(key.source_kind.as_deref(), Some("onlineEndpoint/Key"));
    assert!(key.updated.is_some() && key.expires.is_none() && key.version.is_none());
    assert_eq!(
        key_of(&status, "LLM_KEY").source_kind.as_deref(),
        Some("serverlessEndpoint/Key")
    );

    w.wait_wsec("whole", "True", "Synced").await;
    let whole_data = w.secret_data("whole").await.unwrap();
    let keys: BTreeSet<&str> = whole_data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "LLM_PRIMARY_KEY",
            "LLM_SECONDARY_KEY",
            "LLM_URI",
            "SCORER_PRIMARY_KEY",
            "SCORER_SCORING_URI",
            "SCORER_SECONDARY_KEY",
            "TOKENED_SCORING_URI",
            "TOKENED_TOKEN",
        ])
    );
    assert_eq!(
        text(&whole_data, "LLM_SECONDARY_KEY"),
        "planted-sl-secondary-1"
    );

    let ready = w.wait_wsec("storage", "True", "Synced").await;
    assert!(
        ready
            .message
            .contains("datastore identity uses identity-based access"),
        "a credential-less datastore is a note: {}",
        ready.message
    );
    let storage = w.secret_data("storage").await.unwrap();
    assert_eq!(text(&storage, "ACCOUNT_KEY"), "planted-account-key-1");
    assert_eq!(text(&storage, "sasToken"), "planted-sas-token-1");
    let status = status_of(&w, "storage").await;
    assert_eq!(
        key_of(&status, "sasToken").source_kind.as_deref(),
        Some("datastore/Sas")
    );
    // One read per resource, shared by the WorkspaceSecrets that use it.
    let calls = &w.fakes.arm.calls;
    assert_eq!(calls.count("onlineEndpoints.listKeys"), 1);
    assert_eq!(calls.count("onlineEndpoints.token"), 1);
    assert_eq!(calls.count("serverlessEndpoints.listKeys"), 1);
    assert_eq!(calls.count("datastores.listSecrets"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerated_keys_and_expiring_tokens_reach_the_secret() {
    let w = World::start(&[]).await;
    put_everything(&w);
    // Tokens live 6 s (refresh after 3 s); the WorkspaceSecret's own interval is an hour.
    w.fakes
        .arm
        .endpoints
        .set_token_lifetime(Duration::from_secs(6));
    w.sp_workspace().await;
    w.workspace_secret("keys", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": items(&[("key", "azureml://onlineEndpoints/scorer/keys/primary"), ("llm", "azureml://serverlessEndpoints/llm/keys/secondary")]) })).await;
    w.workspace_secret("token", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h", "data": items(&[("token", "azureml://onlineEndpoints/tokened/token")]) })).await;
    w.wait_secret("keys", "first keys", |d| {
        text(d, "key") == "planted-online-primary-1" && text(d, "llm") == "planted-sl-secondary-1"
    })
    .await;
    let first = w
        .wait_secret("token", "a first token", |d| d.contains_key("token"))
        .await;

    let id = ws_id();
    w.fakes.arm.endpoints.regenerate_keys(
        &id,
        "scorer",
        ("planted-online-primary-2", "planted-online-secondary-2"),
    );
    w.fakes.arm.endpoints.regenerate_keys(
        &id,
        "llm",
        ("planted-sl-primary-2", "planted-sl-secondary-2"),
    );
    let regenerated = Instant::now();
    w.wait_secret("keys", "the regenerated keys", |d| {
        text(d, "key") == "planted-online-primary-2" && text(d, "llm") == "planted-sl-secondary-2"
    })
    .await;
    eprintln!(
        "endpoints measurement: regenerated keys reached the Secret in {} ms (refresh interval 10 s)",
        regenerated.elapsed().as_millis()
    );
    assert!(
        // The interval, its ±10% jitter and a little slack for the write.
        regenerated.elapsed() < Duration::from_secs(13),
        "regeneration took {:?} with a 10s interval",
        regenerated.elapsed()
    );
    w.wait_event("keys", "Updated", "key").await;

    // The token is replaced on its own schedule, before it expires, however long the interval.
    let now = w.secret_data("token").await.unwrap_or_default();
    let mut seen = BTreeSet::from([text(&first, "token"), text(&now, "token")]);
    let started = Instant::now();
    let before = seen.len();
    while seen.len() < before + 3 {
        let d = w
            .wait_secret("token", "a fresh token", |d| {
                !seen.contains(&text(d, "token"))
            })
            .await;
        seen.insert(text(&d, "token"));
    }
    let per_token = started.elapsed() / 3;
    eprintln!(
        "endpoints measurement: a new token every {} ms on average (token lifetime 6 s, refreshAfter 3 s, refresh interval 1 h)",
        per_token.as_millis()
    );
    assert!(
        per_token < Duration::from_secs(6),
        "each token was replaced within its 6 s lifetime (took {per_token:?} each)"
    );
    eventually(
        "the status shows a token expiry still ahead",
        Duration::from_secs(10),
        || async {
            let status = status_of(&w, "token").await;
            let k = status.synced_keys.first()?;
            let exp: jiff::Timestamp = k.expires.as_deref()?.parse().ok()?;
            (exp > jiff::Timestamp::now()).then_some(())
        },
    )
    .await;
    // Short-lived tokens are not "expiring soon" warnings.
    let events = w.events_for("token").await;
    assert!(
        !events.iter().any(|(r, _)| r == "SecretExpiringSoon"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workspace_secrets_share_one_arm_call_per_endpoint_and_interval() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    for i in 0..20 {
        w.workspace_secret(&format!("s{i}"), json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "dataFrom": [{ "ref": "azureml://onlineEndpoints/scorer" }, { "ref": "azureml://serverlessEndpoints/llm", "keys": { "rewrite": [{ "regex": "^", "replace": "llm-" }] } }] })).await;
    }
    for i in 0..20 {
        w.wait_secret(&format!("s{i}"), "round 1", |d| {
            text(d, "primaryKey") == "planted-online-primary-1"
                && text(d, "llm-primaryKey") == "planted-sl-primary-1"
        })
        .await;
    }
    let calls = &w.fakes.arm.calls;
    let counts = || {
        [
            "onlineEndpoints.get",
            "onlineEndpoints.listKeys",
            "serverlessEndpoints.get",
            "serverlessEndpoints.listKeys",
        ]
        .map(|op| calls.count(op))
    };
    assert_eq!(counts(), [1, 1, 1, 1], "first interval");
    for i in 0..20 {
        w.wait_wsec(&format!("s{i}"), "True", "Synced").await;
    }
    w.fakes.arm.endpoints.regenerate_keys(
        &ws_id(),
        "scorer",
        ("planted-online-primary-2", "planted-online-secondary-2"),
    );
    for i in 0..20 {
        w.wait_secret(&format!("s{i}"), "round 2", |d| {
            text(d, "primaryKey") == "planted-online-primary-2"
        })
        .await;
    }
    assert_eq!(counts(), [2, 2, 2, 2], "second interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_missing_and_throttled_calls_report_their_reasons() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "onlineEndpoints/listKeys/action");
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "onlineEndpoints/token/action");
    w.fakes
        .arm
        .endpoints
        .deny(SP_OID, "datastores/listSecrets/action");
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    w.workspace_secret("no-keys", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://onlineEndpoints/scorer/keys/primary")]) })).await;
    w.workspace_secret("no-token", json!({ "workspaceRef": { "name": "ml" }, "dataFrom": [{ "ref": "azureml://onlineEndpoints/tokened" }] })).await;
    w.workspace_secret("no-storage", json!({ "workspaceRef": { "name": "ml" }, "allowDatastoreCredentials": true, "data": items(&[("k", "azureml://datastores/blobs/credentials/key")]) })).await;
    w.workspace_secret("missing", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://serverlessEndpoints/no-such-endpoint/keys/primary"), ("d", "azureml://onlineEndpoints/gone/scoringUri")]) })).await;
    for (name, action) in [
        ("no-keys", ONLINE_LIST_KEYS),
        ("no-token", ONLINE_TOKEN),
        ("no-storage", DATASTORE_LIST_SECRETS),
    ] {
        let c = w.wait_wsec(name, "False", "Forbidden").await;
        assert!(
            c.message.contains(action) && c.message.contains(ENDPOINT_SECRETS_ROLE),
            "{name}: {}",
            c.message
        );
        w.wait_event(name, "Forbidden", action).await;
    }
    let c = w.wait_wsec("missing", "False", "SecretNotFound").await;
    assert!(
        c.message
            .contains("serverless endpoint no-such-endpoint was not found")
            && c.message.contains("online endpoint gone was not found"),
        "{}",
        c.message
    );

    // A long Retry-After is not waited out in place: the WorkspaceSecret says Throttled.
    let throttled = Fault::new(
        429,
        azure_error("TooManyRequests", "Too many requests.", None),
    )
    .header("retry-after", "30");
    w.fakes.arm.endpoints.faults.push_n(4, throttled);
    w.workspace_secret("throttled", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("uri", "azureml://serverlessEndpoints/llm/uri")]) })).await;
    let c = w.wait_wsec("throttled", "False", "Throttled").await;
    assert!(c.message.contains("throttled"), "{}", c.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_auth_modes_are_invalid_spec_and_nothing_secret_reaches_logs_events_or_status() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.fakes
        .arm
        .endpoints
        .set_token_lifetime(Duration::from_secs(6));
    w.sp_workspace().await;
    w.workspace_secret("aad-key", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("k", "azureml://onlineEndpoints/entra/keys/primary")]) })).await;
    w.workspace_secret("aad-whole", json!({ "workspaceRef": { "name": "ml" }, "dataFrom": [{ "ref": "azureml://onlineEndpoints/entra" }] })).await;
    w.workspace_secret("aad-uri", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("uri", "azureml://onlineEndpoints/entra/scoringUri")]) })).await;
    w.workspace_secret("key-token", json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("t", "azureml://onlineEndpoints/scorer/token"), ("k", "azureml://onlineEndpoints/tokened/keys/primary")]) })).await;
    w.workspace_secret("everything", json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "allowDatastoreCredentials": true,
        "dataFrom": [
            { "ref": "azureml://onlineEndpoints/scorer", "keys": { "rewrite": [{ "regex": "^", "replace": "scorer-" }] } },
            { "ref": "azureml://onlineEndpoints/tokened", "keys": { "rewrite": [{ "regex": "^", "replace": "tokened-" }] } },
            { "ref": "azureml://serverlessEndpoints/llm", "keys": { "rewrite": [{ "regex": "^", "replace": "llm-" }] } },
            { "ref": "azureml://datastores/blobs", "keys": { "rewrite": [{ "regex": "^", "replace": "blobs-" }] } },
            { "ref": "azureml://datastores/sas", "keys": { "rewrite": [{ "regex": "^", "replace": "sas-" }] } },
        ] })).await;

    for name in ["aad-key", "aad-whole"] {
        let c = w.wait_wsec(name, "False", "InvalidSpec").await;
        assert!(
            c.message.contains("authMode AADToken") && c.message.contains("workload identity"),
            "{name}: {}",
            c.message
        );
    }
    let uri = w.wait_wsec("aad-uri", "True", "Synced").await;
    assert!(uri.message.contains("1 keys synced"), "{}", uri.message);
    let c = w.wait_wsec("key-token", "False", "InvalidSpec").await;
    assert!(
        c.message.contains("authMode Key") && c.message.contains("authMode AMLToken"),
        "{}",
        c.message
    );
    w.wait_wsec("everything", "True", "Synced").await;
    let data = w.secret_data("everything").await.unwrap();
    assert_eq!(text(&data, "blobs-key"), "planted-account-key-1");
    // Let a few token refreshes and key reads pass, with the values changing in between.
    w.fakes.arm.endpoints.regenerate_keys(
        &ws_id(),
        "llm",
        ("planted-sl-primary-3", "planted-sl-secondary-3"),
    );
    w.wait_secret("everything", "the regenerated serverless key", |d| {
        text(d, "llm-primaryKey") == "planted-sl-primary-3"
    })
    .await;
    // An `Updated` Event exists for the check below. Its note is not asserted: kube's Event
    // recorder folds repeats of one reason into a series that keeps the first note, and the
    // token's own refreshes may come first.
    w.wait_event("everything", "Updated", "").await;

    let mut everything = String::new();
    for name in ["aad-key", "aad-whole", "aad-uri", "key-token", "everything"] {
        everything.push_str(&format!(
            "{:?}{:?}",
            status_of(&w, name).await,
            w.events_for(name).await
        ));
    }
    for p in PLANTED {
        assert!(!everything.contains(p), "{p} leaked into status or Events");
    }
    assert_logs_clean(PLANTED);
}

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
