//! The controllers' watches as an operator needs them through API-server outages: a bounded
//! backoff (new objects are picked up within seconds of the API server's return) and one log line
//! per watch when it breaks and one when it works again, instead of an error per failed request;
//! and one watch shared by several controllers ([`Fanout`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use kube::client::Body;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, watcher::Event};
use kube::{Client, Resource};
use tracing::{debug, info, warn};

/// The first retry delay of a broken watch.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay between two attempts of a broken watch: how late, at worst, the operator
/// notices that the API server is back.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(3);

/// Exponential backoff from [`FIRST_DELAY`] doubling up to [`MAX_DELAY`], each delay drawn from
/// its upper half so that the watches of many replicas do not retry in step. Reset by any event,
/// and by an expired resource version (the API server answered; the watcher lists again).
///
/// kube-runtime's default grows to 30 s (plus jitter), so after an outage of a minute new objects
/// waited half a minute for the next attempt.
#[derive(Debug, Clone, Default)]
pub(crate) struct WatchBackoff {
    failures: Arc<AtomicU32>,
}

impl WatchBackoff {
    /// Starts with no failures.
    pub(crate) fn new() -> Self {
        WatchBackoff::default()
    }

    /// Starts over from the first delay (shared by every clone).
    fn restart(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed);
        let ceiling = FIRST_DELAY
            .saturating_mul(1u32 << failures.min(8))
            .min(MAX_DELAY);
        Some(ceiling.mul_f64(0.5 + 0.5 * fastrand::f64()))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.restart();
    }
}

/// Whether one watch works, and since when it does not; logs only the transitions.
#[derive(Debug)]
struct Health {
    watch: &'static str,
    namespace: String,
    broken_since: Mutex<Option<Instant>>,
    backoff: WatchBackoff,
}

impl Health {
    fn failed(&self, error: &watcher::Error) {
        if is_routine(error) {
            debug!(watch = self.watch, namespace = %self.namespace, error = %chain(error), "watch restarts");
            // The API server answered: list again at once rather than after the outage's delay.
            self.backoff.restart();
            return;
        }
        let mut since = self.broken_since.lock().expect("watch health lock");
        if since.is_none() {
            *since = Some(Instant::now());
            warn!(
                watch = self.watch,
                namespace = %self.namespace,
                error = %chain(error),
                "watch of {} broke; retrying every few seconds until the API server answers",
                self.watch
            );
        } else {
            debug!(watch = self.watch, namespace = %self.namespace, error = %chain(error), "watch still broken");
        }
    }

    fn works(&self) {
        let since = self.broken_since.lock().expect("watch health lock").take();
        if let Some(since) = since {
            info!(
                watch = self.watch,
                namespace = %self.namespace,
                after = ?Duration::from_secs(since.elapsed().as_secs()),
                "watch of {} works again",
                self.watch
            );
        }
    }
}

/// Tells whether a watch error is part of normal operation (the API server expired the resource
/// version, so the watcher lists again) rather than a broken watch.
fn is_routine(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchError(status) if status.code == 410)
}

/// Formats an error with its sources (`failed to start watching object: … tcp connect error:
/// Connection refused`), so the line says what failed and why.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// One of the controllers' watches: the client its watcher must use (so that the API server's
/// first successful answer after a break is noticed: a resumed watch delivers no event until
/// something changes) and the wrapper of its stream.
pub(crate) struct Watch {
    /// The client to build this watch's watcher with.
    pub(crate) client: Client,
    health: Arc<Health>,
}

impl Watch {
    /// Prepares a watch named `watch` in logs (e.g. `WorkspaceSecrets`).
    pub(crate) fn new(client: &Client, namespace: Option<&str>, watch: &'static str) -> Watch {
        let health = Arc::new(Health {
            watch,
            namespace: namespace.unwrap_or("*").to_string(),
            broken_since: Mutex::new(None),
            backoff: WatchBackoff::new(),
        });
        let observed = Observed {
            client: client.clone(),
            health: health.clone(),
        };
        Watch {
            client: Client::new(observed, client.default_namespace().to_string()),
            health,
        }
    }

    /// Applies the bounded backoff to a watcher built with [`Watch::client`], logs when it
    /// breaks and when it works again, and keeps its errors from the controller: kube's
    /// `Controller` would pause all of its triggers after an error with its own backoff, which
    /// grows to 30 s and more.
    pub(crate) fn stream<K, S>(
        &self,
        watcher: S,
    ) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + use<K, S>
    where
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
        K: Send,
    {
        let health = self.health.clone();
        watcher
            .inspect(move |item| match item {
                // A (re)starting watcher says Init before it asks the API server anything.
                Ok(Event::Init) => {}
                Ok(_) => health.works(),
                Err(e) => health.failed(e),
            })
            .backoff(self.health.backoff.clone())
            .filter(|item| futures::future::ready(item.is_ok()))
    }
}

