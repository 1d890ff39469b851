use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::api::workspace_secret::WorkspaceRef;
use crate::api::workspace_secret_push::{AllKeys, PushItem, SourceRef, WorkspaceSecretPushStatus};
use crate::sync::report::{Failure, Next, Retry};

fn spec(data: Vec<PushItem>, all: Option<AllKeys>) -> WorkspaceSecretPushSpec {
    WorkspaceSecretPushSpec {
        workspace_ref: WorkspaceRef { name: "ml".into() },
        source: SourceRef { name: "db".into() },
        refresh_interval: None,
        data,
        all_keys: all,
        update_policy: UpdatePolicy::Replace,
        deletion_policy: Default::default(),
        adopt_existing: false,
    }
}

fn item(key: &str, name: &str) -> PushItem {
    PushItem {
        secret_key: key.into(),
        remote_name: name.into(),
        ..Default::default()
    }
}

fn source(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn keys_map_to_key_vault_names() {
    assert_eq!(vault_name("", "DB_PASSWORD"), "db-password");
    assert_eq!(vault_name("app1-", "tls.crt"), "app1-tls-crt");
    assert!(valid_vault_name("db-password"));
    assert!(!valid_vault_name(""));
    assert!(!valid_vault_name(&"a".repeat(128)));
}

#[test]
fn all_keys_are_mapped_explicit_items_win_and_collisions_are_refused() {
    let s = spec(
        vec![item("DB_USER", "user-name")],
        Some(AllKeys {
            prefix: Some("app-".into()),
            ..Default::default()
        }),
    );
    let data = source(&[
        ("DB_USER", b"u"),
        ("DB_PASSWORD", b"p"),
        ("a_b", b"1"),
        ("a.b", b"2"),
    ]);
    let (out, problems) = desired(&s, "db", &data);
    let names: Vec<(&str, &str)> = out
        .iter()
        .map(|d| (d.secret_key.as_str(), d.remote_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [("DB_USER", "user-name"), ("DB_PASSWORD", "app-db-password")]
    );
    let refused: Vec<&str> = problems.iter().map(|p| p.secret_key.as_str()).collect();
    assert_eq!(refused, ["a.b", "a_b"]);
    assert!(problems.iter().all(|p| p.reason == reasons::INVALID_SPEC));
    assert!(problems[0].message.contains("app-a-b"), "{problems:?}");
}

#[test]
fn a_missing_key_binary_value_or_bad_times_are_item_problems() {
    let mut timed = item("b", "b");
    timed.not_before = Some("2030-01-01T00:00:00Z".into());
    timed.expires = Some("2029-01-01T00:00:00Z".into());
    let s = spec(
        vec![
            item("missing", "m"),
            item("bin", "bin"),
            timed,
            item("ok", "ok"),
        ],
        None,
    );
    let data = source(&[
        ("bin", &[0xff, 0xfe]),
        ("b", b"x"),
        ("ok", b"line1\nzwei \xc3\xbc"),
    ]);
    let (out, problems) = desired(&s, "db", &data);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value, "line1\nzwei ü");
    let reasons_seen: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.secret_key.as_str(), p.reason))
        .collect();
    assert_eq!(
        reasons_seen,
        [
            ("missing", reasons::SOURCE_NOT_FOUND),
            ("bin", reasons::INVALID_SPEC),
            ("b", reasons::INVALID_SPEC)
        ]
    );
    assert!(
        !format!("{out:?}").contains("line1"),
        "Debug shows no value"
    );
}

fn one(value: &str) -> Desired {
    let s = spec(vec![item("k", "db-password")], None);
    desired(&s, "db", &source(&[("k", value.as_bytes())]))
        .0
        .remove(0)
}

