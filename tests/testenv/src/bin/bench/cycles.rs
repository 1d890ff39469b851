//! The refresh cycles after the first sync: changing cycles, in which vault secrets change at
//! spread-out moments and new WorkspaceSecrets are created while the refresh wave of the
//! others is under way, and quiet cycles, in which nothing changes.

use std::time::{Duration, Instant};

use testenv::azure::FakeKeyVault;

use crate::meter::{Meter, Period};
use crate::objects::Population;
use crate::options::Opts;
use crate::propagation::Propagation;
use crate::setup::put;

/// What happens at a moment of a changing cycle.
enum Step {
    /// Vault secret `s` gets its `k`th change of the cycle, in every vault.
    Change { s: usize, k: usize },
    /// The `n`th new WorkspaceSecret of the cycle is created.
    New(usize),
}

/// What the changing cycles did.
pub(crate) struct Changing {
    /// What each cycle cost.
    pub(crate) periods: Vec<Period>,
    /// Vault secrets changed per cycle (in every vault).
    pub(crate) changed_per_cycle: usize,
    /// Over all cycles, the (changed secret, vault) pairs some WorkspaceSecret reads: each
    /// costs one get at least.
    pub(crate) changed_read: usize,
    /// The new WorkspaceSecrets (`namespace/name`).
    pub(crate) new: Vec<String>,
}

/// Runs `o.cycles` cycles of `o.refresh`. In each, `o.changed_percent` of the vault secrets
/// change at evenly spread moments (each awaited at its readers), and `o.new_during_wave` new
/// WorkspaceSecrets are created over its first half.
pub(crate) async fn changing(
    o: &Opts,
    client: &kube::Client,
    vaults: &[FakeKeyVault],
    population: &mut Population,
    propagation: &Propagation,
    meter: &mut Meter,
) -> Changing {
    let changed_per_cycle = ((o.secrets as f64) * o.changed_percent / 100.0).round() as usize;
    let mut out = Changing {
        periods: Vec::new(),
        changed_per_cycle,
        changed_read: 0,
        new: Vec::new(),
    };
    for cycle in 0..o.cycles {
        let start = Instant::now();
        let mut plan: Vec<(Duration, Step)> = (0..changed_per_cycle)
            .map(|k| {
                let s = (cycle * 7919 + k * 104_729) % o.secrets;
                let at = o
                    .refresh
                    .mul_f64((k as f64 + 0.5) / changed_per_cycle as f64);
                (at, Step::Change { s, k })
            })
            .collect();
        let spread = o.refresh.mul_f64(0.5) / (o.new_during_wave.max(1) as u32);
        plan.extend((0..o.new_during_wave).map(|n| (spread * (n as u32 + 1), Step::New(n))));
        plan.sort_by_key(|(at, _)| *at);
        for (at, step) in plan {
            tokio::time::sleep_until((start + at).into()).await;
            match step {
                Step::Change { s, k } => {
                    let value = format!("value-{s}-c{cycle}-{k}");
                    let readers = population.readers.get(&s).cloned().unwrap_or_default();
                    propagation.expect(&readers, &value, Instant::now());
                    put(vaults, s, &value);
                    out.changed_read += population.vaults_reading(s);
                }
                Step::New(n) => {
                    // Spec n·2 lands in the namespace of the initial object with that spec, so
                    // it reads what that one reads, from the same vault.
                    let name = format!("new-{cycle}-{n:03}");
                    out.new.push(population.create(client, n * 2, &name).await);
                }
            }
        }
        tokio::time::sleep_until((start + o.refresh).into()).await;
        let period = meter.lap();
        eprintln!("changing cycle {}: {}", cycle + 1, period.line());
        out.periods.push(period);
    }
    out
}

/// Waits until every awaited change has reached its readers, at most `limit`.
pub(crate) async fn drain(propagation: &Propagation, limit: Duration) {
    let deadline = Instant::now() + limit;
    while propagation.outstanding() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `o.quiet_cycles` cycles of `o.refresh` in which nothing changes.
pub(crate) async fn quiet(o: &Opts, meter: &mut Meter) -> Vec<Period> {
    let mut periods = Vec::new();
    for cycle in 0..o.quiet_cycles {
        tokio::time::sleep(o.refresh).await;
        let period = meter.lap();
        eprintln!("quiet cycle {}: {}", cycle + 1, period.line());
        periods.push(period);
    }
    periods
}
