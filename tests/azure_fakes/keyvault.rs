//! The Key Vault client: get (latest or version), paging, versions, set, delete.

use amlsecrets::azure::{AzureApi, NewSecret};

use super::support::Env;

#[tokio::test]
async fn get_returns_latest_or_the_requested_version() {
    let env = Env::start().await;
    let v1 = env
        .fakes
        .vault
        .put_secret("api-key", "first", true, Some("text/plain"));
    env.fakes.vault.put_secret("api-key", "second", true, None);
    let cred = env.sp();
    let latest = env
        .client
        .get_secret(&cred, &env.vault(), "api-key", None)
        .await
        .unwrap();
    assert_eq!(latest.value.expose(), "second");
    assert_eq!(latest.properties.name, "api-key");
    let old = env
        .client
        .get_secret(&cred, &env.vault(), "api-key", Some(&v1))
        .await
        .unwrap();
    assert_eq!(old.value.expose(), "first");
    assert_eq!(old.properties.version.as_deref(), Some(v1.as_str()));
    assert_eq!(old.properties.content_type.as_deref(), Some("text/plain"));
    assert!(old.properties.created.is_some());
}

#[tokio::test]
async fn list_follows_next_links_across_pages_without_values() {
    let env = Env::start().await;
    for i in 0..60 {
        env.fakes
            .vault
            .put_secret(&format!("s-{i:02}"), "x", i % 7 != 0, None);
    }
    let props = env
        .client
        .list_secret_properties(&env.sp(), &env.vault())
        .await
        .unwrap();
    assert_eq!(props.len(), 60);
    assert_eq!(env.fakes.vault.calls.count("list"), 3, "25 + 25 + 10");
    assert!(props.iter().all(|p| p.version.is_none()));
    assert_eq!(props.iter().filter(|p| !p.enabled).count(), 9);
}

#[tokio::test]
async fn versions_are_listed_with_their_ids() {
    let env = Env::start().await;
    let ids: Vec<String> = (0..30)
        .map(|i| {
            env.fakes
                .vault
                .put_secret("rotating", &format!("v{i}"), true, None)
        })
        .collect();
    let versions = env
        .client
        .list_secret_versions(&env.sp(), &env.vault(), "rotating")
        .await
        .unwrap();
    let mut got: Vec<String> = versions.iter().filter_map(|v| v.version.clone()).collect();
    let mut want = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(env.fakes.vault.calls.count("versions"), 2);
}

#[tokio::test]
async fn set_creates_a_version_and_delete_removes_the_secret() {
    let env = Env::start().await;
    let cred = env.sp();
    let new = NewSecret {
        value: "written".into(),
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let s = env
        .client
        .set_secret(&cred, &env.vault(), "fresh", &new)
        .await
        .unwrap();
    assert!(s.properties.version.is_some());
    assert_eq!(env.fakes.vault.value("fresh").as_deref(), Some("written"));
    let d = env
        .client
        .delete_secret(&cred, &env.vault(), "fresh")
        .await
        .unwrap();
    assert!(d.recovery_id.unwrap().ends_with("/deletedsecrets/fresh"));
    assert!(env.fakes.vault.value("fresh").is_none());
}
