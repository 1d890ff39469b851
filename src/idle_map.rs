//! The one eviction style of the per-identity caches (credentials, vault views, connection
//! views): an entry lives while anyone holds it and for a while after it was last handed out or
//! last seen held, and is dropped on a later access — so memory follows what is in use, and the
//! entries of a rotated identity retire on their own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A map of shared values that forgets the ones nobody holds or asked for within their keep
/// time.
pub(crate) struct IdleMap<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    keep: fn(&V) -> Duration,
}

struct Entry<V> {
    value: Arc<V>,
    used: Instant,
}

impl<K: Eq + Hash, V> IdleMap<K, V> {
    /// Creates an empty map whose entries are kept for `keep(value)` after their last use.
    pub(crate) fn new(keep: fn(&V) -> Duration) -> Self {
        IdleMap {
            entries: Mutex::new(HashMap::new()),
            keep,
        }
    }

    /// Returns the value under `key`, creating it with `make` when absent; forgets idle entries
    /// first.
    pub(crate) fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Arc<V> {
        match self.get_or_try_insert_with(key, || Ok::<V, Infallible>(make())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Returns the value under `key`, creating it with `make` when absent (nothing is stored
    /// when `make` fails); forgets idle entries first.
    pub(crate) fn get_or_try_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("idle map lock");
        self.sweep(&mut entries, now);
        if let Some(entry) = entries.get_mut(&key) {
            entry.used = now;
            return Ok(entry.value.clone());
        }
        let value = Arc::new(make()?);
        entries.insert(
            key,
            Entry {
                value: value.clone(),
                used: now,
            },
        );
        Ok(value)
    }

    /// Returns every value still in the map.
    pub(crate) fn values(&self) -> Vec<Arc<V>> {
        let entries = self.entries.lock().expect("idle map lock");
        entries.values().map(|e| e.value.clone()).collect()
    }

    /// Returns how many entries are alive.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("idle map lock").len()
    }

    /// Forgets the entries nobody holds that were last used longer than their keep time ago; a
    /// held entry counts as used now.
    fn sweep(&self, entries: &mut HashMap<K, Entry<V>>, now: Instant) {
        entries.retain(|_, e| {
            if Arc::strong_count(&e.value) > 1 {
                e.used = now;
                return true;
            }
            now.duration_since(e.used) <= (self.keep)(&e.value)
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const KEEP: Duration = Duration::from_secs(60);

    /// A map of `name → (serial number, keep time)` and a counter of the values it made.
    fn map() -> (IdleMap<&'static str, (u32, Duration)>, Arc<AtomicUsize>) {
        (IdleMap::new(|v| v.1), Arc::new(AtomicUsize::new(0)))
    }

    fn get(
        m: &IdleMap<&'static str, (u32, Duration)>,
        made: &AtomicUsize,
        key: &'static str,
        keep: Duration,
    ) -> Arc<(u32, Duration)> {
        m.get_or_insert_with(key, || (made.fetch_add(1, Ordering::SeqCst) as u32, keep))
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_asked_for_within_its_keep_time_is_the_same_value() {
        let (m, made) = map();
        let id = get(&m, &made, "a", KEEP).0;
        for _ in 0..3 {
            tokio::time::advance(KEEP - Duration::from_secs(1)).await;
            assert_eq!(
                get(&m, &made, "a", KEEP).0,
                id,
                "each use restarts the clock"
            );
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_entry_nobody_holds_is_forgotten_on_the_next_access() {
        let (m, made) = map();
        let weak = Arc::downgrade(&get(&m, &made, "a", KEEP));
        tokio::time::advance(KEEP + Duration::from_secs(1)).await;
        assert!(
            weak.upgrade().is_some(),
            "nothing is dropped without an access"
        );
        let _b = get(&m, &made, "b", KEEP);
        assert!(weak.upgrade().is_none(), "the idle entry was dropped");
        assert_eq!(m.len(), 1);
        let again = get(&m, &made, "a", KEEP);
        assert_eq!(again.0, 2, "a new value is made for the forgotten key");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_entry_is_kept_and_its_idle_time_starts_when_it_is_released() {
        let (m, made) = map();
        let held = get(&m, &made, "a", KEEP);
        tokio::time::advance(KEEP * 10).await;
        let _b = get(&m, &made, "b", KEEP);
        assert_eq!(m.len(), 2, "a held entry is never dropped");
        let weak = Arc::downgrade(&held);
        drop(held);
        tokio::time::advance(KEEP / 2).await;
        let _c = get(&m, &made, "c", KEEP);
        assert!(weak.upgrade().is_some(), "seen held at the last access");
        tokio::time::advance(KEEP).await;
        let _d = get(&m, &made, "d", KEEP);
        assert!(
            weak.upgrade().is_none(),
            "idle for longer than its keep time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_entry_is_kept_for_its_own_keep_time() {
        let (m, made) = map();
        let short = Arc::downgrade(&get(&m, &made, "short", KEEP));
        let long = Arc::downgrade(&get(&m, &made, "long", KEEP * 3));
        tokio::time::advance(KEEP * 2).await;
        let _x = get(&m, &made, "x", KEEP);
        assert!(short.upgrade().is_none());
        assert!(long.upgrade().is_some());
        assert_eq!(m.values().len(), 2);
    }

    #[test]
    fn a_failed_make_stores_nothing() {
        let m: IdleMap<&str, u32> = IdleMap::new(|_| KEEP);
        assert!(m.get_or_try_insert_with("a", || Err("no")).is_err());
        assert_eq!(m.len(), 0);
        assert_eq!(
            *m.get_or_try_insert_with("a", || Ok::<_, ()>(7)).unwrap(),
            7
        );
    }
}
