//! Every error class, retries where a retry can help and none where it cannot.

use std::time::{Duration, Instant};

use amlsecrets::azure::error::{NetworkFailure, Service, VaultPermissionModel};
use amlsecrets::azure::{AzureApi, AzureClient, AzureError, CredentialSpec};
use testenv::azure::keyvault::PermissionModel;
use testenv::azure::{Fault, TENANT};

use super::support::{Env, SP_CLIENT, SP_OID, http};

#[tokio::test]
async fn wrong_client_secret_is_authentication_failed_with_aadsts7000215() {
    let env = Env::start().await;
    let cred = env.cred(CredentialSpec::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: SP_CLIENT.into(),
        secret: "wrong".into(),
    });
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::AuthenticationFailed {
                code: Some(7000215),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("secret's value (not its id)"),
        "{err}"
    );
    assert_eq!(
        env.fakes.entra.calls.count("token"),
        1,
        "401 is not retried"
    );
}

#[tokio::test]
async fn unknown_app_and_unknown_tenant_have_their_own_codes() {
    let env = Env::start().await;
    let cred = env.cred(CredentialSpec::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: "unknown-app".into(),
        secret: "s".into(),
    });
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::AuthenticationFailed {
                code: Some(700016),
                ..
            }
        ),
        "{err:?}"
    );
    let cred = env.cred(CredentialSpec::ClientSecret {
        tenant_id: "no-such-tenant".into(),
        client_id: SP_CLIENT.into(),
        secret: "s".into(),
    });
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::AuthenticationFailed {
                code: Some(90002),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("tenant does not exist"), "{err}");
}

#[tokio::test]
async fn vault_401_challenge_renews_the_token_once_then_reports_it() {
    let env = Env::start().await;
    // A token the vault does not accept (issued for another audience).
    let foreign = env.fakes.tokens.issue(testenv::azure::common::Grant {
        audience: "https://other.example".into(),
        oid: "o".into(),
        appid: "a".into(),
        tid: TENANT.into(),
        exp: testenv::azure::common::now() + 3600,
    });
    let cred = env.cred(CredentialSpec::Tokens {
        arm: None,
        key_vault: Some(foreign.into()),
    });
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed");
    let text = err.to_string();
    assert!(
        text.contains("resource=\"https://vault.azure.net\""),
        "{text}"
    );
    assert_eq!(
        env.fakes.vault.calls.count("get"),
        2,
        "one renewal, then give up"
    );
}

#[tokio::test]
async fn rejected_pre_issued_tokens_keep_the_services_own_words_and_one_name() {
    let env = Env::start().await;
    // A malformed token (not a JWT) and a well-formed one for another audience.
    let foreign = env.fakes.tokens.issue(testenv::azure::common::Grant {
        audience: "https://other.example".into(),
        oid: "o".into(),
        appid: "a".into(),
        tid: TENANT.into(),
        exp: testenv::azure::common::now() + 3600,
    });
    let wref = amlsecrets::azure::WorkspaceRef {
        subscription_id: "sub-1".into(),
        resource_group: "rg-ml".into(),
        workspace_name: "ws1".into(),
    };
    for (token, vault_said) in [
        ("not-a-jwt", "AKV10032: Invalid issuer."),
        (foreign.as_str(), "AKV10022: Invalid audience."),
    ] {
        let cred = env.cred(CredentialSpec::Tokens {
            arm: Some(token.into()),
            key_vault: Some(token.into()),
        });
        let text = env
            .client
            .get_secret(&cred, &env.vault(), "x", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(vault_said),
            "the vault's own words are lost: {text}"
        );
        assert!(
            text.starts_with("authentication failed for pre-issued token"),
            "{text}"
        );
        assert!(
            !text.contains("tenant and cloud"),
            "misleading advice: {text}"
        );
        assert!(!text.contains(token), "the token leaked: {text}");
        let text = env
            .client
            .get_workspace(&cred, &wref)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("The access token"),
            "ARM's own words are lost: {text}"
        );
        assert!(
            text.starts_with("authentication failed for pre-issued token"),
            "{text}"
        );
    }
    // An expired one reads the same way, though no service saw it.
    let expired = env.fakes.tokens.issue(testenv::azure::common::Grant {
        audience: testenv::azure::VAULT_AUDIENCE.into(),
        oid: "o".into(),
        appid: "a".into(),
        tid: TENANT.into(),
        exp: testenv::azure::common::now() - 60,
    });
    let cred = env.cred(CredentialSpec::Tokens {
        arm: None,
        key_vault: Some(expired.into()),
    });
    let text = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("authentication failed for pre-issued token"),
        "{text}"
    );
}

#[tokio::test]
async fn rbac_vault_403_names_the_missing_data_action() {
    let env = Env::start().await;
    env.fakes.vault.deny(SP_OID);
    let err = env
        .client
        .get_secret(&env.sp(), &env.vault(), "x", None)
        .await
        .unwrap_err();
    match &err {
        AzureError::Forbidden {
            model,
            action,
            principal,
            ..
        } => {
            assert_eq!(*model, Some(VaultPermissionModel::Rbac));
            assert_eq!(action, "Microsoft.KeyVault/vaults/secrets/getSecret/action");
            assert!(principal.contains(SP_OID), "{principal}");
        }
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains("Key Vault Secrets User"));
    assert_eq!(env.fakes.vault.calls.count("get"), 1, "403 is not retried");
}

