//! Per-test namespaces, ServiceAccount identities and the service-account issuer's keys.

use super::{ControlPlane, Error};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::AuthInfo;

/// Label put on every namespace made by [`ControlPlane::namespace`].
pub const NAMESPACE_LABEL: &str = "testenv.amlsecrets.io/test";
/// Lifetime asked for the tokens behind [`ControlPlane::client_as_service_account`].
const CLIENT_TOKEN_SECONDS: i64 = 3600;

impl ControlPlane {
    /// Creates a fresh namespace `test-<random>` and returns its name.
    ///
    /// Namespaces are not deleted afterwards (nothing would finalize them without a
    /// controller-manager); the control plane's data is thrown away when the test binary exits.
    pub async fn namespace(&self) -> String {
        let name = format!("test-{}", random_suffix());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "creating test namespace {name} failed: {e}\n{}",
                    self.log_tails()
                )
            });
        name
    }

    /// Creates the ServiceAccount `namespace/name` unless it exists.
    pub async fn ensure_service_account(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &account).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Issues a token for the ServiceAccount `namespace/name` through the TokenRequest API
    /// (the ServiceAccount is created if missing). Empty `audiences` means the API server's
    /// own audience (its URL); `expiration_seconds` must be at least 600 if given.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        expiration_seconds: Option<i64>,
    ) -> Result<String, Error> {
        self.ensure_service_account(namespace, name).await?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
                expiration_seconds,
                ..Default::default()
            }),
            ..Default::default()
        };
        let issued = api
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        issued
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| Error::NoToken(format!("{namespace}/{name}")))
    }

    /// Returns a client that authenticates as the ServiceAccount `namespace/name` with a
    /// TokenRequest token, creating the ServiceAccount if missing; it holds only the
    /// permissions RBAC grants that ServiceAccount. Call inside a Tokio runtime.
    pub async fn client_as_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, Error> {
        let token = self
            .service_account_token(namespace, name, &[], Some(CLIENT_TOKEN_SECONDS))
            .await?;
        let mut config = self.admin_config();
        config.auth_info = AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        config.default_namespace = namespace.to_owned();
        Ok(kube::Client::try_from(config)?)
    }

    /// Writes to `path` a kubeconfig that authenticates as the ServiceAccount `namespace/name`
    /// (created if missing) with a TokenRequest token valid for `expiration_seconds`, for a
    /// process run under that identity: its requests carry the user
    /// `system:serviceaccount:<namespace>:<name>` and hold only what RBAC grants it.
    pub async fn write_service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        expiration_seconds: i64,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        let token = self
            .service_account_token(namespace, name, &[], Some(expiration_seconds))
            .await?;
        let kubeconfig = super::kubeconfig::with_token(&self.kubeconfig, &token, namespace);
        let yaml = serde_saphyr::to_string(&kubeconfig).expect("a kubeconfig always serializes");
        std::fs::write(path, yaml)
            .map_err(|e| Error::Io(format!("cannot write {}", path.display()), e))
    }

    /// Fetches the issuer's JSON Web Key Set (`/openid/v1/jwks`), the keys that verify
    /// service-account tokens (fetched as admin; anonymous callers may read it too).
    pub async fn jwks(&self) -> Result<serde_json::Value, Error> {
        self.get_json("/openid/v1/jwks").await
    }

    /// Fetches the issuer's OIDC discovery document (`/.well-known/openid-configuration`).
    pub async fn openid_configuration(&self) -> Result<serde_json::Value, Error> {
        self.get_json("/.well-known/openid-configuration").await
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value, Error> {
        get_json(&self.client(), path).await
    }

    /// Returns a client that sends no credentials (user `system:anonymous`).
    pub fn anonymous_client(&self) -> kube::Client {
        let mut config = self.admin_config();
        config.auth_info = AuthInfo::default();
        kube::Client::try_from(config)
            .expect("the admin client configuration was validated at start")
    }
}

/// GETs `path` (e.g. `/openid/v1/jwks`) with `client` and parses the answer as JSON.
pub async fn get_json(client: &kube::Client, path: &str) -> Result<serde_json::Value, Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a path is a valid URI");
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text)?)
}

/// Lets unauthenticated callers read the OIDC discovery document and the JWKS, as a
/// public issuer does (Entra ID fetches them without credentials).
pub(super) async fn allow_anonymous_discovery(client: &kube::Client) -> Result<(), Error> {
    const NAME: &str = "testenv:service-account-issuer-discovery";
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(NAME.to_owned()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: "system:service-account-issuer-discovery".to_owned(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Group".to_owned(),
            name: "system:unauthenticated".to_owned(),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            NAME,
            &PatchParams::apply("testenv").force(),
            &Patch::Apply(&binding),
        )
        .await?;
    Ok(())
}

/// Returns eight random lowercase hex digits.
fn random_suffix() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
