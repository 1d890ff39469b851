//! The fake vault's soft delete: delete, get and list deleted secrets, purge and recover.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{Deleted, FakeKeyVault, Q, RECOVERABLE_DAYS, base, deleted_not_found, not_found, page};
use crate::azure::common::now;

/// A DeletedSecretBundle or DeletedSecretItem: the latest version without its value, with
/// `recoveryId`, `deletedDate` and `scheduledPurgeDate` (`DeleteSecret-example.json`).
fn deleted_bundle(base: &str, d: &Deleted, item: bool) -> serde_json::Value {
    let mut b = FakeKeyVault::bundle(base, &d.display, d.versions.last().unwrap(), false);
    if item {
        b["id"] = format!("{base}/secrets/{}", d.display).into();
    }
    b["recoveryId"] = format!("{base}/deletedsecrets/{}", d.display).into();
    b["deletedDate"] = d.deleted_date.into();
    b["scheduledPurgeDate"] = d.scheduled_purge_date.into();
    b
}

pub(super) async fn delete(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("delete", &h, &q).await {
        return r;
    }
    let mut vault = f.vault.lock().unwrap();
    let Some((display, versions)) = vault.secrets.remove(&name.to_lowercase()) else {
        return not_found(&name);
    };
    let d = Deleted {
        display,
        versions,
        deleted_date: now(),
        scheduled_purge_date: now() + RECOVERABLE_DAYS * 86400,
    };
    let body = deleted_bundle(&base(&f, &h), &d, false);
    vault.deleted.insert(name.to_lowercase(), d);
    axum::Json(body).into_response()
}

pub(super) async fn get_deleted(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("deleted-get", &h, &q).await {
        return r;
    }
    let vault = f.vault.lock().unwrap();
    match vault.deleted.get(&name.to_lowercase()) {
        Some(d) => axum::Json(deleted_bundle(&base(&f, &h), d, false)).into_response(),
        None => deleted_not_found(),
    }
}

pub(super) async fn list_deleted(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("deleted-list", &h, &q).await {
        return r;
    }
    let base = base(&f, &h);
    let items = f
        .vault
        .lock()
        .unwrap()
        .deleted
        .values()
        .map(|d| deleted_bundle(&base, d, true))
        .collect();
    page(&base, "/deletedsecrets", items, &q)
}

/// PurgeDeletedSecret: 204 with no body.
pub(super) async fn purge(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("purge", &h, &q).await {
        return r;
    }
    match f.vault.lock().unwrap().deleted.remove(&name.to_lowercase()) {
        Some(_) => axum::http::StatusCode::NO_CONTENT.into_response(),
        None => deleted_not_found(),
    }
}

/// RecoverDeletedSecret: the latest version back in place, answered without its value.
pub(super) async fn recover(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("recover", &h, &q).await {
        return r;
    }
    let mut vault = f.vault.lock().unwrap();
    let Some(d) = vault.deleted.remove(&name.to_lowercase()) else {
        return deleted_not_found();
    };
    let body = FakeKeyVault::bundle(&base(&f, &h), &d.display, d.versions.last().unwrap(), false);
    vault
        .secrets
        .insert(name.to_lowercase(), (d.display, d.versions));
    axum::Json(body).into_response()
}
