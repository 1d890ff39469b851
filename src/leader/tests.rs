//! Lease loop tests on an in-memory Lease store with paused time: hand-over timings, a leader
//! cut off from the API server, and the supervision of the work in [`lead`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::*;

/// One Lease shared by every handle; each handle can be cut off (every call fails).
#[derive(Clone, Default)]
struct MemoryStore {
    lease: Arc<Mutex<(Option<Lease>, u64)>>,
    cut_off: Arc<AtomicBool>,
}

impl MemoryStore {
    fn handle(&self) -> MemoryStore {
        MemoryStore {
            lease: self.lease.clone(),
            cut_off: Arc::new(AtomicBool::new(false)),
        }
    }
    fn holder(&self) -> Option<String> {
        let guard = self.lease.lock().unwrap();
        guard.0.as_ref()?.spec.as_ref()?.holder_identity.clone()
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.cut_off.load(Ordering::SeqCst) {
            return Err(StoreError::Other("connection refused".into()));
        }
        Ok(())
    }
    fn write(&self, lease: &Lease, must_exist: bool) -> Result<Lease, StoreError> {
        self.check()?;
        let mut guard = self.lease.lock().unwrap();
        let (current, rv) = &mut *guard;
        match (current.as_ref(), must_exist) {
            (Some(_), false) | (None, true) => return Err(StoreError::Conflict),
            (Some(c), true) if c.metadata.resource_version != lease.metadata.resource_version => {
                return Err(StoreError::Conflict);
            }
            _ => {}
        }
        *rv += 1;
        let mut stored = lease.clone();
        stored.metadata.resource_version = Some(rv.to_string());
        *current = Some(stored.clone());
        Ok(stored)
    }
}

impl LeaseStore for MemoryStore {
    fn get(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>> {
        let result = self.check().map(|()| self.lease.lock().unwrap().0.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            result
        }
        .boxed()
    }
    fn create<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>> {
        async move { self.write(lease, false) }.boxed()
    }
    fn replace<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>> {
        async move { self.write(lease, true) }.boxed()
    }
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "amlsecrets-leader".into(),
        namespace: "ops".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

/// A running elector: its leadership flag, when it last changed, and how to stop it.
struct Candidate {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn campaign(store: MemoryStore, identity: &str) -> Candidate {
    let elector = LeaseElector::with_store(store, config(identity));
    let (tx, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        elector
            .run(tx, async move { drop(stopped.await) }.boxed())
            .await
    });
    Candidate {
        leading,
        stop: Some(stop),
        task,
    }
}

async fn until(c: &mut Candidate, value: bool) -> Instant {
    c.leading.wait_for(|l| *l == value).await.unwrap();
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn first_candidate_creates_the_lease_and_keeps_it() {
    let store = MemoryStore::default();
    let mut a = campaign(store.handle(), "a");
    until(&mut a, true).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(*a.leading.borrow());
    assert_eq!(store.holder().as_deref(), Some("a"));
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_releases_and_the_other_takes_over_within_a_retry_period() {
    let store = MemoryStore::default();
    let mut a = campaign(store.handle(), "a");
    until(&mut a, true).await;
    let mut b = campaign(store.handle(), "b");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!*b.leading.borrow(), "b must not lead while a renews");

    let stopped = Instant::now();
    a.stop.take().unwrap().send(()).unwrap();
    a.task.await.unwrap();
    assert!(!*a.leading.borrow());
    let took_over = until(&mut b, true).await;
    assert!(
        took_over - stopped <= Duration::from_millis(2100),
        "{:?}",
        took_over - stopped
    );
    assert_eq!(store.holder().as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn killed_leader_is_replaced_within_the_lease_duration() {
    let store = MemoryStore::default();
    let mut a = campaign(store.handle(), "a");
    until(&mut a, true).await;
    let mut b = campaign(store.handle(), "b");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let killed = Instant::now();
    a.task.abort();
    let took_over = until(&mut b, true).await;
    let waited = took_over - killed;
    assert!(waited <= Duration::from_secs(15), "took {waited:?}");
    assert!(
        waited >= Duration::from_secs(11),
        "took over too early: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn leader_cut_off_from_the_api_stops_before_anyone_can_take_over() {
    let store = MemoryStore::default();
    let a_store = store.handle();
    let mut a = campaign(a_store.clone(), "a");
    until(&mut a, true).await;
    let mut b = campaign(store.handle(), "b");
    tokio::time::sleep(Duration::from_secs(20)).await;

    let cut = Instant::now();
    a_store.cut_off.store(true, Ordering::SeqCst);
    let a_stopped = until(&mut a, false).await;
    let b_started = until(&mut b, true).await;
    assert!(
        a_stopped - cut <= Duration::from_secs(10),
        "a led for {:?} without renewing",
        a_stopped - cut
    );
    assert!(
        b_started - a_stopped >= Duration::from_secs(3),
        "b took over {:?} after a stopped",
        b_started - a_stopped
    );
    assert_eq!(store.holder().as_deref(), Some("b"));

    // When a can reach the API again it finds b holding the Lease and stays a follower.
    a_store.cut_off.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!*a.leading.borrow() && *b.leading.borrow());
}

/// An elector driven by hand.
struct Manual(watch::Receiver<bool>);

impl Elector for Manual {
    fn run<'a>(
        &'a self,
        leading: watch::Sender<bool>,
        stop: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, ()> {
        async move {
            let mut rx = self.0.clone();
            let forward = async {
                loop {
                    let _ = leading.send(*rx.borrow_and_update());
                    if rx.changed().await.is_err() {
                        futures::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! { () = stop => {}, () = forward => {} }
        }
        .boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn work_runs_only_while_leading_and_drains_on_shutdown() {
    let (set_leading, leading) = watch::channel(false);
    let elector = Manual(leading);
    let running = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(AtomicUsize::new(0));
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let observed = Arc::new(Mutex::new(Vec::new()));
    let (r, d, o) = (running.clone(), drained.clone(), observed.clone());
    let task = tokio::spawn(async move {
        lead(
            &elector,
            move |shutdown: Shutdown| {
                let (r, d) = (r.clone(), d.clone());
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    shutdown.await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                }
            },
            async move { drop(shutdown_rx.await) },
            move |l| o.lock().unwrap().push(l),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "work started without leadership"
    );
    set_leading.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running.load(Ordering::SeqCst), 1);
    set_leading.send(false).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        drained.load(Ordering::SeqCst),
        0,
        "lost leadership must drop the work, not drain it"
    );
    set_leading.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running.load(Ordering::SeqCst), 2);
    shutdown_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(
        drained.load(Ordering::SeqCst),
        1,
        "shutdown lets the work finish"
    );
    assert_eq!(*observed.lock().unwrap(), [true, false, true, false]);
}
