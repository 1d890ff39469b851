//! Which workloads follow which Secrets, and when one is rolled (pure; the IO is in
//! `controller::rollout`).
//!
//! A workload opts in with [`AUTO_ANNOTATION`] (every amlsecrets-managed Secret its pod template
//! uses) or [`SECRETS_ANNOTATION`] (the Secrets it names). The operator keeps a keyed digest of
//! the data of those Secrets in the workload's own [`DIGEST_ANNOTATION`]; a rollout sets the same
//! annotation on the pod template, which the workload controller turns into a normal rolling
//! update. The digest is an HMAC under a key only the operator holds, so it tells nothing about the
//! values to someone who can read the workload but not the Secrets.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use ring::hmac;

/// `"true"` on a Deployment, StatefulSet or DaemonSet: roll it when any amlsecrets-managed Secret
/// its pod template uses changes.
pub const AUTO_ANNOTATION: &str = "amlsecrets.io/rollout";
/// A comma-separated list of Secret names: roll the workload when one of these (managed) Secrets
/// changes, whether or not the pod template references it.
pub const SECRETS_ANNOTATION: &str = "amlsecrets.io/rollout-secrets";
/// Set by the operator, on the workload (the data its pods run with) and, when it rolls the
/// workload, on the pod template: a keyed digest of the data of the Secrets it follows.
pub const DIGEST_ANNOTATION: &str = "amlsecrets.io/secrets-digest";
/// Set by the operator on a managed Secret (with rollouts on): when it last changed its data.
pub const CHANGED_ANNOTATION: &str = "amlsecrets.io/data-changed-at";

/// Which Secrets a workload asked to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptIn {
    /// Every managed Secret the pod template uses.
    Auto,
    /// The Secrets named.
    Named(BTreeSet<String>),
}

/// Reads a workload's opt-in from its annotations; `None` when it has not opted in.
pub fn opt_in(annotations: Option<&BTreeMap<String, String>>) -> Option<OptIn> {
    let annotations = annotations?;
    let named: BTreeSet<String> = annotations
        .get(SECRETS_ANNOTATION)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let auto = annotations
        .get(AUTO_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    match (auto, named.is_empty()) {
        (true, _) => Some(OptIn::Auto),
        (false, false) => Some(OptIn::Named(named)),
        (false, true) => None,
    }
}

/// Every Secret a pod template uses: volumes (also projected), and `env[].valueFrom.secretKeyRef`
/// and `envFrom[].secretRef` of containers and init containers. Optional references count: the
/// pod reads the Secret whenever it exists.
pub fn secrets_used(spec: &PodSpec) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            used.insert(name);
        }
        let sources = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in sources.into_iter().flatten() {
            if let Some(s) = &source.secret {
                used.insert(s.name.clone());
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        used.extend(container_secrets(c));
    }
    used.retain(|n| !n.is_empty());
    used
}

fn container_secrets(c: &Container) -> impl Iterator<Item = String> + '_ {
    let from_env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.clone());
    let from_env_from = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.secret_ref.as_ref())
        .map(|r| r.name.clone());
    from_env.chain(from_env_from)
}

/// The Secrets a workload follows: those it opted into that the operator manages.
pub fn followed(
    opt_in: &OptIn,
    template: &PodSpec,
    managed: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    let candidates = match opt_in {
        OptIn::Auto => secrets_used(template),
        OptIn::Named(names) => names.clone(),
    };
    candidates.into_iter().filter(|n| managed(n)).collect()
}

/// The keyed digest of the data of the Secrets a workload follows: HMAC-SHA256 over every
/// (Secret, key, value), each length-prefixed, in name order; hex.
pub fn digest(key: &hmac::Key, secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> String {
    let mut ctx = hmac::Context::with_key(key);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    for (name, data) in secrets {
        field(name.as_bytes());
        field(&(data.len() as u64).to_be_bytes());
        for (k, v) in data {
            field(k.as_bytes());
            field(v);
        }
    }
    let tag = ctx.sign();
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What to do with one workload that follows the Secret just synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It runs with the current data.
    Current,
    /// Record the digest on the workload only: its pods already run with the current data (or
    /// none run), so nothing restarts.
    Stamp,
    /// Set the digest on the pod template: the workload controller rolls it.
    Roll,
}

/// What is known about a workload and the data it follows.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The digest of the current data.
    pub digest: &'a str,
    /// The digest the workload last ran with, as the operator recorded it.
    pub recorded: Option<&'a str>,
    /// Whether this sync changed the data of a Secret the workload follows.
    pub changed_now: bool,
    /// When the oldest running container of the workload started (`None`: none runs).
    pub oldest_start: Option<Timestamp>,
    /// When the operator last changed the data of a followed Secret, as far as it can tell.
    pub last_change: Option<Timestamp>,
}

