//! Workload identity as on AKS: the operator's own projected token and a tenant's own
//! ServiceAccount, exchanged at the fake Entra ID.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde_json::json;
use testenv::azure::{FederatedCredential, TENANT};

use crate::release::*;
use crate::support::*;

/// Workload identity as the Azure webhook sets it up on AKS, through chart values: the
/// operator's own projected token (audience api://AzureADTokenExchange) exchanged at the fake
/// Entra ID, which verifies it with the API server's JWKS; and a tenant's own ServiceAccount
/// through TokenRequest, from inside the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_from_a_projected_token_and_a_tenant_service_account() {
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-wi";
    let release = "amlsecrets-wi";
    let operator_client = "0a0a0a0a-0000-4000-8000-00000000a11d";
    let tenant_client = "0b0b0b0b-0000-4000-8000-00000000b22d";
    let jwks = testenv::control_plane::get_json(&env.client(), "/openid/v1/jwks")
        .await
        .unwrap();
    let federate = |client: &str, oid: &str, subject: String| {
        env.fakes.entra.add_federated(
            TENANT,
            client,
            oid,
            FederatedCredential {
                issuer: env.node.issuer(),
                subject,
                audience: TOKEN_EXCHANGE_AUDIENCE.into(),
                jwks: jwks.clone(),
            },
        )
    };
    federate(
        operator_client,
        "0a0a0a0a-0000-4000-8000-0000000000b1",
        format!("system:serviceaccount:{ns}:{release}"),
    );
    federate(
        tenant_client,
        "0b0b0b0b-0000-4000-8000-0000000000b2",
        "system:serviceaccount:team-wi:ml-runner".into(),
    );

    // What the webhook injects for a pod labelled azure.workload.identity/use=true.
    let values = env.node.dir().join("wi-values.yaml");
    let token_dir = "/var/run/secrets/azure/tokens";
    std::fs::write(
        &values,
        serde_json::to_string(&json!({
            "workloadIdentity": { "enabled": true, "clientId": operator_client, "tenantId": TENANT },
            "extraEnv": [
                { "name": "AZURE_CLIENT_ID", "value": operator_client },
                { "name": "AZURE_TENANT_ID", "value": TENANT },
                { "name": "AZURE_AUTHORITY_HOST", "value": format!("{}/", env.authority) },
                { "name": "AZURE_FEDERATED_TOKEN_FILE", "value": format!("{token_dir}/azure-identity-token") },
            ],
            "extraVolumes": [{ "name": "azure-identity-token", "projected": { "sources": [{ "serviceAccountToken": {
                "audience": TOKEN_EXCHANGE_AUDIENCE, "expirationSeconds": 3600, "path": "azure-identity-token" } }] } }],
            "extraVolumeMounts": [{ "name": "azure-identity-token", "mountPath": token_dir, "readOnly": true }],
        }))
        .unwrap(),
    )
    .unwrap();
    let (_release, took) = install(env, release, ns, &["-f", values.to_str().unwrap()]);
    report("helm install with workload identity", format!("{took:.1?}"));
    let sa = Api::<ServiceAccount>::namespaced(env.client(), ns)
        .get(release)
        .await
        .unwrap();
    assert_eq!(
        sa.metadata
            .annotations
            .unwrap_or_default()
            .get("azure.workload.identity/client-id")
            .map(String::as_str),
        Some(operator_client)
    );

    // The operator's own identity, in its own namespace (the default ambient namespace).
    let token_calls = env.fakes.entra.calls.count("token");
    env.fakes.vault.put_secret(
        "wi-operator-secret",
        "from-the-operator-identity",
        true,
        None,
    );
    env.workspace(ns, "own-identity", json!({ "workloadIdentity": {} }))
        .await;
    env.workspace_secret(
        ns,
        "own",
        "own-identity",
        "10s",
        &[("value", "keyvault:wi-operator-secret")],
    )
    .await;
    env.wait_synced(ns, "own", Duration::from_secs(90)).await;
    assert_eq!(
        env.secret_data(ns, "own").await.unwrap(),
        vec![("value".to_string(), b"from-the-operator-identity".to_vec())]
    );

    // A tenant's own ServiceAccount (TokenRequest from inside the pod).
    let tenant = "team-wi";
    create_namespace(&env.client(), tenant).await;
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("ml-runner".into()),
            annotations: Some(
                [
                    (
                        "azure.workload.identity/client-id".to_string(),
                        tenant_client.to_string(),
                    ),
                    (
                        "azure.workload.identity/tenant-id".to_string(),
                        TENANT.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(env.client(), tenant)
        .patch(
            "ml-runner",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(account),
        )
        .await
        .unwrap();
    env.fakes
        .vault
        .put_secret("wi-tenant-secret", "from-the-tenant-identity", true, None);
    env.workspace(
        tenant,
        "ml",
        json!({ "workloadIdentity": { "serviceAccountName": "ml-runner" } }),
    )
    .await;
    env.workspace_secret(
        tenant,
        "tenant",
        "ml",
        "10s",
        &[("value", "keyvault:wi-tenant-secret")],
    )
    .await;
    env.wait_synced(tenant, "tenant", Duration::from_secs(90))
        .await;
    assert_eq!(
        env.secret_data(tenant, "tenant").await.unwrap(),
        vec![("value".to_string(), b"from-the-tenant-identity".to_vec())]
    );
    assert!(
        env.fakes.entra.calls.count("token") >= token_calls + 2,
        "both identities were exchanged at the token endpoint"
    );
}
