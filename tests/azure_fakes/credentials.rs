//! Every credential type gets a token and reports who it is (certificates: `certificates.rs`),
//! and one token is shared under load.

use std::sync::Arc;
use std::time::Duration;

use amlsecrets::azure::{
    AssertionSource, AzureApi, AzureError, BoxFuture, CredentialSpec, FileAssertionSource,
    ManagedIdentityId, SecretString,
};
use testenv::azure::keys::TokenIssuer;
use testenv::azure::{FederatedCredential, NodeIdentity, TENANT};

use super::support::{Env, SP_CLIENT, SP_OID, reads_a_secret};

const WI_CLIENT: &str = "33333333-0000-0000-0000-000000000003";
const WI_OID: &str = "cccccccc-0000-0000-0000-000000000003";
const ISSUER: &str = "https://oidc.test.local/cluster-1";
const EXCHANGE: &str = "api://AzureADTokenExchange";

#[tokio::test]
async fn client_secret_gets_a_token_and_reports_its_object_id() {
    let env = Env::start().await;
    let cred = env.sp();
    assert_eq!(reads_a_secret(&env, &cred).await.unwrap(), "s3cret-value");
    let id = cred.identity();
    assert_eq!(id.method, "ServicePrincipalSecret");
    assert_eq!(id.client_id.as_deref(), Some(SP_CLIENT));
    assert_eq!(id.tenant_id.as_deref(), Some(TENANT));
    assert_eq!(id.object_id.as_deref(), Some(SP_OID));
}

/// Mints service-account tokens like a TokenRequest would.
struct IssuerSource {
    issuer: TokenIssuer,
    ns: String,
    sa: String,
    lifetime: i64,
}

impl AssertionSource for IssuerSource {
    fn id(&self) -> String {
        format!("serviceaccount {}/{}", self.ns, self.sa)
    }

    fn assertion(&self) -> BoxFuture<'_, Result<SecretString, AzureError>> {
        let t = self
            .issuer
            .token(&self.ns, &self.sa, EXCHANGE, self.lifetime);
        Box::pin(async move { Ok(t.into()) })
    }
}

fn federate(env: &Env, issuer: &TokenIssuer, ns: &str, sa: &str) {
    env.fakes.entra.add_federated(
        TENANT,
        WI_CLIENT,
        WI_OID,
        FederatedCredential {
            issuer: issuer.issuer.clone(),
            subject: format!("system:serviceaccount:{ns}:{sa}"),
            audience: EXCHANGE.into(),
            jwks: issuer.jwks(),
        },
    );
}

fn wi_spec(source: Arc<dyn AssertionSource>) -> CredentialSpec {
    CredentialSpec::WorkloadIdentity {
        tenant_id: TENANT.into(),
        client_id: WI_CLIENT.into(),
        assertion: source,
    }
}

#[tokio::test]
async fn workload_identity_exchanges_a_service_account_token() {
    let env = Env::start().await;
    let issuer = TokenIssuer::new(ISSUER);
    federate(&env, &issuer, "team-a", "ml-reader");
    let src = IssuerSource {
        issuer,
        ns: "team-a".into(),
        sa: "ml-reader".into(),
        lifetime: 3600,
    };
    let cred = env.cred(wi_spec(Arc::new(src)));
    assert!(reads_a_secret(&env, &cred).await.is_ok());
    let id = cred.identity();
    assert_eq!(id.object_id.as_deref(), Some(WI_OID));
    assert_eq!(id.details["assertion"], "serviceaccount team-a/ml-reader");
}

#[tokio::test]
async fn workload_identity_with_unfederated_subject_fails_with_aadsts70021() {
    let env = Env::start().await;
    let issuer = TokenIssuer::new(ISSUER);
    federate(&env, &issuer, "team-a", "ml-reader");
    let src = IssuerSource {
        issuer: TokenIssuer::new(ISSUER),
        ns: "team-b".into(),
        sa: "ml-reader".into(),
        lifetime: 3600,
    };
    let err = reads_a_secret(&env, &env.cred(wi_spec(Arc::new(src))))
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
    assert!(
        err.to_string()
            .contains("system:serviceaccount:<namespace>:<serviceaccount>"),
        "{err}"
    );
}

