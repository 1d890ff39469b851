//! Operator settings: every flag of `amlsecrets run`, each also readable from an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::api::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 30s, 10m or 1h"))
}

/// The flags of `amlsecrets run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(
        long,
        env = "AMLSECRETS_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,

    /// The operator's own namespace; default: the pod's namespace, else `amlsecrets-system`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,

    /// Namespaces whose AzureMLWorkspaces may use the operator's ambient identities (its managed
    /// identity and its own workload-identity token), comma-separated; `*` allows all. Default:
    /// the operator's own namespace only.
    #[arg(
        long,
        env = "AMLSECRETS_AMBIENT_IDENTITY_NAMESPACES",
        value_delimiter = ','
    )]
    pub ambient_identity_namespaces: Vec<String>,

    /// The IMDS endpoint for managed identities.
    #[arg(long, env = "AMLSECRETS_IMDS_ENDPOINT", default_value = crate::azure::DEFAULT_IMDS_ENDPOINT)]
    pub imds_endpoint: String,

    /// A PEM bundle of CA certificates trusted for Azure endpoints in addition to the public roots
    /// (Azure Stack, TLS-inspecting proxies).
    #[arg(long, env = "AMLSECRETS_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,

    /// How often each AzureMLWorkspace re-proves access.
    #[arg(long, env = "AMLSECRETS_WORKSPACE_CHECK_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub workspace_check_interval: Duration,

    /// How many reconciles of each kind run at once.
    #[arg(long, env = "AMLSECRETS_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// The timeout of one Azure request attempt.
    #[arg(long, env = "AMLSECRETS_AZURE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub azure_timeout: Duration,

    /// The longest a failing item waits before it is retried (transient errors back off up to
    /// this, or the refresh interval if shorter).
    #[arg(long, env = "AMLSECRETS_MAX_RETRY_DELAY", default_value = "5m", value_parser = parse_duration)]
    pub max_retry_delay: Duration,

    /// Log format: `plain` or `json`.
    #[arg(long, env = "AMLSECRETS_LOG_FORMAT", value_enum, default_value_t = crate::telemetry::LogFormat::Plain)]
    pub log_format: crate::telemetry::LogFormat,

    /// Log level or filter directives (e.g. `info`, `amlsecrets=debug`); `RUST_LOG` wins when set.
    #[arg(long, env = "AMLSECRETS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// The most requests the operator sends to one Key Vault per 10 seconds, shared by every
    /// WorkspaceSecret of that vault (default: 10% of Key Vault's limit of 4,000, because the
    /// workspace vault is shared with Azure ML itself).
    #[arg(long, env = "AMLSECRETS_VAULT_REQUESTS_PER_10S", default_value_t = 400)]
    pub vault_requests_per_10s: u32,

    /// Warn (Event `SecretExpiringSoon`) when a synced secret expires within this long.
    #[arg(long, env = "AMLSECRETS_EXPIRY_WARNING", default_value = "168h", value_parser = parse_duration)]
    pub expiry_warning: Duration,

    /// Roll Deployments, StatefulSets and DaemonSets that opt in (annotation
    /// `amlsecrets.io/rollout` or `amlsecrets.io/rollout-secrets`) when the data of a Secret they
    /// use changes. Needs get/list/patch on those workloads and list on pods (the chart grants
    /// them only with `config.rolloutWorkloads`). Off: the annotations are ignored.
    #[arg(long, env = "AMLSECRETS_ROLLOUT_WORKLOADS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rollout_workloads: bool,

    /// The address of the admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "AMLSECRETS_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// How long work may wait (a watch event with no reconcile finishing since) or one reconcile
    /// may run before `/livez` fails, so that a stuck queue restarts the pod.
    #[arg(long, env = "AMLSECRETS_LIVENESS_STALL_THRESHOLD", default_value = "10m", value_parser = parse_duration)]
    pub liveness_stall_threshold: Duration,

    /// Elect a leader through a `coordination.k8s.io` Lease so that several replicas can run;
    /// only the leader reconciles. Off: this process always reconciles.
    #[arg(long, env = "AMLSECRETS_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,

    /// The name of the Lease used for leader election.
    #[arg(
        long,
        env = "AMLSECRETS_LEADER_ELECTION_LEASE_NAME",
        default_value = "amlsecrets-leader"
    )]
    pub leader_election_lease_name: String,

    /// The namespace of the Lease; default: the operator's namespace.
    #[arg(long, env = "AMLSECRETS_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// How long a Lease stays valid after its last renewal: other replicas wait this long
    /// (from when they saw the last change) before taking over. Whole seconds.
    #[arg(long, env = "AMLSECRETS_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// How long the leader keeps trying to renew before it stops reconciling; shorter than the
    /// lease duration, so a leader that loses its Lease stops writing before anyone can take it.
    #[arg(long, env = "AMLSECRETS_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,

    /// How often the leader renews and the other replicas try to acquire the Lease.
    #[arg(long, env = "AMLSECRETS_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
}

