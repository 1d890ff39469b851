//! Rollouts on the API server alone (no controller-manager, so no pods): which workloads the
//! operator records or rolls, what the digest covers, and what it says. The real node proves
//! the rolling itself (tests/real_node/rollout.rs).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use ring::hmac;
use serde_json::json;

use super::items;
use super::support::*;

const DIGEST: &str = "amlsecrets.io/secrets-digest";

async fn deployment(w: &World, name: &str, annotations: serde_json::Value, env_from: &[&str]) {
    let env_from: Vec<_> = env_from
        .iter()
        .map(|s| json!({ "secretRef": { "name": s } }))
        .collect();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "busybox", "envFrom": env_from }] } } } }))
    .unwrap();
    Api::<Deployment>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

/// The digest recorded on the workload and the one on its pod template.
async fn digests(w: &World, name: &str) -> (Option<String>, Option<String>) {
    let d = Api::<Deployment>::namespaced(w.client.clone(), &w.ns)
        .get(name)
        .await
        .unwrap();
    let on_workload = d.metadata.annotations.and_then(|a| a.get(DIGEST).cloned());
    let on_template = d
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(DIGEST).cloned());
    (on_workload, on_template)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_deployments_are_recorded_then_rolled_once_with_a_keyed_digest_of_managed_data() {
    let mut w = World::start(&[]).await;
    // The operator keeps its digest key in its own namespace.
    let operator_ns = format!("{}-operator", w.ns);
    let namespace: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": operator_ns } })).unwrap();
    let _ = Api::<Namespace>::all(w.client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
    w.start_operator(args(&w.ns, &["--rollout-workloads"]));
    w.fakes.vault.put_secret("db", "first-value", true, None);
    w.sp_workspace().await;
    w.workspace_secret(
        "app",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "10s",
                "data": items(&[("DB_PASSWORD", "keyvault:db")]) }),
    )
    .await;
    w.wait_wsec("app", "True", "Synced").await;
    w.put_secret("hand-made", &[("token", b"not managed")])
        .await;
    deployment(
        &w,
        "follows",
        json!({ "amlsecrets.io/rollout": "true" }),
        &["app", "hand-made"],
    )
    .await;
    deployment(
        &w,
        "named",
        json!({ "amlsecrets.io/rollout-secrets": "app" }),
        &[],
    )
    .await;
    deployment(&w, "bystander", json!({}), &["app"]).await;

    // No pod runs (no controller-manager here): the digest is recorded, the template untouched.
    let recorded = eventually("digests recorded", Duration::from_secs(30), || async {
        let a = digests(&w, "follows").await;
        let b = digests(&w, "named").await;
        (a.0.is_some() && b.0.is_some()).then_some((a, b))
    })
    .await;
    assert_eq!(recorded.0.1, None, "nothing rolled while nothing changed");
    assert_eq!(recorded.1.1, None);
    assert_eq!(recorded.0.0, recorded.1.0, "both follow exactly Secret app");

    // The digest is the HMAC of the managed Secret's data only, under the key the operator keeps.
    let key = Api::<Secret>::namespaced(w.client.clone(), &operator_ns)
        .get("amlsecrets-rollout-key")
        .await
        .unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key.data.unwrap()["key"].0);
    let data = BTreeMap::from([(
        "app".to_string(),
        BTreeMap::from([("DB_PASSWORD".to_string(), b"first-value".to_vec())]),
    )]);
    assert_eq!(
        recorded.0.0.as_deref(),
        Some(amlsecrets::rollout::digest(&key, &data).as_str())
    );

    let api = Api::<Deployment>::namespaced(w.client.clone(), &w.ns);
    let stamped_generation = api
        .get("follows")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();

    // A change rolls both: the template gets the new digest, once.
    w.fakes.vault.put_secret("db", "second-value", true, None);
    let rolled = eventually("both rolled", Duration::from_secs(30), || async {
        let a = digests(&w, "follows").await;
        let b = digests(&w, "named").await;
        (a.1.is_some() && b.1.is_some()).then_some((a, b))
    })
    .await;
    for (on_workload, on_template) in [&rolled.0, &rolled.1] {
        assert_eq!(on_workload, on_template);
        assert_ne!(on_workload, &recorded.0.0, "a new digest");
    }
    let events = w.wait_event("follows", "RolledOut", "DB_PASSWORD").await;
    let events_ws = w.wait_event("app", "RolledOut", "rolled Deployment/").await;
    for (_, note) in events.iter().chain(&events_ws) {
        assert!(
            !note.contains("first-value") && !note.contains("second-value"),
            "{note}"
        );
    }
    assert_eq!(
        digests(&w, "bystander").await,
        (None, None),
        "no annotation: untouched"
    );

    // Exactly one template change (recording the digest alone changed no spec).
    let generation = |d: Deployment| d.metadata.generation;
    let before = generation(api.get("follows").await.unwrap());
    assert_eq!(before, Some(stamped_generation + 1), "one rollout");

    // Refreshes of unchanged data change nothing more.
    let syncs = w.syncs("app");
    w.wait_syncs("app", syncs, 2, Duration::from_secs(40)).await;
    assert_eq!(generation(api.get("follows").await.unwrap()), before);
    assert_logs_clean(&["first-value", "second-value"]);
}
