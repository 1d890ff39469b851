//! `spec.auth.azureCli`: the operator run on a laptop (`amlsecrets run`) uses the Azure CLI's
//! account only when started with `--allow-azure-cli-auth`, and only in the ambient-identity
//! namespaces.

use std::time::Duration;

use amlsecrets::api::AzureMLWorkspace;
use amlsecrets::api::conditions::find_ready;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use testenv::azure::{AzureFakes, VAULT_AUDIENCE};
use testenv::control_plane::ControlPlane;

use crate::harness::*;
use crate::support::eventually;

async fn apply(cp: &ControlPlane, ns: &str, fakes: &AzureFakes) {
    let api: Api<AzureMLWorkspace> = Api::namespaced(cp.client(), ns);
    let obj = json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": "dev" },
        "spec": {
            "subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "mlw-dev", "cloud": "Custom",
            "customCloud": {
                "authorityHost": fakes.entra.authority_host, "resourceManagerEndpoint": fakes.arm.endpoint,
                "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE,
            },
            "keyVault": { "uri": fakes.vault.uri },
            "auth": { "azureCli": {} },
        },
    });
    api.patch(
        "dev",
        &PatchParams::apply("test").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap();
}

async fn wait_ready(cp: &ControlPlane, ns: &str, status: &str, reason: &str) -> String {
    let api: Api<AzureMLWorkspace> = Api::namespaced(cp.client(), ns);
    eventually(
        &format!("AzureMLWorkspace {ns}/dev Ready={status} {reason}"),
        Duration::from_secs(60),
        || async {
            let ws = api.get_opt("dev").await.ok()??;
            let c = find_ready(&ws.status?.conditions)?.clone();
            (c.status == status && c.reason == reason).then_some(c.message)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_cli_auth_needs_the_operator_flag_and_an_ambient_namespace() {
    let cp = ControlPlane::shared().await;
    let own = cp.namespace().await;
    let other = cp.namespace().await;
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes).with_cluster(cp, &own);
    laptop.az_login(&fakes, USER_OID);
    apply(cp, &own, &fakes).await;
    apply(cp, &other, &fakes).await;
    let flags = |allow: bool| {
        let mut f = vec![
            format!("--namespaces={own},{other}"),
            format!("--operator-namespace={own}"),
            format!("--extra-ca-file={}", laptop.ca_file.display()),
            "--admin-addr=127.0.0.1:0".to_string(),
            "--workspace-check-interval=2s".to_string(),
            "--max-retry-delay=2s".to_string(),
        ];
        if allow {
            f.push("--allow-azure-cli-auth".into());
        }
        f
    };

    // Without the flag: refused, saying which flag.
    let mut op = laptop.spawn_operator(&flags(false));
    let message = wait_ready(cp, &own, "False", "CredentialsUnavailable").await;
    assert!(message.contains("--allow-azure-cli-auth"), "{message}");
    op.kill().await.unwrap();

    // With it: the signed-in user reads the vault in the operator's namespace…
    let mut op = laptop.spawn_operator(&flags(true));
    let message = wait_ready(cp, &own, "True", "Resolved").await;
    assert!(
        message.contains("AzureCli") && message.contains(USER_OID),
        "{message}"
    );
    // …and nowhere else.
    let message = wait_ready(cp, &other, "False", "CredentialsUnavailable").await;
    assert!(
        message.contains("may not use the Azure CLI's signed-in account"),
        "{message}"
    );
    op.kill().await.unwrap();
    assert!(
        laptop
            .az_calls()
            .iter()
            .all(|c| c.starts_with("account get-access-token")),
        "{:?}",
        laptop.az_calls()
    );
}
