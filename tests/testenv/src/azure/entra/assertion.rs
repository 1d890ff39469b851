//! Verifying client assertions at the fake token endpoint: certificate assertions (RS256 with
//! `x5t`, PS256 with `x5t#S256`) against the registered certificate, federated (workload identity)
//! assertions against the issuer's keys, and the time window of both.

use axum::response::Response;

use super::{App, State_, err};
use crate::azure::common::now;
use crate::azure::keys::{
    split_jwt, verify_pss_with_public_key, verify_with_jwks, verify_with_public_key,
};

#[allow(clippy::result_large_err)]
pub(super) fn check_assertion(
    s: &State_,
    app: &App,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> Result<(), Response> {
    let Some((header, claims, _)) = split_jwt(assertion) else {
        return Err(err(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let t = now();
    let thumbprint = match (
        header.get("x5t").and_then(|v| v.as_str()),
        header.get("x5t#S256").and_then(|v| v.as_str()),
    ) {
        // SHA-256 wins when both are sent. Thumbprints are base64url with or without padding
        // (MSAL pads them).
        (_, Some(s256)) => Some(app.certificates_s256.get(s256.trim_end_matches('='))),
        (Some(x5t), None) => Some(app.certificates.get(x5t.trim_end_matches('='))),
        (None, None) => None,
    };
    if let Some(key) = thumbprint {
        // A certificate credential.
        let Some(key) = key else {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. Key was not found.",
            ));
        };
        // RS256 (what this operator signs) or PS256 (what MSAL signs with `x5t#S256`).
        let verified = match header["alg"].as_str() {
            Some("RS256") => verify_with_public_key(assertion, key),
            Some("PS256") => verify_pss_with_public_key(assertion, key),
            _ => false,
        };
        if !verified {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ));
        }
        let endpoint = format!("{}/{tenant}/oauth2/v2.0/token", s.base);
        if claims["aud"] != endpoint.as_str() {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "The audience claim does not match the token endpoint.",
            ));
        }
        if claims["iss"] != client_id || claims["sub"] != client_id {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "iss and sub must equal the client id.",
            ));
        }
        let jti = claims["jti"].as_str().unwrap_or("");
        if jti.is_empty() || s.jtis.contains(jti) {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "The jti claim is missing or was replayed.",
            ));
        }
    } else {
        // A federated credential: the issuer's JWKS, issuer, subject and audience.
        let matched = app.federated.iter().find(|fc| {
            let aud_ok = match &claims["aud"] {
                serde_json::Value::String(a) => a == &fc.audience,
                serde_json::Value::Array(a) => a.iter().any(|x| x == fc.audience.as_str()),
                _ => false,
            };
            claims["iss"] == fc.issuer.as_str() && claims["sub"] == fc.subject.as_str() && aud_ok
        });
        let Some(fc) = matched else {
            let text = format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                claims["iss"].as_str().unwrap_or(""),
                claims["sub"].as_str().unwrap_or(""),
                claims["aud"]
            );
            return Err(err(400, "invalid_client", 70021, &text));
        };
        if verify_with_jwks(assertion, &fc.jwks).is_none() {
            return Err(err(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation against the issuer's keys.",
            ));
        }
    }
    // NumericDate may have a fraction (RFC 7519; MSAL sends `time.time() + 600`).
    let exp = claims["exp"].as_f64().unwrap_or(0.0);
    let nbf = claims["nbf"].as_f64().unwrap_or(0.0);
    if exp <= t as f64 || nbf > (t + 300) as f64 {
        return Err(err(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}
