//! Key material for one real node: one cluster CA signing the serving certificates of the API
//! server and the kubelet and the client certificates of every component, and the
//! service-account key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertKey {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

/// Every certificate a node needs, PEM.
#[derive(Clone)]
pub struct NodePki {
    /// The cluster CA (trusted by every client and, for client certificates, by the servers).
    pub ca: CertKey,
    /// The API server's serving certificate (node IP, Service IP, loopback, `kubernetes…`).
    pub apiserver: CertKey,
    /// The kubelet's serving certificate on the node IP.
    pub kubelet_serving: CertKey,
    /// Admin (`system:masters`): the harness, kubectl and helm.
    pub admin: CertKey,
    /// The API server's client identity towards the kubelet (logs, exec, stats).
    pub apiserver_kubelet_client: CertKey,
    /// The kubelet (`system:node:<name>` in `system:nodes`).
    pub kubelet: CertKey,
    /// `system:kube-controller-manager`.
    pub controller_manager: CertKey,
    /// `system:kube-scheduler`.
    pub scheduler: CertKey,
    /// The service-account signing key (PKCS#8) and its public half.
    pub sa_key: String,
    /// The public half of the service-account key (PKIX).
    pub sa_pub: String,
}

impl std::fmt::Debug for NodePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePki").finish_non_exhaustive()
    }
}

impl NodePki {
    /// Generates fresh key material for a node named `node_name` at `node_ip`, whose
    /// `kubernetes` Service has the ClusterIP `service_ip`.
    pub fn generate(
        node_name: &str,
        node_ip: IpAddr,
        service_ip: IpAddr,
    ) -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "amlsecrets real-node CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = CertKey {
            cert: ca_cert.pem(),
            key: ca_key.serialize_pem(),
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let loopback = IpAddr::from([127, 0, 0, 1]);
        let apiserver = serving(
            &issuer,
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &[loopback, node_ip, service_ip],
        )?;
        let kubelet_serving = serving(&issuer, node_name, &[node_name], &[node_ip])?;
        let node_user = format!("system:node:{node_name}");
        let sa = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(Self {
            ca,
            apiserver,
            kubelet_serving,
            admin: client(&issuer, "real-node-admin", Some("system:masters"))?,
            apiserver_kubelet_client: client(
                &issuer,
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
            )?,
            kubelet: client(&issuer, &node_user, Some("system:nodes"))?,
            controller_manager: client(&issuer, "system:kube-controller-manager", None)?,
            scheduler: client(&issuer, "system:kube-scheduler", None)?,
            sa_key: sa.serialize_pem(),
            sa_pub: sa.public_key_pem(),
        })
    }
}

fn serving(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    names: &[&str],
    ips: &[IpAddr],
) -> Result<CertKey, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn client(
    issuer: &Issuer<'static, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<CertKey, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
