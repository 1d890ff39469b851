//! `amlsecrets check`: the operator's steps from a laptop, each failure class with its reason and
//! the role to grant, exit codes, JSON output, a WorkspaceSecret's items from a manifest, and
//! "my access" (`--as-me`) against "the workload's access" (the manifest's auth, read from the cluster).

use serde_json::{Value, json};
use testenv::azure::{AzureFakes, PermissionModel, TENANT, VAULT_AUDIENCE};

use crate::harness::*;
use crate::support::{SP_CLIENT, World};

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report}"))
}

async fn check_json(laptop: &Laptop, fakes: &AzureFakes, ws: &str) -> (i32, Value) {
    let out = laptop.run_on(fakes, ws, &["check", "-o", "json"]).await;
    assert_no_secrets(fakes, &out.all(), &["planted-check-Vv1"]);
    (out.code, out.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_class_names_its_step_reason_and_the_role_to_grant() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");
    fakes
        .vault
        .put_secret("s1", "planted-check-Vv1", true, None);

    let (code, ok) = check_json(&laptop, &fakes, "mlw-cli").await;
    assert_eq!(code, 0, "{ok}");
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["vault"], fakes.vault.uri.as_str());
    assert_eq!(ok["vault_source"], "Workspace");
    for s in [
        "identity",
        "workspace",
        "vault",
        "vault list",
        "connections",
    ] {
        assert_eq!(step(&ok, s)["ok"], true, "{s}: {ok}");
    }

    // A workspace ARM does not know.
    let (code, r) = check_json(&laptop, &fakes, "mlw-missing").await;
    assert_eq!(code, 1);
    let s = step(&r, "workspace");
    assert_eq!(s["reason"], "WorkspaceNotFound", "{r}");
    assert!(
        s["hint"].as_str().unwrap().contains("resource group"),
        "{s}"
    );

    // The vault refuses the user (RBAC): the role and the vault.
    fakes.vault.deny(USER_OID);
    let (code, r) = check_json(&laptop, &fakes, "mlw-cli").await;
    assert_eq!(code, 1);
    let s = step(&r, "vault access");
    assert_eq!(s["reason"], "Forbidden", "{r}");
    let hint = s["hint"].as_str().unwrap();
    assert!(
        hint.contains("'Key Vault Secrets User'")
            && hint.contains(&fakes.vault.uri)
            && hint.contains(USER_OID),
        "{hint}"
    );

    // The same vault on access policies: an access policy, not a role.
    fakes.vault.set_model(PermissionModel::AccessPolicy);
    let (code, r) = check_json(&laptop, &fakes, "mlw-cli").await;
    assert_eq!(code, 1);
    let hint = step(&r, "vault access")["hint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        hint.contains("access policy") && hint.contains("secrets get"),
        "{hint}"
    );

    // ARM refuses the user: the workspace role.
    fakes.arm.deny(USER_OID);
    let out = laptop.run_on(&fakes, "mlw-cli", &["check"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("FAIL workspace")
            && out.stdout.contains("reason: Forbidden")
            && out.stdout.contains("to fix: grant")
            && out.stdout.contains("'AzureML Data Scientist'"),
        "the table says the same: {}",
        out.stdout
    );
}

/// An AzureMLWorkspace (pointing at the fakes) and a WorkspaceSecret in one manifest file.
fn manifest(
    laptop: &Laptop,
    fakes: &AzureFakes,
    items: Value,
    data_from: Value,
) -> std::path::PathBuf {
    let sp = json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } });
    manifest_with_auth(laptop, fakes, sp, items, data_from)
}

