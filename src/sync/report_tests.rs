//! Unit tests of the report step: retry or requeue, Events on transitions only, stale flags,
//! expiry warnings.
use super::*;
use crate::api::workspace_secret::SyncedKey;
use crate::sync::assemble::ItemError;

const NOW: &str = "2026-12-02T10:00:00Z";
const HOUR: Duration = Duration::from_secs(3600);

fn inputs(previous: &WorkspaceSecretStatus) -> Inputs<'_> {
    Inputs {
        previous,
        generation: Some(3),
        target: "db",
        refresh: HOUR,
        max_retry_delay: Duration::from_secs(300),
        expiry_warning: Duration::from_secs(7 * 24 * 3600),
        now: NOW,
    }
}

fn key(name: &str) -> SyncedKey {
    SyncedKey {
        key: name.into(),
        reference: format!("keyvault:{name}"),
        ..SyncedKey::default()
    }
}

fn synced(keys: &[&str], changed: &[&str]) -> Synced {
    Synced {
        assembled: Assembled {
            synced_keys: keys.iter().map(|k| key(k)).collect(),
            changed: changed.iter().map(|k| k.to_string()).collect(),
            ..Assembled::default()
        },
        notes: vec![],
        data_changed: !changed.is_empty(),
        refresh_within: None,
    }
}

fn failed_item(reason: &'static str, transient: bool) -> Synced {
    let mut s = synced(&["a"], &[]);
    s.assembled.errors.push((
        "b".into(),
        ItemError {
            reason,
            message: "nope".into(),
            not_found: false,
            transient,
        },
    ));
    s
}

fn was(reason: &str, ok: bool) -> WorkspaceSecretStatus {
    WorkspaceSecretStatus {
        conditions: vec![Condition::ready(ok, reason, "before", Some(3), None, NOW)],
        synced_keys: vec![key("a")],
        refresh_time: Some(NOW.into()),
        ..WorkspaceSecretStatus::default()
    }
}

#[test]
fn transient_item_failures_back_off_and_permanent_ones_wait_for_the_interval() {
    let prev = was(reasons::SYNCED, true);
    let r = report(&inputs(&prev), &Ok(failed_item(reasons::THROTTLED, true)));
    assert_eq!(r.next, Next::Backoff(HOUR));
    assert!(!r.healthy);
    let r = report(&inputs(&prev), &Ok(failed_item(reasons::FORBIDDEN, false)));
    assert_eq!(r.next, Next::After(HOUR));
    let r = report(&inputs(&prev), &Ok(synced(&["a"], &[])));
    assert_eq!(r.next, Next::After(HOUR));
    assert!(r.healthy);
}

#[test]
fn whole_failures_retry_by_their_kind_and_sync_once_waits_for_a_change() {
    let prev = was(reasons::SYNCED, true);
    let fail = |retry| {
        Err(Failure {
            reason: reasons::AZURE_ERROR,
            message: "down".into(),
            retry,
        })
    };
    assert_eq!(
        report(&inputs(&prev), &fail(Retry::Backoff)).next,
        Next::Backoff(HOUR)
    );
    assert_eq!(
        report(&inputs(&prev), &fail(Retry::AtInterval)).next,
        Next::After(HOUR)
    );
    assert_eq!(
        report(&inputs(&prev), &fail(Retry::OnSpecChange)).next,
        Next::AwaitChange
    );
    assert_eq!(
        report(&inputs(&prev), &fail(Retry::Pending)).next,
        Next::After(PENDING_RECHECK)
    );
    let mut once = inputs(&prev);
    once.refresh = Duration::ZERO;
    assert_eq!(
        report(&once, &Ok(synced(&["a"], &[]))).next,
        Next::AwaitChange
    );
    assert_eq!(
        report(&once, &fail(Retry::Backoff)).next,
        Next::Backoff(Duration::from_secs(300)),
        "sync-once retries up to --max-retry-delay"
    );
}

#[test]
fn events_follow_transitions_only_and_pending_is_silent() {
    let prev = was(reasons::SYNCED, true);
    let r = report(&inputs(&prev), &Ok(synced(&["a"], &[])));
    assert!(r.notices.is_empty(), "unchanged refresh: {:?}", r.notices);
    let r = report(&inputs(&prev), &Ok(failed_item(reasons::THROTTLED, true)));
    assert_eq!(r.notices.len(), 1);
    assert!(r.notices[0].warning);
    assert_eq!(r.notices[0].reason, reasons::THROTTLED);
    let still = was(reasons::THROTTLED, false);
    let r = report(&inputs(&still), &Ok(failed_item(reasons::THROTTLED, true)));
    assert!(r.notices.is_empty(), "same reason again: {:?}", r.notices);

    let fresh = WorkspaceSecretStatus::default();
    let pending = Err(Failure {
        reason: reasons::WORKSPACE_NOT_READY,
        message: "waiting for the first check".into(),
        retry: Retry::Pending,
    });
    let r = report(&inputs(&fresh), &pending);
    assert!(r.notices.is_empty(), "{:?}", r.notices);
    assert_eq!(r.status.conditions[0].reason, reasons::WORKSPACE_NOT_READY);
}

