//! End to end as users run it, on a real single-node cluster (`testenv::node`: kubelet,
//! containerd + runc, bridge CNI, controller-manager, scheduler): the image built from our
//! Dockerfile (`scripts/build-image.sh`), installed by `helm install` of the chart, syncing
//! Secrets that real pods mount and `envFrom`, rotation reaching a running pod, workload
//! identity from a projected token as on AKS, leader failover, a rolling restart, the chart's
//! RBAC as the pod's only rights, and memory under load against the chart's limit.
//!
//! One node serves every test; the tests take turns (each installs its own release and removes
//! it at the end) because an operator watching all namespaces would otherwise act on the other
//! tests' objects. Measured figures are printed as `real-node measurement: …` lines.

#[path = "real_node/support.rs"]
mod support;

#[path = "real_node/rollout.rs"]
mod rollout;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use serde_json::json;
use support::*;
use testenv::azure::{FederatedCredential, TENANT};
use tokio::sync::Mutex;

/// The tests take turns on the node (see the module documentation).
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Removes a release (and waits for its pods to go) when dropped, also when a test fails.
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(env) = ENV_FOR_DROP.get() {
            let _ = env.helm(&[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
                "--timeout",
                "2m",
            ]);
        }
    }
}

static ENV_FOR_DROP: std::sync::OnceLock<&'static Env> = std::sync::OnceLock::new();

async fn setup() -> &'static Env {
    let env = env().await;
    let _ = ENV_FOR_DROP.set(env);
    env
}

