//! Transient failures — throttling, server errors, slow answers, unreachable endpoints: retried
//! where a retry can help, within the time bound, and reported by class when they persist.

use std::time::{Duration, Instant};

use amlsecrets::azure::error::{NetworkFailure, Service};
use amlsecrets::azure::{AzureApi, AzureClient, AzureError, CredentialSpec};
use testenv::azure::{Fault, TENANT};

use super::support::{Env, SP_CLIENT, http};

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