#[tokio::test]
async fn access_policy_vault_403_names_the_missing_secret_permission() {
    let env = Env::start().await;
    env.fakes.vault.set_model(PermissionModel::AccessPolicy);
    env.fakes.vault.deny(SP_OID);
    let err = env
        .client
        .list_secret_properties(&env.sp(), &env.vault())
        .await
        .unwrap_err();
    match &err {
        AzureError::Forbidden { model, action, .. } => {
            assert_eq!(*model, Some(VaultPermissionModel::AccessPolicy));
            assert_eq!(action, "secrets list");
        }
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains("access polic"), "{err}");
}

#[tokio::test]
async fn disabled_secret_is_secret_disabled() {
    let env = Env::start().await;
    env.fakes.vault.put_secret("off", "hidden", false, None);
    let err = env
        .client
        .get_secret(&env.sp(), &env.vault(), "off", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AzureError::SecretDisabled { ref name, .. } if name == "off"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "SecretDisabled");
}

#[tokio::test]
async fn missing_secret_or_version_is_secret_not_found() {
    let env = Env::start().await;
    env.fakes.vault.put_secret("here", "v", true, None);
    let cred = env.sp();
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "absent", None)
        .await
        .unwrap_err();
    assert!(err.is_secret_not_found(), "{err:?}");
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "here", Some("0000"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::SecretNotFound {
                version: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(env.fakes.vault.calls.count("get"), 2, "404 is not retried");
}

fn throttle(retry_after: &str) -> Fault {
    Fault::new(429, r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#)
        .header("retry-after", retry_after)
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_then_succeeds() {
    let env = Env::start().await;
    env.fakes.vault.put_secret("t", "v", true, None);
    env.fakes.vault.faults.push(throttle("1"));
    let started = Instant::now();
    let s = env
        .client
        .get_secret(&env.sp(), &env.vault(), "t", None)
        .await
        .unwrap();
    assert_eq!(s.value.expose(), "v");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was honoured"
    );
    assert_eq!(env.fakes.vault.calls.count("get"), 2);
}

#[tokio::test]
async fn persistent_throttling_becomes_throttled_within_the_time_bound() {
    let env = Env::start().await;
    env.fakes.vault.faults.push_n(10, throttle("0"));
    let started = Instant::now();
    let err = env
        .client
        .get_secret(&env.sp(), &env.vault(), "t", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::Throttled {
                service: Service::KeyVault,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "Throttled");
    assert_eq!(env.fakes.vault.calls.count("get"), 4, "max_attempts");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A Retry-After beyond the total bound is not waited for.
    env.fakes.vault.faults.push_n(3, throttle("60"));
    let started = Instant::now();
    assert!(
        env.client
            .get_secret(&env.sp(), &env.vault(), "t", None)
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_are_retried_and_persistent_ones_reported() {
    let env = Env::start().await;
    env.fakes.vault.put_secret("t", "v", true, None);
    let boom = Fault::new(
        503,
        r#"{"error":{"code":"ServiceUnavailable","message":"try later"}}"#,
    );
    env.fakes.vault.faults.push_n(2, boom.clone());
    assert!(
        env.client
            .get_secret(&env.sp(), &env.vault(), "t", None)
            .await
            .is_ok()
    );
    assert_eq!(env.fakes.vault.calls.count("get"), 3);
    env.fakes.vault.faults.push_n(10, boom);
    let err = env
        .client
        .get_secret(&env.sp(), &env.vault(), "t", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AzureError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(err.reason(), "AzureError");
    assert!(err.is_transient());
}

#[tokio::test]
async fn slow_answers_time_out_as_vault_unreachable_but_patient_clients_wait() {
    let env = Env::start().await;
    env.fakes.vault.put_secret("slow", "v", true, None);
    let cred = env.sp();
    cred.token(&env.cloud.key_vault_scope()).await.unwrap();
    env.fakes
        .vault
        .faults
        .set_delay(Some(Duration::from_millis(400)));
    let impatient = AzureClient::new(http(Some(env.fakes.ca.pem()), Duration::from_millis(150)));
    let err = impatient
        .get_secret(&cred, &env.vault(), "slow", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::VaultUnreachable {
                failure: NetworkFailure::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        env.client
            .get_secret(&cred, &env.vault(), "slow", None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn untrusted_tls_refused_connection_and_unknown_host_are_vault_unreachable() {
    let env = Env::start().await;
    let cred = env.sp();
    let no_ca = AzureClient::new(http(None, Duration::from_secs(2)));
    let err = no_ca
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::VaultUnreachable {
                failure: NetworkFailure::Tls,
                ..
            }
        ),
        "{err:?}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = env
        .client
        .get_secret(&cred, &format!("https://{closed}"), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::VaultUnreachable {
                failure: NetworkFailure::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    let err = env
        .client
        .get_secret(&cred, "https://no-such-vault.invalid", "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::VaultUnreachable {
                failure: NetworkFailure::Dns,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "VaultUnreachable");
}

#[tokio::test]
async fn unreachable_token_endpoint_is_a_network_error() {
    let env = Env::start().await;
    let mut cloud = env.cloud.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    cloud.authority_host = format!("https://{closed}");
    let cred = env
        .registry
        .credential(
            &cloud,
            CredentialSpec::ClientSecret {
                tenant_id: TENANT.into(),
                client_id: SP_CLIENT.into(),
                secret: "s".into(),
            },
        )
        .unwrap();
    let err = env
        .client
        .get_secret(&cred, &env.vault(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::Network {
                service: Service::EntraId,
                failure: NetworkFailure::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "AzureError");
}
