//! The pure end of a `WorkspaceSecretPush` reconcile: from what became of each item (or why the
//! whole push failed) and the previous status, decide the new status, the Events and when to look
//! again.

use std::time::Duration;

use super::report::{Failure, Next, Notice, Retry};
use crate::api::conditions::{Condition, events, find_ready, reasons};
use crate::api::workspace_secret_push::{PushedItem, WorkspaceSecretPushStatus};

/// What became of one item in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new version was written; the text says why.
    Wrote(PushedItem, &'static str),
    /// The vault holds what the source holds.
    Current(PushedItem),
    /// Left alone under `IfNotExists` (it exists).
    Kept(String),
    /// Deleted from the vault (`deletionPolicy: Delete`).
    Deleted(String),
    /// Failed; the last record (if any) is kept.
    Failed {
        /// The vault name.
        remote_name: String,
        /// The condition reason.
        reason: &'static str,
        /// What happened (never a value).
        message: String,
        /// Whether a retry soon may help.
        transient: bool,
        /// The record kept from before.
        kept: Option<PushedItem>,
    },
}

/// What a push that got as far as the vault achieved.
#[derive(Debug, Default)]
pub struct Pushed {
    /// The vault URI.
    pub vault: String,
    /// Per item (and per vault secret released).
    pub outcomes: Vec<Outcome>,
}

/// What the report needs besides the outcome.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The status before.
    pub previous: &'a WorkspaceSecretPushStatus,
    /// The object's generation.
    pub generation: Option<i64>,
    /// The refresh interval.
    pub refresh: Duration,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// Everything the reconcile publishes.
#[derive(Debug)]
pub struct Report {
    /// The new status.
    pub status: WorkspaceSecretPushStatus,
    /// Whether the status is worth a write.
    pub write_status: bool,
    /// When to look again.
    pub next: Next,
    /// Events.
    pub notices: Vec<Notice>,
    /// Whether the object is healthy (its backoff can be forgotten).
    pub healthy: bool,
}

/// Decides status, Events and the next look from a push's outcome (pure).
pub fn report(input: &Inputs<'_>, outcome: &Result<Pushed, Failure>) -> Report {
    let previous = input.previous;
    let prev_ready = find_ready(&previous.conditions);
    let mut status = WorkspaceSecretPushStatus {
        observed_generation: input.generation,
        refresh_time: Some(input.now.to_string()),
        ..previous.clone()
    };
    let mut notices = Vec::new();
    let (ok, reason, message, next) = match outcome {
        Ok(pushed) => {
            status.vault = Some(pushed.vault.clone());
            status.items = pushed
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Wrote(r, _) | Outcome::Current(r) => Some(r.clone()),
                    Outcome::Failed { kept, .. } => kept.clone(),
                    Outcome::Kept(_) | Outcome::Deleted(_) => None,
                })
                .collect();
            status
                .items
                .sort_by(|a, b| a.remote_name.cmp(&b.remote_name));
            let wrote: Vec<String> = pushed
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Wrote(r, why) => Some(format!(
                        "{} from key {} (version {}, {why})",
                        r.remote_name,
                        r.secret_key,
                        r.version.as_deref().unwrap_or("?")
                    )),
                    _ => None,
                })
                .collect();
            if !wrote.is_empty() {
                notices.push(Notice {
                    warning: false,
                    reason: events::PUSHED_VERSIONS.into(),
                    note: format!("wrote {}", wrote.join("; ")),
                });
            }
            let deleted: Vec<&str> = pushed
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Deleted(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            if !deleted.is_empty() {
                notices.push(Notice {
                    warning: false,
                    reason: events::DELETED_FROM_VAULT.into(),
                    note: format!(
                        "deleted {} from the vault (deletionPolicy: Delete; on a soft-delete vault each name stays reserved until purged)",
                        deleted.join(", ")
                    ),
                });
            }
            let failures: Vec<(&str, &'static str, &str, bool)> = pushed
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Failed {
                        remote_name,
                        reason,
                        message,
                        transient,
                        ..
                    } => Some((remote_name.as_str(), *reason, message.as_str(), *transient)),
                    _ => None,
                })
                .collect();
            match failures.first() {
                None => (
                    true,
                    reasons::PUSHED,
                    pushed_message(pushed, &status),
                    Next::After(input.refresh),
                ),
                Some((_, reason, _, _)) => {
                    let message = failures
                        .iter()
                        .map(|(n, r, m, _)| format!("{n}: {r}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let next = if failures.iter().any(|f| f.3) {
                        Next::Backoff(input.refresh)
                    } else {
                        Next::After(input.refresh)
                    };
                    let current = pushed
                        .outcomes
                        .iter()
                        .filter(|o| matches!(o, Outcome::Wrote(..) | Outcome::Current(_)))
                        .count();
                    (
                        false,
                        *reason,
                        format!("{message} ({current} other vault secrets up to date)"),
                        next,
                    )
                }
            }
        }
        Err(f) => {
            let next = match f.retry {
                Retry::OnSpecChange => Next::AwaitChange,
                Retry::Backoff => Next::Backoff(input.refresh),
                Retry::Pending => Next::After(input.refresh.min(super::report::PENDING_RECHECK)),
                Retry::AtInterval => Next::After(input.refresh),
            };
            (false, f.reason, f.message.clone(), next)
        }
    };
    let pending = matches!(outcome, Err(f) if f.retry == Retry::Pending);
    let ready = Condition::ready(ok, reason, message, input.generation, prev_ready, input.now);
    let transition =
        prev_ready.is_none_or(|p| p.status != ready.status || p.reason != ready.reason);
    if transition && !pending {
        notices.insert(
            0,
            Notice {
                warning: !ok,
                reason: ready.reason.clone(),
                note: ready.message.clone(),
            },
        );
    }
    status.conditions = vec![ready];
    let write_status = worth_writing(previous, &status, input.refresh);
    Report {
        status,
        write_status,
        next,
        notices,
        healthy: ok,
    }
}

fn pushed_message(pushed: &Pushed, status: &WorkspaceSecretPushStatus) -> String {
    let kept: Vec<&str> = pushed
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Kept(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let mut text = format!(
        "{} vault secrets up to date in {}",
        status.items.len(),
        pushed.vault
    );
    if !kept.is_empty() {
        text.push_str(&format!(
            "; left as they are (updatePolicy IfNotExists, they exist): {}",
            kept.join(", ")
        ));
    }
    text
}

/// Tells whether a new status is worth a write: anything but the refresh time changed, or the
/// last written refresh time is older than half the interval.
fn worth_writing(
    previous: &WorkspaceSecretPushStatus,
    next: &WorkspaceSecretPushStatus,
    refresh: Duration,
) -> bool {
    let strip = |s: &WorkspaceSecretPushStatus| WorkspaceSecretPushStatus {
        refresh_time: None,
        ..s.clone()
    };
    if strip(previous) != strip(next) {
        return true;
    }
    let age = |s: &WorkspaceSecretPushStatus| {
        s.refresh_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    match (age(previous), age(next)) {
        (Some(a), Some(b)) => (b.as_second() - a.as_second()) as u64 >= refresh.as_secs() / 2,
        _ => true,
    }
}
