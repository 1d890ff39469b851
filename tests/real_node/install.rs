//! The main user story: `helm install` with defaults, a Secret that real pods mount and
//! `envFrom`, a rotation in the vault reaching the mounted file, leader failover and a rolling
//! restart without a write of the Secret.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams};

use crate::pods::*;
use crate::release::*;
use crate::support::*;

/// The user story: `helm install` with defaults (image and CA apart), both replicas Ready and
/// one leader, the image locked down as the chart says, a Secret synced with a service
/// principal, read byte for byte by a pod mounting it and one `envFrom`-ing it, and a rotation
/// in the vault reaching the mounted file; then leader failover and a rolling restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installed_operator_syncs_secrets_that_pods_mount_and_follows_rotation_and_failover() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-system";
    let (_release, took) = install(env, "amlsecrets", ns, &[]);
    report(
        "helm install --wait (2 replicas Ready)",
        format!("{took:.1?}"),
    );

    // Both replicas Ready, exactly one leader, each answering on the admin port.
    let pods = env.release_pods(ns, "amlsecrets").await;
    assert_eq!(pods.len(), 2, "the chart's default is two replicas");
    for pod in &pods {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(
            ready,
            "{:?} is Ready (its readiness probe on /readyz passed)",
            pod.metadata.name
        );
    }
    let leader = eventually("a Lease holder", Duration::from_secs(60), || async {
        env.leader(ns).await
    })
    .await;
    let names: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert!(
        names.contains(&leader),
        "the leader {leader} is one of {names:?}"
    );
    let mut leaders = 0;
    for pod in &names {
        let readyz = env
            .pod_get(ns, pod, 8080, "/readyz")
            .await
            .unwrap_or_default();
        assert!(readyz.starts_with("ok"), "{pod} /readyz: {readyz}");
        let metrics = env.pod_get(ns, pod, 8080, "/metrics").await.unwrap();
        if metrics.lines().any(|l| l.trim() == "amlsecrets_leader 1") {
            leaders += 1;
        }
    }
    assert_eq!(
        leaders, 1,
        "exactly one replica reports amlsecrets_leader 1"
    );

    // The image as the chart runs it: non-root, read-only root, no capabilities, seccomp.
    let pod = pods
        .iter()
        .find(|p| p.metadata.name.as_ref() == Some(&leader))
        .unwrap();
    let pid = container_pid(env, pod);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid"), "65532 65532 65532 65532", "runs as 65532");
    assert_eq!(field("Gid"), "65532 65532 65532 65532", "group 65532");
    assert_eq!(
        field("CapEff"),
        "0000000000000000",
        "no effective capabilities"
    );
    assert_eq!(
        field("CapBnd"),
        "0000000000000000",
        "all capabilities dropped"
    );
    assert_eq!(field("NoNewPrivs"), "1", "no privilege escalation");
    assert_eq!(field("Seccomp"), "2", "a seccomp filter (RuntimeDefault)");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "the root file system is read-only: {root}"
    );
    let version = text(
        env.exec(ns, &leader, &["/amlsecrets", "--version"])
            .unwrap(),
    );
    assert!(
        version.starts_with("amlsecrets "),
        "/amlsecrets --version in the pod: {version}"
    );
    assert!(
        env.exec(ns, &leader, &["/bin/sh", "-c", "true"]).is_err(),
        "the image has no shell"
    );
    report("image", version.trim());

    // A tenant syncs with a service principal; pods read the exact bytes.
    let tenant = "team-e2e";
    env.tenant(tenant).await;
    let vault = &env.fakes.vault;
    let first = "s3cr3t with spaces, ünïcödé\tand a trailing newline\n";
    vault.put_secret("e2e-db-password", first, true, None);
    vault.put_secret("e2e-db-username", "ml-reader", true, None);
    env.workspace_secret(
        tenant,
        "db-credentials",
        "ml",
        "10s",
        &[
            ("DB_PASSWORD", "keyvault:e2e-db-password"),
            ("DB_USERNAME", "keyvault:e2e-db-username"),
        ],
    )
    .await;
    env.wait_synced(tenant, "db-credentials", Duration::from_secs(90))
        .await;
    env.consumer_pod(tenant, "reader-volume", "db-credentials", false)
        .await;
    env.consumer_pod(tenant, "reader-env", "db-credentials", true)
        .await;
    let read_file = || {
        env.exec(
            tenant,
            "reader-volume",
            &["/bin/busybox", "cat", "/secret/DB_PASSWORD"],
        )
    };
    assert_eq!(
        read_file().unwrap(),
        first.as_bytes(),
        "the mounted file's bytes"
    );
    let read_env = |name: &str| {
        let script = format!("printf %s \"${name}\"");
        env.exec(tenant, "reader-env", &["/bin/busybox", "sh", "-c", &script])
            .unwrap()
    };
    assert_eq!(
        read_env("DB_PASSWORD"),
        first.as_bytes(),
        "the envFrom variable's bytes"
    );
    assert_eq!(read_env("DB_USERNAME"), b"ml-reader");

    // Rotation reaches the running pod: refresh interval (10 s, ±10%) + kubelet sync (10 s).
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new `updated` second
    let second = "rotated-value-2";
    let changed = Instant::now();
    vault.put_secret("e2e-db-password", second, true, None);
    let mut in_secret = None;
    let in_file = loop {
        if in_secret.is_none()
            && env
                .secret_data(tenant, "db-credentials")
                .await
                .is_some_and(|d| {
                    d.iter()
                        .any(|(k, v)| k == "DB_PASSWORD" && v == second.as_bytes())
                })
        {
            in_secret = Some(changed.elapsed());
        }
        if read_file().is_ok_and(|b| b == second.as_bytes()) {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(60),
            "the rotated value did not reach the mounted file in 60 s (Secret updated after {in_secret:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let in_secret = in_secret.unwrap_or(in_file);
    report(
        "rotation vault -> Secret (refresh 10s)",
        format!("{in_secret:.1?}"),
    );
    report(
        "rotation Secret -> mounted file (kubelet syncFrequency 10s)",
        format!("{:.1?}", in_file.saturating_sub(in_secret)),
    );
    report("rotation vault -> mounted file", format!("{in_file:.1?}"));
    assert!(
        in_file < Duration::from_secs(11 + 10 + 15),
        "rotation took {in_file:?}: more than refresh + kubelet sync + 15 s"
    );

    // Leader failover as a user sees it: delete the leader pod.
    let other = names.iter().find(|n| **n != leader).unwrap().clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = "after-failover-3";
    let deleted = Instant::now();
    Api::<Pod>::namespaced(env.client(), ns)
        .delete(&leader, &DeleteParams::default())
        .await
        .unwrap();
    vault.put_secret("e2e-db-password", third, true, None);
    let new_leader = eventually(
        "another replica to lead",
        Duration::from_secs(60),
        || async { env.leader(ns).await.filter(|l| *l != leader) },
    )
    .await;
    let takeover = deleted.elapsed();
    // The Lease is released on SIGTERM, so the surviving replica and the ReplicaSet's
    // replacement race for it; either may win, the deleted pod never does.
    let survivor = if new_leader == other {
        "surviving replica"
    } else {
        "replacement pod"
    };
    report("failover: new leader", survivor);
    eventually(
        "the change after failover synced",
        Duration::from_secs(60),
        || async {
            env.secret_data(tenant, "db-credentials").await.filter(|d| {
                d.iter()
                    .any(|(k, v)| k == "DB_PASSWORD" && v == third.as_bytes())
            })
        },
    )
    .await;
    let synced = deleted.elapsed();
    report(
        "failover: leader pod deleted -> other replica leads",
        format!("{takeover:.1?}"),
    );
    report(
        "failover: leader pod deleted -> vault change synced (refresh 10s)",
        format!("{synced:.1?}"),
    );
    wait_available(env, ns, "amlsecrets", 2).await;

    // A crash: the leader's process killed with SIGKILL keeps its Lease, so the kubelet's
    // restart of it must wait out the lease duration like anyone else; the other replica,
    // watching the Lease for longer, takes over.
    // Exactly the two replicas (the pod deleted above may linger while it terminates).
    let pods: Vec<Pod> = eventually(
        "two pods, none terminating",
        Duration::from_secs(90),
        || async {
            let pods = env.release_pods(ns, "amlsecrets").await;
            (pods.len() == 2 && pods.iter().all(|p| p.metadata.deletion_timestamp.is_none()))
                .then_some(pods)
        },
    )
    .await;
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let crashed = eventually("a leader among them", Duration::from_secs(60), || async {
        env.leader(ns).await.filter(|l| names.contains(l))
    })
    .await;
    let survivor = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .find(|n| *n != crashed)
        .unwrap();
    let crashed_pod = pods
        .iter()
        .find(|p| p.metadata.name.as_ref() == Some(&crashed))
        .unwrap();
    let pid = container_pid(env, crashed_pod);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fourth = "after-crash-4";
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
    vault.put_secret("e2e-db-password", fourth, true, None);
    eventually(
        "the other replica to lead after the crash",
        Duration::from_secs(60),
        || async { env.leader(ns).await.filter(|l| *l == survivor) },
    )
    .await;
    let takeover = killed.elapsed();
    eventually(
        "the change after the crash synced",
        Duration::from_secs(60),
        || async {
            env.secret_data(tenant, "db-credentials").await.filter(|d| {
                d.iter()
                    .any(|(k, v)| k == "DB_PASSWORD" && v == fourth.as_bytes())
            })
        },
    )
    .await;
    report(
        "crash: leader process SIGKILLed -> the other replica leads (lease 15s)",
        format!("{takeover:.1?}"),
    );
    report(
        "crash: leader process SIGKILLed -> vault change synced",
        format!("{:.1?}", killed.elapsed()),
    );
    wait_available(env, ns, "amlsecrets", 2).await;

    // No value or credential in the operators' logs or in any Event.
    let mut seen = String::new();
    for pod in env.release_pods(ns, "amlsecrets").await {
        let name = pod.metadata.name.unwrap_or_default();
        seen.push_str(&text(
            env.kubectl(&["logs", "-n", ns, &name]).unwrap_or_default(),
        ));
    }
    seen.push_str(&text(
        env.kubectl(&["get", "events", "-A", "-o", "json"]).unwrap(),
    ));
    for value in ["s3cr3t with spaces", second, third, fourth, SP_SECRET] {
        assert!(
            !seen.contains(value),
            "a secret value appears in logs or Events"
        );
    }

    // A rolling restart changes no Secret and writes nothing twice.
    let secrets: Api<Secret> = Api::namespaced(env.client(), tenant);
    let before = secrets.get("db-credentials").await.unwrap();
    let watcher = tokio::spawn(count_changes(
        env.client(),
        tenant.to_owned(),
        "db-credentials".to_owned(),
    ));
    let before_pods: Vec<String> = env
        .release_pods(ns, "amlsecrets")
        .await
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let restarted = Instant::now();
    env.kubectl(&["rollout", "restart", "deployment/amlsecrets", "-n", ns])
        .unwrap();
    env.kubectl(&[
        "rollout",
        "status",
        "deployment/amlsecrets",
        "-n",
        ns,
        "--timeout=3m",
    ])
    .unwrap();
    eventually(
        "a leader among the new pods",
        Duration::from_secs(60),
        || async { env.leader(ns).await.filter(|l| !before_pods.contains(l)) },
    )
    .await;
    report(
        "rollout restart -> new pods lead",
        format!("{:.1?}", restarted.elapsed()),
    );
    // Two refresh intervals under the new leader.
    tokio::time::sleep(Duration::from_secs(25)).await;
    watcher.abort();
    let after = secrets.get("db-credentials").await.unwrap();
    assert_eq!(before.data, after.data, "no Secret changes bytes");
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "no write of the Secret during the restart"
    );
    report("rollout restart: Secret resourceVersion changes", 0);
}