/// A client that tells a watch's [`Health`] when the API server answered one of its requests.
#[derive(Clone)]
struct Observed {
    client: Client,
    health: Arc<Health>,
}

impl tower::Service<http::Request<Body>> for Observed {
    type Response = http::Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (client, health) = (self.client.clone(), self.health.clone());
        Box::pin(async move {
            let response = client.send(request).await?;
            if response.status().is_success() {
                health.works();
            }
            Ok(response)
        })
    }
}

/// One watch, reflected into one store, handing its objects to several controllers: each
/// subscriber receives every object the watch applies, and after each complete (re)list every
/// object in the store, as `Controller::for_shared_stream` and `watches_shared_stream` take them.
///
/// kube-runtime's own dispatcher (`store_shared`, `Writer::subscribe`) is not used: in 5.0 its
/// subscriber stream answers `Pending` without arranging a wake-up when an object was deleted
/// before the subscriber read it, which stalls that controller's trigger until the buffer fills
/// and then the watch itself. Here each subscriber receives the object itself, at once.
pub(crate) struct Fanout<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    subscribers: Vec<UnboundedSender<Arc<K>>>,
}

impl<K> Fanout<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// Hands out the objects of the watch that feeds `store`.
    pub(crate) fn new(store: Store<K>) -> Self {
        Fanout {
            store,
            subscribers: Vec::new(),
        }
    }

    /// Returns a new subscriber's stream of objects; it ends when the watch's stream is dropped.
    pub(crate) fn subscribe(&mut self) -> UnboundedReceiver<Arc<K>> {
        let (tx, rx) = unbounded();
        self.subscribers.push(tx);
        rx
    }

    /// Passes `events` (already reflected into the store) through, handing the objects of each
    /// to every subscriber.
    pub(crate) fn feed<S>(mut self, events: S) -> impl Stream<Item = S::Item> + use<K, S>
    where
        S: Stream<Item = Result<Event<K>, watcher::Error>>,
    {
        events.inspect(move |event| {
            if let Ok(event) = event {
                self.hand_out(event);
            }
        })
    }

    fn hand_out(&mut self, event: &Event<K>) {
        let objects = match event {
            // The store's own copy, shared rather than cloned.
            Event::Apply(obj) => vec![
                self.store
                    .get(&ObjectRef::from_obj(obj))
                    .unwrap_or_else(|| Arc::new(obj.clone())),
            ],
            Event::InitDone => self.store.state(),
            Event::Delete(_) | Event::Init | Event::InitApply(_) => return,
        };
        self.subscribers.retain(|tx| {
            objects
                .iter()
                .all(|obj| tx.unbounded_send(obj.clone()).is_ok())
        });
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[test]
    fn backoff_grows_to_a_few_seconds_and_restarts_after_an_event() {
        let mut b = WatchBackoff::new();
        let delays: Vec<Duration> = (&mut b).take(20).collect();
        assert!(delays[0] <= FIRST_DELAY && delays[0] >= FIRST_DELAY / 2);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY), "{delays:?}");
        assert!(
            delays[10..].iter().all(|d| *d >= MAX_DELAY / 2),
            "no spinning once broken for long: {delays:?}"
        );
        b.reset();
        assert!(b.next().unwrap() <= FIRST_DELAY);
    }

    #[test]
    fn an_expired_resource_version_is_routine_and_a_refused_connection_is_not() {
        let gone = watcher::Error::WatchError(Box::new(kube::core::Status {
            code: 410,
            ..Default::default()
        }));
        assert!(is_routine(&gone));
        let refused = watcher::Error::NoResourceVersion;
        assert!(!is_routine(&refused));
    }

    fn config_map(name: &str, data: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm.data = Some([("k".to_string(), data.to_string())].into());
        cm
    }

    #[tokio::test]
    async fn every_subscriber_gets_each_applied_object_and_after_a_relist_all_even_when_deleted_since()
     {
        let (store, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut fanout = Fanout::new(store);
        let (one, two) = (fanout.subscribe(), fanout.subscribe());
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(config_map("a", "1"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(config_map("b", "1"))),
            // Deleted before anyone read it: still handed out, nothing stalls.
            Ok(Event::Delete(config_map("b", "1"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Apply(config_map("a", "2"))),
        ]);
        fanout
            .feed(events.reflect(writer))
            .for_each(|_| async {})
            .await;
        for subscriber in [one, two] {
            let seen: Vec<(String, String)> = subscriber
                .map(|cm| {
                    (
                        cm.metadata.name.clone().unwrap(),
                        cm.data.as_ref().unwrap()["k"].clone(),
                    )
                })
                .collect()
                .await;
            let expected =
                [("a", "1"), ("b", "1"), ("a", "2")].map(|(n, d)| (n.to_string(), d.to_string()));
            assert_eq!(seen, expected, "and the stream ends with the watch");
        }
    }
}
