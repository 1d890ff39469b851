//! Unit tests of the shared endpoint views against an in-memory counting double: single flight
//! per interval, first-seen times, the token's own schedule, and no expired token served.
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::azure::BoxFuture;

fn token(refresh_after: Option<i64>, expiry: Option<i64>) -> EndpointToken {
    EndpointToken {
        access_token: "t".into(),
        token_type: Some("Bearer".into()),
        expiry,
        refresh_after,
    }
}

#[test]
fn a_token_is_refreshed_before_refresh_after_and_the_points_are_spread() {
    let now = 1_000_000;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let d = token_refresh_in(
            &token(Some(now + 1000), Some(now + 3600)),
            now,
            Duration::ZERO,
        );
        assert!(
            d >= Duration::from_secs(750) && d <= Duration::from_secs(900),
            "{d:?}"
        );
        seen.insert(d.as_millis());
    }
    assert!(seen.len() > 10, "refresh points are spread: {seen:?}");
    // Never past the expiry when it comes first, and never sooner than a second.
    let d = token_refresh_in(
        &token(Some(now + 1000), Some(now + 100)),
        now,
        Duration::ZERO,
    );
    assert!(d <= Duration::from_secs(90), "{d:?}");
    let d = token_refresh_in(&token(Some(1), Some(now + 100)), now, Duration::ZERO);
    assert!(
        d <= Duration::from_secs(90),
        "a past refreshAfter leaves the expiry: {d:?}"
    );
    let d = token_refresh_in(&token(Some(now - 5), Some(now - 5)), now, Duration::ZERO);
    assert_eq!(d, MIN_TOKEN_REFRESH);
    // Without times (the example's placeholder 1 is long past): the caller's interval.
    let d = token_refresh_in(&token(None, None), now, Duration::from_secs(60));
    assert_eq!(d, Duration::from_secs(60));
    assert!(expired(&token(None, Some(now)), now));
    assert!(!expired(&token(None, None), now));
}

/// An online endpoint in memory that counts calls; only what the views use answers.
#[derive(Default)]
struct CountingEndpoint {
    mode: Mutex<String>,
    key: Mutex<String>,
    token_lifetime: Mutex<i64>,
    fail_token: Mutex<bool>,
    gets: AtomicUsize,
    lists: AtomicUsize,
    tokens: AtomicUsize,
}

fn unused<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, AzureError>> {
    Box::pin(async {
        Err(AzureError::InvalidCredential(
            "not used by the views".into(),
        ))
    })
}

impl AzureApi for CountingEndpoint {
    fn get_workspace<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
    ) -> BoxFuture<'a, Result<crate::azure::Workspace, AzureError>> {
        unused()
    }

    fn list_secret_properties<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<crate::azure::SecretProperties>, AzureError>> {
        unused()
    }

    fn get_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<crate::azure::Secret, AzureError>> {
        unused()
    }

    fn list_secret_versions<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<crate::azure::SecretProperties>, AzureError>> {
        unused()
    }

    fn set_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
        _: &'a crate::azure::NewSecret,
    ) -> BoxFuture<'a, Result<crate::azure::Secret, AzureError>> {
        unused()
    }

    fn delete_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::DeletedSecret, AzureError>> {
        unused()
    }

    fn list_connections<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<crate::azure::Connection>, AzureError>> {
        unused()
    }

    fn get_connection<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::Connection, AzureError>> {
        unused()
    }

    fn list_connection_secrets<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::ConnectionSecrets, AzureError>> {
        unused()
    }

    fn get_serverless_endpoint<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>> {
        unused()
    }

    fn list_serverless_endpoint_keys<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>> {
        unused()
    }

    fn list_datastore_secrets<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSecrets, AzureError>> {
        unused()
    }

    fn get_online_endpoint<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Endpoint, AzureError>> {
        Box::pin(async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Endpoint {
                name: name.into(),
                auth_mode: self.mode.lock().unwrap().clone(),
                uri: Some("https://e/score".into()),
                last_modified: None,
            })
        })
    }

    fn list_online_endpoint_keys<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<EndpointKeys, AzureError>> {
        Box::pin(async move {
            self.lists.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(EndpointKeys {
                primary: Some(self.key.lock().unwrap().as_str().into()),
                secondary: Some("s".into()),
            })
        })
    }

    fn get_online_endpoint_token<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<EndpointToken, AzureError>> {
        Box::pin(async move {
            let n = self.tokens.fetch_add(1, Ordering::SeqCst);
            if *self.fail_token.lock().unwrap() {
                return Err(AzureError::Server {
                    service: crate::azure::error::Service::Arm,
                    status: 503,
                    code: "ServiceUnavailable".into(),
                    detail: "down".into(),
                });
            }
            let now = Timestamp::now().as_second();
            let life = *self.token_lifetime.lock().unwrap();
            Ok(EndpointToken {
                access_token: format!("token-{n}").into(),
                token_type: Some("Bearer".into()),
                expiry: Some(now + life),
                refresh_after: Some(now + life / 2),
            })
        })
    }
}

