//! The fake vault's secrets: get (latest or a version), list and list versions with paging, set
//! (PUT) and update (PATCH).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{FakeKeyVault, Q, Version, bad_parameter, base, not_found, page};
use crate::azure::common::{Fault, azure_error, now, uuid_like};

fn read(fake: &FakeKeyVault, base: &str, name: &str, version: Option<&str>) -> Response {
    let vault = fake.vault.lock().unwrap();
    let Some((display, versions)) = vault.secrets.get(&name.to_lowercase()) else {
        return not_found(name);
    };
    let v = match version {
        None => versions.last(),
        Some(id) => versions.iter().find(|v| v.version == id),
    };
    let Some(v) = v else { return not_found(name) };
    if !v.enabled {
        return Fault::new(
            403,
            azure_error(
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                Some("SecretDisabled"),
            ),
        )
        .response();
    }
    axum::Json(FakeKeyVault::bundle(base, display, v, true)).into_response()
}

pub(super) async fn get_latest(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    match f.admit("get", &h, &q).await {
        Ok(_) => read(&f, &base(&f, &h), &name, None),
        Err(r) => r,
    }
}

pub(super) async fn get_version(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    match f.admit("get", &h, &q).await {
        Ok(_) => read(&f, &base(&f, &h), &name, Some(&version)),
        Err(r) => r,
    }
}

pub(super) async fn list(State(f): State<FakeKeyVault>, h: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = f.admit("list", &h, &q).await {
        return r;
    }
    let base = base(&f, &h);
    let items: Vec<_> = {
        let vault = f.vault.lock().unwrap();
        vault
            .secrets
            .values()
            .filter_map(|(name, vs)| vs.last().map(|v| (name.clone(), v.clone())))
            .collect()
    };
    let items = items
        .iter()
        .map(|(name, v)| {
            let mut b = FakeKeyVault::bundle(&base, name, v, false);
            b["id"] = format!("{base}/secrets/{name}").into();
            b
        })
        .collect();
    page(&base, "/secrets", items, &q)
}

pub(super) async fn versions(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = f.admit("versions", &h, &q).await {
        return r;
    }
    let found = f
        .vault
        .lock()
        .unwrap()
        .secrets
        .get(&name.to_lowercase())
        .cloned();
    let Some((display, vs)) = found else {
        return not_found(&name);
    };
    let base = base(&f, &h);
    let items = vs
        .iter()
        .map(|v| FakeKeyVault::bundle(&base, &display, v, false))
        .collect();
    page(&base, &format!("/secrets/{display}/versions"), items, &q)
}

/// Reads `attributes.{enabled,nbf,exp}`, `contentType` and `tags` of a SetSecret or UpdateSecret
/// body into `v`; only fields present are changed (`null` clears `nbf`, `exp` and `contentType`).
#[allow(clippy::result_large_err)]
fn apply_properties(v: &mut Version, body: &serde_json::Value) -> Result<(), Response> {
    let attrs = &body["attributes"];
    if let Some(e) = attrs.get("enabled").filter(|e| !e.is_null()) {
        v.enabled = e
            .as_bool()
            .ok_or_else(|| bad_parameter("attributes.enabled must be a boolean."))?;
    }
    for (field, slot) in [("nbf", &mut v.nbf), ("exp", &mut v.exp)] {
        match attrs.get(field) {
            None => {}
            Some(serde_json::Value::Null) => *slot = None,
            Some(t) => {
                *slot = Some(t.as_i64().ok_or_else(|| {
                    bad_parameter(&format!("attributes.{field} must be Unix seconds."))
                })?)
            }
        }
    }
    match body.get("contentType") {
        None => {}
        Some(serde_json::Value::Null) => v.content_type = None,
        Some(ct) => {
            let ct = ct
                .as_str()
                .ok_or_else(|| bad_parameter("contentType must be a string."))?;
            if ct.len() > 255 {
                return Err(bad_parameter("contentType is longer than 255 characters."));
            }
            v.content_type = Some(ct.to_string());
        }
    }
    if let Some(tags) = body.get("tags").filter(|t| !t.is_null()) {
        v.tags = serde_json::from_value(tags.clone())
            .map_err(|_| bad_parameter("tags must map names to strings."))?;
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub(super) async fn set(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
    body: String,
) -> Response {
    if let Err(r) = f.admit("set", &h, &q).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return bad_parameter("The request body is not valid JSON.");
    };
    let Some(value) = body["value"].as_str() else {
        return bad_parameter("Property 'value' is required.");
    };
    if !valid_name(&name) {
        return bad_parameter("The request URI contains an invalid name.");
    }
    let mut v = Version {
        version: uuid_like(),
        value: value.into(),
        content_type: None,
        enabled: true,
        tags: BTreeMap::new(),
        created: now(),
        updated: now(),
        nbf: None,
        exp: None,
    };
    if let Err(r) = apply_properties(&mut v, &body) {
        return r;
    }
    let mut vault = f.vault.lock().unwrap();
    if vault.deleted.contains_key(&name.to_lowercase()) {
        let msg = format!(
            "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
        );
        return Fault::new(
            409,
            azure_error("Conflict", &msg, Some("ObjectIsDeletedButRecoverable")),
        )
        .response();
    }
    let (display, vs) = vault
        .secrets
        .entry(name.to_lowercase())
        .or_insert_with(|| (name.clone(), Vec::new()));
    vs.push(v);
    axum::Json(FakeKeyVault::bundle(
        &base(&f, &h),
        display,
        vs.last().unwrap(),
        true,
    ))
    .into_response()
}

/// UpdateSecret (PATCH): changes a version's attributes, content type or tags, never its value;
/// the answer carries no value (Microsoft's `UpdateSecret-example.json`).
async fn update(
    f: FakeKeyVault,
    h: HeaderMap,
    name: String,
    version: Option<String>,
    q: HashMap<String, String>,
    body: String,
) -> Response {
    if let Err(r) = f.admit("update", &h, &q).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return bad_parameter("The request body is not valid JSON.");
    };
    let mut vault = f.vault.lock().unwrap();
    let Some((display, vs)) = vault.secrets.get_mut(&name.to_lowercase()) else {
        return not_found(&name);
    };
    let v = match &version {
        None => vs.last_mut(),
        Some(id) => vs.iter_mut().find(|v| &v.version == id),
    };
    let Some(v) = v else { return not_found(&name) };
    let mut changed = v.clone();
    if let Err(r) = apply_properties(&mut changed, &body) {
        return r;
    }
    changed.updated = now();
    *v = changed;
    axum::Json(FakeKeyVault::bundle(&base(&f, &h), display, v, false)).into_response()
}

pub(super) async fn update_latest(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Q,
    body: String,
) -> Response {
    update(f, h, name, None, q, body).await
}

pub(super) async fn update_version(
    State(f): State<FakeKeyVault>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Query(q): Q,
    body: String,
) -> Response {
    update(f, h, name, Some(version), q, body).await
}
