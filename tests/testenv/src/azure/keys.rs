//! Test key material: RSA keys (checked in, since ring cannot generate RSA), a client certificate
//! in PEM and PFX form, and a service-account token issuer with its JWKS.

use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::common::{b64url, b64url_decode, now};

/// The client certificate's RSA key (PKCS#8 PEM).
pub const CLIENT_KEY_PEM: &str = include_str!("testdata/client-key.pem");
/// The same key in PKCS#1 (`RSA PRIVATE KEY`) PEM.
pub const CLIENT_KEY_PKCS1_PEM: &str = include_str!("testdata/client-key-pkcs1.pem");
/// A key that belongs to no registered certificate.
pub const WRONG_KEY_PEM: &str = include_str!("testdata/wrong-key.pem");
/// The key of the fake service-account token issuer.
pub const ISSUER_KEY_PEM: &str = include_str!("testdata/issuer-key.pem");

fn pkcs8_der(pem: &str) -> Vec<u8> {
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("pem key") {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => panic!("test keys are PKCS#8"),
    }
}

/// Returns the ring key pair of a PKCS#8 PEM key.
pub fn rsa_key(pem: &str) -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(&pkcs8_der(pem)).expect("rsa key")
}

/// A self-signed client certificate for a service principal.
pub struct ClientCertificate {
    /// The certificate PEM.
    pub cert_pem: String,
    /// The certificate DER.
    pub cert_der: Vec<u8>,
    /// The key PEM (PKCS#8).
    pub key_pem: String,
    /// The RSAPublicKey DER of the key (what the fake Entra verifies with).
    pub public_key: Vec<u8>,
}

impl ClientCertificate {
    /// Builds a certificate for the key `key_pem` (PKCS#8 PEM).
    pub fn new(key_pem: &str, common_name: &str) -> Self {
        let key = rcgen::KeyPair::from_pem(key_pem).expect("rcgen rsa key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("self-signed");
        ClientCertificate {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key_pem.to_string(),
            public_key: rsa_key(key_pem).public_key().as_ref().to_vec(),
        }
    }

    /// Returns certificate and key in one PEM string.
    pub fn combined_pem(&self) -> String {
        format!("{}\n{}", self.cert_pem, self.key_pem)
    }

    /// Returns a PFX (PKCS#12) of certificate and key, protected by `password`.
    pub fn pfx(&self, password: &str) -> Vec<u8> {
        let key = p12_keystore::PrivateKey::from_der(&pkcs8_der(&self.key_pem)).expect("p12 key");
        let cert = p12_keystore::Certificate::from_der(&self.cert_der).expect("p12 cert");
        let chain = p12_keystore::PrivateKeyChain::new(b"client".as_slice(), key, vec![cert]);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "client",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        store.writer(password).write().expect("pfx")
    }

    /// Returns the base64url SHA-256 thumbprint (`x5t#S256`).
    pub fn x5t_s256(&self) -> String {
        b64url(ring::digest::digest(&ring::digest::SHA256, &self.cert_der).as_ref())
    }

    /// Returns the base64url SHA-1 thumbprint (`x5t`).
    pub fn x5t(&self) -> String {
        b64url(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der).as_ref(),
        )
    }
}

/// Signs a JWT with RS256 under `kid`.
pub fn sign_jwt(key: &RsaKeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64url(&sig))
}

/// A fake OIDC issuer of service-account tokens (like a cluster's), with its JWKS.
pub struct TokenIssuer {
    /// The issuer URL.
    pub issuer: String,
    key: RsaKeyPair,
    kid: String,
}

impl TokenIssuer {
    /// Builds an issuer named `issuer` with the checked-in issuer key.
    pub fn new(issuer: &str) -> Self {
        TokenIssuer {
            issuer: issuer.into(),
            key: rsa_key(ISSUER_KEY_PEM),
            kid: "test-kid".into(),
        }
    }

    /// Issues a service-account token for `system:serviceaccount:{ns}:{sa}` valid `lifetime_secs`.
    pub fn token(&self, ns: &str, sa: &str, audience: &str, lifetime_secs: i64) -> String {
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": format!("system:serviceaccount:{ns}:{sa}"), "aud": [audience],
            "iat": now(), "nbf": now(), "exp": now() + lifetime_secs,
        });
        sign_jwt(&self.key, &self.kid, &claims)
    }

    /// Returns the JWKS (`{"keys":[…]}`) publishing the issuer's key.
    pub fn jwks(&self) -> serde_json::Value {
        let public = self.key.public();
        let comps: RsaPublicKeyComponents<Vec<u8>> = public.into();
        serde_json::json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": b64url(&comps.n), "e": b64url(&comps.e),
        }]})
    }
}

/// Verifies an RS256 or ES256 JWT against a JWKS (the kube-apiserver signs with either, by its
/// key type); returns its header and claims when the signature holds.
pub fn verify_with_jwks(
    token: &str,
    jwks: &serde_json::Value,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let (header, claims, sig) = split_jwt(token)?;
    let input = &token.as_bytes()[..token.rfind('.')?];
    let alg = header["alg"].as_str()?.to_string();
    let keys = jwks["keys"].as_array()?;
    let field = |k: &serde_json::Value, f: &str| k[f].as_str().and_then(b64url_decode);
    let ok = keys
        .iter()
        .filter(|k| header.get("kid").is_none() || k["kid"] == header["kid"])
        .any(|k| match (alg.as_str(), k["kty"].as_str()) {
            ("RS256", Some("RSA")) => match (field(k, "n"), field(k, "e")) {
                (Some(n), Some(e)) => RsaPublicKeyComponents { n, e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, &sig)
                    .is_ok(),
                _ => false,
            },
            ("ES256", Some("EC")) if k["crv"] == "P-256" => match (field(k, "x"), field(k, "y")) {
                (Some(x), Some(y)) => {
                    let point = [&[4u8][..], &x, &y].concat();
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(input, &sig)
                        .is_ok()
                }
                _ => false,
            },
            _ => false,
        });
    ok.then_some((header, claims))
}

/// Verifies an RS256 signature with an RSAPublicKey DER.
pub fn verify_with_public_key(token: &str, public_key: &[u8]) -> bool {
    let (Some(pos), Some((_, _, sig))) = (token.rfind('.'), split_jwt(token)) else {
        return false;
    };
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(&token.as_bytes()[..pos], &sig)
        .is_ok()
}

/// Verifies a PS256 signature (RSASSA-PSS, SHA-256, salt of 32 bytes) with an RSAPublicKey DER.
pub fn verify_pss_with_public_key(token: &str, public_key: &[u8]) -> bool {
    let (Some(pos), Some((_, _, sig))) = (token.rfind('.'), split_jwt(token)) else {
        return false;
    };
    signature::UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, public_key)
        .verify(&token.as_bytes()[..pos], &sig)
        .is_ok()
}

/// Splits a JWT into its decoded header, claims and signature.
pub fn split_jwt(token: &str) -> Option<(serde_json::Value, serde_json::Value, Vec<u8>)> {
    let mut parts = token.split('.');
    let h = serde_json::from_slice(&b64url_decode(parts.next()?)?).ok()?;
    let c = serde_json::from_slice(&b64url_decode(parts.next()?)?).ok()?;
    let s = b64url_decode(parts.next()?)?;
    parts.next().is_none().then_some((h, c, s))
}
