//! The readers of a shared vault view and what each one reads, so that a listing which shows a
//! change wakes exactly the WorkspaceSecrets that read the changed secrets (and no others).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use crate::api::workspace_secret::WorkspaceSecret;
use crate::azure::SecretProperties;
use crate::sync::plan::CompiledFind;

/// A WorkspaceSecret that reads a view.
pub type Reader = ObjectRef<WorkspaceSecret>;

/// Wakes readers at once (the controller reconciles them).
pub type Wake = Arc<dyn Fn(Vec<Reader>) + Send + Sync>;

/// What a reader reads from one vault.
#[derive(Clone, Default)]
pub struct Interest {
    /// The names it reads (any case), explicitly or through a find.
    pub names: BTreeSet<String>,
    /// Its finds: a new, changed or removed secret they match wakes it too.
    pub finds: Vec<CompiledFind>,
    /// Its refresh interval: the view is listed at least this often while it reads.
    pub interval: Duration,
}

impl Interest {
    /// Tells whether a change from `old` to `new` (either absent) concerns this reader.
    fn concerns(
        &self,
        name: &str,
        old: Option<&SecretProperties>,
        new: Option<&SecretProperties>,
    ) -> bool {
        self.names.contains(name)
            || self
                .finds
                .iter()
                .any(|f| old.is_some_and(|s| f.matches(s)) || new.is_some_and(|s| f.matches(s)))
    }
}

struct Registered {
    interest: Interest,
    at: Instant,
}

/// The readers of one view.
#[derive(Default)]
pub(crate) struct Readers {
    map: Mutex<HashMap<Reader, Registered>>,
}

/// A reader that has not synced for this many of its intervals (plus a minute) is forgotten: it
/// was deleted, or stopped reading this vault, without telling.
const FORGET_AFTER_INTERVALS: u32 = 3;

impl Readers {
    /// Records (or replaces) what `reader` reads.
    pub(crate) fn follow(&self, reader: Reader, mut interest: Interest) {
        interest.names = interest
            .names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let at = Instant::now();
        self.lock().insert(reader, Registered { interest, at });
    }

    /// Forgets every reader.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets a reader; tells whether it was one.
    pub(crate) fn forget(&self, reader: &Reader) -> bool {
        self.lock().remove(reader).is_some()
    }

    /// How often the view must be listed: the shortest interval of its readers; `None` without
    /// readers. Forgets readers silent for too long first.
    pub(crate) fn period(&self) -> Option<Duration> {
        let mut map = self.lock();
        map.retain(|_, r| {
            r.at.elapsed() < r.interval_of() * FORGET_AFTER_INTERVALS + Duration::from_secs(60)
        });
        map.values().map(|r| r.interest.interval).min()
    }

    /// Every reader.
    pub(crate) fn all(&self) -> Vec<Reader> {
        self.lock().keys().cloned().collect()
    }

    /// The readers that a change from `old` to `new` concerns.
    pub(crate) fn concerned(
        &self,
        old: &[SecretProperties],
        new: &[SecretProperties],
    ) -> Vec<Reader> {
        let changed = changes(old, new);
        if changed.is_empty() {
            return Vec::new();
        }
        self.lock()
            .iter()
            .filter(|(_, r)| {
                changed
                    .iter()
                    .any(|(name, (o, n))| r.interest.concerns(name, *o, *n))
            })
            .map(|(reader, _)| reader.clone())
            .collect()
    }

    /// How many readers there are.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Reader, Registered>> {
        self.map.lock().expect("readers lock")
    }
}

impl Registered {
    fn interval_of(&self) -> Duration {
        self.interest.interval
    }
}

/// What changed between two listings, by lower-case name: `(before, after)`, either absent for a
/// secret added or removed. A new version, a changed attribute (enabled, dates, content type) or
/// changed tags all count.
pub(crate) type Changes<'a> =
    BTreeMap<String, (Option<&'a SecretProperties>, Option<&'a SecretProperties>)>;

