//! The credential registry: the same identity gets the same `Credential` (and token cache), so many
//! WorkspaceSecrets share one token; rotated material gets a new one.

use std::sync::Arc;
use std::time::Duration;

use super::cloud::CloudEndpoints;
use super::credential::{CertificateMaterial, Credential, CredentialSpec};
use super::error::AzureError;
use super::http::Http;
use crate::digest::DigestKey;
use crate::idle_map::IdleMap;

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
pub(crate) const IDLE: Duration = Duration::from_secs(2 * 3600);

/// Hands out one shared `Credential` per identity; forgets credentials nobody holds or asked for
/// within [`IDLE`], so a token is reused across reconciles and a rotated secret's credential retires.
pub struct CredentialRegistry {
    http: Http,
    /// A per-process key: material digests are useless outside this process.
    hash_key: DigestKey,
    credentials: IdleMap<CredentialKey, Credential>,
}

impl std::fmt::Debug for CredentialRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialRegistry {{ credentials: {} }}", self.len())
    }
}

impl CredentialRegistry {
    /// Builds an empty registry whose credentials use `http`.
    pub fn new(http: Http) -> Self {
        CredentialRegistry {
            http,
            hash_key: DigestKey::random(),
            credentials: IdleMap::new(|_| IDLE),
        }
    }

    /// Returns the credential for `spec` in `cloud`, creating it on first use.
    pub fn credential(
        &self,
        cloud: &CloudEndpoints,
        spec: CredentialSpec,
    ) -> Result<Arc<Credential>, AzureError> {
        let key = self.key(cloud, &spec);
        self.credentials
            .get_or_try_insert_with(key, || Credential::new(spec, cloud, self.http.clone()))
    }

    /// Returns how many credentials are alive.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Tells whether no credential is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, parts: &[&[u8]]) -> String {
        self.hash_key.digest(parts.iter().copied()).to_string()
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

    #[tokio::test(start_paused = true)]
    async fn same_identity_shares_a_credential_and_rotation_creates_a_new_one() {
        let reg = CredentialRegistry::new(Http::new(&HttpConfig::default()).unwrap());
        let cloud = CloudEndpoints::public();
        let a = reg.credential(&cloud, secret("one")).unwrap();
        let b = reg.credential(&cloud, secret("one")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = reg.credential(&cloud, secret("two")).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(reg.len(), 2);
        let kept = Arc::downgrade(&a);
        drop((a, b));
        assert_eq!(reg.len(), 2, "an unused credential is kept for reuse");
        tokio::time::advance(IDLE / 2).await;
        let again = reg.credential(&cloud, secret("one")).unwrap();
        assert!(
            kept.upgrade().is_some_and(|k| Arc::ptr_eq(&k, &again)),
            "reused within the idle time"
        );
        drop(again);
        tokio::time::advance(IDLE + Duration::from_secs(1)).await;
        let three = reg.credential(&cloud, secret("three")).unwrap();
        assert!(
            kept.upgrade().is_none(),
            "an idle credential nobody holds is forgotten"
        );
        assert_eq!(reg.len(), 2, "c is held, so it stays; plus the new one");
        drop(three);
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