fn install(env: &Env, release: &str, namespace: &str, extra: &[&str]) -> (Release, Duration) {
    let took = env.install(release, namespace, extra);
    (
        Release {
            name: release.into(),
            namespace: namespace.into(),
        },
        took,
    )
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The pod's main process as the host sees it: `/proc/<pid>` of the container's first process.
fn container_pid(env: &Env, pod: &Pod) -> u32 {
    let uid = pod.metadata.uid.as_deref().unwrap();
    let id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .as_deref()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_owned();
    let base = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(env.node.cgroup_root())
        .join("kubepods");
    for qos in ["", "burstable", "besteffort"] {
        let procs = base
            .join(qos)
            .join(format!("pod{uid}"))
            .join(&id)
            .join("cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(&procs)
            && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return pid;
        }
    }
    panic!("no process found in the cgroup of container {id} of pod {uid}");
}

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

/// Counts resourceVersion changes of a Secret until aborted (nothing to count is the goal;
/// the final assertion compares resourceVersions, this logs any change as it happens).
async fn count_changes(client: kube::Client, ns: String, name: String) {
    use futures::TryStreamExt as _;
    use kube::runtime::watcher;
    let api: Api<Secret> = Api::namespaced(client, &ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut seen: Option<String> = None;
    let mut stream = std::pin::pin!(watcher::watcher(api, config));
    while let Ok(Some(event)) = stream.try_next().await {
        if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = event {
            let rv = s.metadata.resource_version.clone();
            if seen.is_some() && seen != rv {
                eprintln!("Secret {ns}/{name} written during the restart: resourceVersion {rv:?}");
            }
            seen = rv;
        }
    }
}

/// Waits until a release's Deployment has `replicas` available replicas.
async fn wait_available(env: &Env, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(env.client(), ns);
    eventually(
        &format!("{name} available"),
        Duration::from_secs(120),
        || async {
            let d = api.get_opt(name).await.ok()??;
            let s = d.status?;
            (s.available_replicas == Some(replicas) && s.updated_replicas == Some(replicas))
                .then_some(())
        },
    )
    .await;
}

/// Workload identity as the Azure webhook sets it up on AKS, through chart values: the
/// operator's own projected token (audience api://AzureADTokenExchange) exchanged at the fake
/// Entra ID, which verifies it with the API server's JWKS; and a tenant's own ServiceAccount
/// through TokenRequest, from inside the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_from_a_projected_token_and_a_tenant_service_account() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-wi";
    let release = "amlsecrets-wi";
    let operator_client = "0a0a0a0a-0000-4000-8000-00000000a11d";
    let tenant_client = "0b0b0b0b-0000-4000-8000-00000000b22d";
    let jwks = testenv::control_plane::get_json(&env.client(), "/openid/v1/jwks")
        .await
        .unwrap();
    let federate = |client: &str, oid: &str, subject: String| {
        env.fakes.entra.add_federated(
            TENANT,
            client,
            oid,
            FederatedCredential {
                issuer: env.node.issuer(),
                subject,
                audience: TOKEN_EXCHANGE_AUDIENCE.into(),
                jwks: jwks.clone(),
            },
        )
    };
    federate(
        operator_client,
        "0a0a0a0a-0000-4000-8000-0000000000b1",
        format!("system:serviceaccount:{ns}:{release}"),
    );
    federate(
        tenant_client,
        "0b0b0b0b-0000-4000-8000-0000000000b2",
        "system:serviceaccount:team-wi:ml-runner".into(),
    );

    // What the webhook injects for a pod labelled azure.workload.identity/use=true.
    let values = env.node.dir().join("wi-values.yaml");
    let token_dir = "/var/run/secrets/azure/tokens";
    std::fs::write(
        &values,
        serde_json::to_string(&json!({
            "workloadIdentity": { "enabled": true, "clientId": operator_client, "tenantId": TENANT },
            "extraEnv": [
                { "name": "AZURE_CLIENT_ID", "value": operator_client },
                { "name": "AZURE_TENANT_ID", "value": TENANT },
                { "name": "AZURE_AUTHORITY_HOST", "value": format!("{}/", env.authority) },
                { "name": "AZURE_FEDERATED_TOKEN_FILE", "value": format!("{token_dir}/azure-identity-token") },
            ],
            "extraVolumes": [{ "name": "azure-identity-token", "projected": { "sources": [{ "serviceAccountToken": {
                "audience": TOKEN_EXCHANGE_AUDIENCE, "expirationSeconds": 3600, "path": "azure-identity-token" } }] } }],
            "extraVolumeMounts": [{ "name": "azure-identity-token", "mountPath": token_dir, "readOnly": true }],
        }))
        .unwrap(),
    )
    .unwrap();
    let (_release, took) = install(env, release, ns, &["-f", values.to_str().unwrap()]);
    report("helm install with workload identity", format!("{took:.1?}"));
    let sa = Api::<ServiceAccount>::namespaced(env.client(), ns)
        .get(release)
        .await
        .unwrap();
    assert_eq!(
        sa.metadata
            .annotations
            .unwrap_or_default()
            .get("azure.workload.identity/client-id")
            .map(String::as_str),
        Some(operator_client)
    );

    // The operator's own identity, in its own namespace (the default ambient namespace).
    let token_calls = env.fakes.entra.calls.count("token");
    env.fakes.vault.put_secret(
        "wi-operator-secret",
        "from-the-operator-identity",
        true,
        None,
    );
    env.workspace(ns, "own-identity", json!({ "workloadIdentity": {} }))
        .await;
    env.workspace_secret(
        ns,
        "own",
        "own-identity",
        "10s",
        &[("value", "keyvault:wi-operator-secret")],
    )
    .await;
    env.wait_synced(ns, "own", Duration::from_secs(90)).await;
    assert_eq!(
        env.secret_data(ns, "own").await.unwrap(),
        vec![("value".to_string(), b"from-the-operator-identity".to_vec())]
    );

    // A tenant's own ServiceAccount (TokenRequest from inside the pod).
    let tenant = "team-wi";
    create_namespace(&env.client(), tenant).await;
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("ml-runner".into()),
            annotations: Some(
                [
                    (
                        "azure.workload.identity/client-id".to_string(),
                        tenant_client.to_string(),
                    ),
                    (
                        "azure.workload.identity/tenant-id".to_string(),
                        TENANT.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(env.client(), tenant)
        .patch(
            "ml-runner",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(account),
        )
        .await
        .unwrap();
    env.fakes
        .vault
        .put_secret("wi-tenant-secret", "from-the-tenant-identity", true, None);
    env.workspace(
        tenant,
        "ml",
        json!({ "workloadIdentity": { "serviceAccountName": "ml-runner" } }),
    )
    .await;
    env.workspace_secret(
        tenant,
        "tenant",
        "ml",
        "10s",
        &[("value", "keyvault:wi-tenant-secret")],
    )
    .await;
    env.wait_synced(tenant, "tenant", Duration::from_secs(90))
        .await;
    assert_eq!(
        env.secret_data(tenant, "tenant").await.unwrap(),
        vec![("value".to_string(), b"from-the-tenant-identity".to_vec())]
    );
    assert!(
        env.fakes.entra.calls.count("token") >= token_calls + 2,
        "both identities were exchanged at the token endpoint"
    );
}

/// The chart's RBAC is all the pod has: with a namespace list the operator syncs there and is
/// kept out of any other namespace's Secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_with_a_namespace_list_keeps_the_pod_out_of_other_namespaces() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-rbac";
    let release = "amlsecrets-rbac";
    // The chart's Role goes into the listed namespace, which must exist first.
    create_namespace(&env.client(), "team-rbac-a").await;
    let (_release, _) = install(
        env,
        release,
        ns,
        &["--set", "config.namespaces={team-rbac-a}"],
    );
    env.tenant("team-rbac-a").await;
    env.tenant("team-rbac-b").await;
    env.fakes
        .vault
        .put_secret("rbac-secret", "only-for-a", true, None);
    let pods = env.release_pods(ns, release).await;
    assert!(pods.iter().all(|p| {
        p.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            == Some(release)
    }));
    for t in ["team-rbac-a", "team-rbac-b"] {
        env.workspace_secret(t, "db", "ml", "10s", &[("value", "keyvault:rbac-secret")])
            .await;
    }
    env.wait_synced("team-rbac-a", "db", Duration::from_secs(90))
        .await;
    let who = format!("system:serviceaccount:{ns}:{release}");
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "--as", &who];
        all.extend(args);
        // `kubectl auth can-i` exits 1 for "no".
        env.kubectl(&all).map(text).unwrap_or_else(|e| e)
    };
    assert!(can(&["get", "secrets", "-n", "team-rbac-a"]).starts_with("yes"));
    assert!(!can(&["get", "secrets", "-n", "team-rbac-b"]).starts_with("yes"));
    assert!(!can(&["list", "secrets", "--all-namespaces"]).starts_with("yes"));
    assert!(!can(&["create", "secrets", "-n", "team-rbac-b"]).starts_with("yes"));
    // Two refresh intervals later the other namespace is still untouched.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(env.secret_data("team-rbac-b", "db").await.is_none());
    let status = Api::<amlsecrets::api::WorkspaceSecret>::namespaced(env.client(), "team-rbac-b")
        .get("db")
        .await
        .unwrap()
        .status;
    assert!(
        status.is_none(),
        "the operator never touched team-rbac-b: {status:?}"
    );
}

/// The chart's memory limit holds with room to spare under the benchmark's default load scaled
/// to this node (1,000 vault secrets, 250 WorkspaceSecrets: half with 10 named items, half
/// finding a tag group of 20; 1% changed per 30 s refresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_holds_under_the_benchmark_load() {
    const SECRETS: usize = 1000;
    const WORKSPACE_SECRETS: usize = 250;
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-load";
    let release = "amlsecrets-load";
    let tenant = "team-load";
    let vault = &env.fakes.vault;
    for i in 0..SECRETS {
        let group = format!("g{:02}", i / 20);
        vault.put_secret_tagged(
            &format!("load-{i:04}"),
            &format!("value-{i}-0"),
            &[("group", &group)],
        );
    }
    let (_release, _) = install(env, release, ns, &[]);
    env.tenant(tenant).await;
    let api: Api<amlsecrets::api::WorkspaceSecret> = Api::namespaced(env.client(), tenant);
    let started = Instant::now();
    for chunk in (0..WORKSPACE_SECRETS).collect::<Vec<_>>().chunks(25) {
        let applies = chunk.iter().map(|&i| {
            let spec = if i % 2 == 0 {
                let data: Vec<_> = (0..10)
                    .map(|k| {
                        let n = (i * 7 + k * 97) % SECRETS;
                        json!({ "key": format!("k{k}"), "ref": format!("keyvault:load-{n:04}") })
                    })
                    .collect();
                json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "30s", "data": data })
            } else {
                json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "30s",
                        "dataFrom": [{ "find": { "tags": { "group": format!("g{:02}", i % 50) } } }] })
            };
            let name = format!("load-{i:03}");
            let body = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret",
                               "metadata": { "name": name }, "spec": spec });
            let api = api.clone();
            async move {
                api.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(body))
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(applies).await;
    }
    let leader_pod = |env: &'static Env| async move {
        let leader = env.leader(ns).await?;
        env.release_pods(ns, release)
            .await
            .into_iter()
            .find(|p| p.metadata.name.as_ref() == Some(&leader))
    };
    let mut peak_ws = 0u64;
    let mut peak_usage = 0u64;
    let mut limit = 0u64;
    let mut sample = |pod: &Pod| {
        if let Some(m) = env
            .node
            .pod_memory(pod.metadata.uid.as_deref().unwrap_or_default())
        {
            peak_ws = peak_ws.max(m.working_set);
            peak_usage = peak_usage.max(m.max_usage);
            limit = m.limit;
        }
    };
    // All synced…
    loop {
        if let Some(pod) = leader_pod(env).await {
            sample(&pod);
        }
        let list = api.list(&Default::default()).await.unwrap();
        let synced = list
            .items
            .iter()
            .filter(|w| {
                w.status.as_ref().is_some_and(|s| {
                    amlsecrets::api::conditions::find_ready(&s.conditions)
                        .is_some_and(|c| c.reason == "Synced")
                })
            })
            .count();
        if synced == WORKSPACE_SECRETS {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let reasons: Vec<String> = list
                .items
                .iter()
                .take(3)
                .map(|w| format!("{:?}", w.status.as_ref().map(|s| &s.conditions)))
                .collect();
            let logs = env
                .kubectl(&["logs", "-n", ns, &format!("deploy/{release}"), "--tail=10"])
                .map(text)
                .unwrap_or_else(|e| e);
            panic!(
                "only {synced}/{WORKSPACE_SECRETS} WorkspaceSecrets Synced after 5 min; e.g. {reasons:?}\n{logs}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report(
        "load: all WorkspaceSecrets Synced",
        format!("{:.1?}", started.elapsed()),
    );
    // …then two refresh cycles with 1% of the secrets changed at the start of each.
    for cycle in 1..=2 {
        for i in 0..SECRETS / 100 {
            let n = (i * 101 + cycle * 13) % SECRETS;
            let group = format!("g{:02}", n / 20);
            vault.put_secret_tagged(
                &format!("load-{n:04}"),
                &format!("value-{n}-{cycle}"),
                &[("group", &group)],
            );
        }
        let cycle_start = Instant::now();
        while cycle_start.elapsed() < Duration::from_secs(33) {
            if let Some(pod) = leader_pod(env).await {
                sample(&pod);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let kubelet_ws = kubelet_working_set(env, ns, release).await;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    report(
        "memory of the leader under load (cgroup)",
        format!(
            "peak working set {:.1} MiB, peak usage incl. page cache {:.1} MiB, limit {:.0} MiB; kubelet working set now {:.1} MiB",
            mib(peak_ws),
            mib(peak_usage),
            mib(limit),
            mib(kubelet_ws)
        ),
    );
    assert_eq!(
        limit,
        256 * 1024 * 1024,
        "the chart's default limit applies to the pod"
    );
    assert!(peak_ws > 0, "the pod's cgroup was sampled");
    assert!(
        peak_ws * 2 < limit,
        "peak working set {:.1} MiB leaves less than half of the {:.0} MiB limit",
        mib(peak_ws),
        mib(limit)
    );
}

/// Returns the leader's working set as the kubelet reports it (stats summary).
async fn kubelet_working_set(env: &Env, ns: &str, release: &str) -> u64 {
    let leader = env.leader(ns).await.unwrap_or_default();
    let path = format!(
        "/api/v1/nodes/{}/proxy/stats/summary",
        testenv::node::NODE_NAME
    );
    let summary = testenv::control_plane::get_json(&env.client(), &path)
        .await
        .unwrap_or_default();
    summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["podRef"]["name"] == leader.as_str() && p["podRef"]["namespace"] == ns)
        .and_then(|p| p["memory"]["workingSetBytes"].as_u64())
        .unwrap_or_else(|| {
            eprintln!("no kubelet stats for {release}'s leader {leader}");
            0
        })
}