#[tokio::test]
async fn workload_identity_with_expired_assertion_fails_with_aadsts700024() {
    let env = Env::start().await;
    let issuer = TokenIssuer::new(ISSUER);
    federate(&env, &issuer, "team-a", "ml-reader");
    let src = IssuerSource {
        issuer,
        ns: "team-a".into(),
        sa: "ml-reader".into(),
        lifetime: -60,
    };
    let err = reads_a_secret(&env, &env.cred(wi_spec(Arc::new(src))))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::AuthenticationFailed {
                code: Some(700024),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn workload_identity_from_a_projected_token_file_is_read_on_each_fetch() {
    let env = Env::start().await;
    let issuer = TokenIssuer::new(ISSUER);
    federate(&env, &issuer, "amlsecrets-system", "amlsecrets");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    std::fs::write(
        &path,
        issuer.token("amlsecrets-system", "amlsecrets", EXCHANGE, 3600),
    )
    .unwrap();
    let cred = env.cred(wi_spec(Arc::new(FileAssertionSource::new(&path))));
    assert!(reads_a_secret(&env, &cred).await.is_ok());
    let err = env
        .cred(wi_spec(Arc::new(FileAssertionSource::new(
            dir.path().join("missing"),
        ))))
        .token("x/.default")
        .await;
    assert_eq!(err.unwrap_err().reason(), "CredentialsUnavailable");
}

fn mi(env: &Env, identity: ManagedIdentityId) -> Arc<amlsecrets::azure::Credential> {
    env.cred(CredentialSpec::ManagedIdentity {
        identity,
        endpoint: env.fakes.imds.endpoint.clone(),
    })
}

#[tokio::test]
async fn managed_identity_system_and_user_assigned_by_each_selector() {
    let env = Env::start().await;
    env.fakes.imds.set_system_assigned(NodeIdentity {
        client_id: "sys-client".into(),
        object_id: "sys-oid".into(),
        resource_id: None,
    });
    let rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai";
    env.fakes.imds.add_user_assigned(NodeIdentity {
        client_id: "uai-client".into(),
        object_id: "uai-oid".into(),
        resource_id: Some(rid.into()),
    });
    let sys = mi(&env, ManagedIdentityId::SystemAssigned);
    assert!(reads_a_secret(&env, &sys).await.is_ok());
    assert_eq!(sys.identity().object_id.as_deref(), Some("sys-oid"));
    for sel in [
        ManagedIdentityId::ClientId("uai-client".into()),
        ManagedIdentityId::ObjectId("uai-oid".into()),
        ManagedIdentityId::ResourceId(rid.into()),
    ] {
        let c = mi(&env, sel);
        assert!(reads_a_secret(&env, &c).await.is_ok());
        assert_eq!(c.identity().object_id.as_deref(), Some("uai-oid"));
    }
}

#[tokio::test]
async fn managed_identity_not_assigned_to_the_node_fails_with_a_hint() {
    let env = Env::start().await;
    let err = reads_a_secret(
        &env,
        &mi(&env, ManagedIdentityId::ClientId("nobody".into())),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed");
    assert!(err.to_string().contains("not assigned"), "{err}");
    assert_eq!(env.fakes.imds.calls.count("token"), 1, "400 is not retried");
}

#[tokio::test]
async fn managed_identity_retries_imds_410_and_404_then_succeeds() {
    let env = Env::start().await;
    env.fakes.imds.set_system_assigned(NodeIdentity {
        client_id: "c".into(),
        object_id: "o".into(),
        resource_id: None,
    });
    env.fakes.imds.faults.push(testenv::azure::Fault::new(
        410,
        r#"{"error":"gone","error_description":"upgrading"}"#,
    ));
    env.fakes.imds.faults.push(testenv::azure::Fault::new(
        404,
        r#"{"error":"not_found","error_description":"Not found"}"#,
    ));
    assert!(
        reads_a_secret(&env, &mi(&env, ManagedIdentityId::SystemAssigned))
            .await
            .is_ok()
    );
    assert_eq!(env.fakes.imds.calls.count("token"), 3);
}

#[tokio::test]
async fn pre_issued_tokens_are_used_per_audience() {
    let env = Env::start().await;
    let kv_token = env.fakes.tokens.issue(testenv::azure::common::Grant {
        audience: "https://vault.azure.net".into(),
        oid: "tok-oid".into(),
        appid: "tok-app".into(),
        tid: TENANT.into(),
        exp: testenv::azure::common::now() + 3600,
    });
    let cred = env.cred(CredentialSpec::Tokens {
        arm: None,
        key_vault: Some(kv_token.into()),
    });
    assert_eq!(reads_a_secret(&env, &cred).await.unwrap(), "s3cret-value");
    assert_eq!(cred.identity().object_id.as_deref(), Some("tok-oid"));
    let ws = amlsecrets::azure::WorkspaceRef {
        subscription_id: "s".into(),
        resource_group: "r".into(),
        workspace_name: "w".into(),
    };
    let err = env.client.get_workspace(&cred, &ws).await.unwrap_err();
    assert_eq!(err.reason(), "CredentialsUnavailable");
    assert!(err.to_string().contains("armToken"), "{err}");
    assert_eq!(env.fakes.entra.calls.count("token"), 0);
}

#[tokio::test]
async fn hundred_concurrent_gets_share_one_token_request() {
    let env = Arc::new(Env::start().await);
    env.fakes.vault.put_secret("shared", "v", true, None);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            // Every caller asks the registry, as every WorkspaceSecret of the identity would.
            let cred = env.sp();
            env.client
                .get_secret(&cred, &env.vault(), "shared", None)
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(env.fakes.entra.calls.count("token"), 1);
    assert_eq!(env.fakes.vault.calls.count("get"), 100);
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_and_rotation_gets_a_new_credential() {
    let env = Env::start().await;
    env.fakes.entra.set_token_lifetime(1);
    let cred = env.sp();
    assert!(reads_a_secret(&env, &cred).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(reads_a_secret(&env, &cred).await.is_ok());
    assert_eq!(env.fakes.entra.calls.count("token"), 2);
    env.fakes
        .entra
        .add_secret(TENANT, SP_CLIENT, SP_OID, "rotated");
    let rotated = env.cred(CredentialSpec::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: SP_CLIENT.into(),
        secret: "rotated".into(),
    });
    assert!(!Arc::ptr_eq(&cred, &rotated));
}