#[test]
fn digests_are_keyed_and_follow_value_and_metadata() {
    let key = DigestKey::from_bytes(b"k1");
    let d = one("v1");
    let tags = tags_of(&d, "ns/p", "uid");
    let a = key.digest(&d, &tags);
    assert_eq!(a, key.digest(&one("v1"), &tags));
    assert_ne!(a, key.digest(&one("v2"), &tags));
    let mut typed = one("v1");
    typed.metadata.content_type = Some("text/plain".into());
    assert_ne!(a, key.digest(&typed, &tags));
    let other = DigestKey::from_bytes(b"k2");
    assert_ne!(a, other.digest(&d, &tags));
    assert!(key.made_here(&a) && !other.made_here(&a));
    assert!(!a.contains("v1"));
}

fn listed(tags: &[(&str, &str)]) -> SecretProperties {
    SecretProperties {
        name: "db-password".into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn ours() -> SecretProperties {
    listed(&[
        (TAG_MANAGED_BY, MANAGED_BY),
        (TAG_PUSH, "ns/p"),
        (TAG_PUSH_UID, "uid"),
    ])
}

#[test]
fn steps_write_only_real_changes_and_never_over_a_foreign_secret() {
    let key = DigestKey::from_bytes(b"k");
    let d = one("v");
    let digest = key.digest(&d, &tags_of(&d, "ns/p", "uid"));
    let record = PushedItem {
        digest: Some(digest.clone()),
        ..Default::default()
    };
    let replace = UpdatePolicy::Replace;
    let (mine, foreign) = (ours(), listed(&[]));
    let at = |record: Option<&PushedItem>,
              listed: Option<&SecretProperties>,
              digest: &str,
              adopt| { step(&d, record, listed, digest, &key, replace, adopt, "uid") };
    assert_eq!(at(None, Some(&mine), &digest, false), Step::Lookup);
    assert_eq!(
        at(Some(&record), Some(&mine), &digest, false),
        Step::Unchanged
    );
    assert_eq!(
        at(Some(&record), Some(&mine), "other", false),
        Step::Put("the source changed")
    );
    assert!(matches!(
        at(Some(&record), None, &digest, false),
        Step::Put(_)
    ));
    assert!(matches!(
        at(Some(&record), Some(&foreign), &digest, false),
        Step::Conflict(_)
    ));
    assert_eq!(
        at(Some(&record), Some(&foreign), &digest, true),
        Step::Put("adopted")
    );
    let newer_in_vault = SecretProperties {
        updated: Some(2_000_000_000),
        ..ours()
    };
    let written_before = PushedItem {
        updated: Some("2026-01-01T00:00:00Z".into()),
        ..record.clone()
    };
    assert_eq!(
        at(Some(&written_before), Some(&newer_in_vault), "other", false),
        Step::Verify,
        "a vault changed since our write is compared before a write"
    );
    assert_eq!(
        at(Some(&written_before), Some(&newer_in_vault), &digest, false),
        Step::Unchanged,
        "an unchanged source never writes"
    );
    let elsewhere = PushedItem {
        digest: Some(DigestKey::from_bytes(b"old").digest(&d, &BTreeMap::new())),
        ..Default::default()
    };
    assert_eq!(
        at(Some(&elsewhere), Some(&mine), &digest, false),
        Step::Verify
    );
    let keep = step(
        &d,
        Some(&record),
        Some(&mine),
        "other",
        &key,
        UpdatePolicy::IfNotExists,
        false,
        "uid",
    );
    assert_eq!(keep, Step::Unchanged);
}

#[test]
fn a_looked_up_name_is_created_adopted_kept_or_refused() {
    let d = one("v");
    let replace = UpdatePolicy::Replace;
    let foreign = listed(&[("team", "a")]);
    let other_push = listed(&[
        (TAG_MANAGED_BY, MANAGED_BY),
        (TAG_PUSH, "ns/q"),
        (TAG_PUSH_UID, "other"),
    ]);
    assert_eq!(
        step_after_lookup(&d, None, replace, false, "uid"),
        Step::Put("created")
    );
    assert_eq!(
        step_after_lookup(&d, Some(&ours()), replace, false, "uid"),
        Step::Verify
    );
    match step_after_lookup(&d, Some(&other_push), replace, false, "uid") {
        Step::Conflict(m) => assert!(m.contains("ns/q"), "{m}"),
        s => panic!("{s:?}"),
    }
    assert!(matches!(
        step_after_lookup(&d, Some(&foreign), replace, false, "uid"),
        Step::Conflict(_)
    ));
    assert_eq!(
        step_after_lookup(&d, Some(&foreign), replace, true, "uid"),
        Step::Put("adopted")
    );
    assert_eq!(
        step_after_lookup(&d, Some(&foreign), UpdatePolicy::IfNotExists, true, "uid"),
        Step::Keep
    );
}

fn rec(name: &str, version: &str) -> PushedItem {
    PushedItem {
        secret_key: "k".into(),
        remote_name: name.into(),
        version: Some(version.into()),
        updated: Some("2026-01-01T00:00:00Z".into()),
        digest: Some("id:d".into()),
    }
}

fn inputs(previous: &WorkspaceSecretPushStatus) -> Inputs<'_> {
    Inputs {
        previous,
        generation: Some(1),
        refresh: Duration::from_secs(3600),
        now: "2026-01-01T00:00:10Z",
    }
}

#[test]
fn a_push_reports_pushed_with_an_event_per_change_and_none_for_a_no_op() {
    let empty = WorkspaceSecretPushStatus::default();
    let pushed = Pushed {
        vault: "https://kv".into(),
        outcomes: vec![Outcome::Wrote(rec("a", "v1"), "created")],
    };
    let first = report(&inputs(&empty), &Ok(pushed));
    let ready = &first.status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Pushed")
    );
    let reasons: Vec<&str> = first.notices.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, ["Pushed", "PushedVersions"]);
    assert!(
        first.notices[1]
            .note
            .contains("a from key k (version v1, created)")
    );
    assert_eq!(first.next, Next::After(Duration::from_secs(3600)));

    let again = Pushed {
        vault: "https://kv".into(),
        outcomes: vec![Outcome::Current(rec("a", "v1"))],
    };
    let second = report(&inputs(&first.status), &Ok(again));
    assert!(second.notices.is_empty(), "{:?}", second.notices);
    assert!(!second.write_status, "a no-op refresh writes no status");
}

