//! The pure end of a WorkspaceSecret reconcile: from what the sync achieved (or why it failed) and
//! the previous status, decide the new status, when to look again and which Events to emit.

use std::time::Duration;

use super::assemble::{Assembled, summary};
use super::status::{newly_expiring, newly_expiring_connections, worth_writing};
use crate::api::conditions::{Condition, events, find_ready, reasons};
use crate::api::workspace_secret::WorkspaceSecretStatus;

/// How a failed reconcile should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A retry soon may help (network, server, throttling, Kubernetes API): back off.
    Backoff,
    /// Only a change in Azure or the cluster helps: look again at the refresh interval.
    AtInterval,
    /// Only a spec change helps.
    OnSpecChange,
    /// Not a failure: waiting for something that will wake the object (the workspace's check).
    Pending,
}

/// Why a whole reconcile failed, in the words status shows.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The condition reason.
    pub reason: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// How to retry.
    pub retry: Retry,
}

/// What a sync that got as far as writing achieved.
#[derive(Debug, Default)]
pub struct Synced {
    /// The assembled data and per-key results.
    pub assembled: Assembled,
    /// Notes for the `Ready` message (skipped secrets, connections without secrets…).
    pub notes: Vec<String>,
    /// When a source must be read again sooner than the refresh interval (an endpoint token's
    /// own schedule), how soon.
    pub refresh_within: Option<Duration>,
    /// Whether the write changed the target Secret's data (created, changed, removed keys).
    pub data_changed: bool,
}

/// What the reconcile knows besides the outcome.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The status before this reconcile.
    pub previous: &'a WorkspaceSecretStatus,
    /// The object's generation.
    pub generation: Option<i64>,
    /// The target Secret's name.
    pub target: &'a str,
    /// The refresh interval (zero: sync once).
    pub refresh: Duration,
    /// `--max-retry-delay`: the longest retry wait of a sync-once object.
    pub max_retry_delay: Duration,
    /// `--expiry-warning`.
    pub expiry_warning: Duration,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// When to reconcile again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// After the object's next backoff step, capped at this.
    Backoff(Duration),
    /// After about this long (the controller adds jitter).
    After(Duration),
    /// Only when something changes.
    AwaitChange,
}

/// An Event to emit about the WorkspaceSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (else Normal).
    pub warning: bool,
    /// The Event reason.
    pub reason: String,
    /// The Event note (never a value).
    pub note: String,
}

/// Everything the reconcile must publish.
#[derive(Debug)]
pub struct Report {
    /// The new status.
    pub status: WorkspaceSecretStatus,
    /// Whether writing the status is worth an API call.
    pub write_status: bool,
    /// When to look again.
    pub next: Next,
    /// Events, in order.
    pub notices: Vec<Notice>,
    /// Whether the object is healthy (its backoff can be forgotten).
    pub healthy: bool,
}

/// How long a WorkspaceSecret waits at most before looking again at a workspace not checked yet.
pub const PENDING_RECHECK: Duration = Duration::from_secs(30);

