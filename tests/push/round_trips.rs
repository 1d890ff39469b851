//! A push meeting the rest of the world: a WorkspaceSecret reading back what it pushed, keys
//! renamed in the source under `allKeys`, and a status record lost (restart, leader change).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::support::*;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_pushed_then_synced_back_settles_without_new_versions() {
    let w = World::start(&[]).await;
    // The loop: a WorkspaceSecret reads vault secret `loop` into Secret `mirror`, and a push
    // writes key `value` of `mirror` back into `loop`.
    w.fakes
        .vault
        .put_secret("loop", "round ✓\ntrip", true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "mirror",
        json!({ "workspaceRef": {"name": "ml"}, "refreshInterval": "10s",
                "data": [{"key": "value", "ref": "keyvault:loop"}] }),
    )
    .await;
    w.wait_wsec("mirror", "True", "Synced").await;
    push(
        &w,
        "back",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "mirror"}, "refreshInterval": "10s",
                "adoptExisting": true, "data": [{"secretKey": "value", "remoteName": "loop"}] }),
    )
    .await;
    wait_push(&w, "back", "True", "Pushed").await;
    // Adopting writes one version with the push's tags; nothing more follows.
    let versions = w.fakes.vault.versions_of("loop").len();
    assert_eq!(versions, 2);
    // A second namespace-side reader sees what the push wrote.
    w.workspace_secret(
        "reader",
        json!({ "workspaceRef": {"name": "ml"}, "refreshInterval": "10s",
                "data": [{"key": "v", "ref": "keyvault:loop"}] }),
    )
    .await;
    w.wait_wsec("reader", "True", "Synced").await;
    assert_eq!(
        w.secret_data("reader").await.unwrap()["v"],
        "round ✓\ntrip".as_bytes()
    );
    // Two refresh cycles of both sides later, still no new version.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(w.fakes.vault.versions_of("loop").len(), versions);
    wait_push(&w, "back", "True", "Pushed").await;
    w.wait_wsec("mirror", "True", "Synced").await;

    // A change made in the vault flows to the Secret and back without a loop either.
    w.fakes.vault.put_secret_tagged(
        "loop",
        "changed in the vault",
        &[
            ("amlsecrets-managed-by", "amlsecrets"),
            ("amlsecrets-push", &format!("{}/back", w.ns)),
            (
                "amlsecrets-push-uid",
                &get_push(&w, "back").await.unwrap().metadata.uid.unwrap(),
            ),
        ],
    );
    w.wait_secret("mirror", "the mirror to follow the vault", |d| {
        d.get("value").map(Vec::as_slice) == Some(b"changed in the vault".as_slice())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        w.fakes.vault.versions_of("loop").len(),
        versions + 1,
        "the push wrote nothing back: the value came from the vault"
    );
    let _ = Api::<Secret>::namespaced(w.client.clone(), &w.ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_renamed_in_the_source_moves_under_all_keys_and_delete_removes_the_old_name() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("API_KEY", b"k-1"), ("STAYS", b"s")]).await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"}, "deletionPolicy": "Delete",
                "allKeys": {"prefix": "svc-", "contentType": "text/plain"} }),
    )
    .await;
    wait_vault(&w, "svc-api-key", "k-1").await;
    wait_vault(&w, "svc-stays", "s").await;
    // The source's own owner renames the key (a full apply replaces the data).
    w.put_secret("src", &[("API_TOKEN", b"k-1"), ("STAYS", b"s")])
        .await;
    wait_vault(&w, "svc-api-token", "k-1").await;
    eventually("the old name deleted", Duration::from_secs(20), || async {
        w.fakes.vault.is_deleted("svc-api-key").then_some(())
    })
    .await;
    assert_eq!(
        w.fakes.vault.versions_of("svc-stays").len(),
        1,
        "an unchanged key is not written again"
    );
    assert_eq!(
        w.fakes.vault.versions_of("svc-api-token")[0]
            .content_type
            .as_deref(),
        Some("text/plain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_record_is_recovered_from_the_vault_without_a_new_version() {
    let w = World::start(&[]).await;
    setup(&w, "src", &[("k", TRICKY.as_bytes())]).await;
    push(
        &w,
        "p",
        json!({ "workspaceRef": {"name": "ml"}, "source": {"name": "src"},
                "data": [{"secretKey": "k", "remoteName": "kept-once"}] }),
    )
    .await;
    wait_push(&w, "p", "True", "Pushed").await;
    assert_eq!(w.fakes.vault.calls.count("set"), 1);
    let gets = w.fakes.vault.calls.count("get");
    // The status loses its record (a restore from backup, a hand edit): the push finds its own
    // secret by its tags, compares the value once and writes nothing.
    let pushes: Api<WorkspaceSecretPush> = Api::namespaced(w.client.clone(), &w.ns);
    pushes
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "items": [] } })),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(w.client.clone(), &w.ns)
        .patch(
            "src",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "touched": "yes" } } })),
        )
        .await
        .unwrap();
    eventually("the record to be back", Duration::from_secs(20), || async {
        let items = get_push(&w, "p").await?.status?.items;
        (items.len() == 1).then_some(())
    })
    .await;
    assert_eq!(w.fakes.vault.calls.count("set"), 1, "nothing was written");
    assert_eq!(
        w.fakes.vault.calls.count("get"),
        gets + 1,
        "the value was compared once"
    );
}