/// Decides whether a workload is rolled. A recorded digest decides alone, which makes the
/// decision idempotent across retries, replicas and restarts: one rollout per data change. A
/// workload that opted in since (nothing recorded) is rolled only when its pods run with data
/// older than the last change; otherwise its digest is recorded without a restart.
pub fn decide(f: &Facts<'_>) -> Decision {
    match f.recorded {
        Some(d) if d == f.digest => Decision::Current,
        Some(_) => Decision::Roll,
        None => {
            let Some(started) = f.oldest_start else {
                return Decision::Stamp;
            };
            let older = f.changed_now || f.last_change.is_some_and(|c| started < c);
            if older {
                Decision::Roll
            } else {
                Decision::Stamp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_reference_form_counts_including_init_containers_and_optional_refs() {
        let spec = pod_spec(json!({
            "volumes": [
                { "name": "a", "secret": { "secretName": "vol" } },
                { "name": "b", "projected": { "sources": [
                    { "secret": { "name": "projected" } },
                    { "configMap": { "name": "not-a-secret" } } ] } },
                { "name": "c", "configMap": { "name": "cm" } }
            ],
            "initContainers": [{ "name": "init", "envFrom": [{ "secretRef": { "name": "init-envfrom" } }] }],
            "containers": [
                { "name": "app",
                  "env": [
                    { "name": "X", "valueFrom": { "secretKeyRef": { "name": "keyref", "key": "k", "optional": true } } },
                    { "name": "Y", "valueFrom": { "configMapKeyRef": { "name": "cm2", "key": "k" } } },
                    { "name": "Z", "value": "plain" } ],
                  "envFrom": [{ "secretRef": { "name": "envfrom", "optional": true } }, { "configMapRef": { "name": "cm3" } }] },
                { "name": "sidecar" }
            ]
        }));
        let used: Vec<String> = secrets_used(&spec).into_iter().collect();
        assert_eq!(
            used,
            ["envfrom", "init-envfrom", "keyref", "projected", "vol"]
        );
        assert!(secrets_used(&PodSpec::default()).is_empty());
    }

    #[test]
    fn opt_in_by_auto_or_by_name_and_only_managed_secrets_are_followed() {
        let ann = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(opt_in(None), None);
        assert_eq!(opt_in(Some(&ann(&[("other", "true")]))), None);
        assert_eq!(opt_in(Some(&ann(&[(AUTO_ANNOTATION, "false")]))), None);
        assert_eq!(
            opt_in(Some(&ann(&[(AUTO_ANNOTATION, "True")]))),
            Some(OptIn::Auto)
        );
        let named = opt_in(Some(&ann(&[(SECRETS_ANNOTATION, " db , ,api ")]))).unwrap();
        assert_eq!(
            named,
            OptIn::Named(["api".to_string(), "db".to_string()].into())
        );

        let spec = pod_spec(json!({ "containers": [{ "name": "app",
            "envFrom": [{ "secretRef": { "name": "db" } }, { "secretRef": { "name": "hand-made" } }] }] }));
        let managed = |n: &str| n != "hand-made";
        let auto: Vec<String> = followed(&OptIn::Auto, &spec, managed).into_iter().collect();
        assert_eq!(auto, ["db"]);
        let by_name: Vec<String> = followed(&named, &spec, managed).into_iter().collect();
        assert_eq!(
            by_name,
            ["api", "db"],
            "named Secrets need not be referenced"
        );
    }

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    fn data(pairs: &[(&str, &str, &[u8])]) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for (secret, k, v) in pairs {
            out.entry(secret.to_string())
                .or_default()
                .insert(k.to_string(), v.to_vec());
        }
        out
    }

    #[test]
    fn the_digest_changes_with_any_value_key_or_secret_and_never_shows_a_value() {
        let base = data(&[("db", "PASSWORD", b"hunter2"), ("db", "USER", b"ml")]);
        let d = digest(&key(1), &base);
        assert_eq!(d.len(), 64);
        assert_eq!(d, digest(&key(1), &base.clone()), "stable");
        assert_ne!(d, digest(&key(2), &base), "keyed");
        for changed in [
            data(&[("db", "PASSWORD", b"hunter3"), ("db", "USER", b"ml")]),
            data(&[("db", "PASSWORD2", b"hunter2"), ("db", "USER", b"ml")]),
            data(&[("db2", "PASSWORD", b"hunter2"), ("db2", "USER", b"ml")]),
            data(&[("db", "PASSWORD", b"hunter2")]),
            // Boundaries are length-prefixed: moving bytes between key and value changes it.
            data(&[("db", "PASSWORDh", b"unter2"), ("db", "USER", b"ml")]),
        ] {
            assert_ne!(d, digest(&key(1), &changed), "{changed:?}");
        }
        assert!(!d.contains("hunter2"));
        let plain: String = b"hunter2".iter().map(|b| format!("{b:02x}")).collect();
        assert!(!d.contains(&plain));
    }

    #[test]
    fn one_rollout_per_change_and_late_opt_ins_only_when_their_pods_are_older() {
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let facts = Facts {
            digest: "new",
            recorded: Some("new"),
            changed_now: true,
            oldest_start: Some(t(0)),
            last_change: Some(t(100)),
        };
        assert_eq!(decide(&facts), Decision::Current, "already rolled");
        let old = Facts {
            recorded: Some("old"),
            changed_now: false,
            ..facts
        };
        assert_eq!(decide(&old), Decision::Roll, "data changed since");
        // Newly opted in: decided by what its pods run with.
        let late = Facts {
            recorded: None,
            changed_now: false,
            ..facts
        };
        assert_eq!(decide(&late), Decision::Roll, "pods older than the change");
        let fresh = Facts {
            oldest_start: Some(t(200)),
            ..late
        };
        assert_eq!(decide(&fresh), Decision::Stamp, "pods started after it");
        let first_sync = Facts {
            last_change: None,
            ..late
        };
        assert_eq!(decide(&first_sync), Decision::Stamp);
        let changed = Facts {
            changed_now: true,
            ..fresh
        };
        assert_eq!(decide(&changed), Decision::Roll, "changed by this sync");
        let idle = Facts {
            oldest_start: None,
            ..changed
        };
        assert_eq!(
            decide(&idle),
            Decision::Stamp,
            "no pod runs, nothing to roll"
        );
    }
}
