//! Exact costs on the real API server with the fake vault: one listing per vault and interval
//! however many WorkspaceSecrets share it, one get per changed secret, a listing that shows a
//! change wakes exactly the readers of the changed secrets, an unchanged refresh writes nothing
//! to the API server, and connections to a vault are reused.

#[path = "controller/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use amlsecrets::azure::http::MAX_REQUESTS_PER_HOST;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams};
use serde_json::json;
use support::*;
use testenv::azure::{FakeKeyVault, TENANT, VAULT_AUDIENCE};

const INTERVAL: Duration = Duration::from_secs(20);

/// `amlsecrets_vault_wakes_total` of the running operator.
fn wakes(w: &World) -> u64 {
    w.metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("amlsecrets_vault_wakes_total ")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The resourceVersions of the WorkspaceSecrets and of their Secrets, and how many Events there
/// are in the namespace: what any API-server write by the operator would change.
async fn written_state(w: &World) -> (BTreeMap<String, String>, usize) {
    let mut versions = BTreeMap::new();
    let wsecs: Api<WorkspaceSecret> = Api::namespaced(w.client.clone(), &w.ns);
    for o in wsecs.list(&ListParams::default()).await.unwrap() {
        let name = format!("WorkspaceSecret {}", o.metadata.name.unwrap_or_default());
        versions.insert(name, o.metadata.resource_version.unwrap_or_default());
    }
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let managed = ListParams::default().labels("amlsecrets.io/managed=true");
    for o in secrets.list(&managed).await.unwrap() {
        let name = format!("Secret {}", o.metadata.name.unwrap_or_default());
        versions.insert(name, o.metadata.resource_version.unwrap_or_default());
    }
    let events: Api<Event> = Api::namespaced(w.client.clone(), &w.ns);
    let events = events.list(&ListParams::default()).await.unwrap().items;
    let count = events
        .iter()
        .map(|e| {
            e.series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1)
                .max(1) as usize
        })
        .sum();
    (versions, count)
}

/// 30 secrets; WorkspaceSecret `i` reads s(2i)…s(2i+9), so 10 of them overlap and reference 28.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_wakes_only_its_readers_and_an_unchanged_refresh_writes_nothing() {
    let w = World::start(&["--workspace-check-interval=10m"]).await;
    for i in 0..30 {
        w.fakes
            .vault
            .put_secret(&format!("s{i:02}"), &format!("v1-{i}"), true, None);
    }
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    w.fakes.vault.calls.reset();
    let token_calls_before = w.fakes.entra.calls.total();

    for ws in 0..10 {
        let data: Vec<_> = (2 * ws..2 * ws + 10)
            .map(|i| json!({ "key": format!("s{i:02}"), "ref": format!("keyvault:s{i:02}") }))
            .collect();
        w.workspace_secret(
            &format!("app{ws}"),
            json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "20s", "data": data }),
        )
        .await;
    }
    for ws in 0..10 {
        w.wait_wsec(&format!("app{ws}"), "True", "Synced").await;
    }
    let (lists, gets) = (
        w.fakes.vault.calls.count("list"),
        w.fakes.vault.calls.count("get"),
    );
    println!(
        "first sync of 10 WorkspaceSecrets over 28 of 30 secrets: {lists} list requests, {gets} gets"
    );
    assert_eq!(
        lists, 2,
        "one listing of 30 secrets is ceil(30/25) = 2 requests"
    );
    assert_eq!(gets, 28, "each referenced secret is fetched once");
    assert_eq!(
        w.fakes.entra.calls.total(),
        token_calls_before,
        "the token was reused"
    );

    // Rotate two referenced secrets: the vault's next listing wakes exactly their readers —
    // s05 is read by app0..app2 and s20 by app6..app9, 7 in all — and nobody else.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let wakes_before = wakes(&w);
    w.fakes.vault.put_secret("s05", "v2-5", true, None);
    w.fakes.vault.put_secret("s20", "v2-20", true, None);
    w.fakes.vault.calls.reset();
    let rotated = Instant::now();
    let readers = [(0, "s05"), (1, "s05"), (2, "s05")]
        .into_iter()
        .chain([6, 7, 8, 9].map(|i| (i, "s20")));
    for (ws, key) in readers {
        let want = format!("v2-{}", &key[1..].trim_start_matches('0'));
        eventually(
            &format!("app{ws} holds the new {key}"),
            INTERVAL + Duration::from_secs(10),
            || async {
                let data = w.secret_data(&format!("app{ws}")).await?;
                (data.get(key)? == want.as_bytes()).then_some(())
            },
        )
        .await;
    }
    let propagated = rotated.elapsed();
    let (lists, gets) = (
        w.fakes.vault.calls.count("list"),
        w.fakes.vault.calls.count("get"),
    );
    let woken = wakes(&w) - wakes_before;
    println!(
        "a change of 2 of 30 secrets reached all 7 readers in {propagated:.1?} (interval {INTERVAL:?}): {lists} list requests, {gets} gets, {woken} readers woken"
    );
    assert!(
        propagated <= INTERVAL + Duration::from_secs(5),
        "a change reaches every reader within one interval plus 5 s, took {propagated:?}"
    );
    assert_eq!(
        lists, 2,
        "one listing per interval for all 10 WorkspaceSecrets"
    );
    assert_eq!(gets, 2, "only the two changed secrets are fetched");
    assert_eq!(woken, 7, "exactly the readers of s05 and s20 are woken");

    // Unchanged refreshes: every object syncs twice more, and nothing is written. A reader's
    // Secret holds the new value before the sync that wrote it has written its status (the count
    // follows the status write), so every object first finishes one more sync.
    let counts = |w: &World| -> Vec<u64> { (0..10).map(|i| w.syncs(&format!("app{i}"))).collect() };
    for (i, n) in counts(&w).iter().enumerate() {
        w.wait_syncs(&format!("app{i}"), *n, 1, INTERVAL * 2).await;
    }
    let before = written_state(&w).await;
    for (i, n) in counts(&w).iter().enumerate() {
        w.wait_syncs(&format!("app{i}"), *n, 2, INTERVAL * 3).await;
    }
    let after = written_state(&w).await;
    assert_eq!(
        after, before,
        "unchanged refreshes wrote no status, Secret or Event"
    );
    assert_eq!(
        wakes(&w) - wakes_before,
        7,
        "an unchanged listing wakes nobody"
    );
    // Over HTTP/1.1 the 28 concurrent gets of the first sync alone open several connections
    // (6 of 8 in the next test); over HTTP/2 they share one, and a second may be opened when two
    // requests race for the first connection while its TLS handshake is under way.
    let tls = w.fakes.vault.tls_connections();
    println!("TLS connections to the vault over the whole test: {tls}");
    assert!(
        (1..=2).contains(&tls),
        "the requests share one HTTP/2 connection (at most two), opened {tls}"
    );
}

