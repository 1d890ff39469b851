//! Prometheus metrics of the operator and the health state behind `/livez` and `/readyz`. The
//! controllers and the Azure layer call the methods below; the admin server renders the registry
//! at `/metrics` (OpenMetrics text).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The condition reasons of a successful reconcile; every other reason counts as a failure.
const SUCCESS_REASONS: [&str; 3] = ["Resolved", "Synced", "Pushed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    auth_kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    namespace: String,
    name: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The operator's metrics, plus the health state the probes read.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    failures: Family<ReconcileLabels, Counter>,
    durations: Histograms<ControllerLabels>,
    requests: Family<RequestLabels, Counter>,
    request_durations: Histograms<ServiceLabels>,
    tokens: Family<TokenLabels, Counter>,
    syncs: Family<SecretLabels, Counter>,
    keys: Family<SecretLabels, Gauge>,
    last_sync: Family<SecretLabels, Gauge>,
    wakes: Counter,
    pushed_versions: Family<SecretLabels, Counter>,
    pushed_secrets: Family<SecretLabels, Gauge>,
    rollouts: Family<RolloutLabels, Counter>,
    expiries: Arc<Expiries>,
    leader: Gauge,
    /// What `/livez` and `/readyz` decide on.
    pub health: Arc<crate::health::Health>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("amlsecrets");
        let m = Metrics {
            reconciles: Family::default(),
            failures: Family::default(),
            durations: Family::new_with_constructor(reconcile_histogram),
            requests: Family::default(),
            request_durations: Family::new_with_constructor(request_histogram),
            tokens: Family::default(),
            syncs: Family::default(),
            keys: Family::default(),
            last_sync: Family::default(),
            wakes: Counter::default(),
            pushed_versions: Family::default(),
            pushed_secrets: Family::default(),
            rollouts: Family::default(),
            expiries: Arc::new(Expiries::default()),
            leader: Gauge::default(),
            health: Arc::new(crate::health::Health::default()),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Finished reconciles by controller and condition reason",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that did not end Ready, by controller and condition reason",
            m.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by controller",
            m.durations.clone(),
        );
        registry.register("azure_requests", "Azure HTTP request attempts by service, operation and status (HTTP code or network failure)", m.requests.clone());
        registry.register(
            "azure_request_duration_seconds",
            "Duration of Azure HTTP request attempts by service",
            m.request_durations.clone(),
        );
        registry.register("token_acquisitions", "Access tokens fetched from Entra ID, IMDS or a token Secret (cache misses), by auth kind and outcome", m.tokens.clone());
        registry.register(
            "secret_syncs",
            "Successful syncs of a WorkspaceSecret into its Secret",
            m.syncs.clone(),
        );
        registry.register(
            "secret_keys",
            "Keys held by the Secret of a WorkspaceSecret after its last sync",
            m.keys.clone(),
        );
        registry.register(
            "secret_last_sync_timestamp_seconds",
            "When a WorkspaceSecret's sources were last checked and its Secret found or made up to date (Unix seconds); status is written only when something in it changed",
            m.last_sync.clone(),
        );
        registry.register(
            "vault_wakes",
            "WorkspaceSecrets woken at once because a vault listing showed a change to a secret they read (or the listing started or stopped failing)",
            m.wakes.clone(),
        );
        registry.register(
            "pushed_versions",
            "Versions a WorkspaceSecretPush wrote into its vault (one per real change)",
            m.pushed_versions.clone(),
        );
        registry.register(
            "pushed_secrets",
            "Vault secrets of a WorkspaceSecretPush up to date after its last push",
            m.pushed_secrets.clone(),
        );
        registry.register(
            "rollouts",
            "Workloads rolled because data of a Secret they follow changed, by namespace and kind",
            m.rollouts.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (reconciles), else 0",
            m.leader.clone(),
        );
        registry.register_collector(Box::new(m.expiries.clone()));
        registry.register_collector(Box::new(RuntimeTasks));
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Records one finished reconcile of `controller` (`workspace` or `workspacesecret`) with its
    /// condition reason (`Resolved`/`Synced` on success) and duration.
    pub fn reconciled(&self, controller: &'static str, reason: &str, elapsed: Duration) {
        let labels = ReconcileLabels {
            controller: controller.into(),
            reason: reason.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
        if !SUCCESS_REASONS.contains(&reason) {
            self.failures.get_or_create(&labels).inc();
        }
        self.durations
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(elapsed.as_secs_f64());
        self.health.reconcile_finished();
    }

    /// Records how many keys a WorkspaceSecret holds after a sync, and the earliest expiry among
    /// them (Unix seconds) if any has one.
    pub fn synced(&self, namespace: &str, name: &str, keys: usize, earliest_expiry: Option<i64>) {
        let labels = SecretLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.syncs.get_or_create(&labels).inc();
        self.keys.get_or_create(&labels).set(keys as i64);
        self.last_sync
            .get_or_create(&labels)
            .set(jiff::Timestamp::now().as_second());
        let mut expiries = self.expiries.0.lock().expect("expiries lock");
        match earliest_expiry {
            Some(at) => expiries.insert((namespace.into(), name.into()), at),
            None => expiries.remove(&(namespace.into(), name.into())),
        };
    }

    /// Records WorkspaceSecrets woken by a vault listing.
    pub fn woken(&self, n: usize) {
        self.wakes.inc_by(n as u64);
    }

    /// Records a finished push: how many versions it wrote now and how many vault secrets are
    /// up to date.
    pub fn pushed(&self, namespace: &str, name: &str, written: usize, up_to_date: usize) {
        let labels = SecretLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.pushed_versions
            .get_or_create(&labels)
            .inc_by(written as u64);
        self.pushed_secrets
            .get_or_create(&labels)
            .set(up_to_date as i64);
    }

    /// Forgets a WorkspaceSecretPush's series when it is deleted.
    pub fn forget_push(&self, namespace: &str, name: &str) {
        let labels = SecretLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.pushed_versions.remove(&labels);
        self.pushed_secrets.remove(&labels);
    }

    /// Forgets a WorkspaceSecret's series when it is deleted.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = SecretLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.syncs.remove(&labels);
        self.keys.remove(&labels);
        self.last_sync.remove(&labels);
        let mut expiries = self.expiries.0.lock().expect("expiries lock");
        expiries.remove(&(namespace.into(), name.into()));
    }

    /// Records one Azure request attempt; `operation` is `service.operation` as the client names
    /// it (`keyvault.get`), `status` the HTTP status or the kind of network failure.
    pub fn azure_request(&self, operation: &str, status: &str, elapsed: Duration) {
        let (service, op) = operation.split_once('.').unwrap_or(("azure", operation));
        self.requests
            .get_or_create(&RequestLabels {
                service: service.into(),
                operation: op.into(),
                status: status.into(),
            })
            .inc();
        self.request_durations
            .get_or_create(&ServiceLabels {
                service: service.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one token acquisition (a cache miss) by auth kind, successful or not.
    pub fn token_acquired(&self, auth_kind: &str, ok: bool) {
        self.tokens
            .get_or_create(&TokenLabels {
                auth_kind: auth_kind.into(),
                outcome: if ok { "success" } else { "failure" }.into(),
            })
            .inc();
    }

    /// Records one workload rolled (`kind`: Deployment, StatefulSet or DaemonSet).
    pub fn rolled_out(&self, namespace: &str, kind: &str) {
        self.rollouts
            .get_or_create(&RolloutLabels {
                namespace: namespace.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        self.health.set_leading(leading);
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing into a String does not fail");
        out
    }
}

/// Seconds until the earliest expiry of each synced WorkspaceSecret, computed at scrape time.
#[derive(Debug, Default)]
struct Expiries(Mutex<HashMap<(String, String), i64>>);

impl Collector for Expiries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = jiff::Timestamp::now().as_second();
        let expiries = self.0.lock().expect("expiries lock").clone();
        let mut family = encoder.encode_descriptor(
            "secret_expiry_seconds",
            "Seconds until the earliest expiry (exp) among the synced keys of a WorkspaceSecret; negative when expired",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for ((namespace, name), at) in expiries {
            let labels = SecretLabels { namespace, name };
            ConstGauge::new(at - now).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The tokio tasks alive in the operator's runtime, read at scrape time (a leak shows as growth).
#[derive(Debug)]
struct RuntimeTasks;

impl Collector for RuntimeTasks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        let tasks = handle.metrics().num_alive_tasks() as i64;
        let gauge = encoder.encode_descriptor(
            "runtime_tasks",
            "Tokio tasks alive in the operator's runtime",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        ConstGauge::new(tasks).encode(gauge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runtime_tasks_are_counted_at_scrape_time() {
        let m = Metrics::default();
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = tokio::spawn(async move {
            let _ = rx.await;
        });
        let line = m
            .render()
            .lines()
            .find(|l| l.starts_with("amlsecrets_runtime_tasks "))
            .map(str::to_string);
        let n: i64 = line
            .expect("the gauge is rendered")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n >= 1, "{n}");
        waiting.abort();
    }

    #[test]
    fn pushes_count_written_versions_and_up_to_date_secrets_and_are_forgotten() {
        let m = Metrics::default();
        m.reconciled("workspacesecretpush", "Pushed", Duration::from_millis(5));
        m.pushed("ns", "p", 2, 3);
        m.pushed("ns", "p", 0, 3);
        let text = m.render();
        for line in [
            r#"amlsecrets_pushed_versions_total{namespace="ns",name="p"} 2"#,
            r#"amlsecrets_pushed_secrets{namespace="ns",name="p"} 3"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains(r#"reconcile_failures_total{controller="workspacesecretpush""#));
        m.forget_push("ns", "p");
        assert!(!m.render().contains(r#"name="p""#));
    }

    #[test]
    fn reconciles_failures_and_requests_render_with_their_labels() {
        let m = Metrics::default();
        m.reconciled("workspacesecret", "Synced", Duration::from_millis(30));
        m.reconciled("workspace", "Forbidden", Duration::from_millis(10));
        m.azure_request("keyvault.get", "200", Duration::from_millis(5));
        m.token_acquired("ServicePrincipalSecret", true);
        m.synced(
            "ns",
            "db",
            2,
            Some(jiff::Timestamp::now().as_second() + 3600),
        );
        let text = m.render();
        for line in [
            r#"amlsecrets_reconciles_total{controller="workspacesecret",reason="Synced"} 1"#,
            r#"amlsecrets_reconcile_failures_total{controller="workspace",reason="Forbidden"} 1"#,
            r#"amlsecrets_azure_requests_total{service="keyvault",operation="get",status="200"} 1"#,
            r#"amlsecrets_token_acquisitions_total{auth_kind="ServicePrincipalSecret",outcome="success"} 1"#,
            r#"amlsecrets_secret_keys{namespace="ns",name="db"} 2"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains(r#"reconcile_failures_total{controller="workspacesecret""#));
        let expiry = text
            .lines()
            .find(|l| l.starts_with("amlsecrets_secret_expiry_seconds{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
            .unwrap();
        assert!((3590..=3600).contains(&expiry), "{expiry}");
        m.forget("ns", "db");
        assert!(!m.render().contains(r#"name="db""#));
    }
}
