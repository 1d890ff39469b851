//! Measuring periods of the run (start-up, first sync, each cycle): the operator's API-server
//! requests from the audit log, its CPU time, and the kube-apiserver's CPU time.

use std::time::Instant;

use crate::audit::{AuditLog, Requests};
use crate::process::sample;

/// What one period cost.
#[derive(Clone, Debug, Default)]
pub(crate) struct Period {
    pub(crate) seconds: f64,
    pub(crate) requests: Requests,
    pub(crate) operator_cpu_s: f64,
    pub(crate) apiserver_cpu_s: f64,
}

impl Period {
    /// Sums periods.
    pub(crate) fn sum<'a>(periods: impl IntoIterator<Item = &'a Period>) -> Period {
        let mut total = Period::default();
        for p in periods {
            total.seconds += p.seconds;
            total.requests.merge(&p.requests);
            total.operator_cpu_s += p.operator_cpu_s;
            total.apiserver_cpu_s += p.apiserver_cpu_s;
        }
        total
    }

    /// One line for the log.
    pub(crate) fn line(&self) -> String {
        format!(
            "{:.1} s: operator CPU {:.2} s, kube-apiserver CPU {:.2} s, API-server requests by the operator {}",
            self.seconds,
            self.operator_cpu_s,
            self.apiserver_cpu_s,
            self.requests.line()
        )
    }
}

/// Cuts the run into periods, each measured from the end of the one before.
pub(crate) struct Meter {
    operator: u32,
    apiserver: u32,
    audit: AuditLog,
    since: Instant,
    operator_cpu: f64,
    apiserver_cpu: f64,
}

impl Meter {
    /// Starts the first period now.
    pub(crate) fn start(operator: u32, apiserver: u32, audit: AuditLog) -> Self {
        Self {
            operator,
            apiserver,
            audit,
            since: Instant::now(),
            operator_cpu: sample(operator).cpu_secs,
            apiserver_cpu: sample(apiserver).cpu_secs,
        }
    }

    /// Ends the current period, returns what it cost, and starts the next.
    pub(crate) fn lap(&mut self) -> Period {
        let (operator_cpu, apiserver_cpu) = (
            sample(self.operator).cpu_secs,
            sample(self.apiserver).cpu_secs,
        );
        let period = Period {
            seconds: self.since.elapsed().as_secs_f64(),
            requests: self.audit.take(),
            operator_cpu_s: operator_cpu - self.operator_cpu,
            apiserver_cpu_s: apiserver_cpu - self.apiserver_cpu,
        };
        self.since = Instant::now();
        self.operator_cpu = operator_cpu;
        self.apiserver_cpu = apiserver_cpu;
        period
    }

    /// Audit-log lines that did not parse (should be none).
    pub(crate) fn unreadable(&self) -> usize {
        self.audit.unreadable
    }
}
