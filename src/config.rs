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

    /// The address of the admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "AMLSECRETS_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
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
