//! The health state behind `/livez` and `/readyz`: leadership, whether the watches have
//! listed their objects, and whether work waits or runs for too long.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Health as the probes see it: leadership, watch sync, and reconcile progress.
#[derive(Debug, Default)]
pub struct Health {
    leading: AtomicBool,
    scopes: AtomicUsize,
    synced: AtomicUsize,
    waiting_since: Mutex<Option<Instant>>,
    running: Mutex<BTreeMap<u64, Instant>>,
    next_id: AtomicU64,
}

impl Health {
    /// Records whether this replica leads; losing leadership clears waiting work.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
        if !leading {
            *self.waiting_since.lock().expect("health lock") = None;
        }
    }

    /// Tells whether this replica leads.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Registers a starting set of watches (one namespace or all); the guard tracks its sync and
    /// unregisters it when the controllers stop.
    pub fn watches_started(self: &Arc<Self>) -> WatchGuard {
        self.scopes.fetch_add(1, Ordering::SeqCst);
        WatchGuard {
            health: self.clone(),
            synced: AtomicBool::new(false),
        }
    }

    /// Tells whether every running set of watches has listed its objects.
    pub fn watches_synced(&self) -> bool {
        let scopes = self.scopes.load(Ordering::SeqCst);
        scopes > 0 && self.synced.load(Ordering::SeqCst) >= scopes
    }

    /// Records that a watch delivered work (an object to reconcile).
    pub fn work_arrived(&self) {
        self.waiting_since
            .lock()
            .expect("health lock")
            .get_or_insert_with(Instant::now);
    }

    /// Records that a reconcile finished (whatever its outcome).
    pub fn reconcile_finished(&self) {
        *self.waiting_since.lock().expect("health lock") = None;
    }

    /// Records that a reconcile started; it counts as running until the guard is dropped.
    pub fn reconcile_started(self: &Arc<Self>) -> RunningGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running
            .lock()
            .expect("health lock")
            .insert(id, Instant::now());
        RunningGuard {
            health: self.clone(),
            id,
        }
    }

    /// Returns how long the oldest unfinished work has been waiting or running: work a watch
    /// delivered with no reconcile finishing since, or a reconcile still running.
    pub fn stalled_for(&self) -> Option<Duration> {
        let waiting = *self.waiting_since.lock().expect("health lock");
        let running = self
            .running
            .lock()
            .expect("health lock")
            .values()
            .min()
            .copied();
        waiting
            .into_iter()
            .chain(running)
            .min()
            .map(|t| t.elapsed())
    }
}

/// A running reconcile; dropped when it ends (or is cancelled).
#[derive(Debug)]
pub struct RunningGuard {
    health: Arc<Health>,
    id: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut running) = self.health.running.lock() {
            running.remove(&self.id);
        }
    }
}

/// A running set of watches; dropped when its controllers stop.
#[derive(Debug)]
pub struct WatchGuard {
    health: Arc<Health>,
    synced: AtomicBool,
}

impl WatchGuard {
    /// Records that these watches have listed their objects.
    pub fn synced(&self) {
        if !self.synced.swap(true, Ordering::SeqCst) {
            self.health.synced.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if self.synced.load(Ordering::SeqCst) {
            self.health.synced.fetch_sub(1, Ordering::SeqCst);
        }
        self.health.scopes.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_waiting_without_a_finished_reconcile_counts_as_stalled() {
        let h = Arc::new(Health::default());
        h.set_leading(true);
        assert_eq!(h.stalled_for(), None);
        h.work_arrived();
        assert!(h.stalled_for().is_some());
        h.reconcile_finished();
        assert_eq!(h.stalled_for(), None);
        h.work_arrived();
        h.set_leading(false);
        assert_eq!(h.stalled_for(), None, "a follower has no work of its own");
        let running = h.reconcile_started();
        h.reconcile_finished();
        assert!(
            h.stalled_for().is_some(),
            "a reconcile still running counts"
        );
        drop(running);
        assert_eq!(h.stalled_for(), None);
    }

    #[test]
    fn watches_count_as_synced_only_when_every_scope_has_listed() {
        let h = Arc::new(Health::default());
        assert!(!h.watches_synced());
        let a = h.watches_started();
        let b = h.watches_started();
        a.synced();
        assert!(!h.watches_synced());
        b.synced();
        assert!(h.watches_synced());
        drop(a);
        drop(b);
        assert!(!h.watches_synced(), "stopped controllers are not synced");
    }
}
