//! Leader election: only one replica reconciles. A small trait of ours ([`Elector`]) with a
//! `coordination.k8s.io` Lease implementation ([`LeaseElector`]) and an always-leading one for
//! single-replica runs, plus [`lead`], which runs the controllers exactly while this replica leads.

mod lease;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{oneshot, watch};

pub use lease::{KubeLeaseStore, LeaseElector, LeaseStore, StoreError};

/// The settings of Lease-based leader election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity, unique among replicas (written as `holderIdentity`).
    pub identity: String,
    /// How long a Lease stays valid after a renewal (client-go: 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops (client-go: 10 s).
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates retry (client-go: 2 s).
    pub retry_period: Duration,
}

/// Returns a replica identity: the host (pod) name and a random suffix, as client-go does.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "amlsecrets".into());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

/// A way of deciding whether this replica may write.
pub trait Elector: Send + Sync {
    /// Campaigns for leadership and keeps `leading` current until `stop` resolves; then gives
    /// leadership up (releasing the Lease, so another replica takes over at once).
    fn run<'a>(
        &'a self,
        leading: watch::Sender<bool>,
        stop: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, ()>;
}

/// The elector of a single replica: it always leads.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysLeader;

impl Elector for AlwaysLeader {
    fn run<'a>(
        &'a self,
        leading: watch::Sender<bool>,
        stop: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, ()> {
        async move {
            let _ = leading.send(true);
            stop.await;
            let _ = leading.send(false);
        }
        .boxed()
    }
}

/// The shutdown signal handed to the work: resolves once, clonable.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Runs `work` exactly while this replica leads, until `shutdown` resolves.
///
/// Leadership lost: the work future is dropped at once (no graceful drain: another replica may
/// take over once the lease expires). Shutdown: the work gets the signal and finishes its
/// in-flight reconciles; only then is leadership given up, so the next leader never overlaps.
/// `observe` is told every change of leadership (for metrics and probes).
pub async fn lead<W, Fut>(
    elector: &dyn Elector,
    mut work: W,
    shutdown: impl Future<Output = ()> + Send + 'static,
    observe: impl Fn(bool),
) where
    W: FnMut(Shutdown) -> Fut,
    Fut: Future<Output = ()>,
{
    let shutdown: Shutdown = shutdown.boxed().shared();
    let (leading_tx, mut leading) = watch::channel(false);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let election = elector.run(
        leading_tx,
        async move {
            let _ = stop_rx.await;
        }
        .boxed(),
    );
    let supervise = async {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.clone() => break,
                changed = leading.wait_for(|l| *l) => if changed.is_err() { break },
            }
            observe(true);
            tracing::info!("leading: reconciling");
            let running = work(shutdown.clone());
            tokio::pin!(running);
            tokio::select! {
                biased;
                lost = leading.wait_for(|l| !*l) => {
                    observe(false);
                    if lost.is_err() {
                        break;
                    }
                    tracing::warn!("leadership lost: stopped reconciling");
                }
                () = &mut running => {
                    observe(false);
                    break;
                }
            }
        }
        let _ = stop_tx.send(());
    };
    futures::join!(election, supervise);
}
