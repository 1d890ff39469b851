//! Publishes Events (`events.k8s.io/v1`) about the operator's objects. The same event about the
//! same version of an object within six minutes is folded into the first one's series (its count
//! and last time go up, its note stays), as kube's own recorder folds them. Unlike kube's, which
//! keeps every Event it published for those six minutes, this one keeps only what a fold needs:
//! the first Event's name and the count — at thousands of objects kube's cache was the largest
//! part of the operator's memory after the cached Secrets.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};

/// How long a published Event takes repeats into its series.
const FOLD_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How often the remembered Events are swept of those past the window.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_secs(10);

/// What is remembered of a published Event.
struct Folded {
    /// The Event's name (in the regarding object's namespace).
    name: String,
    /// How many times it happened.
    count: i32,
    /// When it last happened.
    last: Timestamp,
}

#[derive(Default)]
struct Published {
    by_key: HashMap<String, Folded>,
    swept: Option<Timestamp>,
}

impl Published {
    /// Forgets the Events whose window is over (at most every [`SWEEP_EVERY`]).
    fn sweep(&mut self, now: Timestamp) {
        if self.swept.is_some_and(|t| t + SWEEP_EVERY > now) {
            return;
        }
        self.swept = Some(now);
        self.by_key.retain(|_, f| f.last + FOLD_WINDOW > now);
    }

    /// The name and the next count of an Event that folds into an earlier one.
    fn repeat(&mut self, key: &str, now: Timestamp) -> Option<(String, i32)> {
        self.sweep(now);
        let f = self.by_key.get(key)?;
        (f.last + FOLD_WINDOW > now).then(|| (f.name.clone(), f.count + 1))
    }
}

/// Publishes Events as the controller `controller`.
pub struct Recorder {
    client: Client,
    controller: String,
    published: Mutex<Published>,
}

impl Recorder {
    /// A recorder reporting as `controller` (also the reporting instance).
    pub fn new(client: Client, controller: &str) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            published: Mutex::default(),
        }
    }

    /// Publishes `ev` about `regarding`: creates an Event, or adds to the series of the same
    /// event about the same version of the object published within the last six minutes.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key(ev, regarding);
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let repeat = self.lock().repeat(&key, now);
        let (name, count) = match repeat {
            Some((name, count)) => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let patch = serde_json::json!({ "series": series });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => (name, count),
                    // The first Event is gone (deleted, or expired early): start a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        (self.create(&api, ev, regarding, now).await?, 1)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => (self.create(&api, ev, regarding, now).await?, 1),
        };
        let folded = Folded {
            name,
            count,
            last: now,
        };
        self.lock().by_key.insert(key, folded);
        Ok(())
    }

    async fn create(
        &self,
        api: &Api<K8sEvent>,
        ev: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<String, kube::Error> {
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            type_: Some(type_name(ev.type_).into()),
            ..K8sEvent::default()
        };
        api.create(&PostParams::default(), &event).await?;
        Ok(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().expect("events lock")
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// What makes two Events the same: type, action and reason, about the same version of the same
/// object (and the same related one). The note is not part of it: a repeat keeps the first note.
fn key(ev: &Event, regarding: &ObjectReference) -> String {
    let object = |r: &ObjectReference| {
        [
            r.api_version.as_deref(),
            r.kind.as_deref(),
            r.namespace.as_deref(),
            r.name.as_deref(),
            r.uid.as_deref(),
            r.resource_version.as_deref(),
            r.field_path.as_deref(),
        ]
        .map(Option::unwrap_or_default)
        .join("\u{1f}")
    };
    let related = ev.secondary.as_ref().map(object).unwrap_or_default();
    [
        type_name(ev.type_),
        &ev.action,
        &ev.reason,
        &object(regarding),
        &related,
    ]
    .join("\u{1e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Sync".into(),
            secondary: None,
        }
    }

    fn object(rv: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("WorkspaceSecret".into()),
            namespace: Some("ns".into()),
            name: Some("app".into()),
            uid: Some("u-1".into()),
            resource_version: Some(rv.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn the_same_event_about_the_same_version_folds_whatever_its_note() {
        assert_eq!(
            key(&ev("Updated", "a"), &object("1")),
            key(&ev("Updated", "b"), &object("1"))
        );
        assert_ne!(
            key(&ev("Updated", "a"), &object("1")),
            key(&ev("Updated", "a"), &object("2")),
            "another version of the object is another Event"
        );
        assert_ne!(
            key(&ev("Updated", "a"), &object("1")),
            key(&ev("Synced", "a"), &object("1"))
        );
    }

    #[test]
    fn a_repeat_folds_within_six_minutes_and_is_forgotten_after() {
        let start = Timestamp::now();
        let mut p = Published::default();
        assert_eq!(p.repeat("k", start), None);
        p.by_key.insert(
            "k".into(),
            Folded {
                name: "app.1".into(),
                count: 1,
                last: start,
            },
        );
        assert_eq!(
            p.repeat("k", start + SignedDuration::from_mins(5)),
            Some(("app.1".to_string(), 2))
        );
        assert_eq!(p.repeat("k", start + SignedDuration::from_mins(7)), None);
        assert!(p.by_key.is_empty(), "swept once past the window");
    }
}
