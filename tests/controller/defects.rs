//! Regressions found by an independent run: a disabled secret dropped by `find`, Merge writers
//! fighting over one Secret, foreign keys overwritten, late `Throttled`, oversized data, a `find`
//! that matches nothing, Warnings before a workspace's first check, a WARN after a release.

use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::azure::RetryPolicy;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use testenv::azure::Fault;

use super::items;
use super::support::*;

async fn status(w: &World, name: &str) -> amlsecrets::api::workspace_secret::WorkspaceSecretStatus {
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

async fn delete_wsec(w: &World, name: &str) {
    Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

async fn wait_wsec_gone(w: &World, name: &str) {
    let api = Api::<WorkspaceSecret>::namespaced(w.client.clone(), &w.ns);
    eventually(
        &format!("WorkspaceSecret {name} gone"),
        Duration::from_secs(30),
        || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_secret_found_before_keeps_its_last_value_stale_and_is_reported() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("app-a", "value-a", true, None);
    w.fakes.vault.put_secret("app-b", "value-b", true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "found",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "dataFrom": [{ "find": { "nameRegex": "^app-" } }] }),
    )
    .await;
    w.wait_wsec("found", "True", "Synced").await;
    w.wait_secret("found", "both keys", |d| d.len() == 2).await;

    // A new, disabled version of app-b.
    w.fakes
        .vault
        .put_secret("app-b", "disabled-value", false, None);
    let c = w.wait_wsec("found", "False", "SecretDisabled").await;
    assert!(c.message.contains("app-b"), "{}", c.message);
    w.wait_event("found", "SecretDisabled", "app-b").await;
    let data = w.secret_data("found").await.unwrap();
    assert_eq!(data["app-b"], b"value-b", "the last good value is kept");
    assert_eq!(data["app-a"], b"value-a");
    let keys = status(&w, "found").await.synced_keys;
    let b = keys
        .iter()
        .find(|k| k.key == "app-b")
        .expect("app-b stays in syncedKeys");
    assert!(b.stale, "{keys:?}");
    assert!(!keys.iter().find(|k| k.key == "app-a").unwrap().stale);

    // Enabled again: synced, not stale.
    w.fakes.vault.put_secret("app-b", "value-b2", true, None);
    w.wait_secret("found", "re-enabled value", |d| {
        d.get("app-b").map(Vec::as_slice) == Some(b"value-b2")
    })
    .await;
    w.wait_wsec("found", "True", "Synced").await;
}

/// Samples a Secret for `period` and returns how many times its resourceVersion changed.
async fn changes_over(w: &World, name: &str, period: Duration) -> usize {
    let api: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let mut last = api.get(name).await.unwrap().metadata.resource_version;
    let mut changes = 0;
    let started = Instant::now();
    while started.elapsed() < period {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rv = api.get(name).await.unwrap().metadata.resource_version;
        if rv != last {
            changes += 1;
            last = rv;
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_writers_of_one_secret_each_own_their_keys_and_never_fight() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("a", "value-a", true, None);
    w.fakes.vault.put_secret("b", "value-b", true, None);
    w.fakes.vault.put_secret("x", "value-x", true, None);
    w.sp_workspace().await;
    w.put_secret("shared", &[("theirs", b"keep-me")]).await;
    for (name, key) in [("merge-a", "a"), ("merge-b", "b")] {
        w.workspace_secret(
            name,
            json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                    "target": { "name": "shared", "creationPolicy": "Merge" },
                    "data": items(&[(key, &format!("keyvault:{key}"))]) }),
        )
        .await;
    }
    w.wait_wsec("merge-a", "True", "Synced").await;
    w.wait_wsec("merge-b", "True", "Synced").await;
    w.wait_secret("shared", "both merged keys", |d| {
        d.get("a").map(Vec::as_slice) == Some(b"value-a")
            && d.get("b").map(Vec::as_slice) == Some(b"value-b")
    })
    .await;
    // Several refreshes of both: the Secret does not change at all.
    let changes = changes_over(&w, "shared", Duration::from_secs(8)).await;
    assert_eq!(
        changes, 0,
        "the Secret changed {changes} times while both refreshed"
    );
    let data = w.secret_data("shared").await.unwrap();
    assert_eq!(data.len(), 3, "{:?}", data.keys().collect::<Vec<_>>());
    assert_eq!(data["theirs"], b"keep-me");

    // A third WorkspaceSecret claiming key a is the later one: TargetConflict, a untouched.
    w.workspace_secret(
        "merge-c",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "target": { "name": "shared", "creationPolicy": "Merge", "existingKeys": "TakeOver" },
                "data": items(&[("a", "keyvault:x")]) }),
    )
    .await;
    let c = w.wait_wsec("merge-c", "False", "TargetConflict").await;
    assert!(
        c.message.contains("key a") && c.message.contains("WorkspaceSecret merge-a"),
        "{}",
        c.message
    );
    let changes = changes_over(&w, "shared", Duration::from_secs(5)).await;
    assert_eq!(changes, 0, "a conflicting writer changed the Secret");
    assert_eq!(w.secret_data("shared").await.unwrap()["a"], b"value-a");
    assert_eq!(w.wsec_ready("merge-a").await.unwrap().reason, "Synced");

    // Deleting one writer removes exactly its key.
    delete_wsec(&w, "merge-b").await;
    let left = w
        .wait_secret("shared", "merge-b's key released", |d| !d.contains_key("b"))
        .await;
    assert_eq!(left["a"], b"value-a");
    assert_eq!(left["theirs"], b"keep-me");

    // An Owner Secret with a Merge writer beside it: both keep their keys.
    w.workspace_secret(
        "owner",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "data": items(&[("x", "keyvault:x")]) }),
    )
    .await;
    w.wait_wsec("owner", "True", "Synced").await;
    w.workspace_secret(
        "merge-into-owner",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "target": { "name": "owner", "creationPolicy": "Merge" },
                "data": items(&[("b", "keyvault:b")]) }),
    )
    .await;
    w.wait_wsec("merge-into-owner", "True", "Synced").await;
    w.wait_secret("owner", "owner and merged keys", |d| d.len() == 2)
        .await;
    let changes = changes_over(&w, "owner", Duration::from_secs(6)).await;
    assert_eq!(changes, 0, "the Owner Secret changed while both refreshed");
    let data = w.secret_data("owner").await.unwrap();
    assert_eq!(
        (data["x"].as_slice(), data["b"].as_slice()),
        (&b"value-x"[..], &b"value-b"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_never_takes_over_a_foreign_key_unless_the_spec_says_so() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("token", "from-vault", true, None);
    w.sp_workspace().await;
    w.put_secret("foreign", &[("token", b"theirs"), ("other", b"keep")])
        .await;
    w.workspace_secret(
        "merge",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "target": { "name": "foreign", "creationPolicy": "Merge" },
                "data": items(&[("token", "keyvault:token")]) }),
    )
    .await;
    let c = w.wait_wsec("merge", "False", "TargetConflict").await;
    assert!(
        c.message.contains("key token") && c.message.contains("written by"),
        "{}",
        c.message
    );
    assert!(
        c.message.contains("existingKeys: TakeOver"),
        "{}",
        c.message
    );
    w.wait_event("merge", "TargetConflict", "token").await;
    assert_eq!(w.secret_data("foreign").await.unwrap()["token"], b"theirs");

    // Deleting it leaves the foreign value alone, and nothing complains in the logs.
    delete_wsec(&w, "merge").await;
    wait_wsec_gone(&w, "merge").await;
    let data = w.secret_data("foreign").await.unwrap();
    assert_eq!(data["token"], b"theirs");
    assert_eq!(data["other"], b"keep");

    // Explicitly taken over: written, and released (not restored) on deletion.
    w.workspace_secret(
        "take",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "target": { "name": "foreign", "creationPolicy": "Merge", "existingKeys": "TakeOver" },
                "data": items(&[("token", "keyvault:token")]) }),
    )
    .await;
    w.wait_wsec("take", "True", "Synced").await;
    w.wait_secret("foreign", "taken over", |d| {
        d.get("token").map(Vec::as_slice) == Some(b"from-vault")
    })
    .await;
    delete_wsec(&w, "take").await;
    let left = w
        .wait_secret("foreign", "taken key released", |d| {
            !d.contains_key("token")
        })
        .await;
    assert_eq!(left["other"], b"keep");
    wait_wsec_gone(&w, "take").await;
    // Give a queued reconcile of the deleted object its chance to misbehave, then check the logs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    let complaints: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&w.ns) && (l.contains(" WARN ") || l.contains(" ERROR ")))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_shows_within_one_refresh_interval_and_keeps_bytes() {
    let mut w = World::start(&[]).await;
    let args = args(&w.ns, &[]);
    // The production retry policy: how long a user really waits.
    w.start_operator_with(args, RetryPolicy::default());
    w.fakes.vault.put_secret("pw", PLANTED, true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "db",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "data": items(&[("pw", "keyvault:pw")]) }),
    )
    .await;
    w.wait_wsec("db", "True", "Synced").await;
    let before = w.secret("db").await.unwrap();
    w.fakes.vault.faults.push_n(
        10_000,
        Fault::new(
            429,
            r#"{"error":{"code":"Throttled","message":"Too many requests"}}"#,
        )
        .header("Retry-After", "5"),
    );
    let first_429 = Instant::now();
    eventually(
        "Throttled within about one refresh interval",
        Duration::from_secs(17),
        || async {
            let r = w.wsec_ready("db").await?;
            (r.reason == "Throttled").then_some(())
        },
    )
    .await;
    let seen = first_429.elapsed();
    assert!(seen < Duration::from_secs(17), "Throttled after {seen:?}");
    let keys = status(&w, "db").await.synced_keys;
    assert!(keys.iter().all(|k| k.stale), "{keys:?}");
    let after = w.secret("db").await.unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    // Retry-After is honoured: at most one call per 5 s pause, and a few for the ongoing one.
    w.fakes.vault.calls.reset();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let calls = w.fakes.vault.calls.total();
    assert!(calls <= 5, "{calls} vault calls in 15 s with Retry-After 5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_too_large_for_a_secret_is_reported_with_sizes_and_nothing_is_written() {
    let w = World::start(&[]).await;
    let chunk = "x".repeat(24 * 1024);
    for i in 0..45 {
        w.fakes
            .vault
            .put_secret(&format!("big-{i:02}"), &chunk, true, None);
    }
    w.sp_workspace().await;
    w.workspace_secret(
        "big",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "dataFrom": [{ "find": { "nameRegex": "^big-" } }] }),
    )
    .await;
    let c = w.wait_wsec("big", "False", "SecretTooLarge").await;
    assert!(c.message.contains("1105920 bytes"), "{}", c.message);
    assert!(c.message.contains("1048576"), "{}", c.message);
    assert!(
        c.message.contains("largest keys: big-00 (24576 bytes)"),
        "{}",
        c.message
    );
    assert!(
        !c.message.contains("Api(") && !c.message.contains("ErrorResponse"),
        "{}",
        c.message
    );
    assert!(w.secret("big").await.is_none(), "a Secret was written");
    // No hot loop: values are fetched once and the listing once per refresh.
    w.fakes.vault.calls.reset();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let calls = w.fakes.vault.calls.total();
    assert!(calls <= 20, "{calls} vault calls in 8 s at a 10 s refresh");
    assert_eq!(w.wsec_ready("big").await.unwrap().reason, "SecretTooLarge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_matching_nothing_says_so_and_that_no_secret_was_written() {
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("something", "v", true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "none",
        json!({ "workspaceRef": { "name": "ml" },
                "dataFrom": [{ "find": { "nameRegex": "^nothing-" } }] }),
    )
    .await;
    let c = w.wait_wsec("none", "True", "Synced").await;
    assert!(
        c.message
            .contains("no enabled vault secret matches dataFrom[0].find nameRegex \"^nothing-\""),
        "{}",
        c.message
    );
    assert!(
        c.message.contains("Secret none was not created"),
        "{}",
        c.message
    );
    assert!(!c.message.contains("synced into"), "{}", c.message);
    assert!(w.secret("none").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_secrets_applied_with_their_workspace_wait_for_its_first_check_without_warnings()
{
    let w = World::start(&[]).await;
    w.fakes.vault.put_secret("pw", "v", true, None);
    // The workspace first, then its WorkspaceSecrets at once, as one `kubectl apply -f dir/` does.
    w.sp_workspace().await;
    let names: Vec<String> = (0..12).map(|i| format!("app-{i}")).collect();
    for n in &names {
        w.workspace_secret(
            n,
            json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("pw", "keyvault:pw")]) }),
        )
        .await;
    }
    for n in &names {
        w.wait_wsec(n, "True", "Synced").await;
    }
    for n in &names {
        let warnings: Vec<(String, String)> = w
            .events_for(n)
            .await
            .into_iter()
            .filter(|(r, _)| r == "WorkspaceNotReady")
            .collect();
        assert!(warnings.is_empty(), "{n}: {warnings:?}");
    }
}