/// Compares two listings.
pub(crate) fn changes<'a>(old: &'a [SecretProperties], new: &'a [SecretProperties]) -> Changes<'a> {
    let by_name = |l: &'a [SecretProperties]| -> BTreeMap<String, &'a SecretProperties> {
        l.iter().map(|s| (s.name.to_ascii_lowercase(), s)).collect()
    };
    let (before, after) = (by_name(old), by_name(new));
    let mut out = Changes::new();
    // The same secret whatever the case the vault spells its name in.
    let same = |a: &SecretProperties, b: &SecretProperties| {
        let mut b = b.clone();
        (b.name, b.id) = (a.name.clone(), a.id.clone());
        *a == b
    };
    for (name, o) in &before {
        match after.get(name) {
            Some(n) if same(o, n) => {}
            n => {
                out.insert(name.clone(), (Some(*o), n.copied()));
            }
        }
    }
    for (name, n) in &after {
        if !before.contains_key(name) {
            out.insert(name.clone(), (None, Some(*n)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(name: &str, updated: i64, tags: &[(&str, &str)]) -> SecretProperties {
        SecretProperties {
            name: name.into(),
            enabled: true,
            updated: Some(updated),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..SecretProperties::default()
        }
    }

    fn reader(name: &str) -> Reader {
        ObjectRef::new(name).within("ns")
    }

    fn interest(names: &[&str], finds: Vec<CompiledFind>) -> Interest {
        Interest {
            names: names.iter().map(|n| n.to_string()).collect(),
            finds,
            interval: Duration::from_secs(30),
        }
    }

    fn tag_find(group: &str) -> CompiledFind {
        let spec: crate::api::workspace_secret::WorkspaceSecretSpec =
            serde_json::from_value(serde_json::json!({ "workspaceRef": { "name": "ml" },
                "dataFrom": [{ "find": { "tags": { "group": group } } }] }))
            .unwrap();
        crate::sync::plan::Compiled::new(&spec)
            .unwrap()
            .finds
            .remove(0)
    }

    #[test]
    fn changes_are_new_versions_additions_removals_and_attribute_changes() {
        let old = vec![props("A", 1, &[]), props("b", 1, &[]), props("c", 1, &[])];
        let mut disabled = props("c", 1, &[]);
        disabled.enabled = false;
        let new = vec![
            props("a", 1, &[]),
            props("B", 2, &[]),
            disabled,
            props("d", 1, &[]),
        ];
        let names: Vec<String> = changes(&old, &new).into_keys().collect();
        assert_eq!(names, ["b", "c", "d"], "a is unchanged whatever its case");
        assert!(changes(&old, &old).is_empty());
        assert_eq!(
            changes(&old, &old[..2]).into_keys().collect::<Vec<_>>(),
            ["c"],
            "a removal counts"
        );
    }

    #[test]
    fn only_the_readers_of_a_changed_secret_are_concerned() {
        let r = Readers::default();
        r.follow(reader("reads-a"), interest(&["A"], vec![]));
        r.follow(reader("reads-b"), interest(&["b"], vec![]));
        r.follow(reader("finds-g1"), interest(&[], vec![tag_find("g1")]));
        let old = vec![props("a", 1, &[]), props("b", 1, &[("group", "g2")])];
        let woken = |new: Vec<SecretProperties>| {
            let mut w: Vec<String> = r
                .concerned(&old, &new)
                .into_iter()
                .map(|o| o.name)
                .collect();
            w.sort();
            w
        };
        assert_eq!(woken(old.clone()), Vec::<String>::new(), "nothing changed");
        assert_eq!(woken(vec![props("a", 2, &[]), old[1].clone()]), ["reads-a"]);
        // b joins group g1: its reader and the finder of g1 both care.
        assert_eq!(
            woken(vec![old[0].clone(), props("b", 1, &[("group", "g1")])]),
            ["finds-g1", "reads-b"]
        );
        // A new secret outside every interest wakes nobody; one in g1 wakes its finder.
        let mut with = old.clone();
        with.push(props("c", 1, &[]));
        assert_eq!(woken(with.clone()), Vec::<String>::new());
        with.push(props("d", 1, &[("group", "g1")]));
        assert_eq!(woken(with), ["finds-g1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_period_is_the_shortest_interval_and_silent_readers_are_forgotten() {
        let r = Readers::default();
        assert_eq!(r.period(), None);
        let mut slow = interest(&["a"], vec![]);
        slow.interval = Duration::from_secs(600);
        r.follow(reader("slow"), slow);
        r.follow(reader("fast"), interest(&["a"], vec![]));
        assert_eq!(r.period(), Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(30 * 3 + 61)).await;
        assert_eq!(
            r.period(),
            Some(Duration::from_secs(600)),
            "fast went silent"
        );
        assert!(r.forget(&reader("slow")));
        assert_eq!(r.period(), None);
        assert_eq!(r.len(), 0);
    }
}