fn setup(
    mode: &str,
) -> (
    CountingEndpoint,
    crate::azure::CredentialRegistry,
    Arc<Credential>,
    WorkspaceRef,
) {
    let azure = CountingEndpoint::default();
    *azure.mode.lock().unwrap() = mode.into();
    *azure.key.lock().unwrap() = "k1".into();
    *azure.token_lifetime.lock().unwrap() = 3600;
    let registry = crate::azure::CredentialRegistry::new(
        crate::azure::Http::new(&crate::azure::HttpConfig::default()).unwrap(),
    );
    let cred = registry
        .credential(
            &crate::azure::CloudEndpoints::public(),
            crate::azure::CredentialSpec::ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into(),
                secret: "s".into(),
            },
        )
        .unwrap();
    let ws = WorkspaceRef {
        subscription_id: "s".into(),
        resource_group: "rg".into(),
        workspace_name: "w".into(),
    };
    (azure, registry, cred, ws)
}

fn scorer() -> ResourceRef {
    ResourceRef {
        kind: ResourceKind::OnlineEndpoint,
        name: "scorer".into(),
    }
}

#[tokio::test]
async fn concurrent_callers_share_one_read_per_interval_and_a_new_key_is_seen_after_it() {
    let (azure, _r, cred, ws) = setup("Key");
    let views = EndpointViews::default();
    let view = views.view(&cred, &ws, &scorer());
    let hour = Duration::from_secs(3600);
    let all = futures::future::join_all((0..10).map(|_| view.get(&azure, &cred, hour, true))).await;
    for got in &all {
        assert_eq!(
            got.as_ref().unwrap().fields["primaryKey"].value.expose(),
            "k1"
        );
    }
    assert_eq!(azure.gets.load(Ordering::SeqCst), 1, "single flight");
    assert_eq!(azure.lists.load(Ordering::SeqCst), 1, "single flight");
    let first_seen = all[0].as_ref().unwrap().fields["primaryKey"]
        .seen_since
        .clone();
    *azure.key.lock().unwrap() = "k2".into();
    let cached = view.get(&azure, &cred, hour, true).await.unwrap();
    assert_eq!(
        cached.fields["primaryKey"].value.expose(),
        "k1",
        "within the interval"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = view
        .get(&azure, &cred, Duration::from_millis(500), true)
        .await
        .unwrap();
    assert_eq!(fresh.fields["primaryKey"].value.expose(), "k2");
    assert_ne!(
        fresh.fields["primaryKey"].seen_since, first_seen,
        "a new value has a new first-seen time"
    );
    assert_eq!(
        fresh.fields["secondaryKey"].seen_since, first_seen,
        "an unchanged one keeps it"
    );
    assert_eq!(azure.lists.load(Ordering::SeqCst), 2);
    assert!(
        Arc::ptr_eq(&view, &views.view(&cred, &ws, &scorer())),
        "one view per resource"
    );
}

#[tokio::test]
async fn a_token_follows_its_own_schedule_and_is_never_served_past_its_expiry() {
    let (azure, _r, cred, ws) = setup("AMLToken");
    *azure.token_lifetime.lock().unwrap() = 2;
    let views = EndpointViews::default();
    let view = views.view(&cred, &ws, &scorer());
    let hour = Duration::from_secs(3600);
    let first = view.get(&azure, &cred, hour, true).await.unwrap();
    assert_eq!(first.fields["token"].value.expose(), "token-0");
    assert!(
        first.refresh_in.unwrap() <= Duration::from_secs(1),
        "{:?}",
        first.refresh_in
    );
    // Asking only for the URI neither fetches nor shows the token.
    let uri_only = view.get(&azure, &cred, hour, false).await.unwrap();
    assert!(!uri_only.fields.contains_key("token") && uri_only.refresh_in.is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = view.get(&azure, &cred, hour, true).await.unwrap();
    assert_eq!(
        second.fields["token"].value.expose(),
        "token-1",
        "refreshed although the interval is an hour"
    );
    assert_eq!(
        azure.gets.load(Ordering::SeqCst),
        1,
        "the endpoint itself follows the interval"
    );
    // A failed refresh after expiry is an error, never the expired token.
    *azure.fail_token.lock().unwrap() = true;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = view.get(&azure, &cred, hour, true).await.unwrap_err();
    assert_eq!(err.reason(), "AzureError");
}
