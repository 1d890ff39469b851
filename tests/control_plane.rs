//! Proves the test control plane is a real Kubernetes API server: server-side apply, watches,
//! optimistic concurrency, our CRDs with their CEL rules, TokenRequest tokens verifiable
//! against the issuer's JWKS, and RBAC for ServiceAccount clients.

#[path = "control_plane/audit.rs"]
mod audit;
#[path = "control_plane/jwt.rs"]
mod jwt;
#[path = "control_plane/support.rs"]
mod support;

use amlsecrets::api::WorkspaceSecret;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::time::Duration;
use testenv::control_plane::{ControlPlane, crds, get_json};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn server_side_apply_creates_a_secret_and_reports_conflicting_managers() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let api: Api<Secret> = Api::namespaced(cp.client(), &ns);

    let applied = api
        .patch(
            "db",
            &PatchParams::apply("amlsecrets-test"),
            &Patch::Apply(support::secret("db", "one")),
        )
        .await
        .expect("first apply creates the Secret");
    assert_eq!(applied.data.unwrap()["password"].0, b"one");

    let other = api
        .patch(
            "db",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(support::secret("db", "two")),
        )
        .await;
    let status = support::status_of(other);
    assert_eq!(
        status.code, 409,
        "a second manager changing our field conflicts: {status:?}"
    );

    let forced = api
        .patch(
            "db",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(support::secret("db", "two")),
        )
        .await
        .expect("a forced apply takes the field over");
    assert_eq!(forced.data.unwrap()["password"].0, b"two");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"someone-else".to_owned()),
        "managers: {managers:?}"
    );
}

#[tokio::test]
async fn watcher_sees_a_change_made_after_it_started() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let api: Api<ConfigMap> = Api::namespaced(cp.client(), &ns);
    let config_map = |value: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some("watched".into()),
            ..Default::default()
        },
        data: Some([("value".to_owned(), value.to_owned())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &config_map("1"))
        .await
        .unwrap();

    let config = watcher::Config::default().fields("metadata.name=watched");
    let mut values = watcher(api.clone(), config)
        .applied_objects()
        .map_ok(|cm| {
            cm.data
                .unwrap_or_default()
                .get("value")
                .cloned()
                .unwrap_or_default()
        })
        .boxed();
    let first = tokio::time::timeout(TIMEOUT, values.try_next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("1"),
        "the initial list shows the object"
    );

    api.patch(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "2"}})),
    )
    .await
    .unwrap();
    let changed = tokio::time::timeout(TIMEOUT, async {
        while let Some(value) = values.try_next().await.unwrap() {
            if value == "2" {
                return value;
            }
        }
        panic!("the watch stream ended");
    })
    .await
    .expect("the watcher saw the change within the timeout");
    assert_eq!(changed, "2");
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_a_conflict() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let api: Api<ConfigMap> = Api::namespaced(cp.client(), &ns);
    let created = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("cas".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let mut fresh = created.clone();
    fresh.data = Some([("writer".to_owned(), "first".to_owned())].into());
    let updated = api
        .replace("cas", &PostParams::default(), &fresh)
        .await
        .expect("replace at the current version");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    let mut stale = created;
    stale.data = Some([("writer".to_owned(), "second".to_owned())].into());
    let status = support::status_of(api.replace("cas", &PostParams::default(), &stale).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "Conflict"),
        "{status:?}"
    );
    let now = api.get("cas").await.unwrap();
    assert_eq!(
        now.data.unwrap()["writer"],
        "first",
        "the stale write did not land"
    );
}

