//! Change propagation: for every (vault change, reading WorkspaceSecret) pair, the time from the
//! vault write until that reader's target Secret holds the new value under its key. The
//! benchmark watches the Secrets of its namespaces (values included) and checks each update
//! against the values still awaited there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// A reader of a vault secret: the target Secret `namespace/name` holds it under `key`.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    pub(crate) namespace: String,
    pub(crate) secret: String,
    pub(crate) key: String,
}

/// A value awaited under a key of a target Secret since a vault write.
struct Awaited {
    key: String,
    value: Vec<u8>,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// Per target Secret (`namespace/name`), the values awaited there.
    awaited: HashMap<String, Vec<Awaited>>,
    /// Seconds from the vault write to the reader's Secret holding the value, per pair.
    seconds: Vec<f64>,
    /// Pairs whose value was changed again before it arrived (not measured).
    superseded: usize,
}

/// Tracks (change, reader) pairs until each reader's Secret holds the changed value.
#[derive(Clone, Default)]
pub(crate) struct Propagation(Arc<Mutex<State>>);

impl Propagation {
    /// Watches the Secrets of `namespaces`.
    pub(crate) fn watch(client: &kube::Client, namespaces: &[String]) -> Self {
        let propagation = Self::default();
        for ns in namespaces {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let state = propagation.0.clone();
            tokio::spawn(async move {
                let mut stream = watcher(api, watcher::Config::default())
                    .applied_objects()
                    .boxed();
                while let Some(item) = stream.next().await {
                    if let Ok(secret) = item {
                        seen(&state, &secret, Instant::now());
                    }
                }
            });
        }
        propagation
    }

    /// Awaits `value` at every reader, from `since` (taken just before the vault write).
    pub(crate) fn expect(&self, readers: &[Reader], value: &str, since: Instant) {
        let mut state = self.0.lock().unwrap();
        let mut superseded = 0;
        for r in readers {
            let awaited = state
                .awaited
                .entry(format!("{}/{}", r.namespace, r.secret))
                .or_default();
            let before = awaited.len();
            awaited.retain(|a| a.key != r.key);
            superseded += before - awaited.len();
            awaited.push(Awaited {
                key: r.key.clone(),
                value: value.as_bytes().to_vec(),
                since,
            });
        }
        state.superseded += superseded;
    }

    /// How many pairs are still awaited.
    pub(crate) fn outstanding(&self) -> usize {
        self.0.lock().unwrap().awaited.values().map(Vec::len).sum()
    }

    /// How many pairs were changed again before their value arrived.
    pub(crate) fn superseded(&self) -> usize {
        self.0.lock().unwrap().superseded
    }

    /// The measured pairs' times in seconds, sorted.
    pub(crate) fn seconds(&self) -> Vec<f64> {
        let mut v = self.0.lock().unwrap().seconds.clone();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// Settles the values awaited at `secret` that it now holds.
fn seen(state: &Mutex<State>, secret: &Secret, at: Instant) {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let mut state = state.lock().unwrap();
    let State {
        awaited, seconds, ..
    } = &mut *state;
    let Some(waiting) = awaited.get_mut(&name) else {
        return;
    };
    let data = secret.data.as_ref();
    waiting.retain(|a| {
        let arrived = data
            .and_then(|d| d.get(&a.key))
            .is_some_and(|v| v.0 == a.value);
        if arrived {
            seconds.push(at.duration_since(a.since).as_secs_f64());
        }
        !arrived
    });
    if waiting.is_empty() {
        awaited.remove(&name);
    }
}
