//! Conformance of the Key Vault client and the managed-identity flow against Lowkey Vault 3.4.33,
//! an independent Key Vault emulator (`scripts/lowkey-vault.sh` fetches its jar).

use std::time::Duration;

use amlsecrets::azure::{
    AzureApi, AzureClient, CloudEndpoints, CredentialRegistry, CredentialSpec, Http, HttpConfig,
    ManagedIdentityId, NewSecret, RetryPolicy,
};
use testenv::azure::lowkey::{LowkeyVault, locate_jar};

#[tokio::test]
#[ignore = "needs the Lowkey Vault jar: run scripts/lowkey-vault.sh or set LOWKEY_VAULT_JAR; the package registry reachable from this workplace does not serve it"]
async fn lowkey_vault_get_list_versions_set_delete_with_managed_identity() {
    let jar = locate_jar().unwrap_or_else(|e| panic!("Lowkey Vault is missing: {e}"));
    let lv = LowkeyVault::start(&jar)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = Http::new(&HttpConfig {
        extra_ca_pem: Some(lv.certificate_pem.clone()),
        request_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_total: Duration::from_secs(20),
            ..RetryPolicy::default()
        },
    })
    .unwrap();
    let registry = CredentialRegistry::new(http.clone());
    let client = AzureClient::new(http);
    // Lowkey Vault's token endpoint has the IMDS shape; its vault expects the public Key Vault audience.
    let cred = registry
        .credential(
            &CloudEndpoints::public(),
            CredentialSpec::ManagedIdentity {
                identity: ManagedIdentityId::SystemAssigned,
                endpoint: lv.metadata_uri.clone(),
            },
        )
        .unwrap();
    let vault = lv.vault_uri.as_str();

    for i in 0..30 {
        let s = NewSecret {
            value: format!("value-{i}").into(),
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        client
            .set_secret(&cred, vault, &format!("conf-{i:02}"), &s)
            .await
            .unwrap();
    }
    let v1 = client
        .set_secret(
            &cred,
            vault,
            "rotating",
            &NewSecret {
                value: "one".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client
        .set_secret(
            &cred,
            vault,
            "rotating",
            &NewSecret {
                value: "two".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let listed = client.list_secret_properties(&cred, vault).await.unwrap();
    assert!(
        listed
            .iter()
            .filter(|p| p.name.starts_with("conf-"))
            .count()
            == 30,
        "paging over 25 per page"
    );
    let latest = client
        .get_secret(&cred, vault, "rotating", None)
        .await
        .unwrap();
    assert_eq!(latest.value.expose(), "two");
    let old = client
        .get_secret(&cred, vault, "rotating", v1.properties.version.as_deref())
        .await
        .unwrap();
    assert_eq!(old.value.expose(), "one");
    assert_eq!(
        client
            .list_secret_versions(&cred, vault, "rotating")
            .await
            .unwrap()
            .len(),
        2
    );
    client.delete_secret(&cred, vault, "conf-00").await.unwrap();
    let err = client
        .get_secret(&cred, vault, "conf-00", None)
        .await
        .unwrap_err();
    assert!(err.is_secret_not_found(), "{err:?}");
    assert!(cred.token_fetches() >= 1);
}