/// A vault that speaks HTTP/1.1 only: a cold start of 30 WorkspaceSecrets reading 60 secrets
/// opens about MAX_REQUESTS_PER_HOST connections to it (at most 10), and keeps reusing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_opens_a_bounded_number_of_connections_to_an_http1_vault() {
    let mut w = World::start(&["--workspace-check-interval=10m"]).await;
    w.fakes.vault =
        FakeKeyVault::start_http1(&w.fakes.ca, w.fakes.tokens.clone(), TENANT, VAULT_AUDIENCE)
            .await;
    for i in 0..60 {
        w.fakes
            .vault
            .put_secret(&format!("c{i:02}"), &format!("v-{i}"), true, None);
    }
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    for ws in 0..30 {
        let data: Vec<_> = (2 * ws..2 * ws + 2)
            .map(|i| json!({ "key": format!("c{i:02}"), "ref": format!("keyvault:c{i:02}") }))
            .collect();
        w.workspace_secret(
            &format!("cold{ws}"),
            json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s", "data": data }),
        )
        .await;
    }
    for ws in 0..30 {
        w.wait_wsec(&format!("cold{ws}"), "True", "Synced").await;
    }
    let cold = w.fakes.vault.tls_connections();
    // One more listing cycle reuses them.
    let lists = w.fakes.vault.calls.count("list");
    eventually("another listing", Duration::from_secs(25), || async {
        (w.fakes.vault.calls.count("list") > lists).then_some(())
    })
    .await;
    let after = w.fakes.vault.tls_connections();
    println!(
        "HTTP/1.1 vault: {cold} TLS connections for a cold start of 30 objects and 60 gets, {after} after one more listing"
    );
    // 8 requests at most are in flight; a request that finds no idle connection in the instant
    // another one is being handed back opens one more, so the bound is the target of 10
    // per vault over a whole run.
    assert!(
        (1..=MAX_REQUESTS_PER_HOST + 2).contains(&cold),
        "about {MAX_REQUESTS_PER_HOST} connections and never more than 10, opened {cold}"
    );
    assert_eq!(after, cold, "the next listing reused a pooled connection");
}
