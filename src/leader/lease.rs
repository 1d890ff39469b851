//! The Lease loop, with client-go's rules: candidates take a Lease only after its holder has
//! left it unrenewed for the lease duration *as measured on their own clock*; the leader renews
//! every retry period and stops leading when it could not renew within the renew deadline, which
//! is shorter than the lease duration, so it stops before anyone else may take over.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::{Elector, LeaseConfig};

/// A failed Lease read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else created or changed the Lease first.
    #[error("the Lease was changed concurrently")]
    Conflict,
    /// Anything else (API server unreachable, forbidden…).
    #[error("{0}")]
    Other(String),
}

/// Where the Lease lives: get, create and replace (optimistic, by resourceVersion).
pub trait LeaseStore: Send + Sync {
    /// Reads the Lease, `None` if it does not exist.
    fn get(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>>;
    /// Creates the Lease; `Conflict` if it exists.
    fn create<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>>;
    /// Replaces the Lease if its resourceVersion is still current; `Conflict` otherwise.
    fn replace<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>>;
}

/// The Lease in the API server (verbs get, create, update).
pub struct KubeLeaseStore {
    api: Api<Lease>,
    name: String,
}

impl KubeLeaseStore {
    /// Addresses the Lease `namespace/name`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        KubeLeaseStore {
            api: Api::namespaced(client, namespace),
            name: name.into(),
        }
    }
}

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(s) if s.code == 409 => StoreError::Conflict,
        e => StoreError::Other(e.to_string()),
    }
}

impl LeaseStore for KubeLeaseStore {
    fn get(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>> {
        async move { self.api.get_opt(&self.name).await.map_err(store_error) }.boxed()
    }
    fn create<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>> {
        async move { (self.api.create(&PostParams::default(), lease).await).map_err(store_error) }
            .boxed()
    }
    fn replace<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Lease, StoreError>> {
        async move {
            (self
                .api
                .replace(&self.name, &PostParams::default(), lease)
                .await)
                .map_err(store_error)
        }
        .boxed()
    }
}

/// Leader election over a Lease.
pub struct LeaseElector<S = KubeLeaseStore> {
    store: S,
    config: LeaseConfig,
}

/// What one attempt found.
enum Attempt {
    /// This replica holds the Lease; the write was sent at this instant.
    Holding(Instant),
    /// Someone else holds it, valid (on our clock) until this instant.
    HeldUntil(Instant),
}

/// What identifies one version of the Lease record: holder, renew time, duration, transitions.
type Record = (Option<String>, Option<MicroTime>, Option<i32>, Option<i32>);

/// The last Lease record seen, and from when it counts on our clock.
#[derive(Default)]
struct Observed {
    record: Option<Record>,
    since: Option<Instant>,
    last_read_sent: Option<Instant>,
}

fn record_of(spec: &LeaseSpec) -> Record {
    (
        spec.holder_identity.clone().filter(|h| !h.is_empty()),
        spec.renew_time.clone(),
        spec.lease_duration_seconds,
        spec.lease_transitions,
    )
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl LeaseElector<KubeLeaseStore> {
    /// Elects through the Lease of `config` in the API server.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let store = KubeLeaseStore::new(client, &config.namespace, &config.name);
        LeaseElector { store, config }
    }
}

impl<S: LeaseStore> LeaseElector<S> {
    /// Elects through any Lease store.
    pub fn with_store(store: S, config: LeaseConfig) -> Self {
        LeaseElector { store, config }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Reads the Lease and takes or renews it if it is free, expired, or ours.
    async fn try_acquire_or_renew(&self, obs: &mut Observed) -> Result<Attempt, StoreError> {
        let me = &self.config.identity;
        let read_sent = Instant::now();
        let Some(mut lease) = self.store.get().await? else {
            let now = now_micro();
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let sent = Instant::now();
            let created = self.store.create(&lease).await?;
            obs.record = created.spec.as_ref().map(record_of);
            obs.since = Some(sent);
            return Ok(Attempt::Holding(sent));
        };
        let received = Instant::now();
        let spec = lease.spec.clone().unwrap_or_default();
        let record = record_of(&spec);
        if obs.record.as_ref() != Some(&record) {
            // The change happened after our previous read was sent; never count it from
            // earlier than half the safety margin (lease duration − renew deadline) before now.
            let margin = (self.config.lease_duration - self.config.renew_deadline) / 2;
            let floor = received.checked_sub(margin).unwrap_or(received);
            obs.since = Some(obs.last_read_sent.map_or(received, |s| s.max(floor)));
            obs.record = Some(record.clone());
        }
        obs.last_read_sent = Some(read_sent);
        let holder = record.0.as_deref();
        if holder.is_some_and(|h| h != me) {
            let valid = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
            let until = obs.since.unwrap_or(received) + valid;
            if Instant::now() < until {
                return Ok(Attempt::HeldUntil(until));
            }
        }
        let now = now_micro();
        let ours = holder == Some(me.as_str());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(self.lease_seconds()),
            acquire_time: if ours {
                spec.acquire_time
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
            ..spec
        });
        let sent = Instant::now();
        let written = self.store.replace(&lease).await?;
        obs.record = written.spec.as_ref().map(record_of);
        obs.since = Some(sent);
        if !ours {
            tracing::info!(lease = %self.config.name, identity = %me, previous = holder.unwrap_or("none"), "acquired the Lease");
        }
        Ok(Attempt::Holding(sent))
    }