/// Decides the status, the next reconcile and the Events from the sync's outcome.
pub fn report(input: &Inputs<'_>, outcome: &Result<Synced, Failure>) -> Report {
    let previous = input.previous;
    let prev_ready = find_ready(&previous.conditions);
    let retry_cap = if input.refresh.is_zero() {
        input.max_retry_delay
    } else {
        input.refresh
    };
    let at_interval = if input.refresh.is_zero() {
        Next::AwaitChange
    } else {
        Next::After(input.refresh)
    };
    let mut status = WorkspaceSecretStatus {
        observed_generation: input.generation,
        target_name: Some(input.target.to_string()),
        refresh_time: Some(input.now.to_string()),
        ..previous.clone()
    };
    let mut notices = Vec::new();
    let (ok, reason, message, next, healthy, pending) = match outcome {
        Ok(synced) => {
            status.synced_keys = synced.assembled.synced_keys.clone();
            match summary(&synced.assembled) {
                Some((reason, message)) => {
                    let transient = synced.assembled.errors.iter().any(|(_, e)| e.transient);
                    let next = if transient {
                        Next::Backoff(retry_cap)
                    } else {
                        at_interval
                    };
                    (false, reason, message, next, false, false)
                }
                None => (
                    true,
                    reasons::SYNCED,
                    synced_message(synced, input.target),
                    at_interval,
                    true,
                    false,
                ),
            }
        }
        Err(f) => {
            for k in &mut status.synced_keys {
                k.stale = true;
            }
            let next = match f.retry {
                Retry::OnSpecChange => Next::AwaitChange,
                Retry::Pending => Next::After(retry_cap.min(PENDING_RECHECK)),
                Retry::Backoff => Next::Backoff(retry_cap),
                Retry::AtInterval => Next::After(retry_cap),
            };
            let pending = f.retry == Retry::Pending;
            (false, f.reason, f.message.clone(), next, false, pending)
        }
    };
    let ready = Condition::ready(ok, reason, message, input.generation, prev_ready, input.now);
    let transition =
        prev_ready.is_none_or(|p| p.status != ready.status || p.reason != ready.reason);
    if transition && !pending {
        notices.push(Notice {
            warning: !ok,
            reason: ready.reason.clone(),
            note: ready.message.clone(),
        });
    }
    let next = match (outcome, next) {
        (
            Ok(Synced {
                refresh_within: Some(soon),
                ..
            }),
            Next::After(d),
        ) => Next::After(d.min(*soon)),
        (
            Ok(Synced {
                refresh_within: Some(soon),
                ..
            }),
            Next::AwaitChange,
        ) => Next::After(*soon),
        (_, next) => next,
    };
    if let Ok(synced) = outcome {
        if !synced.assembled.changed.is_empty() && prev_ready.is_some() {
            notices.push(Notice {
                warning: false,
                reason: events::UPDATED.into(),
                note: format!("updated keys: {}", synced.assembled.changed.join(", ")),
            });
        }
        let keys = &synced.assembled.synced_keys;
        for (name, at) in newly_expiring_connections(previous, keys, input.expiry_warning) {
            notices.push(connection_expiry(&name, &at));
        }
        let soon = newly_expiring(previous, keys, input.expiry_warning);
        if !soon.is_empty() {
            notices.push(Notice {
                warning: true,
                reason: events::SECRET_EXPIRING_SOON.into(),
                note: format!("sources expire soon: {}", soon.join(", ")),
            });
        }
    }
    status.conditions = vec![ready];
    let write_status = worth_writing(previous, &status) || !notices.is_empty();
    Report {
        status,
        write_status,
        next,
        notices,
        healthy,
    }
}

/// The Warning for a connection whose credentials expire soon or have expired.
fn connection_expiry(name: &str, at: &str) -> Notice {
    let left = at
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second() - jiff::Timestamp::now().as_second())
        .unwrap_or(0);
    let (reason, note) = if left <= 0 {
        (
            events::CONNECTION_EXPIRED,
            format!(
                "the credentials of workspace connection {name} expired at {at}; rotate them in Azure ML (the Secret follows within the refresh interval)"
            ),
        )
    } else {
        (
            events::CONNECTION_EXPIRING,
            format!(
                "the credentials of workspace connection {name} expire at {at} (in {}h); rotate them in Azure ML before then",
                left / 3600
            ),
        )
    };
    Notice {
        warning: true,
        reason: reason.into(),
        note,
    }
}

fn synced_message(synced: &Synced, target: &str) -> String {
    let mut parts = Vec::new();
    if !synced.assembled.synced_keys.is_empty() {
        parts.push(format!(
            "{} keys synced into Secret {target}",
            synced.assembled.synced_keys.len()
        ));
    }
    parts.extend(synced.notes.iter().cloned());
    parts.join("; ")
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
