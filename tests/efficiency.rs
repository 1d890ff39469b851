//! Key Vault call counts on the real API server with the fake vault: one listing per vault and
//! interval however many WorkspaceSecrets share it, and one get per changed secret.

#[path = "controller/support.rs"]
mod support;

use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecret;
use kube::api::Api;
use serde_json::json;
use support::*;

/// 30 secrets; WorkspaceSecret `i` reads s(2i)…s(2i+9), so 10 of them overlap and reference 28.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_vault_costs_one_listing_per_interval_and_one_get_per_changed_secret() {
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

    // Rotate two referenced secrets and let exactly one refresh cycle pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.fakes.vault.put_secret("s05", "v2-5", true, None);
    w.fakes.vault.put_secret("s20", "v2-20", true, None);
    w.fakes.vault.calls.reset();
    let rotated = jiff::Timestamp::now();
    let api: Api<WorkspaceSecret> = Api::namespaced(w.client.clone(), &w.ns);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut refreshed = 0;
        for ws in 0..10 {
            let obj = api.get(&format!("app{ws}")).await.unwrap();
            let t = obj
                .status
                .and_then(|s| s.refresh_time)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            refreshed += usize::from(t.is_some_and(|t| t > rotated));
        }
        if refreshed == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {refreshed} of 10 refreshed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (lists, gets) = (
        w.fakes.vault.calls.count("list"),
        w.fakes.vault.calls.count("get"),
    );
    println!("one refresh cycle with 2 of 30 secrets changed: {lists} list requests, {gets} gets");
    assert_eq!(
        lists, 2,
        "one listing per interval for all 10 WorkspaceSecrets"
    );
    assert_eq!(gets, 2, "only the two changed secrets are fetched");
    for (ws, key, value) in [
        (0, "s05", "v2-5"),
        (2, "s05", "v2-5"),
        (6, "s20", "v2-20"),
        (10 - 1, "s20", "v2-20"),
    ] {
        if (2 * ws..2 * ws + 10).contains(&key[1..].parse::<usize>().unwrap()) {
            assert_eq!(
                w.secret_data(&format!("app{ws}")).await.unwrap()[key],
                value.as_bytes()
            );
        }
    }
}