    /// Gives the Lease up if we hold it: no holder, one-second duration.
    async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.store.get().await? else {
                return Ok(());
            };
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(now_micro()),
                ..spec
            });
            self.store.replace(&lease).await.map(|_| ())
        };
        match result.await {
            Ok(()) => tracing::info!(lease = %self.config.name, "released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %e, "cannot release the Lease; the next leader waits for it to expire")
            }
        }
    }

    /// Campaigns until this replica holds the Lease; returns when the write was sent.
    async fn acquire(&self, obs: &mut Observed) -> Instant {
        // One line when the Lease cannot be reached and one when it can again, not one per try
        // (an API-server outage would otherwise log every retry period).
        let mut failing = false;
        loop {
            let retry = Instant::now() + self.config.retry_period;
            let attempt = self.try_acquire_or_renew(obs).await;
            if failing && !matches!(attempt, Err(StoreError::Other(_))) {
                failing = false;
                tracing::info!(lease = %self.config.name, "the Lease can be read again");
            }
            let wake = match attempt {
                Ok(Attempt::Holding(sent)) => return sent,
                Ok(Attempt::HeldUntil(until)) => until.min(retry),
                Err(StoreError::Conflict) => retry,
                Err(e) if failing => {
                    tracing::debug!(lease = %self.config.name, error = %e, "cannot read or take the Lease");
                    retry
                }
                Err(e) => {
                    failing = true;
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot read or take the Lease; retrying quietly until it works");
                    retry
                }
            };
            sleep_until(wake).await;
        }
    }

    /// Renews every retry period; returns when a renewal could not be made before the deadline
    /// (or someone else holds the Lease).
    async fn keep(&self, obs: &mut Observed, mut renewed: Instant) {
        loop {
            let deadline = renewed + self.config.renew_deadline;
            sleep_until((Instant::now() + self.config.retry_period).min(deadline)).await;
            match timeout_at(deadline, self.try_acquire_or_renew(obs)).await {
                Ok(Ok(Attempt::Holding(sent))) => renewed = sent,
                Ok(Ok(Attempt::HeldUntil(_))) => {
                    tracing::warn!(lease = %self.config.name, "another replica holds the Lease");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot renew the Lease");
                }
                Err(_) => {}
            }
            if Instant::now() >= renewed + self.config.renew_deadline {
                tracing::warn!(lease = %self.config.name, deadline = ?self.config.renew_deadline, "Lease not renewed within the renew deadline");
                return;
            }
        }
    }
}

impl<S: LeaseStore> Elector for LeaseElector<S> {
    fn run<'a>(
        &'a self,
        leading: watch::Sender<bool>,
        stop: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, ()> {
        async move {
            let mut stop = stop.fuse();
            let mut obs = Observed::default();
            loop {
                let renewed = futures::select_biased! {
                    () = stop => return,
                    sent = self.acquire(&mut obs).fuse() => sent,
                };
                let _ = leading.send(true);
                let stopped = futures::select_biased! {
                    () = stop => true,
                    () = self.keep(&mut obs, renewed).fuse() => false,
                };
                let _ = leading.send(false);
                if stopped {
                    self.release().await;
                    return;
                }
            }
        }
        .boxed()
    }
}
