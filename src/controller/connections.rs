//! Connection expiry warnings: one Warning Event per (object, connection, expiry).

use std::sync::Arc;

use jiff::Timestamp;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use super::Context;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::azure::{Credential, WorkspaceRef};
use crate::fetch::connections::Read;

/// Publishes one Warning Event per (object, connection, expiry) when a connection's credentials
/// expire within `--expiry-warning` or have expired.
pub async fn warn_expiring(
    ctx: &Context,
    ws: &WorkspaceSecret,
    cred: &Arc<Credential>,
    workspace: &WorkspaceRef,
    read: &Read,
) {
    let uid = ws.meta().uid.clone().unwrap_or_default();
    let now = Timestamp::now();
    for (name, cur) in read {
        let Ok(cur) = cur else { continue };
        let Some(expiry) = cur.secrets.connection.expiry_time.as_deref() else {
            continue;
        };
        let Ok(at) = expiry.parse::<Timestamp>() else {
            continue;
        };
        let left = at.as_second() - now.as_second();
        if left > ctx.args.expiry_warning.as_secs() as i64 {
            continue;
        }
        let view = ctx.connections.view(cred, workspace, name);
        if !view.first_warning(&uid, expiry) {
            continue;
        }
        let (reason, note) = if left <= 0 {
            (
                "ConnectionExpired",
                format!(
                    "the credentials of workspace connection {name} expired at {at}; rotate them in Azure ML (the Secret follows within the refresh interval)"
                ),
            )
        } else {
            (
                "ConnectionExpiring",
                format!(
                    "the credentials of workspace connection {name} expire at {at} (in {}h); rotate them in Azure ML before then",
                    left / 3600
                ),
            )
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &ws.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}
