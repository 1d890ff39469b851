//! The credential registry: the same identity gets the same `Credential` (and token cache), so many
//! WorkspaceSecrets share one token; rotated material gets a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::hmac;

use super::cloud::CloudEndpoints;
use super::credential::{CertificateMaterial, Credential, CredentialSpec};
use super::error::AzureError;
use super::http::Http;

/// Identifies a credential: method, cloud, tenant, client and a keyed hash of its material.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialKey {
    method: &'static str,
    authority: String,
    tenant: String,
    client: String,
    material: String,
}

/// How long a credential nobody asked for is kept (with its cached tokens).
const IDLE: Duration = Duration::from_secs(2 * 3600);

/// Hands out one shared `Credential` per identity; forgets credentials nobody asked for within
/// [`IDLE`], so a token is reused across reconciles and a rotated secret's credential retires.
pub struct CredentialRegistry {
    http: Http,
    /// A per-process key: material hashes are useless outside this process.
    hash_key: hmac::Key,
    credentials: Mutex<HashMap<CredentialKey, (Arc<Credential>, Instant)>>,
}

impl std::fmt::Debug for CredentialRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialRegistry {{ credentials: {} }}", self.len())
    }
}

impl CredentialRegistry {
    /// Builds an empty registry whose credentials use `http`.
    pub fn new(http: Http) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let hash_key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system random generator");
        CredentialRegistry {
            http,
            hash_key,
            credentials: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the credential for `spec` in `cloud`, creating it on first use.
    pub fn credential(
        &self,
        cloud: &CloudEndpoints,
        spec: CredentialSpec,
    ) -> Result<Arc<Credential>, AzureError> {
        let key = self.key(cloud, &spec);
        let mut map = self.credentials.lock().expect("registry lock");
        let now = Instant::now();
        if let Some((c, used)) = map.get_mut(&key) {
            *used = now;
            return Ok(c.clone());
        }
        Self::sweep(&mut map, IDLE);
        let cred = Arc::new(Credential::new(spec, cloud, self.http.clone())?);
        map.insert(key, (cred.clone(), now));
        Ok(cred)
    }

    /// Returns how many credentials are alive.
    pub fn len(&self) -> usize {
        let map = self.credentials.lock().expect("registry lock");
        map.len()
    }

    /// Tells whether no credential is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets credentials idle for longer than `idle` that nobody holds.
    fn sweep(map: &mut HashMap<CredentialKey, (Arc<Credential>, Instant)>, idle: Duration) {
        let now = Instant::now();
        map.retain(|_, (c, used)| now.duration_since(*used) < idle || Arc::strong_count(c) > 1);
    }

    fn hash(&self, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.hash_key);
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        super::credential::jwt::b64url(ctx.sign().as_ref())
    }

    fn key(&self, cloud: &CloudEndpoints, spec: &CredentialSpec) -> CredentialKey {
        let none: &[u8] = b"";
        let (tenant, client, material) = match spec {
            CredentialSpec::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => (
                tenant_id.clone(),
                client_id.clone(),
                self.hash(&[secret.expose().as_bytes()]),
            ),
            CredentialSpec::ClientCertificate {
                tenant_id,
                client_id,
                certificate,
            } => {
                let m = match certificate {
                    CertificateMaterial::Pem {
                        certificate,
                        private_key,
                    } => self.hash(&[
                        b"pem",
                        certificate.as_bytes(),
                        private_key
                            .as_ref()
                            .map(|k| k.expose().as_bytes())
                            .unwrap_or(none),
                    ]),
                    CertificateMaterial::Pfx { der, password } => self.hash(&[
                        b"pfx",
                        der.expose(),
                        password
                            .as_ref()
                            .map(|p| p.expose().as_bytes())
                            .unwrap_or(none),
                    ]),
                };
                (tenant_id.clone(), client_id.clone(), m)
            }
            CredentialSpec::WorkloadIdentity {
                tenant_id,
                client_id,
                assertion,
            } => (tenant_id.clone(), client_id.clone(), assertion.id()),
            CredentialSpec::ManagedIdentity { identity, endpoint } => {
                let sel = identity
                    .selector()
                    .map(|(k, v)| format!("{k}={v}"))
                    .unwrap_or_default();
                (String::new(), sel, endpoint.clone())
            }
            CredentialSpec::AzureCli { tenant_id } => (
                tenant_id.clone().unwrap_or_default(),
                String::new(),
                String::new(),
            ),
            CredentialSpec::Tokens { arm, key_vault } => {
                let m = self.hash(&[
                    arm.as_ref().map(|t| t.expose().as_bytes()).unwrap_or(none),
                    key_vault
                        .as_ref()
                        .map(|t| t.expose().as_bytes())
                        .unwrap_or(none),
                ]);
                (String::new(), String::new(), m)
            }
        };
        CredentialKey {
            method: spec.method(),
            authority: format!("{}|{}", cloud.authority_host, cloud.resource_manager),
            tenant,
            client,
            material,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::http::HttpConfig;

    fn secret(s: &str) -> CredentialSpec {
        CredentialSpec::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: s.into(),
        }
    }

    #[test]
    fn same_identity_shares_a_credential_and_rotation_creates_a_new_one() {
        let reg = CredentialRegistry::new(Http::new(&HttpConfig::default()).unwrap());
        let cloud = CloudEndpoints::public();
        let a = reg.credential(&cloud, secret("one")).unwrap();
        let b = reg.credential(&cloud, secret("one")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = reg.credential(&cloud, secret("two")).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(reg.len(), 2);
        drop((a, b));
        assert_eq!(reg.len(), 2, "an unused credential is kept for reuse");
        let again = reg.credential(&cloud, secret("one")).unwrap();
        drop(again);
        CredentialRegistry::sweep(&mut reg.credentials.lock().unwrap(), Duration::ZERO);
        assert_eq!(
            reg.len(),
            1,
            "idle credentials nobody holds are forgotten; c is held"
        );
        let other_cloud = reg
            .credential(&CloudEndpoints::china(), secret("two"))
            .unwrap();
        assert!(!Arc::ptr_eq(&c, &other_cloud));
    }

    #[test]
    fn registry_debug_shows_no_material() {
        let reg = CredentialRegistry::new(Http::new(&HttpConfig::default()).unwrap());
        let cred = reg
            .credential(&CloudEndpoints::public(), secret("hunter2"))
            .unwrap();
        assert!(!format!("{reg:?} {cred:?} {:?}", secret("hunter2")).contains("hunter2"));
    }
}
