//! Leader election between two whole operators (admin server, Lease loop, controllers) on the
//! real API server, at the default timings (15 s lease, 10 s renew deadline, 2 s retry).

#[path = "operator/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::*;
use testenv::control_plane::ControlPlane;

async fn leads(op_admin: &str) -> bool {
    let (status, body) = http_get(&format!("{op_admin}/metrics")).await;
    status == 200 && body.lines().any(|l| l == "amlsecrets_leader 1")
}

async fn wait_leads(op: &Operator, what: &str, timeout: Duration) -> Instant {
    eventually(what, timeout, || async {
        leads(&op.admin).await.then(Instant::now)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_hand_over_on_stop_and_on_kill() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let fakes = fakes().await;
    let client = cp.client();
    let flags = || {
        args(&[
            format!("--namespaces={ns}"),
            "--leader-election".into(),
            format!("--leader-election-namespace={ns}"),
        ])
    };
    apply_workload(&client, &ns, &fakes, "db").await;
    let mut a = Operator::start(client.clone(), flags(), http_config(&fakes));
    wait_leads(&a, "a leads", Duration::from_secs(20)).await;
    let mut b = Operator::start(client.clone(), flags(), http_config(&fakes));
    wait_synced(&client, &ns, "db", Duration::from_secs(30)).await;
    eventually(
        "b's admin server answers",
        Duration::from_secs(10),
        || async { (http_get(&format!("{}/readyz", b.admin)).await.0 == 200).then_some(()) },
    )
    .await;

    // Watch both replicas' leader gauge for the whole test: never both at once.
    let (a_url, b_url) = (a.admin.clone(), b.admin.clone());
    let overlap = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (overlap, done) = (overlap.clone(), done.clone());
        let urls = Arc::new(std::sync::Mutex::new((a_url, b_url)));
        let handle = urls.clone();
        (
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let (x, y) = urls.lock().unwrap().clone();
                    let (lx, ly) = futures::join!(leads(&x), leads(&y));
                    if lx && ly {
                        overlap.store(true, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }),
            handle,
        )
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        leads(&a.admin).await && !leads(&b.admin).await,
        "exactly one replica leads"
    );
    let lease = Api::<Lease>::namespaced(client.clone(), &ns)
        .get("amlsecrets-leader")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert!(spec.holder_identity.is_some_and(|h| !h.is_empty()));

    // Graceful stop (SIGTERM): the lease is released, b takes over within a retry period or so.
    let stopping = Instant::now();
    a.stop().await;
    let took_over = wait_leads(&b, "b leads after a stopped", Duration::from_secs(15)).await;
    let graceful = took_over - stopping;
    eprintln!("graceful hand-over: {graceful:?}");
    assert!(
        graceful <= Duration::from_secs(5),
        "graceful hand-over took {graceful:?}"
    );

    // The new leader writes: a rotated value reaches the Secret.
    fakes
        .vault
        .put_secret("db-password", "rotated-value", true, None);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    eventually(
        "b syncs the rotated value",
        Duration::from_secs(30),
        || async {
            let s = secrets.get_opt("db").await.ok()??;
            (s.data?.get("password")?.0 == b"rotated-value").then_some(())
        },
    )
    .await;

    // A fresh replica joins as a follower; then the leader is killed without releasing.
    let mut c = Operator::start(client.clone(), flags(), http_config(&fakes));
    monitor.1.lock().unwrap().0 = c.admin.clone();
    eventually(
        "c's admin server answers",
        Duration::from_secs(10),
        || async { (http_get(&format!("{}/readyz", c.admin)).await.0 == 200).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!leads(&c.admin).await, "c must wait while b renews");
    let killed = Instant::now();
    b.kill();
    let took_over = wait_leads(&c, "c leads after b was killed", Duration::from_secs(30)).await;
    let after_kill = took_over - killed;
    eprintln!("hand-over after a kill: {after_kill:?}");
    assert!(
        after_kill >= Duration::from_secs(5),
        "c took over {after_kill:?} after the kill: before b's lease could expire"
    );
    assert!(
        after_kill <= Duration::from_millis(15_500),
        "hand-over after a kill took {after_kill:?} (lease duration 15 s)"
    );

    done.store(true, Ordering::SeqCst);
    monitor.0.await.unwrap();
    assert!(
        !overlap.load(Ordering::SeqCst),
        "two replicas led at the same time"
    );
    c.stop().await;
    let lease = Api::<Lease>::namespaced(client.clone(), &ns)
        .get("amlsecrets-leader")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity,
        None,
        "a graceful stop releases the Lease"
    );
}
