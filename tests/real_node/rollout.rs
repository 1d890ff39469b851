//! Consumers follow rotation: with `config.rolloutWorkloads`, a Deployment that `envFrom`s a
//! synced Secret and a StatefulSet that mounts it are rolled by the real controller-manager when
//! the vault value changes — exactly one new revision per change, none for an unchanged refresh
//! or a restart of the operator, and nothing for a workload that did not opt in.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, DeleteParams};

use crate::pods::*;
use crate::release::*;
use crate::support::*;
use crate::workloads::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_workloads_roll_once_per_data_change_and_nothing_else_does() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-rollout";
    let (_release, _) = install(
        env,
        "amlsecrets",
        ns,
        &[
            "--set",
            "config.rolloutWorkloads=true",
            "--set",
            "replicaCount=1",
        ],
    );
    let tenant = "team-rollout";
    env.tenant(tenant).await;
    let vault = &env.fakes.vault;
    let first = "first-value";
    vault.put_secret("rollout-db-password", first, true, None);
    env.workspace_secret(
        tenant,
        SECRET,
        "ml",
        "10s",
        &[("DB_PASSWORD", "keyvault:rollout-db-password")],
    )
    .await;
    env.wait_synced(tenant, SECRET, Duration::from_secs(90))
        .await;

    // Two workloads opt in (one by annotation "true", one naming the Secret); one does not.
    create(
        env,
        tenant,
        "Deployment",
        "env-app",
        &[("amlsecrets.io/rollout", "true")],
        true,
    )
    .await;
    create(
        env,
        tenant,
        "StatefulSet",
        "file-app",
        &[("amlsecrets.io/rollout-secrets", SECRET)],
        false,
    )
    .await;
    create(env, tenant, "Deployment", "bystander", &[], true).await;
    deployment_settled(env, tenant, "env-app").await;
    stateful_set_settled(env, tenant, "file-app").await;
    deployment_settled(env, tenant, "bystander").await;

    // Their pods started after the Secret's data: the digest is recorded, nothing restarts.
    for (kind, name) in [("Deployment", "env-app"), ("StatefulSet", "file-app")] {
        eventually(
            &format!("digest recorded on {name}"),
            Duration::from_secs(60),
            || async { recorded(env, tenant, kind, name).await },
        )
        .await;
    }
    let before = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(before, (1, 1, 1), "opting in restarted nothing");
    let file_pod = running_pod(env, tenant, "file-app").await;
    let bystander = running_pod(env, tenant, "bystander").await;
    assert_eq!(
        env_value(
            env,
            tenant,
            &running_pod(env, tenant, "env-app").await,
            "DB_PASSWORD"
        ),
        first
    );

    // Rotate: each opted-in workload gets exactly one new revision, and runs the new value.
    let second = "second-value";
    let rotated = Instant::now();
    vault.put_secret("rollout-db-password", second, true, None);
    eventually("env-app rolled", Duration::from_secs(90), || async {
        (replica_sets(env, tenant, "env-app").await == 2).then_some(())
    })
    .await;
    deployment_settled(env, tenant, "env-app").await;
    let app_pod = running_pod(env, tenant, "env-app").await;
    assert_eq!(
        env_value(env, tenant, &app_pod, "DB_PASSWORD"),
        second,
        "the new pod's environment"
    );
    report(
        "rollout: vault change -> new Deployment pod Ready",
        format!("{:.1?}", rotated.elapsed()),
    );
    eventually("file-app rolled", Duration::from_secs(60), || async {
        (revisions(env, tenant, "file-app").await == 2).then_some(())
    })
    .await;
    stateful_set_settled(env, tenant, "file-app").await;
    let new_file_pod = running_pod(env, tenant, "file-app").await;
    assert_ne!(
        new_file_pod.metadata.uid, file_pod.metadata.uid,
        "file-app-0 was replaced"
    );
    let file = env
        .exec(
            tenant,
            "file-app-0",
            &["/bin/busybox", "cat", "/secret/DB_PASSWORD"],
        )
        .unwrap();
    assert_eq!(text(file), second);
    assert_eq!(
        replica_sets(env, tenant, "bystander").await,
        1,
        "no annotation: untouched"
    );
    assert_eq!(
        running_pod(env, tenant, "bystander").await.metadata.uid,
        bystander.metadata.uid
    );
    assert_eq!(
        env_value(env, tenant, &bystander, "DB_PASSWORD"),
        first,
        "without a rollout an envFrom pod keeps the old value"
    );

    // Events name the workloads, the Secret and the key, never a value.
    let on_ws = eventually(
        "RolledOut on the WorkspaceSecret",
        Duration::from_secs(30),
        || async {
            let notes = events_about(env, tenant, SECRET, "RolledOut").await;
            notes
                .iter()
                .any(|n| n.contains("Deployment/env-app") || n.contains("StatefulSet/file-app"))
                .then_some(notes)
        },
    )
    .await;
    let on_app = eventually("RolledOut on env-app", Duration::from_secs(30), || async {
        let notes = events_about(env, tenant, "env-app", "RolledOut").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(
        on_app[0].contains(SECRET) && on_app[0].contains("DB_PASSWORD"),
        "{on_app:?}"
    );
    for note in on_ws.iter().chain(&on_app) {
        assert!(
            !note.contains(first) && !note.contains(second),
            "a value in an Event: {note}"
        );
    }

    // Unchanged refreshes add no revision.
    let settled = (2, 2, 1);
    two_syncs(env, ns, tenant, SECRET).await;
    let counts = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(counts, settled, "no revision from unchanged refreshes");

    // Neither does a restart of the operator (it keeps no state: the digest on the workload decides).
    env.kubectl(&["rollout", "restart", "deployment/amlsecrets", "-n", ns])
        .unwrap();
    env.kubectl(&[
        "rollout",
        "status",
        "deployment/amlsecrets",
        "-n",
        ns,
        "--timeout=120s",
    ])
    .unwrap();
    two_syncs(env, ns, tenant, SECRET).await;
    let counts = (
        replica_sets(env, tenant, "env-app").await,
        revisions(env, tenant, "file-app").await,
        replica_sets(env, tenant, "bystander").await,
    );
    assert_eq!(counts, settled, "no revision from an operator restart");
    let metrics = {
        let pods = env.release_pods(ns, "amlsecrets").await;
        let pod = pods
            .iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .unwrap();
        env.pod_get(ns, pod.metadata.name.as_deref().unwrap(), 8080, "/metrics")
            .await
            .unwrap_or_default()
    };
    assert!(
        !metrics.contains("amlsecrets_rollouts_total{"),
        "the restarted operator rolled nothing: {}",
        metrics
            .lines()
            .filter(|l| l.contains("rollouts"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let api: Api<Deployment> = Api::namespaced(env.client(), tenant);
    for name in ["env-app", "bystander"] {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    let sts: Api<StatefulSet> = Api::namespaced(env.client(), tenant);
    let _ = sts.delete("file-app", &DeleteParams::default()).await;
}
