//! Status writes and Events shared by the controllers.

use kube::api::Api;

use super::context::FIELD_MANAGER;
use super::error::Error;

/// Server-side applies an object's status under the operator's field manager (fields it no
/// longer sets are removed).
pub(crate) async fn apply<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name },
        "status": status,
    });
    api.patch_status(
        name,
        &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(body),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

/// Shortens an Event note to `max` bytes (on a character boundary), marking the cut.
pub(crate) fn event_note(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Publishes one Event about `regarding` (its note shortened to what the API accepts) and logs
/// it; a failure to publish is logged, never an error of the reconcile.
pub(crate) async fn emit(
    ctx: &super::Context,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    action: &str,
    reason: &str,
    note: &str,
    warning: bool,
) {
    use kube::runtime::events::{Event, EventType};
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(event_note(note, 1000)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(error = %e, reason, "cannot publish event");
    } else {
        tracing::info!(reason, note, "event");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(super::event_note("short", 10), "short");
        assert_eq!(super::event_note("ééé", 3), "é…");
    }
}
