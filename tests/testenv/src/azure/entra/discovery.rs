//! The tenant's OpenID configuration at the fake Entra, which MSAL reads before any token request.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::{FakeEntra, err};

/// The tenant's OpenID configuration, shaped like Entra's (MSAL reads `token_endpoint` from it;
/// an unknown tenant is a 400 with AADSTS90002, as Entra answers).
pub(super) async fn openid_configuration(
    State(fake): State<FakeEntra>,
    Path(tenant): Path<String>,
) -> Response {
    fake.calls.hit("openid-configuration");
    let base = {
        let s = fake.state.lock().unwrap();
        if !s.tenants.contains(&tenant) {
            return err(
                400,
                "invalid_tenant",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        s.base.clone()
    };
    let t = format!("{base}/{tenant}");
    axum::Json(serde_json::json!({
        "token_endpoint": format!("{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{t}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{t}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{t}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{t}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
        "kerberos_endpoint": format!("{t}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    }))
    .into_response()
}
