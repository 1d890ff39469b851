//! Unit tests of the shared vault view against an in-memory counting Azure double: single-flight
//! listing, unchanged versions not fetched again, the shared pause after a 429, per-identity views.
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::azure::error::Service;
use crate::azure::{
    BoxFuture, CloudEndpoints, Connection, ConnectionSecrets, CredentialRegistry, CredentialSpec,
    DeletedSecret, Http, HttpConfig, NewSecret, Workspace, WorkspaceRef,
};

/// A vault in memory that counts calls; only what the views use answers.
#[derive(Default)]
struct CountingVault {
    secrets: Mutex<Vec<(String, String, i64)>>,
    lists: AtomicUsize,
    gets: AtomicUsize,
    throttle_next_list: Mutex<Option<Duration>>,
}

impl CountingVault {
    fn put(&self, name: &str, value: &str, updated: i64) {
        let mut s = self.secrets.lock().unwrap();
        s.retain(|(n, _, _)| n != name);
        s.push((name.into(), value.into(), updated));
    }

    fn props(name: &str, updated: i64) -> SecretProperties {
        SecretProperties {
            name: name.into(),
            enabled: true,
            updated: Some(updated),
            ..SecretProperties::default()
        }
    }
}

fn unused<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, AzureError>> {
    Box::pin(async {
        Err(AzureError::InvalidCredential(
            "not used by the views".into(),
        ))
    })
}

impl AzureApi for CountingVault {
    fn get_workspace<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
    ) -> BoxFuture<'a, Result<Workspace, AzureError>> {
        unused()
    }

    fn list_secret_properties<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>> {
        Box::pin(async move {
            self.lists.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(wait) = self.throttle_next_list.lock().unwrap().take() {
                return Err(AzureError::Throttled {
                    service: Service::KeyVault,
                    retry_after: Some(wait),
                });
            }
            let s = self.secrets.lock().unwrap();
            Ok(s.iter().map(|(n, _, u)| Self::props(n, *u)).collect())
        })
    }

    fn get_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        name: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        Box::pin(async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            let s = self.secrets.lock().unwrap();
            let (n, v, u) = s.iter().find(|(n, _, _)| n == name).cloned().unwrap();
            Ok(Secret {
                properties: Self::props(&n, u),
                value: v.into(),
            })
        })
    }

    fn list_secret_versions<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretProperties>, AzureError>> {
        unused()
    }

    fn set_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
        _: &'a NewSecret,
    ) -> BoxFuture<'a, Result<Secret, AzureError>> {
        unused()
    }

    fn delete_secret<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<DeletedSecret, AzureError>> {
        unused()
    }

    fn list_connections<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Connection>, AzureError>> {
        unused()
    }

    fn get_connection<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Connection, AzureError>> {
        unused()
    }

    fn list_connection_secrets<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<ConnectionSecrets, AzureError>> {
        unused()
    }

    fn get_online_endpoint<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::Endpoint, AzureError>> {
        unused()
    }

    fn list_online_endpoint_keys<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::EndpointKeys, AzureError>> {
        unused()
    }

    fn get_online_endpoint_token<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::EndpointToken, AzureError>> {
        unused()
    }

    fn get_serverless_endpoint<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::Endpoint, AzureError>> {
        unused()
    }

    fn list_serverless_endpoint_keys<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::EndpointKeys, AzureError>> {
        unused()
    }

    fn list_datastore_secrets<'a>(
        &'a self,
        _: &'a Credential,
        _: &'a WorkspaceRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<crate::azure::DatastoreSecrets, AzureError>> {
        unused()
    }
}

fn credentials(n: usize) -> (CredentialRegistry, Vec<Arc<Credential>>) {
    let registry = CredentialRegistry::new(Http::new(&HttpConfig::default()).unwrap());
    let cloud = CloudEndpoints::public();
    let creds = (0..n)
        .map(|i| {
            registry
                .credential(
                    &cloud,
                    CredentialSpec::ClientSecret {
                        tenant_id: "t".into(),
                        client_id: format!("client-{i}"),
                        secret: "s".into(),
                    },
                )
                .unwrap()
        })
        .collect();
    (registry, creds)
}

const VAULT: &str = "https://kv.vault.azure.net";

#[tokio::test]
async fn concurrent_readers_share_one_listing_while_it_is_fresh() {
    let azure = CountingVault::default();
    azure.put("a", "1", 100);
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let view = views.view(&creds[0], VAULT);
    let hour = Duration::from_secs(3600);
    let all = futures::future::join_all((0..10).map(|_| view.list(&azure, &creds[0], hour))).await;
    assert!(all.iter().all(|l| l.as_ref().unwrap().len() == 1));
    assert_eq!(azure.lists.load(Ordering::SeqCst), 1, "single flight");
    view.list(&azure, &creds[0], hour).await.unwrap();
    assert_eq!(
        azure.lists.load(Ordering::SeqCst),
        1,
        "fresh listing reused"
    );
    view.list(&azure, &creds[0], Duration::ZERO).await.unwrap();
    assert_eq!(
        azure.lists.load(Ordering::SeqCst),
        2,
        "an older listing is refreshed"
    );
}

#[tokio::test]
async fn a_value_is_fetched_again_only_when_its_version_changed() {
    let azure = CountingVault::default();
    azure.put("a", "v1", 100);
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let view = views.view(&creds[0], VAULT);
    let listed = CountingVault::props("a", 100);
    for _ in 0..3 {
        let s = view.latest(&azure, &creds[0], &listed).await.unwrap();
        assert_eq!(s.value.expose(), "v1");
    }
    assert_eq!(azure.gets.load(Ordering::SeqCst), 1);
    azure.put("a", "v2", 200);
    let s = view
        .latest(&azure, &creds[0], &CountingVault::props("a", 200))
        .await
        .unwrap();
    assert_eq!(s.value.expose(), "v2");
    assert_eq!(azure.gets.load(Ordering::SeqCst), 2);
    assert_eq!(view.cached_values(), 1);
}

#[tokio::test]
async fn a_throttled_listing_pauses_every_caller_of_the_vault_for_retry_after() {
    let azure = CountingVault::default();
    azure.put("a", "1", 100);
    *azure.throttle_next_list.lock().unwrap() = Some(Duration::from_millis(400));
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let view = views.view(&creds[0], VAULT);
    let err = view
        .list(&azure, &creds[0], Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::Throttled { .. }), "{err:?}");
    let started = std::time::Instant::now();
    // Another reader of the same vault, even through another view, waits out the pause.
    let other = views.view(&creds[0], VAULT);
    other.list(&azure, &creds[0], Duration::ZERO).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(azure.lists.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn identities_never_share_a_view() {
    let azure = CountingVault::default();
    azure.put("a", "1", 100);
    let (_r, creds) = credentials(2);
    let views = VaultViews::default();
    let hour = Duration::from_secs(3600);
    views
        .view(&creds[0], VAULT)
        .list(&azure, &creds[0], hour)
        .await
        .unwrap();
    views
        .view(&creds[1], VAULT)
        .list(&azure, &creds[1], hour)
        .await
        .unwrap();
    views
        .view(&creds[0], &format!("{VAULT}/"))
        .list(&azure, &creds[0], hour)
        .await
        .unwrap();
    assert_eq!(
        azure.lists.load(Ordering::SeqCst),
        2,
        "one listing per identity"
    );
    assert_eq!(views.len(), 2);
}
