//! Decoding and verifying service-account JWTs with `ring`, independently of the API server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Splits a compact JWS and returns its header, claims, signed part and signature.
pub fn decode(token: &str) -> (Value, Value, String, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    (
        json(parts[0]),
        json(parts[1]),
        signed,
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
}

/// Verifies `signature` over `signed` with the JWK (ES256 or RS256).
pub fn verify(
    jwk: &Value,
    alg: &str,
    signed: &[u8],
    signature: &[u8],
) -> Result<(), ring::error::Unspecified> {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    match alg {
        "ES256" => {
            assert_eq!(jwk["crv"], "P-256");
            let point = [vec![4u8], field("x"), field("y")].concat();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(signed, signature)
        }
        "RS256" => ring::signature::RsaPublicKeyComponents {
            n: field("n"),
            e: field("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed,
            signature,
        ),
        other => panic!("unexpected token algorithm {other}"),
    }
}
