//! Values that change reach the Secret: regenerated keys within the refresh interval, tokens
//! replaced on their own schedule before they expire; and twenty WorkspaceSecrets share one ARM
//! call per endpoint and interval.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;
use crate::{items, put_everything, status_of, text, ws_id};

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
