//! Workload identity with real ServiceAccount tokens: a TokenRequest against the test
//! kube-apiserver, verified by the fake Entra ID with the API server's own JWKS and issuer.

use std::sync::Arc;

use amlsecrets::azure::{
    AssertionSource, AzureApi, AzureError, BoxFuture, CredentialSpec, SecretString,
};
use testenv::azure::{FederatedCredential, TENANT};
use testenv::control_plane::ControlPlane;

use super::support::Env;

const CLIENT: &str = "44444444-0000-0000-0000-000000000004";
const OID: &str = "dddddddd-0000-0000-0000-000000000004";
const EXCHANGE: &str = "api://AzureADTokenExchange";

/// What the controller does: a TokenRequest for the ServiceAccount named in the spec.
struct TokenRequestSource {
    cp: &'static ControlPlane,
    ns: String,
    sa: String,
}

impl AssertionSource for TokenRequestSource {
    fn id(&self) -> String {
        format!("serviceaccount {}/{}", self.ns, self.sa)
    }

    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, AzureError>> {
        Box::pin(async move {
            self.cp
                .service_account_token(&self.ns, &self.sa, &[EXCHANGE], Some(3600))
                .await
                .map(SecretString::from)
                .map_err(|e| AzureError::InvalidCredential(format!("TokenRequest failed: {e}")))
        })
    }
}

#[tokio::test]
async fn workload_identity_with_a_real_service_account_token_reads_the_vault() {
    let cp = ControlPlane::shared().await;
    let env = Env::start().await;
    let ns = cp.namespace().await;
    env.fakes.entra.add_federated(
        TENANT,
        CLIENT,
        OID,
        FederatedCredential {
            issuer: cp.issuer().to_string(),
            subject: format!("system:serviceaccount:{ns}:ml-reader"),
            audience: EXCHANGE.into(),
            jwks: cp.jwks().await.unwrap(),
        },
    );
    env.fakes
        .vault
        .put_secret("wi-secret", "from-k8s", true, None);
    let spec = |sa: &str| CredentialSpec::WorkloadIdentity {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        assertion: Arc::new(TokenRequestSource {
            cp,
            ns: ns.clone(),
            sa: sa.into(),
        }),
    };
    let cred = env.cred(spec("ml-reader"));
    let s = env
        .client
        .get_secret(&cred, &env.vault(), "wi-secret", None)
        .await
        .unwrap();
    assert_eq!(s.value.expose(), "from-k8s");
    assert_eq!(cred.identity().object_id.as_deref(), Some(OID));

    // Another ServiceAccount of the same namespace is not federated: AADSTS70021.
    let other = env.cred(spec("someone-else"));
    let err = env
        .client
        .get_secret(&other, &env.vault(), "wi-secret", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::AuthenticationFailed {
                code: Some(70021),
                ..
            }
        ),
        "{err:?}"
    );
}
