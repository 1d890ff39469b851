//! The error classes of answers that will not change by retrying: authentication, authorization
//! and missing or disabled items, each reported once with the service's own words.

use amlsecrets::azure::error::VaultPermissionModel;
use amlsecrets::azure::{AzureApi, AzureError, CredentialSpec};
use testenv::azure::TENANT;
use testenv::azure::keyvault::PermissionModel;

use super::support::{Env, SP_CLIENT, SP_OID};

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
