//! A fake Entra ID v2 token endpoint: client-secret and client-assertion grants, certificate
//! assertions (RS256 with `x5t`, or PS256 with `x5t#S256` as MSAL signs them) verified against the
//! registered certificate, federated (workload identity) assertions verified like a federated
//! credential, error bodies with real AADSTS codes, and the tenant's OpenID configuration
//! (`/{tenant}/v2.0/.well-known/openid-configuration`), which MSAL reads before any token request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::common::{Calls, Fault, Faults, Grant, TokenBook, now};
use super::keys::split_jwt;
use super::tls::{TestCa, bind, serve_https};

mod assertion;
pub mod devicecode;
mod discovery;

use assertion::check_assertion;
use discovery::openid_configuration;

/// A federated identity credential of an app.
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// The OIDC issuer URL.
    pub issuer: String,
    /// `system:serviceaccount:NS:SA`.
    pub subject: String,
    /// Usually `api://AzureADTokenExchange`.
    pub audience: String,
    /// The issuer's signing keys (`{"keys":[…]}`).
    pub jwks: serde_json::Value,
}

#[derive(Clone, Default)]
struct App {
    tenant: String,
    oid: String,
    secrets: Vec<String>,
    /// SHA-1 thumbprint (`x5t`, unpadded base64url) → RSAPublicKey DER.
    certificates: HashMap<String, Vec<u8>>,
    /// The same for SHA-256 thumbprints (`x5t#S256`).
    certificates_s256: HashMap<String, Vec<u8>>,
    federated: Vec<FederatedCredential>,
}

#[derive(Default)]
struct State_ {
    tenants: HashSet<String>,
    apps: HashMap<String, App>,
    jtis: HashSet<String>,
    lifetime: i64,
    base: String,
}

/// The fake token endpoint.
#[derive(Clone)]
pub struct FakeEntra {
    state: Arc<Mutex<State_>>,
    /// Calls by operation (`token`).
    pub calls: Calls,
    /// Injected faults.
    pub faults: Faults,
    /// The tokens it issued.
    pub tokens: TokenBook,
    /// The authority host (`https://127.0.0.1:PORT`).
    pub authority_host: String,
    /// The device-code flow's state.
    devices: devicecode::Devices,
}

fn err(status: u16, error: &str, code: u32, text: &str) -> Response {
    let body = serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2025-01-01 00:00:00Z"),
        "error_codes": [code], "timestamp": "2025-01-01 00:00:00Z",
        "trace_id": "00000000-0000-0000-0000-000000000000", "correlation_id": "00000000-0000-0000-0000-000000000000",
    });
    Fault::new(status, body.to_string()).response()
}

impl FakeEntra {
    /// Starts the fake over https; tokens go into `tokens`.
    pub async fn start(ca: &TestCa, tokens: TokenBook) -> Self {
        let (tcp, addr) = bind().await;
        let base = format!("https://{addr}");
        let state = Arc::new(Mutex::new(State_ {
            lifetime: 3599,
            base: base.clone(),
            ..Default::default()
        }));
        let fake = FakeEntra {
            state,
            calls: Calls::default(),
            faults: Faults::default(),
            tokens,
            authority_host: base,
            devices: Default::default(),
        };
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route(
                "/{tenant}/oauth2/v2.0/devicecode",
                post(devicecode::devicecode),
            )
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .with_state(fake.clone());
        let _ = serve_https(tcp, router, ca);
        fake
    }

    /// Sets the lifetime (`expires_in`) of issued tokens.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state.lock().unwrap().lifetime = secs;
    }

    fn app_mut<R>(
        &self,
        tenant: &str,
        client_id: &str,
        oid: &str,
        f: impl FnOnce(&mut App) -> R,
    ) -> R {
        let mut s = self.state.lock().unwrap();
        s.tenants.insert(tenant.to_string());
        let app = s.apps.entry(client_id.to_string()).or_insert_with(|| App {
            tenant: tenant.into(),
            oid: oid.into(),
            ..Default::default()
        });
        f(app)
    }

    /// Registers an app with a client secret.
    pub fn add_secret(&self, tenant: &str, client_id: &str, oid: &str, secret: &str) {
        self.app_mut(tenant, client_id, oid, |a| a.secrets.push(secret.into()));
    }

    /// Registers an app's certificate by its SHA-1 thumbprint only (its x5t and RSAPublicKey DER);
    /// [`FakeEntra::add_client_certificate`] registers both thumbprints.
    pub fn add_certificate(
        &self,
        tenant: &str,
        client_id: &str,
        oid: &str,
        x5t: &str,
        public_key: &[u8],
    ) {
        self.app_mut(tenant, client_id, oid, |a| {
            a.certificates.insert(x5t.into(), public_key.to_vec());
        });
    }

    /// Registers an app's certificate by both of its thumbprints, as Entra knows an uploaded
    /// certificate: assertions may name it by `x5t` (SHA-1, RS256) or `x5t#S256` (SHA-256, PS256).
    pub fn add_client_certificate(
        &self,
        tenant: &str,
        client_id: &str,
        oid: &str,
        cert: &super::keys::ClientCertificate,
    ) {
        self.app_mut(tenant, client_id, oid, |a| {
            a.certificates.insert(cert.x5t(), cert.public_key.clone());
            a.certificates_s256
                .insert(cert.x5t_s256(), cert.public_key.clone());
        });
    }

    /// Registers a federated identity credential on an app.
    pub fn add_federated(&self, tenant: &str, client_id: &str, oid: &str, fc: FederatedCredential) {
        self.app_mut(tenant, client_id, oid, |a| a.federated.push(fc));
    }

    /// Registers a tenant without apps.
    pub fn add_tenant(&self, tenant: &str) {
        self.state.lock().unwrap().tenants.insert(tenant.into());
    }

    /// Returns the token endpoint of a tenant.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host)
    }
}

async fn token(
    State(fake): State<FakeEntra>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    fake.calls.hit("token");
    if let Some(f) = fake.faults.next().await {
        return f;
    }
    match form.get("grant_type").map(String::as_str) {
        Some(devicecode::DEVICE_CODE_GRANT) => return devicecode::poll(&fake, &form),
        Some("refresh_token") => return devicecode::refresh(&fake, &form),
        _ => {}
    }
    let mut s = fake.state.lock().unwrap();
    if !s.tenants.contains(&tenant) {
        return err(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return err(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let scope = form.get("scope").cloned().unwrap_or_default();
    let Some(audience) = scope.strip_suffix("/.default").map(str::to_string) else {
        return err(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid.",
        );
    };
    let Some(app) = s
        .apps
        .get(&client_id)
        .filter(|a| a.tenant == tenant)
        .cloned()
    else {
        return err(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if let Some(secret) = form.get("client_secret") {
        if !app.secrets.contains(secret) {
            return err(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return err(
                400,
                "invalid_request",
                900144,
                "The request body must contain the parameter: 'client_assertion_type'.",
            );
        }
        if let Err(r) = check_assertion(&s, &app, &tenant, &client_id, assertion) {
            return r;
        }
        if let Some((_, claims, _)) = split_jwt(assertion)
            && let Some(jti) = claims["jti"].as_str()
        {
            s.jtis.insert(jti.to_string());
        }
    } else {
        return err(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let lifetime = s.lifetime;
    drop(s);
    let access_token = fake.tokens.issue(Grant {
        audience,
        oid: app.oid,
        appid: client_id,
        tid: tenant,
        exp: now() + lifetime,
    });
    axum::Json(serde_json::json!({
        "token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token,
    }))
    .into_response()
}