#[test]
fn updated_keys_are_an_event_after_the_first_sync_but_not_on_it() {
    let first = report(
        &inputs(&WorkspaceSecretStatus::default()),
        &Ok(synced(&["a"], &["a"])),
    );
    assert_eq!(
        first
            .notices
            .iter()
            .map(|n| n.reason.as_str())
            .collect::<Vec<_>>(),
        [reasons::SYNCED]
    );
    let prev = was(reasons::SYNCED, true);
    let r = report(&inputs(&prev), &Ok(synced(&["a", "b"], &["b"])));
    assert_eq!(r.notices.len(), 1);
    assert_eq!(r.notices[0].reason, "Updated");
    assert_eq!(r.notices[0].note, "updated keys: b");
    assert!(!r.notices[0].warning);
}

#[test]
fn a_failed_reconcile_marks_every_key_stale_and_keeps_them() {
    let prev = was(reasons::SYNCED, true);
    let r = report(
        &inputs(&prev),
        &Err(Failure {
            reason: reasons::THROTTLED,
            message: "429".into(),
            retry: Retry::Backoff,
        }),
    );
    assert_eq!(r.status.synced_keys.len(), 1);
    assert!(r.status.synced_keys.iter().all(|k| k.stale));
    assert!(r.write_status);
    assert_eq!(r.status.conditions[0].status, "False");
}

#[test]
fn a_source_entering_the_expiry_window_warns_once() {
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
    let mut s = synced(&["a"], &[]);
    s.assembled.synced_keys[0].expires = Some(soon.clone());
    let prev = was(reasons::SYNCED, true);
    let r = report(&inputs(&prev), &Ok(s));
    let warn: Vec<_> = r
        .notices
        .iter()
        .filter(|n| n.reason == "SecretExpiringSoon")
        .collect();
    assert_eq!(warn.len(), 1, "{:?}", r.notices);
    assert!(
        warn[0].warning && warn[0].note.contains("a at"),
        "{:?}",
        warn[0]
    );

    let mut s = synced(&["a"], &[]);
    s.assembled.synced_keys[0].expires = Some(soon.clone());
    let mut warned = prev.clone();
    warned.synced_keys[0].expires = Some(soon);
    warned.refresh_time = Some(jiff::Timestamp::now().to_string());
    let r = report(&inputs(&warned), &Ok(s));
    assert!(r.notices.iter().all(|n| n.reason != "SecretExpiringSoon"));
}

#[test]
fn the_ready_message_counts_keys_or_says_what_happened() {
    let prev = WorkspaceSecretStatus::default();
    let r = report(&inputs(&prev), &Ok(synced(&["a", "b"], &[])));
    assert_eq!(
        r.status.conditions[0].message,
        "2 keys synced into Secret db"
    );
    let mut none = synced(&[], &[]);
    none.notes
        .push("no enabled vault secret matches dataFrom[0].find".into());
    let r = report(&inputs(&prev), &Ok(none));
    assert_eq!(
        r.status.conditions[0].message,
        "no enabled vault secret matches dataFrom[0].find"
    );
    assert_eq!(r.status.target_name.as_deref(), Some("db"));
    assert_eq!(r.status.observed_generation, Some(3));
}

#[test]
fn a_token_due_before_the_interval_brings_the_next_sync_forward_even_for_sync_once() {
    let prev = was(reasons::SYNCED, true);
    let mut s = synced(&["a"], &[]);
    s.refresh_within = Some(Duration::from_secs(40));
    assert_eq!(
        report(&inputs(&prev), &Ok(s)).next,
        Next::After(Duration::from_secs(40))
    );
    let mut once = inputs(&prev);
    once.refresh = Duration::ZERO;
    let mut s = synced(&["a"], &[]);
    s.refresh_within = Some(Duration::from_secs(40));
    assert_eq!(
        report(&once, &Ok(s)).next,
        Next::After(Duration::from_secs(40))
    );
    let mut s = synced(&["a"], &[]);
    s.refresh_within = Some(Duration::from_secs(7200));
    assert_eq!(report(&inputs(&prev), &Ok(s)).next, Next::After(HOUR));
}

#[test]
fn an_unchanged_refresh_writes_no_status_however_old_it_is() {
    let mut prev = was(reasons::SYNCED, true);
    prev.conditions[0].message = "1 keys synced into Secret db".into();
    prev.refresh_time = Some("2020-01-01T00:00:00Z".into());
    prev.target_name = Some("db".into());
    prev.observed_generation = Some(3);
    let r = report(&inputs(&prev), &Ok(synced(&["a"], &[])));
    assert!(!r.write_status, "nothing a user reads changed");
    assert!(r.notices.is_empty());
    let mut newer = synced(&["a"], &["a"]);
    newer.assembled.synced_keys[0].version = Some("v2".into());
    let r = report(&inputs(&prev), &Ok(newer));
    assert!(r.write_status, "a new version is shown");
    assert_eq!(r.status.refresh_time.as_deref(), Some(NOW));
}
