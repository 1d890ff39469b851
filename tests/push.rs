//! WorkspaceSecretPush end to end on the real API server with the fake Key Vault (which keeps
//! versions, tags and soft-deleted names): one PUT per real change, renames, ownership and
//! adoption, deletion policies, failures, name mapping, exact values, a push-then-sync round trip,
//! and no value in logs, Events or status.

#[path = "controller/support.rs"]
mod support;

#[path = "push/failures.rs"]
mod failures;

#[path = "push/round_trips.rs"]
mod round_trips;

use std::time::{Duration, Instant};

use amlsecrets::api::WorkspaceSecretPush;
use amlsecrets::api::conditions::find_ready;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::*;

/// A value with newlines, unicode and quotes, planted to be searched for.
pub const TRICKY: &str = "planted-push-Zq81\nzweite Zeile: ü ✓ \"quoted\"\n";

/// Applies a WorkspaceSecretPush with a whole spec.
pub async fn push(w: &World, name: &str, spec: Value) {
    let api: Api<WorkspaceSecretPush> = Api::namespaced(w.client.clone(), &w.ns);
    let obj = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecretPush", "metadata": { "name": name }, "spec": spec });
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap();
}

/// Returns a push, if it exists.
pub async fn get_push(w: &World, name: &str) -> Option<WorkspaceSecretPush> {
    Api::<WorkspaceSecretPush>::namespaced(w.client.clone(), &w.ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// Waits until a push's Ready has this status and reason; returns its message.
pub async fn wait_push(w: &World, name: &str, status: &str, reason: &str) -> String {
    let what = format!("WorkspaceSecretPush {name} Ready={status} reason={reason}");
    eventually(&what, Duration::from_secs(45), || async {
        let p = get_push(w, name).await?;
        let c = find_ready(&p.status?.conditions)?.clone();
        (c.status == status && c.reason == reason).then_some(c.message)
    })
    .await
}

/// Waits until the fake vault holds `value` under `name`.
pub async fn wait_vault(w: &World, name: &str, value: &str) {
    let what = format!("vault secret {name} to hold the expected value");
    eventually(&what, Duration::from_secs(30), || async {
        (w.fakes.vault.value(name).as_deref() == Some(value)).then_some(())
    })
    .await
}

/// The service-principal workspace `ml` and a source Secret.
pub async fn setup(w: &World, source: &str, data: &[(&str, &[u8])]) {
    w.sp_workspace().await;
    w.put_secret(source, data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_put_per_real_change_with_metadata_exact_values_and_nothing_secret_shown() {
    let w = World::start(&[]).await;
    setup(
        &w,
        "db",
        &[("password", TRICKY.as_bytes()), ("DB_HOST", b"db.internal")],
    )
    .await;
    push(
        &w,
        "db-push",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "db"}, "refreshInterval": "10s",
                "data": [{"secretKey": "password", "remoteName": "db-password", "contentType": "text/plain",
                          "tags": {"team": "data"}, "expires": "2030-01-01T00:00:00Z", "notBefore": "2026-01-01T00:00:00Z"}],
                "allKeys": {"prefix": "app-"} }),
    )
    .await;
    let message = wait_push(&w, "db-push", "True", "Pushed").await;
    assert!(message.contains("2 vault secrets up to date"), "{message}");
    let vault = &w.fakes.vault;
    let v = vault.versions_of("db-password");
    assert_eq!(v.len(), 1, "one version");
    assert_eq!(v[0].value, TRICKY, "the value arrives byte for byte");
    assert_eq!(v[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(v[0].exp, Some(1893456000));
    assert_eq!(v[0].nbf, Some(1767225600));
    let p = get_push(&w, "db-push").await.unwrap();
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(v[0].tags["team"], "data");
    assert_eq!(v[0].tags["amlsecrets-managed-by"], "amlsecrets");
    assert_eq!(v[0].tags["amlsecrets-push"], format!("{}/db-push", w.ns));
    assert_eq!(v[0].tags["amlsecrets-push-uid"], uid);
    assert_eq!(
        vault.value("app-db-host").as_deref(),
        Some("db.internal"),
        "DB_HOST maps to app-db-host"
    );
    assert_eq!(vault.calls.count("set"), 2);
    let items = p.status.clone().unwrap().items;
    assert_eq!(items.len(), 2);
    let item = items
        .iter()
        .find(|i| i.remote_name == "db-password")
        .unwrap();
    assert_eq!(item.version.as_deref(), Some(v[0].version.as_str()));
    assert!(item.updated.is_some() && item.digest.as_ref().unwrap().contains(':'));
    // The source is labelled so that its changes are watched.
    let source = w.secret("db").await.unwrap();
    assert_eq!(
        source.metadata.labels.unwrap()["amlsecrets.io/push-source"],
        "true"
    );

    // Refreshes without a change write nothing: wait for two refreshes to have happened.
    let first = p.status.unwrap().refresh_time.unwrap();
    eventually(
        "two refreshes of the push",
        Duration::from_secs(40),
        || async {
            let t = get_push(&w, "db-push").await?.status?.refresh_time?;
            (t > first).then_some(())
        },
    )
    .await;
    let seen = get_push(&w, "db-push")
        .await
        .unwrap()
        .status
        .unwrap()
        .refresh_time
        .unwrap();
    eventually("another refresh", Duration::from_secs(40), || async {
        let t = get_push(&w, "db-push").await?.status?.refresh_time?;
        (t > seen).then_some(())
    })
    .await;
    assert_eq!(
        vault.calls.count("set"),
        2,
        "no PUT for unchanged refreshes"
    );
    assert_eq!(vault.versions_of("db-password").len(), 1);

    // A change of the source reaches the vault within seconds, as exactly one new version.
    let changed = "second value: ∑ with\r\nCRLF";
    let at = Instant::now();
    w.put_secret(
        "db",
        &[
            ("password", changed.as_bytes()),
            ("DB_HOST", b"db.internal"),
        ],
    )
    .await;
    wait_vault(&w, "db-password", changed).await;
    let latency = at.elapsed();
    println!("push measurement: source change to vault in {latency:?}");
    assert!(latency < Duration::from_secs(8), "took {latency:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(vault.calls.count("set"), 3, "one PUT for one change");
    assert_eq!(vault.versions_of("db-password").len(), 2);
    assert_eq!(vault.versions_of("app-db-host").len(), 1);
    w.wait_event("db-push", "PushedVersions", "db-password from key password")
        .await;

    // Nothing secret in Events, status or logs.
    let events = w.events_for("db-push").await;
    let status = serde_json::to_string(&get_push(&w, "db-push").await.unwrap().status).unwrap();
    for planted in ["planted-push-Zq81", "second value", "db.internal"] {
        assert!(!status.contains(planted), "status shows a value: {status}");
        assert!(
            events.iter().all(|(_, m)| !m.contains(planted)),
            "an Event shows a value: {events:?}"
        );
    }
    assert_logs_clean(&["planted-push-Zq81", "second value: ∑", SP_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_item_is_written_under_the_new_name_and_delete_removes_the_old_one() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("token", b"t-1")]).await;
    let spec = |name: &str, policy: &str| {
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "deletionPolicy": policy,
                "data": [{"secretKey": "token", "remoteName": name}] })
    };
    push(&w, "p", spec("token-a", "Retain")).await;
    wait_push(&w, "p", "True", "Pushed").await;
    wait_vault(&w, "token-a", "t-1").await;

    // Retain: the old name stays when the item is renamed.
    push(&w, "p", spec("token-b", "Retain")).await;
    wait_vault(&w, "token-b", "t-1").await;
    let items = eventually(
        "status to name only token-b",
        Duration::from_secs(20),
        || async {
            let items = get_push(&w, "p").await?.status?.items;
            (items.len() == 1 && items[0].remote_name == "token-b").then_some(items)
        },
    )
    .await;
    assert_eq!(items[0].secret_key, "token");
    assert_eq!(w.fakes.vault.value("token-a").as_deref(), Some("t-1"));
    assert!(!w.fakes.vault.is_deleted("token-a"));

    // Delete: renaming removes what the push wrote under the old name (soft delete).
    push(&w, "p", spec("token-c", "Delete")).await;
    wait_vault(&w, "token-c", "t-1").await;
    eventually("token-b soft-deleted", Duration::from_secs(20), || async {
        w.fakes.vault.is_deleted("token-b").then_some(())
    })
    .await;
    w.wait_event("p", "DeletedFromVault", "token-b").await;
    assert_eq!(
        w.fakes.vault.value("token-a").as_deref(),
        Some("t-1"),
        "a name released under Retain is not ours to delete later"
    );

    // Deleting the push deletes what it wrote, then it goes.
    Api::<WorkspaceSecretPush>::namespaced(w.client.clone(), &w.ns)
        .delete("p", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the push to be gone", Duration::from_secs(20), || async {
        get_push(&w, "p").await.is_none().then_some(())
    })
    .await;
    assert!(w.fakes.vault.is_deleted("token-c"));
    let source = w.secret("src").await.unwrap();
    assert!(
        !source
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("amlsecrets.io/push-source"),
        "the source's label is removed with its last push"
    );

    // The name is soft-deleted: a new push of it reports DeletedButRecoverable and explains.
    push(&w, "again", spec("token-c", "Retain")).await;
    let message = wait_push(&w, "again", "False", "DeletedButRecoverable").await;
    assert!(
        message.contains("recover") && message.contains("purge"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_vault_secret_is_a_conflict_until_adopted_and_if_not_exists_leaves_it() {
    let w = World::start(&[]).await;
    w.fakes
        .vault
        .put_secret_tagged("shared-key", "owned-by-someone", &[("owner", "ops")]);
    setup(&w, "src", &[("key", b"from-cluster"), ("other", b"o")]).await;
    let spec = |adopt: bool, policy: &str| {
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "adoptExisting": adopt,
                "updatePolicy": policy,
                "data": [{"secretKey": "key", "remoteName": "shared-key"}, {"secretKey": "other", "remoteName": "other-key"}] })
    };
    push(&w, "p", spec(false, "Replace")).await;
    let message = wait_push(&w, "p", "False", "TargetConflict").await;
    assert!(message.contains("shared-key"), "{message}");
    assert!(message.contains("adoptExisting"), "{message}");
    wait_vault(&w, "other-key", "o").await;
    assert_eq!(
        w.fakes.vault.value("shared-key").as_deref(),
        Some("owned-by-someone"),
        "a foreign secret is never overwritten"
    );

    // IfNotExists leaves an existing secret alone and says so.
    push(&w, "p", spec(false, "IfNotExists")).await;
    let message = wait_push(&w, "p", "True", "Pushed").await;
    assert!(
        message.contains("IfNotExists") && message.contains("shared-key"),
        "{message}"
    );
    assert_eq!(w.fakes.vault.versions_of("shared-key").len(), 1);
    // ...and never updates what it created.
    let sets = w.fakes.vault.calls.count("set");
    w.put_secret("src", &[("key", b"from-cluster"), ("other", b"o-2")])
        .await;
    // A change is pushed within about 0.2 s (measured above); give it ample time not to happen.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.fakes.vault.value("other-key").as_deref(), Some("o"));
    assert_eq!(w.fakes.vault.calls.count("set"), sets, "IfNotExists wrote");

    // Adoption takes it over: a new version carrying the push's tags.
    push(&w, "p", spec(true, "Replace")).await;
    wait_vault(&w, "shared-key", "from-cluster").await;
    wait_push(&w, "p", "True", "Pushed").await;
    let latest = w.fakes.vault.versions_of("shared-key").pop().unwrap();
    assert_eq!(latest.tags["amlsecrets-managed-by"], "amlsecrets");

    // Another push of the same name is refused, naming the owner.
    push(
        &w,
        "rival",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"},
                "data": [{"secretKey": "other", "remoteName": "shared-key"}] }),
    )
    .await;
    let message = wait_push(&w, "rival", "False", "TargetConflict").await;
    assert!(message.contains(&format!("{}/p", w.ns)), "{message}");
    assert_eq!(
        w.fakes.vault.value("shared-key").as_deref(),
        Some("from-cluster")
    );
}
