//! What every reconcile needs: clients, Azure access, shared caches, settings. No logic.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::reflector::ObjectRef;

use super::backoff::Backoffs;
use super::caches::Caches;
use super::events::Recorder;
use super::wakes::Wakes;
use crate::azure::{AzureApi, CloudEndpoints, Credential, CredentialRegistry, Http};
use crate::config::RunArgs;
use crate::fetch::{Clock, ConnectionViews, EndpointViews, VaultViews};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "amlsecrets";

/// Shared dependencies of both controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// All Azure access.
    pub azure: Arc<dyn AzureApi>,
    /// One credential (and token cache) per identity.
    pub credentials: CredentialRegistry,
    /// One view per (identity, vault).
    pub vaults: VaultViews,
    /// One view per (identity, workspace, connection).
    pub connections: ConnectionViews,
    /// One view per (identity, workspace, endpoint or datastore).
    pub endpoints: EndpointViews,
    /// Event recorder.
    pub recorder: Recorder,
    /// The operator's settings.
    pub args: RunArgs,
    /// Rolling of workloads that follow synced Secrets (`--rollout-workloads`); `None`: off.
    pub rollout: Option<super::rollout::Rollouts>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Consecutive transient failures per object, for backoff.
    pub(crate) failures: Backoffs,
    /// Wakes WorkspaceSecrets whose vault secrets changed.
    pub(crate) wakes: Arc<Wakes>,
    /// What refreshes read without asking the API server.
    pub(crate) caches: Caches,
}

impl Context {
    /// Builds the context.
    pub fn new(client: Client, azure: Arc<dyn AzureApi>, http: Http, args: RunArgs) -> Self {
        let recorder = Recorder::new(client.clone(), "amlsecrets");
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let wakes = Arc::new(Wakes::default());
        let clock = Clock {
            azure: azure.clone(),
            wake: {
                let (wakes, metrics) = (wakes.clone(), metrics.clone());
                Arc::new(move |readers| metrics.woken(wakes.wake(readers)))
            },
        };
        Context {
            client,
            azure,
            credentials: CredentialRegistry::new(http),
            vaults: VaultViews::with_clock(args.vault_requests_per_10s, clock.clone()),
            connections: ConnectionViews::with_clock(clock.clone()),
            endpoints: EndpointViews::default(),
            recorder,
            rollout: args.rollout_workloads.then(super::rollout::Rollouts::new),
            args,
            metrics,
            failures: Backoffs::default(),
            wakes,
            caches: Caches::default(),
        }
    }

    /// Returns the shared credential for a spec in a cloud.
    pub fn credential(
        &self,
        cloud: &CloudEndpoints,
        spec: crate::azure::CredentialSpec,
    ) -> Result<Arc<Credential>, crate::azure::AzureError> {
        self.credentials.credential(cloud, spec)
    }

    /// Records a transient failure and returns how long to wait: 5 s doubling, with jitter,
    /// capped by `cap` and `--max-retry-delay`.
    pub fn backoff<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &ObjectRef<K>,
        cap: Duration,
    ) -> Duration {
        let delay = self
            .failures
            .failed(obj, cap.min(self.args.max_retry_delay));
        jitter(delay, 0.2)
    }

    /// Forgets an object's failures after a success.
    pub fn succeeded<K: kube::Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures.forget(obj);
    }
}

/// Spreads `d` by ±`fraction` so that many objects never fire at once.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + fraction * (fastrand::f64() * 2.0 - 1.0);
    d.mul_f64(factor.max(0.0))
}
