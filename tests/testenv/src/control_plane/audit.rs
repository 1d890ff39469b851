//! The API server's audit log, off by default: a benchmark turns it on to count the requests
//! one identity makes. Every request is logged at level Metadata (verb, user, resource, no
//! bodies) as JSON lines, without the RequestReceived stage, so a request appears once when
//! it completes, and a long-running one (a watch) once more when its response starts.

use std::path::Path;

/// The audit policy: every request at level Metadata, RequestReceived omitted.
const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

/// Name of the audit log file in the control plane's data directory.
pub(super) const LOG_FILE: &str = "audit.log";

/// Writes the policy into `dir` and returns the API server flags that log to `dir/audit.log`:
/// JSON, written before the response is sent (blocking mode), never rotated during a run.
pub(super) fn flags(dir: &Path) -> Result<Vec<String>, super::Error> {
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, POLICY)
        .map_err(|e| super::Error::Io(format!("cannot write {}", policy.display()), e))?;
    Ok(vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", dir.join(LOG_FILE).display()),
        "--audit-log-format=json".to_owned(),
        "--audit-log-mode=blocking".to_owned(),
        // Megabytes; the default (100) would rotate the file under a reader during a large run.
        "--audit-log-maxsize=1000000".to_owned(),
    ])
}
