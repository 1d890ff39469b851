//! Service principals with a certificate: PEM (one or two PEM strings) or PFX, signing an RS256
//! client assertion with the `x5t` thumbprint header.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TokenSource;
use super::entra::{Grant, request_token};
use super::jwt;
use crate::azure::BoxFuture;
use crate::azure::cloud::CloudEndpoints;
use crate::azure::error::AzureError;
use crate::azure::http::Http;
use crate::azure::redact::{SecretBytes, SecretString};
use crate::azure::token_cache::AccessToken;

/// How long a client assertion is valid.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// A client certificate with its RSA private key.
#[derive(Clone)]
pub enum CertificateMaterial {
    /// PEM text: the certificate (chain) and the private key, in one string or two.
    Pem {
        /// PEM holding the certificate; may hold the key too.
        certificate: String,
        /// PEM holding the private key (PKCS#8 or PKCS#1 RSA); `None` when `certificate` holds it.
        private_key: Option<SecretString>,
    },
    /// A PKCS#12 (PFX) file with an optional password.
    Pfx {
        /// The PFX bytes.
        der: SecretBytes,
        /// The password, if the file has one.
        password: Option<SecretString>,
    },
}

impl fmt::Debug for CertificateMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateMaterial::Pem { .. } => f.write_str("Pem(<redacted>)"),
            CertificateMaterial::Pfx { .. } => f.write_str("Pfx(<redacted>)"),
        }
    }
}

/// An RSA key with the certificate that matches it.
pub(crate) struct AssertionSigner {
    key: RsaKeyPair,
    /// base64url SHA-1 of the certificate DER.
    x5t: String,
}

fn bad(msg: impl Into<String>) -> AzureError {
    AzureError::InvalidCredential(msg.into())
}

impl AssertionSigner {
    /// Loads the key and the matching certificate, checking that they belong together.
    pub(crate) fn load(material: &CertificateMaterial) -> Result<Self, AzureError> {
        let (certs, key) = match material {
            CertificateMaterial::Pem {
                certificate,
                private_key,
            } => {
                let certs = CertificateDer::pem_slice_iter(certificate.as_bytes())
                    .map(|c| c.map(|c| c.as_ref().to_vec()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("certificate PEM: {e}")))?;
                let key_pem = private_key
                    .as_ref()
                    .map(|k| k.expose())
                    .unwrap_or(certificate);
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| bad(format!("private key PEM: {e}")))?;
                let key = match key {
                    PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
                    PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
                    _ => {
                        return Err(bad(
                            "the private key is not an RSA key (PKCS#8 or PKCS#1 RSA expected)",
                        ));
                    }
                }
                .map_err(|e| bad(format!("private key: {e}")))?;
                (certs, key)
            }
            CertificateMaterial::Pfx { der, password } => {
                let pw = password.as_ref().map(|p| p.expose()).unwrap_or("");
                let store = p12_keystore::KeyStore::from_pkcs12(
                    der.expose(),
                    pw,
                    p12_keystore::Pkcs12ImportPolicy::Relaxed,
                )
                .map_err(|e| {
                    bad(format!(
                        "PFX (wrong password or unsupported encryption?): {e}"
                    ))
                })?;
                let (_, chain) = store
                    .private_key_chain()
                    .ok_or_else(|| bad("the PFX holds no private key with a certificate"))?;
                let key = RsaKeyPair::from_pkcs8(chain.key().as_der())
                    .map_err(|e| bad(format!("PFX private key is not a usable RSA key: {e}")))?;
                let certs = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
                (certs, key)
            }
        };
        if certs.is_empty() {
            return Err(bad("no certificate found"));
        }
        // The certificate's SubjectPublicKeyInfo embeds the RSAPublicKey DER of its key.
        let public = key.public().as_ref().to_vec();
        let cert = certs
            .iter()
            .find(|c| c.windows(public.len()).any(|w| w == public.as_slice()))
            .ok_or_else(|| bad("no certificate matches the private key"))?;
        let thumb = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
        Ok(AssertionSigner {
            key,
            x5t: jwt::b64url(thumb.as_ref()),
        })
    }

    /// Signs a client assertion for a token endpoint.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<SecretString, AzureError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jwt::sign_rs256(&self.key, &header, &claims)
            .map(SecretString::from)
            .map_err(bad)
    }
}

/// A service principal authenticating with a certificate.
pub(crate) struct CertificateSource {
    token_endpoint: String,
    client_id: String,
    signer: AssertionSigner,
    principal: String,
}

impl CertificateSource {
    pub(crate) fn new(
        cloud: &CloudEndpoints,
        tenant_id: String,
        client_id: String,
        signer: AssertionSigner,
        principal: String,
    ) -> Self {
        CertificateSource {
            token_endpoint: cloud.token_endpoint(&tenant_id),
            client_id,
            signer,
            principal,
        }
    }
}

impl TokenSource for CertificateSource {
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(async move {
            let assertion = self
                .signer
                .assertion(&self.client_id, &self.token_endpoint)?;
            request_token(
                http,
                &self.token_endpoint,
                &self.client_id,
                scope,
                Grant::Assertion(assertion),
                &self.principal,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_material_is_an_invalid_credential_without_echoing_it() {
        let m = CertificateMaterial::Pem {
            certificate: "not a pem".into(),
            private_key: Some("s3cr3t-key-material".into()),
        };
        let e = AssertionSigner::load(&m).err().unwrap();
        assert_eq!(e.reason(), "CredentialsUnavailable");
        assert!(!e.to_string().contains("s3cr3t"));
        let m = CertificateMaterial::Pfx {
            der: SecretBytes::new(vec![1, 2, 3]),
            password: None,
        };
        assert!(AssertionSigner::load(&m).is_err());
        assert_eq!(format!("{m:?}"), "Pfx(<redacted>)");
    }
}