/// Like [`manifest`], with the workspace's `spec.auth`.
fn manifest_with_auth(
    laptop: &Laptop,
    fakes: &AzureFakes,
    auth: Value,
    items: Value,
    data_from: Value,
) -> std::path::PathBuf {
    let ws = json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace",
        "metadata": { "name": "ml", "namespace": "team-a" },
        "spec": {
            "subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "mlw-cli",
            "cloud": "Custom",
            "customCloud": {
                "authorityHost": fakes.entra.authority_host, "resourceManagerEndpoint": fakes.arm.endpoint,
                "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE,
            },
            "keyVault": { "uri": fakes.vault.uri },
            "auth": auth,
        },
    });
    let wsec = json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret",
        "metadata": { "name": "app", "namespace": "team-a" },
        "spec": { "workspaceRef": { "name": "ml" }, "data": items, "dataFrom": data_from },
    });
    let path = laptop.dir.path().join("manifest.yaml");
    std::fs::write(&path, format!("{ws}\n---\n{wsec}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_secret_manifest_is_checked_item_by_item_without_values() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    let version = fakes
        .vault
        .put_secret("db-password", "planted-item-Aa7", true, None);
    fakes
        .vault
        .put_secret_tagged("feat-x", "planted-find-Bb8", &[("team", "a")]);
    let ws_id = testenv::azure::arm::workspace_id(SUB, "rg-ml", "mlw-cli");
    fakes.arm.connections.put(
        &ws_id,
        testenv::azure::connection_json(
            &ws_id,
            "openai",
            "ApiKey",
            "AzureOpenAI",
            "https://oai.openai.azure.com/",
            json!({"key": "planted-conn-Cc9"}),
        ),
    );
    fakes.arm.connections.deny_list_secrets(USER_OID);
    let file = manifest(
        &laptop,
        &fakes,
        json!([
            { "key": "DB_PASSWORD", "ref": "keyvault:db-password" },
            { "key": "MISSING", "ref": "keyvault:no-such-secret" },
            { "key": "OPENAI_KEY", "ref": "azureml://connections/openai/credentials/key" },
        ]),
        json!([{ "find": { "tags": { "team": "a" } } }]),
    );
    let mut args: Vec<String> = ["check", "--as-me", "-o", "json", "-f"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(file.display().to_string());
    args.push(format!("--extra-ca-file={}", laptop.ca_file.display()));
    let out = laptop.run(&args, None).await;
    assert_eq!(
        out.code, 1,
        "a missing item and a refused connection: {out:?}"
    );
    assert_no_secrets(
        &fakes,
        &out.all(),
        &["planted-item-Aa7", "planted-find-Bb8", "planted-conn-Cc9"],
    );
    let r = out.json();
    assert_eq!(r["checked_as"], "me");
    assert!(
        r["notes"]
            .to_string()
            .contains("target Secret app was not checked (no cluster"),
        "{r}"
    );
    let item = |key: &str| {
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == key)
            .unwrap_or_else(|| panic!("no item {key}: {r}"))
            .clone()
    };
    let db = item("DB_PASSWORD");
    assert_eq!(db["ok"], true, "{db}");
    assert_eq!(db["version"], version.as_str());
    assert!(db["updated"].as_str().unwrap().ends_with('Z'), "{db}");
    assert_eq!(item("feat-x")["ok"], true, "the find matched by tag: {r}");
    let missing = item("MISSING");
    assert_eq!(missing["reason"], "SecretNotFound", "{missing}");
    assert!(
        missing["hint"]
            .as_str()
            .unwrap()
            .contains("amlsecrets vault set")
    );
    let conn = item("OPENAI_KEY");
    assert_eq!(conn["reason"], "Forbidden", "{conn}");
    assert!(
        conn["hint"]
            .as_str()
            .unwrap()
            .contains(amlsecrets::azure::connections::SECRETS_READER_ROLE),
        "{conn}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workloads_access_and_my_access_are_told_apart() {
    let w = World::start(&[]).await;
    w.sp_workspace().await;
    w.fakes
        .vault
        .put_secret("db-password", "planted-wl-Dd4", true, None);
    w.workspace_secret(
        "app",
        json!({ "workspaceRef": { "name": "ml" }, "data": [ { "key": "DB", "ref": "keyvault:db-password" } ] }),
    )
    .await;
    w.wait_wsec("app", "True", "Synced").await;
    let laptop = Laptop::new(&w.fakes).with_cluster(w.cp, &w.ns);
    laptop.az_login(&w.fakes, USER_OID);
    w.fakes.vault.deny(USER_OID);
    let args = |me: bool| {
        let mut a: Vec<String> = vec![
            "check".into(),
            "--from=workspacesecret/app".into(),
            format!("--namespace={}", w.ns),
            format!("--extra-ca-file={}", laptop.ca_file.display()),
            "-o".into(),
            "json".into(),
        ];
        if me {
            a.push("--as-me".into());
        }
        a
    };

    // The workload (the manifest's service principal, its secret read from the cluster) can.
    let out = laptop.run(&args(false), None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let r = out.json();
    assert_eq!(r["checked_as"], "workload");
    assert!(r["identity"].as_str().unwrap().contains(SP_CLIENT), "{r}");
    assert_eq!(r["items"][0]["ok"], true, "{r}");
    assert_eq!(step(&r, "target")["ok"], true, "{r}");
    assert_no_secrets(
        &w.fakes,
        &out.all(),
        &["planted-wl-Dd4", crate::support::SP_SECRET],
    );

    // I cannot: the vault refuses me, and says which role I lack.
    let out = laptop.run(&args(true), None).await;
    assert_eq!(out.code, 1, "{out:?}");
    let r = out.json();
    assert_eq!(r["checked_as"], "me");
    let s = step(&r, "vault access");
    assert_eq!(s["reason"], "Forbidden");
    assert!(s["hint"].as_str().unwrap().contains(USER_OID), "{s}");
    assert_no_secrets(&w.fakes, &out.all(), &["planted-wl-Dd4"]);

    // A target Secret someone else owns: the reconcile's first step refuses it, and so does check.
    w.put_secret("foreign", &[("k", b"v")]).await;
    w.workspace_secret(
        "clash",
        json!({ "workspaceRef": { "name": "ml" }, "target": { "name": "foreign" }, "data": [ { "key": "DB", "ref": "keyvault:db-password" } ] }),
    )
    .await;
    let mut a = args(false);
    a[1] = "--from=workspacesecret/clash".into();
    let out = laptop.run(&a, None).await;
    assert_eq!(out.code, 1, "{out:?}");
    let r = out.json();
    let s = step(&r, "target");
    assert_eq!(s["reason"], "TargetConflict", "{r}");
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains("not created by this WorkspaceSecret"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_whose_auth_is_the_azure_cli_is_checked_as_the_workload_without_a_cluster() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    fakes
        .vault
        .put_secret("db-password", "planted-cli-Kk5", true, None);
    let file = manifest_with_auth(
        &laptop,
        &fakes,
        json!({ "azureCli": {} }),
        json!([{ "key": "DB", "ref": "keyvault:db-password" }]),
        json!([]),
    );
    let args: Vec<String> = vec![
        "check".into(),
        "-o".into(),
        "json".into(),
        format!("--file={}", file.display()),
        format!("--extra-ca-file={}", laptop.ca_file.display()),
    ];
    let out = laptop.run(&args, None).await;
    assert_eq!(
        out.code, 0,
        "no kubeconfig is needed for an auth that reads no Secret: {out:?}"
    );
    let r = out.json();
    assert_eq!(r["checked_as"], "workload");
    assert!(
        r["identity"].as_str().unwrap().starts_with("AzureCli"),
        "{r}"
    );
    assert_eq!(r["items"][0]["ok"], true, "{r}");
    assert_no_secrets(&fakes, &out.all(), &["planted-cli-Kk5"]);
}