impl RunArgs {
    /// Builds the Azure HTTP settings: timeouts and the extra CA bundle.
    pub fn http_config(&self) -> Result<crate::azure::HttpConfig, String> {
        let extra_ca_pem = match &self.extra_ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --extra-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(crate::azure::HttpConfig {
            extra_ca_pem,
            request_timeout: self.azure_timeout,
            ..crate::azure::HttpConfig::default()
        })
    }

    /// Returns the leader-election settings, checked: the renew deadline lies strictly between the
    /// retry period and the lease duration, and the lease duration is whole seconds.
    pub fn leader_election_config(&self) -> Result<crate::leader::LeaseConfig, String> {
        let lease = self.leader_election_lease_duration;
        let renew = self.leader_election_renew_deadline;
        let retry = self.leader_election_retry_period;
        if lease.subsec_nanos() != 0 || lease.as_secs() == 0 {
            return Err(format!(
                "--leader-election-lease-duration must be whole seconds (the Lease stores seconds), not {lease:?}"
            ));
        }
        if retry.is_zero() || retry >= renew || renew >= lease {
            return Err(format!(
                "leader election needs retry period < renew deadline < lease duration, got {retry:?} / {renew:?} / {lease:?}"
            ));
        }
        Ok(crate::leader::LeaseConfig {
            name: self.leader_election_lease_name.clone(),
            namespace: self
                .leader_election_namespace
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| self.operator_namespace()),
            identity: crate::leader::default_identity(),
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        })
    }

    /// Returns the operator's namespace.
    pub fn operator_namespace(&self) -> String {
        self.operator_namespace
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "amlsecrets-system".to_string())
    }

    /// Returns the namespaces to watch; empty means all.
    pub fn watched_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }

    /// Tells whether `namespace` may use the operator's ambient identities.
    pub fn ambient_allowed(&self, namespace: &str) -> bool {
        let listed: Vec<&String> = self
            .ambient_identity_namespaces
            .iter()
            .filter(|s| !s.is_empty())
            .collect();
        if listed.is_empty() {
            return namespace == self.operator_namespace();
        }
        listed
            .iter()
            .any(|n| n.as_str() == "*" || n.as_str() == namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn readme_documents_every_flag_with_its_env_var() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let mut missing = Vec::new();
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().to_string())
                .unwrap_or_default();
            if !readme.contains(&format!("| `--{long}` | `{env}` |")) {
                missing.push(format!("--{long} ({env})"));
            }
        }
        assert!(missing.is_empty(), "README.md lacks a row for: {missing:?}");
    }

    #[test]
    fn ambient_identities_default_to_the_operator_namespace() {
        let args = Cli::parse_from(["x", "--operator-namespace=ops"]).run;
        assert!(args.ambient_allowed("ops"));
        assert!(!args.ambient_allowed("team-a"));
        let all = Cli::parse_from(["x", "--ambient-identity-namespaces=*"]).run;
        assert!(all.ambient_allowed("team-a"));
    }
}

#[cfg(test)]
mod leader_election_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(flags: &[&str]) -> RunArgs {
        Cli::parse_from(std::iter::once("amlsecrets").chain(flags.iter().copied())).run
    }

    #[test]
    fn leader_election_defaults_are_client_go_timings_in_the_operator_namespace() {
        let args = parse(&["--leader-election", "--operator-namespace=ops"]);
        assert!(args.leader_election);
        let c = args.leader_election_config().unwrap();
        assert_eq!(
            (c.name.as_str(), c.namespace.as_str()),
            ("amlsecrets-leader", "ops")
        );
        let secs = |d: Duration| d.as_secs_f64();
        let timings = (
            secs(c.lease_duration),
            secs(c.renew_deadline),
            secs(c.retry_period),
        );
        assert_eq!(timings, (15.0, 10.0, 2.0));
        assert!(!parse(&[]).leader_election, "off unless asked for");
        assert!(!parse(&["--leader-election=false"]).leader_election);
    }

    #[test]
    fn leader_election_timings_must_be_ordered_and_whole_seconds() {
        for bad in [
            [
                "--leader-election-renew-deadline=15s",
                "--leader-election-retry-period=2s",
            ],
            [
                "--leader-election-renew-deadline=10s",
                "--leader-election-retry-period=10s",
            ],
            [
                "--leader-election-lease-duration=15500ms",
                "--leader-election-retry-period=2s",
            ],
        ] {
            assert!(
                parse(&bad).leader_election_config().is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