#[test]
fn item_failures_keep_records_and_name_the_reason() {
    let previous = WorkspaceSecretPushStatus {
        items: vec![rec("a", "v1")],
        ..Default::default()
    };
    let pushed = Pushed {
        vault: "https://kv".into(),
        outcomes: vec![
            Outcome::Failed {
                remote_name: "a".into(),
                reason: reasons::THROTTLED,
                message: "Key Vault throttled the request".into(),
                transient: true,
                kept: Some(rec("a", "v1")),
            },
            Outcome::Deleted("gone".into()),
        ],
    };
    let r = report(&inputs(&previous), &Ok(pushed));
    let ready = &r.status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Throttled")
    );
    assert!(ready.message.contains("a: Throttled"), "{}", ready.message);
    assert_eq!(r.status.items, vec![rec("a", "v1")]);
    assert_eq!(r.next, Next::Backoff(Duration::from_secs(3600)));
    assert!(
        r.notices
            .iter()
            .any(|n| n.reason == "DeletedFromVault" && n.note.contains("gone"))
    );
}

#[test]
fn a_whole_failure_keeps_every_record() {
    let previous = WorkspaceSecretPushStatus {
        items: vec![rec("a", "v1")],
        ..Default::default()
    };
    let failure = Failure {
        reason: reasons::SOURCE_NOT_FOUND,
        message: "Secret db does not exist".into(),
        retry: Retry::Backoff,
    };
    let r = report(&inputs(&previous), &Err(failure));
    assert_eq!(r.status.items, previous.items);
    assert_eq!(r.status.conditions[0].reason, "SourceNotFound");
    assert!(r.notices[0].warning);
}
