//! What every reconcile needs: clients, Azure access, shared caches, settings. No logic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::azure::{AzureApi, CloudEndpoints, Credential, CredentialRegistry, Http};
use crate::config::RunArgs;
use crate::fetch::{ConnectionViews, EndpointViews, VaultViews};

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
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Builds the context.
    pub fn new(client: Client, azure: Arc<dyn AzureApi>, http: Http, args: RunArgs) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "amlsecrets".into(),
                instance: None,
            },
        );
        Context {
            client,
            azure,
            credentials: CredentialRegistry::new(http),
            vaults: VaultViews::new(args.vault_requests_per_10s),
            connections: ConnectionViews::default(),
            endpoints: EndpointViews::default(),
            recorder,
            rollout: args.rollout_workloads.then(super::rollout::Rollouts::new),
            args,
            metrics: Arc::new(crate::metrics::Metrics::default()),
            failures: Mutex::new(HashMap::new()),
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
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(obj.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(5).saturating_mul(1u32 << (*n - 1).min(10));
        let capped = base
            .min(cap)
            .min(self.args.max_retry_delay)
            .max(Duration::from_secs(1));
        jitter(capped, 0.2)
    }

    /// Forgets an object's failures after a success.
    pub fn succeeded<K: kube::Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&obj.to_string());
    }
}

/// Spreads `d` by ±`fraction` so that many objects never fire at once.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + fraction * (fastrand::f64() * 2.0 - 1.0);
    d.mul_f64(factor.max(0.0))
}
