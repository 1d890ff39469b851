//! The admin kubeconfig of a control plane, with its certificates inline.

use super::pki::Pki;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// Name of the cluster, user and context in the kubeconfig.
const KUBECONFIG_NAME: &str = "amlsecrets-testenv";

/// Builds the admin kubeconfig: the server CA and the admin client certificate, inline.
pub(super) fn admin(server_url: &str, pki: &Pki) -> Kubeconfig {
    use base64::Engine as _;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let user = AuthInfo {
        client_certificate_data: Some(b64(&pki.admin_cert_pem)),
        client_key_data: Some(b64(&pki.admin_key_pem).into()),
        ..Default::default()
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: KUBECONFIG_NAME.into(),
            cluster: Some(Cluster {
                server: Some(server_url.into()),
                certificate_authority_data: Some(b64(&pki.server_ca_pem)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: KUBECONFIG_NAME.into(),
            auth_info: Some(user),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: KUBECONFIG_NAME.into(),
            context: Some(Context {
                cluster: KUBECONFIG_NAME.into(),
                user: Some(KUBECONFIG_NAME.into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(KUBECONFIG_NAME.into()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Default::default()
    }
}

/// Returns `admin` with its user replaced by a bearer `token` and its context's namespace set.
pub(super) fn with_token(admin: &Kubeconfig, token: &str, namespace: &str) -> Kubeconfig {
    let mut kubeconfig = admin.clone();
    for user in &mut kubeconfig.auth_infos {
        user.auth_info = Some(AuthInfo {
            token: Some(token.to_owned().into()),
            ..Default::default()
        });
    }
    for context in &mut kubeconfig.contexts {
        if let Some(context) = &mut context.context {
            context.namespace = Some(namespace.to_owned());
        }
    }
    kubeconfig
}
