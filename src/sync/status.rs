//! Pure decisions about a WorkspaceSecret's status: when writing it is worth an API call, and
//! which sources newly entered the expiry-warning window.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::workspace_secret::{SyncedKey, WorkspaceSecretStatus};

/// Writes status only when something in it but the refresh time changed: an unchanged refresh
/// costs the API server nothing, and `refreshTime` is the time of the last sync that changed
/// what status shows (the report also writes when it emits an Event, so that the expiry
/// warnings, which compare with `refreshTime`, fire once).
pub fn worth_writing(previous: &WorkspaceSecretStatus, next: &WorkspaceSecretStatus) -> bool {
    let mut a = previous.clone();
    let mut b = next.clone();
    a.refresh_time = None;
    b.refresh_time = None;
    a != b
}

/// Returns the keys that expire within `window` now but did not at the last refresh (or whose
/// expiry changed since): each such key is warned about once, and the memory of it is the status
/// itself, so a new leader does not warn again.
fn entering_window<'a>(
    previous: &'a WorkspaceSecretStatus,
    keys: &'a [SyncedKey],
    window: Duration,
) -> impl Iterator<Item = &'a SyncedKey> {
    let expiring_at = move |k: &SyncedKey, at: Timestamp| {
        k.expires
            .as_deref()
            .and_then(|e| e.parse::<Timestamp>().ok())
            .is_some_and(|exp| exp.duration_since(at).unsigned_abs() <= window || exp <= at)
    };
    let now = Timestamp::now();
    let before = previous
        .refresh_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let old_keys = &previous.synced_keys;
    keys.iter()
        .filter(move |k| expiring_at(k, now))
        .filter(move |k| {
            let old = old_keys.iter().find(|p| p.key == k.key);
            match (old, before) {
                (Some(old), Some(at)) => old.expires != k.expires || !expiring_at(old, at),
                _ => true,
            }
        })
}

/// Lists the vault keys (with their expiry) that newly entered the expiry-warning window.
pub fn newly_expiring(
    previous: &WorkspaceSecretStatus,
    keys: &[SyncedKey],
    window: Duration,
) -> Vec<String> {
    entering_window(previous, keys, window)
        .filter(|k| k.connection_kind.is_none() && !super::endpoints::is_token(&k.reference))
        .map(|k| format!("{} at {}", k.key, k.expires.as_deref().unwrap_or_default()))
        .collect()
}

/// Lists the connections (name, expiry) whose credentials newly entered the expiry-warning window,
/// once per connection however many keys come from it.
pub fn newly_expiring_connections(
    previous: &WorkspaceSecretStatus,
    keys: &[SyncedKey],
    window: Duration,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for k in entering_window(previous, keys, window).filter(|k| k.connection_kind.is_some()) {
        let Some(name) = super::connections::connection_of(&k.reference) else {
            continue;
        };
        let item = (name.to_string(), k.expires.clone().unwrap_or_default());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, expires: Option<Timestamp>) -> SyncedKey {
        SyncedKey {
            key: name.into(),
            reference: format!("keyvault:{name}"),
            expires: expires.map(|t| t.to_string()),
            ..SyncedKey::default()
        }
    }

    #[test]
    fn status_is_written_only_when_something_but_the_refresh_time_changed() {
        let now = Timestamp::now();
        let old = WorkspaceSecretStatus {
            refresh_time: Some((now - jiff::SignedDuration::from_hours(400)).to_string()),
            ..Default::default()
        };
        let same = WorkspaceSecretStatus {
            refresh_time: Some(now.to_string()),
            ..Default::default()
        };
        assert!(
            !worth_writing(&old, &same),
            "only the refresh time moved, however long ago it was written"
        );
        let changed = WorkspaceSecretStatus {
            target_name: Some("x".into()),
            ..same.clone()
        };
        assert!(worth_writing(&old, &changed));
    }

    #[test]
    fn expiry_warning_fires_once_when_a_source_enters_the_window() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let soon = Timestamp::now() + jiff::SignedDuration::from_hours(24);
        let far = Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
        let never_synced = WorkspaceSecretStatus::default();
        assert_eq!(
            newly_expiring(
                &never_synced,
                &[key("a", Some(soon)), key("b", Some(far)), key("c", None)],
                week
            )
            .len(),
            1
        );
        let warned = WorkspaceSecretStatus {
            refresh_time: Some(Timestamp::now().to_string()),
            synced_keys: vec![key("a", Some(soon))],
            ..Default::default()
        };
        assert!(
            newly_expiring(&warned, &[key("a", Some(soon))], week).is_empty(),
            "already inside the window"
        );
        let mut conn = key("d", Some(soon));
        conn.connection_kind = Some("ApiKey/AzureOpenAI".into());
        assert!(
            newly_expiring(&never_synced, &[conn], week).is_empty(),
            "connections warn on their own"
        );
    }

    #[test]
    fn a_connection_entering_the_window_warns_once_per_connection() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let soon = Timestamp::now() + jiff::SignedDuration::from_hours(24);
        let conn = |key: &str| {
            let mut k = key_named(key, "azureml://connections/oai/credentials/key", Some(soon));
            k.connection_kind = Some("ApiKey/AzureOpenAI".into());
            k
        };
        let keys = [conn("KEY"), conn("KEY2")];
        let fresh = WorkspaceSecretStatus::default();
        assert_eq!(
            newly_expiring_connections(&fresh, &keys, week),
            [("oai".to_string(), soon.to_string())]
        );
        assert!(
            newly_expiring(&fresh, &keys, week).is_empty(),
            "vault warnings exclude them"
        );
        let warned = WorkspaceSecretStatus {
            refresh_time: Some(Timestamp::now().to_string()),
            synced_keys: keys.to_vec(),
            ..Default::default()
        };
        assert!(newly_expiring_connections(&warned, &keys, week).is_empty());
    }

    fn key_named(name: &str, reference: &str, expires: Option<Timestamp>) -> SyncedKey {
        SyncedKey {
            key: name.into(),
            reference: reference.into(),
            expires: expires.map(|t| t.to_string()),
            ..SyncedKey::default()
        }
    }
}
