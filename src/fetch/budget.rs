//! A request budget per vault: a token bucket shared by every caller of that vault, and a shared
//! pause when the vault answers 429 — so the operator stays far below Key Vault's per-vault limit,
//! which it shares with Azure ML itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The budgets of every vault in use.
pub struct Budgets {
    per_window: u32,
    window: Duration,
    vaults: Mutex<HashMap<String, Arc<Budget>>>,
}

impl Budgets {
    /// Allows `per_window` requests per `window` to each vault (bursts up to `per_window`).
    pub fn new(per_window: u32, window: Duration) -> Self {
        Budgets {
            per_window: per_window.max(1),
            window,
            vaults: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the budget of a vault, keyed by its URI.
    pub fn of(&self, vault: &str) -> Arc<Budget> {
        let mut vaults = self.vaults.lock().expect("budgets lock");
        vaults
            .entry(vault.to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(Budget::new(
                    self.per_window as f64,
                    self.per_window as f64 / self.window.as_secs_f64(),
                ))
            })
            .clone()
    }
}

struct State {
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
}

/// One vault's token bucket.
pub struct Budget {
    capacity: f64,
    per_second: f64,
    state: Mutex<State>,
}

impl Budget {
    fn new(capacity: f64, per_second: f64) -> Self {
        Budget {
            capacity,
            per_second,
            state: Mutex::new(State {
                tokens: capacity,
                refilled: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits until `n` requests may be sent, then takes them from the bucket.
    pub async fn acquire(&self, n: u32) {
        let n = (n as f64).clamp(1.0, self.capacity);
        loop {
            let wait = {
                let mut s = self.state.lock().expect("budget lock");
                let now = Instant::now();
                let elapsed = now.duration_since(s.refilled).as_secs_f64();
                s.tokens = (s.tokens + elapsed * self.per_second).min(self.capacity);
                s.refilled = now;
                match s.paused_until {
                    Some(until) if until > now => until - now,
                    _ if s.tokens >= n => {
                        s.tokens -= n;
                        return;
                    }
                    _ => Duration::from_secs_f64((n - s.tokens) / self.per_second),
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every caller of this vault back for `d` (the vault said 429, Retry-After `d`).
    pub fn pause(&self, d: Duration) {
        let mut s = self.state.lock().expect("budget lock");
        let until = Instant::now() + d;
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_refill_rate() {
        let budgets = Budgets::new(10, Duration::from_secs(10));
        let b = budgets.of("https://KV.vault.azure.net");
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            b.acquire(1).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the burst waited"
        );
        for _ in 0..5 {
            b.acquire(1).await;
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(4900) && waited < Duration::from_millis(5500),
            "{waited:?}"
        );
        assert!(
            Arc::ptr_eq(&b, &budgets.of("https://kv.vault.azure.net")),
            "one budget per vault"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller_back() {
        let budgets = Budgets::new(100, Duration::from_secs(10));
        let b = budgets.of("v");
        b.pause(Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        b.acquire(1).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
