//! Key material for one control plane: serving and client CAs, certificates, service-account key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};

/// The group every admin certificate carries: bound to `cluster-admin` by the bootstrap RBAC policy.
pub const ADMIN_GROUP: &str = "system:masters";
/// The user name of the admin identity the tests act as.
pub const ADMIN_USER: &str = "testenv-admin";

/// PEM-encoded certificates and keys for one control plane.
#[derive(Clone)]
pub struct Pki {
    /// CA that signed the API server's serving certificate (what clients trust).
    pub server_ca_pem: String,
    /// Serving certificate of the API server (SAN 127.0.0.1, localhost, kubernetes.default.svc…).
    pub serving_cert_pem: String,
    /// Private key of the serving certificate.
    pub serving_key_pem: String,
    /// CA the API server trusts for client certificates (`--client-ca-file`).
    pub client_ca_pem: String,
    /// Client certificate of the admin identity (group `system:masters`).
    pub admin_cert_pem: String,
    /// Private key of the admin client certificate.
    pub admin_key_pem: String,
    /// ECDSA P-256 key the API server signs service-account tokens with (PKCS#8 PEM).
    pub sa_signing_key_pem: String,
    /// Public half of the service-account signing key (PKIX PEM).
    pub sa_public_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// Generates fresh key material; nothing is reused between control planes.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let (server_ca_pem, server_ca) = new_ca("testenv serving CA")?;
        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        serving.subject_alt_names.extend([
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        ]);
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &server_ca)?;

        let (client_ca_pem, client_ca) = new_ca("testenv client CA")?;
        let admin_key = KeyPair::generate()?;
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin
            .distinguished_name
            .push(DnType::CommonName, ADMIN_USER);
        admin
            .distinguished_name
            .push(DnType::OrganizationName, ADMIN_GROUP);
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin.signed_by(&admin_key, &client_ca)?;

        let sa_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(Self {
            server_ca_pem,
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            client_ca_pem,
            admin_cert_pem: admin_cert.pem(),
            admin_key_pem: admin_key.serialize_pem(),
            sa_signing_key_pem: sa_key.serialize_pem(),
            sa_public_key_pem: sa_key.public_key_pem(),
        })
    }
}

/// Creates a self-signed CA and returns its PEM and an issuer to sign leaf certificates with.
fn new_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}
