//! Identities end to end: every auth method, tenant isolation of workspaces, credentials and the
//! ambient identity, credential rotation (labelled or not), and where tokens may go.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::items;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_cannot_borrow_each_others_workspaces_credentials_or_ambient_identity() {
    let mut a = World::start(&[]).await;
    a.fakes.vault.put_secret("pw", "a-only", true, None);
    a.sp_workspace().await;
    a.wait_ws("ml", "True", "Resolved").await;

    // Namespace B: same names, but nothing of A is visible.
    let ns_b = a.cp.namespace().await;
    let b_args = args(&ns_b, &[]);
    let ns_a = std::mem::replace(&mut a.ns, ns_b.clone());
    a.start_operator(b_args);
    a.workspace_secret(
        "steal",
        json!({ "workspaceRef": { "name": "ml" }, "data": items(&[("pw", "keyvault:pw")]) }),
    )
    .await;
    let c = a.wait_wsec("steal", "False", "WorkspaceNotReady").await;
    assert!(c.message.contains("does not exist"), "{}", c.message);
    a.workspace("ml", json!({ "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } })).await;
    let c = a.wait_ws("ml", "False", "CredentialsUnavailable").await;
    assert!(c.message.contains(&format!("{ns_b}/sp")), "{}", c.message);
    assert!(a.secret("steal").await.is_none());

    // The operator's managed identity is refused outside the allowed namespaces.
    a.workspace("mi", json!({ "managedIdentity": {} })).await;
    let c = a.wait_ws("mi", "False", "CredentialsUnavailable").await;
    assert!(
        c.message.contains("--ambient-identity-namespaces"),
        "{}",
        c.message
    );
    a.workspace("wi", json!({ "workloadIdentity": { "clientId": SP_CLIENT, "tenantId": testenv::azure::TENANT } })).await;
    let c = a.wait_ws("wi", "False", "CredentialsUnavailable").await;
    assert!(c.message.contains("may not use"), "{}", c.message);
    assert_eq!(
        a.fakes.imds.calls.total(),
        0,
        "IMDS was called for a namespace not allowed to"
    );
    let _ = ns_a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_method_syncs_a_secret_and_reports_who_it_is() {
    use base64::Engine as _;
    use testenv::azure::keys::{CLIENT_KEY_PEM, ClientCertificate};
    use testenv::azure::{FederatedCredential, NodeIdentity, TENANT};
    let mut w = World::start(&[]).await;
    // Managed identity and the operator's own token are allowed here: this is the operator's namespace.
    let ns = w.ns.clone();
    w.start_operator(args(&ns, &[&format!("--ambient-identity-namespaces={ns}")]));
    w.fakes
        .vault
        .put_secret("shared", "same-for-everyone", true, None);

    // Certificate (PEM in a kubernetes.io/tls-style Secret, and PFX with a password).
    let cert = ClientCertificate::new(CLIENT_KEY_PEM, "amlsecrets-e2e");
    let (cert_client, cert_oid) = (
        "22222222-0000-0000-0000-000000000002",
        "bbbbbbbb-0000-0000-0000-000000000002",
    );
    w.fakes
        .entra
        .add_certificate(TENANT, cert_client, cert_oid, &cert.x5t(), &cert.public_key);
    w.put_secret(
        "cert-pem",
        &[
            ("tls.crt", cert.cert_pem.as_bytes()),
            ("tls.key", cert.key_pem.as_bytes()),
        ],
    )
    .await;
    w.put_secret(
        "cert-pfx",
        &[
            ("certificate.pfx", &cert.pfx("pfx-pass")),
            ("password", b"pfx-pass"),
        ],
    )
    .await;
    w.workspace("pem", json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": cert_client, "clientCertificateRef": { "name": "cert-pem" } } })).await;
    w.workspace("pfx", json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": cert_client, "clientCertificateRef": { "name": "cert-pfx", "format": "Pfx", "passwordKey": "password" } } })).await;

    // Workload identity: a real TokenRequest of a ServiceAccount, verified against the API server's JWKS.
    let (wi_client, wi_oid) = (
        "33333333-0000-0000-0000-000000000003",
        "cccccccc-0000-0000-0000-000000000003",
    );
    w.cp.ensure_service_account(&ns, "aml-reader")
        .await
        .unwrap();
    let sa_api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(w.client.clone(), &ns);
    let annotate = json!({ "metadata": { "annotations": { "azure.workload.identity/client-id": wi_client, "azure.workload.identity/tenant-id": TENANT } } });
    sa_api
        .patch(
            "aml-reader",
            &PatchParams::default(),
            &Patch::Merge(annotate),
        )
        .await
        .unwrap();
    w.fakes.entra.add_federated(
        TENANT,
        wi_client,
        wi_oid,
        FederatedCredential {
            issuer: w.cp.issuer().to_string(),
            subject: format!("system:serviceaccount:{ns}:aml-reader"),
            audience: "api://AzureADTokenExchange".into(),
            jwks: w.cp.jwks().await.unwrap(),
        },
    );
    w.workspace(
        "wi",
        json!({ "workloadIdentity": { "serviceAccountName": "aml-reader" } }),
    )
    .await;

    // Managed identity through IMDS (user-assigned, by client id).
    let (mi_client, mi_oid) = (
        "44444444-0000-0000-0000-000000000004",
        "dddddddd-0000-0000-0000-000000000004",
    );
    w.fakes.imds.add_user_assigned(NodeIdentity {
        client_id: mi_client.into(),
        object_id: mi_oid.into(),
        resource_id: None,
    });
    let imds = w.fakes.imds.endpoint.clone();
    w.start_operator(args(
        &ns,
        &[
            &format!("--ambient-identity-namespaces={ns}"),
            &format!("--imds-endpoint={imds}"),
        ],
    ));
    w.workspace(
        "mi",
        json!({ "managedIdentity": { "clientId": mi_client } }),
    )
    .await;

    // Pre-issued tokens kept fresh by someone else.
    let token_oid = "eeeeeeee-0000-0000-0000-000000000005";
    let grant = |audience: &str| testenv::azure::common::Grant {
        audience: audience.into(),
        oid: token_oid.into(),
        appid: "55555555-0000-0000-0000-000000000005".into(),
        tid: TENANT.into(),
        exp: testenv::azure::common::now() + 3600,
    };
    let kv_token = w.fakes.tokens.issue(grant(testenv::azure::VAULT_AUDIENCE));
    w.put_secret("tokens", &[("keyVaultToken", kv_token.as_bytes())])
        .await;
    w.workspace(
        "token",
        json!({ "token": { "secretRef": { "name": "tokens" } } }),
    )
    .await;

    let expected = [
        ("pem", cert_oid),
        ("pfx", cert_oid),
        ("wi", wi_oid),
        ("mi", mi_oid),
        ("token", token_oid),
    ];
    for (name, _) in expected {
        w.workspace_secret(name, json!({ "workspaceRef": { "name": name }, "data": items(&[("value", "keyvault:shared")]) })).await;
    }
    for (name, oid) in expected {
        let ready = w.wait_ws(name, "True", "Resolved").await;
        assert!(ready.message.contains(oid), "{name}: {}", ready.message);
        w.wait_wsec(name, "True", "Synced").await;
        assert_eq!(
            w.secret_data(name).await.unwrap()["value"],
            b"same-for-everyone",
            "{name}"
        );
    }
    let pfx_b64 = base64::engine::general_purpose::STANDARD.encode(cert.pfx("pfx-pass"));
    assert_logs_clean(&[
        &kv_token,
        &pfx_b64,
        "pfx-pass",
        cert.key_pem.lines().nth(1).unwrap(),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_labelled_credential_secret_rechecks_its_workspace_at_once() {
    let w = World::start(&["--workspace-check-interval=10m"]).await;
    w.sp_workspace().await;
    w.wait_ws("ml", "True", "Resolved").await;
    let api: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let rotate = |value: &'static str| json!({ "metadata": { "labels": { "amlsecrets.io/credential": "true" } }, "stringData": { "clientSecret": value } });
    let started = std::time::Instant::now();
    api.patch(
        "sp",
        &PatchParams::default(),
        &Patch::Merge(rotate("revoked-secret")),
    )
    .await
    .unwrap();
    w.wait_ws("ml", "False", "AuthenticationFailed").await;
    api.patch(
        "sp",
        &PatchParams::default(),
        &Patch::Merge(rotate(SP_SECRET)),
    )
    .await
    .unwrap();
    w.wait_ws("ml", "True", "Resolved").await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "re-checks took {:?} (the check interval is 10m)",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_built_in_cloud_are_never_sent_to_hosts_outside_its_vault_domain() {
    let w = World::start(&[]).await;
    w.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    w.workspace_spec(
        "public",
        json!({
            "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg-ml", "workspaceName": "mlw-test",
            "keyVault": { "uri": w.fakes.vault.uri },
            "auth": { "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } },
        }),
    )
    .await;
    let c = w.wait_ws("public", "False", "InvalidSpec").await;
    assert!(
        c.message.contains("is not a Key Vault of AzurePublicCloud"),
        "{}",
        c.message
    );
    assert_eq!(w.fakes.vault.calls.total(), 0, "a request reached the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_unlabelled_credential_secret_is_picked_up_within_seconds_without_hot_looping() {
    // The default check interval and retry cap: a fix must not wait for the next 10-minute check.
    let w = World::start(&["--workspace-check-interval=10m", "--max-retry-delay=5m"]).await;
    let sp_auth = |secret: &str| json!({ "servicePrincipal": { "tenantId": testenv::azure::TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": secret, "key": "clientSecret" } } });
    let label = "amlsecrets.io/credential=true";

    // A missing Secret, then created without the label.
    w.workspace("ml", sp_auth("sp")).await;
    let c = w.wait_ws("ml", "False", "CredentialsUnavailable").await;
    assert!(
        c.message
            .contains(&format!("create Secret {}/sp with the label {label}", w.ns)),
        "the message does not say how to make a fix count at once: {}",
        c.message
    );
    eprintln!("missing Secret: {}", c.message);
    w.put_secret("sp", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    let fixed = std::time::Instant::now();
    eventually(
        "ml Ready after its Secret was created",
        Duration::from_secs(30),
        || async { w.ws_ready("ml").await.filter(|c| c.status == "True") },
    )
    .await;
    eprintln!("missing Secret created: Ready after {:?}", fixed.elapsed());

    // A rejected client secret, then fixed in place without the label: re-checked with a
    // bounded backoff, a few token requests rather than one per second (nor one per 10 minutes).
    w.put_secret("sp-bad", &[("clientSecret", b"wrong-secret")])
        .await;
    w.workspace("bad", sp_auth("sp-bad")).await;
    let c = w.wait_ws("bad", "False", "AuthenticationFailed").await;
    assert!(
        c.message
            .contains(&format!("label Secret {}/sp-bad {label}", w.ns)),
        "the message does not say how to make a fix count at once: {}",
        c.message
    );
    eprintln!("rejected secret: {}", c.message);
    w.fakes.entra.calls.reset();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let calls = w.fakes.entra.calls.total();
    eprintln!("token requests in 20 s of rejected credentials: {calls}");
    assert!(
        (1..=5).contains(&calls),
        "{calls} token requests in 20 s of rejected credentials (expected a few re-checks with backoff)"
    );
    w.put_secret("sp-bad", &[("clientSecret", SP_SECRET.as_bytes())])
        .await;
    let fixed = std::time::Instant::now();
    eventually(
        "bad Ready after its Secret was fixed",
        Duration::from_secs(30),
        || async { w.ws_ready("bad").await.filter(|c| c.status == "True") },
    )
    .await;
    eprintln!("rejected Secret fixed: Ready after {:?}", fixed.elapsed());
}
