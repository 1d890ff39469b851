//! The Azure CLI identity (fake `az` on `PATH`) and a service principal from the environment.

use testenv::azure::AzureFakes;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_tokens_are_fetched_once_per_audience_and_never_shown() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");
    fakes
        .vault
        .put_secret("db-password", "planted-db-Zq81", true, None);
    let out = laptop
        .run_on(&fakes, "mlw-cli", &["check", "--output=json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(report["ok"], true);
    let who = report["identity"].as_str().unwrap();
    assert!(
        who.starts_with("AzureCli") && who.contains(USER_OID),
        "the report names the signed-in user's object id: {who}"
    );
    let calls = laptop.az_calls();
    assert_eq!(
        calls.len(),
        2,
        "one `az` run per audience (ARM, Key Vault), then cached: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("account get-access-token --output json --resource ")),
        "{calls:?}"
    );
    assert!(calls.iter().any(|c| c.ends_with(&fakes.arm.endpoint)));
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with(testenv::azure::VAULT_AUDIENCE))
    );
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "the logs ran at trace level: {}",
        out.stderr
    );
    assert_no_secrets(&fakes, &out.all(), &["planted-db-Zq81"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_missing_signed_out_or_in_another_tenant_each_say_what_to_do() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    arm_workspace(&fakes, "mlw-cli");

    // Signed out: the CLI's own words, and `az login`.
    let out = laptop
        .run_on(&fakes, "mlw-cli", &["check", "--output=json"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let step = &out.json()["steps"][0];
    assert_eq!(step["step"], "identity");
    assert_eq!(step["reason"], "CredentialsUnavailable", "{step}");
    let detail = step["detail"].as_str().unwrap();
    assert!(
        detail.contains("run `az login`") && detail.contains("Please run 'az login'"),
        "{detail}"
    );

    // Signed in, but another tenant asked for: the AADSTS code, its hint, and the command.
    laptop.az_login(&fakes, USER_OID);
    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &["check", "--output=json", "--tenant=other-tenant"],
        )
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let step = &out.json()["steps"][0];
    assert_eq!(step["reason"], "AuthenticationFailed", "{step}");
    let detail = step["detail"].as_str().unwrap();
    assert!(detail.contains("AADSTS50020"), "{detail}");
    assert!(
        detail.contains("az login --tenant other-tenant"),
        "{detail}"
    );
    assert!(
        step["hint"]
            .as_str()
            .unwrap()
            .contains("not in this tenant"),
        "{step}"
    );

    // No az at all: say so, and how else to sign in. The table output carries the same.
    std::fs::remove_file(laptop.bin.join("az")).unwrap();
    let out = laptop.run_on(&fakes, "mlw-cli", &["check"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("FAIL identity")
            && out.stdout.contains("was not found on PATH")
            && out.stdout.contains("--auth interactive"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("reason: CredentialsUnavailable"),
        "{out:?}"
    );
    assert_no_secrets(&fakes, &out.all(), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_from_the_environment_lists_the_vault_without_showing_its_secret() {
    let fakes = AzureFakes::start().await;
    let sp_client = "11111111-2222-3333-4444-00000000cc01";
    let sp_oid = "aaaaaaaa-2222-3333-4444-00000000cc01";
    let sp_secret = "planted-env-sp-secret~9";
    fakes
        .entra
        .add_secret(testenv::azure::TENANT, sp_client, sp_oid, sp_secret);
    arm_workspace(&fakes, "mlw-cli");
    fakes
        .vault
        .put_secret("api-key", "planted-api-Wq2", true, None);
    let mut laptop = Laptop::new(&fakes);
    laptop.env.extend([
        ("AZURE_TENANT_ID".into(), testenv::azure::TENANT.into()),
        ("AZURE_CLIENT_ID".into(), sp_client.into()),
        ("AZURE_CLIENT_SECRET".into(), sp_secret.into()),
    ]);
    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &["vault", "list", "--auth=service-principal", "-o", "json"],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let listed = out.json();
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-key"]);
    assert!(laptop.az_calls().is_empty(), "az is not used");
    assert_no_secrets(&fakes, &out.all(), &[sp_secret, "planted-api-Wq2"]);

    // Without the secret in the environment: which variable is missing.
    laptop.env.retain(|(k, _)| k != "AZURE_CLIENT_SECRET");
    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &["vault", "list", "--auth=service-principal"],
        )
        .await;
    assert_eq!(out.code, 2, "a missing variable is wrong usage: {out:?}");
    assert!(
        out.stderr
            .contains("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_machines_managed_identity_is_used_with_auth_managed_identity() {
    let fakes = AzureFakes::start().await;
    let mi_oid = "cccccccc-2222-3333-4444-0000000000a1";
    fakes
        .imds
        .set_system_assigned(testenv::azure::NodeIdentity {
            client_id: "dddddddd-2222-3333-4444-0000000000a1".into(),
            object_id: mi_oid.into(),
            resource_id: None,
        });
    arm_workspace(&fakes, "mlw-cli");
    let laptop = Laptop::new(&fakes);
    let imds = format!("--imds-endpoint={}", fakes.imds.endpoint);
    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &["check", "--auth=managed-identity", &imds, "-o", "json"],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let who = out.json()["identity"].as_str().unwrap().to_string();
    assert!(
        who.starts_with("ManagedIdentity") && who.contains(mi_oid),
        "{who}"
    );
    assert!(fakes.imds.calls.count("token") >= 1);
    assert_no_secrets(&fakes, &out.all(), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_certificate_from_the_environment_pem_or_pfx() {
    use testenv::azure::keys::{CLIENT_KEY_PEM, ClientCertificate};
    let fakes = AzureFakes::start().await;
    let client = "11111111-2222-3333-4444-00000000cc02";
    let cert = ClientCertificate::new(CLIENT_KEY_PEM, "laptop-sp");
    fakes.entra.add_client_certificate(
        testenv::azure::TENANT,
        client,
        "aaaaaaaa-2222-3333-4444-00000000cc02",
        &cert,
    );
    arm_workspace(&fakes, "mlw-cli");
    let files = tempfile::tempdir().unwrap();
    let pem = files.path().join("sp.pem");
    std::fs::write(&pem, cert.combined_pem()).unwrap();
    let pfx = files.path().join("sp.pfx");
    std::fs::write(&pfx, cert.pfx("planted-pfx-pw-Jj3")).unwrap();
    for (path, password) in [(&pem, None), (&pfx, Some("planted-pfx-pw-Jj3"))] {
        let mut laptop = Laptop::new(&fakes);
        laptop.env.extend([
            ("AZURE_TENANT_ID".into(), testenv::azure::TENANT.into()),
            ("AZURE_CLIENT_ID".into(), client.into()),
            (
                "AZURE_CLIENT_CERTIFICATE_PATH".into(),
                path.display().to_string(),
            ),
        ]);
        if let Some(p) = password {
            laptop
                .env
                .push(("AZURE_CLIENT_CERTIFICATE_PASSWORD".into(), p.into()));
        }
        let out = laptop
            .run_on(
                &fakes,
                "mlw-cli",
                &["check", "--auth=service-principal", "-o", "json"],
            )
            .await;
        assert_eq!(out.code, 0, "{}: {out:?}", path.display());
        let who = out.json()["identity"].as_str().unwrap().to_string();
        assert!(
            who.starts_with("ServicePrincipalCertificate") && who.contains(client),
            "{who}"
        );
        assert_no_secrets(&fakes, &out.all(), &["planted-pfx-pw-Jj3", "PRIVATE KEY"]);
    }
}
