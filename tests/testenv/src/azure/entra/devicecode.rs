//! The device-code grant at the fake Entra (RFC 8628 as Entra speaks it): `/devicecode` hands out
//! a user code and a device code; polls of `/token` answer `authorization_pending` until the
//! scripted user approves after N polls (optionally one `slow_down`), `expired_token` once the code
//! is older than its lifetime, `authorization_declined` when the user declines; approval issues an
//! access token for the first `/.default` scope and a refresh token, which the `refresh_token`
//! grant redeems for other audiences.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};

use super::super::common::{Grant, now, uuid_like};
use super::{FakeEntra, err};

/// The grant type of device-code polls.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A user who signs in on the device-code page.
#[derive(Clone, Debug)]
pub struct User {
    /// The tenant.
    pub tenant: String,
    /// The object id.
    pub oid: String,
}

/// What the scripted user does with each code.
#[derive(Clone, Debug)]
pub struct DeviceFlow {
    /// Who signs in; `None`: nobody ever enters the code (it expires).
    pub user: Option<User>,
    /// How many polls are answered `authorization_pending` before approval.
    pub approve_after: usize,
    /// The poll (1-based) answered `slow_down` instead.
    pub slow_down_at: Option<usize>,
    /// Whether the user declines instead of approving.
    pub decline: bool,
    /// The code's lifetime (`expires_in`), seconds.
    pub expires_in: i64,
    /// The polling interval (`interval`), seconds.
    pub interval: i64,
}

impl Default for DeviceFlow {
    fn default() -> Self {
        DeviceFlow {
            user: None,
            approve_after: 1,
            slow_down_at: None,
            decline: false,
            expires_in: 900,
            interval: 1,
        }
    }
}

struct Pending {
    client_id: String,
    audience: String,
    issued: i64,
    polls: usize,
    flow: DeviceFlow,
}

struct Refresh {
    user: User,
    client_id: String,
}

/// The device-code side of the fake: public clients, codes in flight, refresh tokens.
#[derive(Default)]
pub struct DeviceState {
    flow: DeviceFlow,
    public_clients: HashSet<String>,
    codes: HashMap<String, Pending>,
    refresh: HashMap<String, Refresh>,
    /// Poll times (Unix seconds), to check the client's pacing.
    pub poll_times: Vec<f64>,
}

/// Shared handle.
pub type Devices = Arc<Mutex<DeviceState>>;

impl FakeEntra {
    /// Registers a public client (e.g. the Azure CLI's id) allowed to use the device-code flow.
    pub fn add_public_client(&self, client_id: &str) {
        self.devices
            .lock()
            .unwrap()
            .public_clients
            .insert(client_id.into());
    }

    /// Scripts what the user does with the next codes.
    pub fn set_device_flow(&self, flow: DeviceFlow) {
        self.devices.lock().unwrap().flow = flow;
    }

    /// Forgets every refresh token (as if they expired), so clients must sign in again.
    pub fn revoke_refresh_tokens(&self) {
        self.devices.lock().unwrap().refresh.clear();
    }

    /// Returns the refresh tokens issued and still valid.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.devices
            .lock()
            .unwrap()
            .refresh
            .keys()
            .cloned()
            .collect()
    }

    /// Returns the times of the device-code polls so far (Unix seconds, fractional).
    pub fn device_poll_times(&self) -> Vec<f64> {
        self.devices.lock().unwrap().poll_times.clone()
    }
}

fn audience_of(scope: &str) -> Option<String> {
    scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .map(str::to_string)
}

fn known_tenant(fake: &FakeEntra, tenant: &str) -> bool {
    matches!(tenant, "organizations" | "common")
        || fake.state.lock().unwrap().tenants.contains(tenant)
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(super) async fn devicecode(
    State(fake): State<FakeEntra>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    fake.calls.hit("devicecode");
    if let Some(f) = fake.faults.next().await {
        return f;
    }
    if !known_tenant(&fake, &tenant) {
        return err(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let mut d = fake.devices.lock().unwrap();
    if !d.public_clients.contains(&client_id) {
        return err(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    let Some(audience) = audience_of(form.get("scope").map(String::as_str).unwrap_or("")) else {
        return err(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let device_code = format!("dc-{}", uuid_like());
    let user_code = uuid_like()[..9].to_ascii_uppercase();
    let flow = d.flow.clone();
    d.codes.insert(
        device_code.clone(),
        Pending {
            client_id,
            audience,
            issued: now(),
            polls: 0,
            flow: flow.clone(),
        },
    );
    let uri = format!("{}/devicelogin", fake.authority_host);
    axum::Json(serde_json::json!({
        "user_code": user_code, "device_code": device_code, "verification_uri": uri,
        "expires_in": flow.expires_in, "interval": flow.interval,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

fn issue(fake: &FakeEntra, user: &User, client_id: &str, audience: String) -> Response {
    let lifetime = fake.state.lock().unwrap().lifetime;
    let access_token = fake.tokens.issue(Grant {
        audience,
        oid: user.oid.clone(),
        appid: client_id.to_string(),
        tid: user.tenant.clone(),
        exp: now() + lifetime,
    });
    let refresh_token = format!("rt-{}", uuid_like());
    fake.devices.lock().unwrap().refresh.insert(
        refresh_token.clone(),
        Refresh {
            user: user.clone(),
            client_id: client_id.to_string(),
        },
    );
    axum::Json(serde_json::json!({
        "token_type": "Bearer", "scope": "openid profile offline_access", "expires_in": lifetime,
        "ext_expires_in": lifetime, "access_token": access_token, "refresh_token": refresh_token,
    }))
    .into_response()
}

/// The device-code poll of `/token`.
pub(super) fn poll(fake: &FakeEntra, form: &HashMap<String, String>) -> Response {
    let code = form.get("device_code").cloned().unwrap_or_default();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let mut d = fake.devices.lock().unwrap();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    d.poll_times.push(t);
    let Some(p) = d.codes.get_mut(&code).filter(|p| p.client_id == client_id) else {
        return err(
            400,
            "invalid_grant",
            70000,
            "The provided value for the 'device_code' is not valid.",
        );
    };
    p.polls += 1;
    if now() - p.issued >= p.flow.expires_in {
        return err(
            400,
            "expired_token",
            70020,
            "The provided value for the 'device_code' is expired.",
        );
    }
    if p.flow.slow_down_at == Some(p.polls) {
        return err(
            400,
            "slow_down",
            70016,
            "The client is polling too fast. Slow down.",
        );
    }
    let user = match &p.flow.user {
        Some(u) if p.polls > p.flow.approve_after => u.clone(),
        _ => {
            return err(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            );
        }
    };
    if p.flow.decline {
        return err(
            400,
            "authorization_declined",
            70000,
            "The user declined the sign-in.",
        );
    }
    let audience = p.audience.clone();
    d.codes.remove(&code);
    drop(d);
    issue(fake, &user, &client_id, audience)
}

/// The `refresh_token` grant of `/token`.
pub(super) fn refresh(fake: &FakeEntra, form: &HashMap<String, String>) -> Response {
    let rt = form.get("refresh_token").cloned().unwrap_or_default();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let Some(audience) = audience_of(form.get("scope").map(String::as_str).unwrap_or("")) else {
        return err(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let user = {
        let d = fake.devices.lock().unwrap();
        match d.refresh.get(&rt).filter(|r| r.client_id == client_id) {
            Some(r) => r.user.clone(),
            None => {
                return err(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity.",
                );
            }
        }
    };
    issue(fake, &user, &client_id, audience)
}
