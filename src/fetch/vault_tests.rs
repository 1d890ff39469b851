//! Unit tests of the shared vault view against an in-memory counting Azure double: single-flight
//! listing, unchanged versions not fetched again, the shared pause after a 429, per-identity views,
//! eviction of unused views.
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

#[tokio::test(start_paused = true)]
async fn a_view_unused_for_twice_its_longest_interval_is_dropped_with_its_values() {
    let azure = CountingVault::default();
    azure.put("a", "1", 100);
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let hour = Duration::from_secs(3600);
    let view = views.view(&creds[0], VAULT);
    let listed = view.list(&azure, &creds[0], hour).await.unwrap();
    view.latest(&azure, &creds[0], &listed[0]).await.unwrap();
    let weak = Arc::downgrade(&view);
    drop(view);
    tokio::time::advance(2 * hour - Duration::from_secs(60)).await;
    let again = views.view(&creds[0], VAULT);
    assert!(
        weak.upgrade().is_some_and(|w| Arc::ptr_eq(&w, &again)),
        "kept while used within twice its interval"
    );
    drop(again);
    tokio::time::advance(2 * hour + Duration::from_secs(60)).await;
    let _other = views.view(&creds[0], "https://other.vault.azure.net");
    assert!(
        weak.upgrade().is_none(),
        "dropped, values and all, once unused for longer than twice its interval"
    );
    assert_eq!(views.len(), 1);
}

/// The clock: one listing per interval made by the view itself, waking exactly the readers of a
/// changed secret, nobody when nothing changed, and every reader when listing starts failing.
#[tokio::test(start_paused = true)]
async fn the_clock_lists_once_per_interval_and_wakes_only_the_readers_of_a_change() {
    let azure = Arc::new(CountingVault::default());
    azure.put("a", "1", 100);
    azure.put("b", "1", 100);
    let (_r, creds) = credentials(1);
    let woken: Arc<Mutex<Vec<String>>> = Arc::default();
    let clock = Clock {
        azure: azure.clone(),
        wake: {
            let woken = woken.clone();
            Arc::new(move |readers: Vec<Reader>| {
                woken
                    .lock()
                    .unwrap()
                    .extend(readers.into_iter().map(|r| r.name));
            })
        },
    };
    let views = VaultViews::with_clock(400, clock);
    let view = views.view(&creds[0], VAULT);
    let interval = Duration::from_secs(30);
    let reads = |name: &str| Interest {
        names: [name.to_string()].into(),
        interval,
        ..Interest::default()
    };
    view.list(azure.as_ref(), &creds[0], interval)
        .await
        .unwrap();
    view.follow(Reader::new("reads-a").within("ns"), reads("a"));
    view.follow(Reader::new("reads-b").within("ns"), reads("b"));
    let lists = || azure.lists.load(Ordering::SeqCst);
    let take = || std::mem::take(&mut *woken.lock().unwrap());

    // Readers in between reuse the listing, however often they ask.
    // (The first tick comes between half and all of the interval.)
    tokio::time::advance(Duration::from_secs(10)).await;
    view.list(azure.as_ref(), &creds[0], interval)
        .await
        .unwrap();
    assert_eq!(lists(), 1);

    // Nothing changed: the clock lists once and wakes nobody.
    tokio::time::sleep(Duration::from_secs(21)).await;
    assert_eq!(lists(), 2, "the clock listed at the interval");
    assert!(take().is_empty(), "an unchanged listing wakes nobody");

    // b changes: only its reader is woken, at the next tick.
    azure.put("b", "2", 200);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(lists(), 3);
    assert_eq!(take(), ["reads-b"]);

    // Listing starts failing: everyone is told once; a reader asking a few seconds later lists
    // again, and the recovery tells everyone again.
    *azure.throttle_next_list.lock().unwrap() = Some(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(31)).await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(take()), ["reads-a", "reads-b"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    view.list(azure.as_ref(), &creds[0], interval)
        .await
        .unwrap();
    assert_eq!(sorted(take()), ["reads-a", "reads-b"]);

    // Without readers the clock stops.
    view.unfollow(&Reader::new("reads-a").within("ns"));
    view.unfollow(&Reader::new("reads-b").within("ns"));
    let before = lists();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(lists() <= before + 1, "at most the tick already due");
}

/// Lists `view` with `interval` in a task of its own (the fake vault takes 50 ms to list).
fn list_in_background(
    view: &Arc<VaultView>,
    azure: &Arc<CountingVault>,
    cred: &Arc<Credential>,
    interval: Duration,
) -> tokio::task::JoinHandle<Result<Arc<SecretListing>, AzureError>> {
    let (view, azure, cred) = (view.clone(), azure.clone(), cred.clone());
    tokio::spawn(async move { view.list(azure.as_ref(), &cred, interval).await })
}

#[tokio::test(start_paused = true)]
async fn a_reader_takes_the_young_listing_while_another_listing_is_under_way() {
    let azure = Arc::new(CountingVault::default());
    azure.put("a", "1", 100);
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let view = views.view(&creds[0], VAULT);
    let hour = Duration::from_secs(3600);
    view.list(azure.as_ref(), &creds[0], hour).await.unwrap();
    // Someone who accepts no listing but a new one starts listing (50 ms at the fake vault)...
    let forced = list_in_background(&view, &azure, &creds[0], Duration::ZERO);
    tokio::task::yield_now().await;
    assert_eq!(
        azure.lists.load(Ordering::SeqCst),
        2,
        "the second listing is under way"
    );
    // ...and a reader content with the young listing is not held up by it.
    let quick = tokio::time::timeout(
        Duration::from_millis(1),
        view.list(azure.as_ref(), &creds[0], hour),
    )
    .await;
    assert!(quick.is_ok_and(|l| l.is_ok()), "the young listing, at once");
    forced.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_listing_makes_the_next_reader_list_again() {
    let azure = Arc::new(CountingVault::default());
    azure.put("a", "1", 100);
    let (_r, creds) = credentials(1);
    let views = VaultViews::default();
    let view = views.view(&creds[0], VAULT);
    let hour = Duration::from_secs(3600);
    let listing = list_in_background(&view, &azure, &creds[0], hour);
    tokio::task::yield_now().await;
    view.budgeted(true, async { Ok::<_, AzureError>(()) })
        .await
        .unwrap();
    listing.await.unwrap().unwrap();
    assert_eq!(azure.lists.load(Ordering::SeqCst), 1);
    view.list(azure.as_ref(), &creds[0], hour).await.unwrap();
    assert_eq!(
        azure.lists.load(Ordering::SeqCst),
        2,
        "the listing that started before the write is not taken"
    );
}