#[tokio::test]
async fn our_crds_are_established_and_served() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let crd_api: Api<CustomResourceDefinition> = Api::all(cp.client());
    for name in [
        "azuremlworkspaces.amlsecrets.io",
        "workspacesecrets.amlsecrets.io",
    ] {
        assert!(
            crds::crd_dir().join(format!("{name}.yaml")).is_file(),
            "{name} is generated into crds/"
        );
        let crd = crd_api.get(name).await.unwrap();
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name}: {conditions:?}"
        );
    }
    let listed = Api::<WorkspaceSecret>::namespaced(cp.client(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn api_server_rejects_invalid_workspace_secrets_with_the_cel_message() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        cp.client(),
        &ns,
        &ApiResource::erase::<WorkspaceSecret>(&()),
    );
    let object = |name: &str, refresh: &str, reference: &str| {
        DynamicObject::new(name, &ApiResource::erase::<WorkspaceSecret>(&())).data(json!({"spec": {
            "workspaceRef": {"name": "ws"},
            "refreshInterval": refresh,
            "data": [{"key": "password", "ref": reference}],
        }}))
    };
    let file = "workspacesecrets.amlsecrets.io.yaml";

    api.create(
        &PostParams::default(),
        &object("valid", "1h", "keyvault:db-password"),
    )
    .await
    .expect("a valid WorkspaceSecret is accepted");

    let expected = support::cel_message(file, "/properties/spec/properties/refreshInterval");
    let status = support::status_of(
        api.create(
            &PostParams::default(),
            &object("fast", "5s", "keyvault:db-password"),
        )
        .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains(&expected),
        "{:?} should contain {expected:?}",
        status.message
    );

    let expected = support::cel_message(
        file,
        "/properties/spec/properties/data/items/properties/ref",
    );
    let status = support::status_of(
        api.create(&PostParams::default(), &object("bad-ref", "1h", "nope"))
            .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains(&expected),
        "{:?} should contain {expected:?}",
        status.message
    );
}

#[tokio::test]
async fn token_request_issues_a_jwt_that_verifies_against_the_issuer_jwks() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let audience = "api://AzureADTokenExchange";
    let token = cp
        .service_account_token(&ns, "workload", &[audience], Some(3600))
        .await
        .unwrap();
    let (header, claims, signed, signature) = jwt::decode(&token);

    let discovery = cp.openid_configuration().await.unwrap();
    assert_eq!(discovery["issuer"], cp.issuer());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/openid/v1/jwks", cp.issuer())
    );
    let jwks = cp.jwks().await.unwrap();
    let kid = header["kid"].as_str().expect("the token names its key");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the key is published");
    let alg = header["alg"].as_str().unwrap();
    jwt::verify(jwk, alg, signed.as_bytes(), &signature)
        .expect("the signature verifies against the JWKS");

    let tampered = signed.replacen('.', ".e30", 1);
    assert!(
        jwt::verify(jwk, alg, tampered.as_bytes(), &signature).is_err(),
        "a changed payload must not verify"
    );

    assert_eq!(claims["iss"], cp.issuer());
    assert_eq!(
        claims["sub"],
        format!("system:serviceaccount:{ns}:workload")
    );
    let audiences = match &claims["aud"] {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    assert_eq!(audiences, vec![json!(audience)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims["exp"].as_u64().unwrap() > now);
}

#[tokio::test]
async fn oidc_discovery_and_jwks_are_readable_without_credentials() {
    let cp = ControlPlane::shared().await;
    let anonymous = cp.anonymous_client();
    let jwks = get_json(&anonymous, "/openid/v1/jwks").await.unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    let discovery = get_json(&anonymous, "/.well-known/openid-configuration")
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], cp.issuer());
    let denied = Api::<Secret>::all(anonymous)
        .list(&Default::default())
        .await;
    assert_eq!(
        support::status_of(denied).code,
        403,
        "anonymous users get nothing else"
    );
}

#[tokio::test]
async fn service_account_client_acts_as_that_account_under_rbac() {
    let cp = ControlPlane::shared().await;
    let ns = cp.namespace().await;
    let client = cp.client_as_service_account(&ns, "reader").await.unwrap();

    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    assert_eq!(user, Some(format!("system:serviceaccount:{ns}:reader")));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        support::status_of(secrets.list(&Default::default()).await).code,
        403,
        "no rights before a binding"
    );

    let admin = cp.client();
    let role = support::secret_lister_role("secret-reader");
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = support::bind_role_to_service_account("secret-reader", &ns, "reader");
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let allowed = tokio::time::timeout(TIMEOUT, async {
        loop {
            match secrets.list(&Default::default()).await {
                Ok(list) => return list,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("the binding takes effect");
    assert!(allowed.items.is_empty());
    let elsewhere: Api<Secret> = Api::namespaced(client, "default");
    assert_eq!(
        support::status_of(elsewhere.list(&Default::default()).await).code,
        403,
        "the Role is namespaced"
    );
}
