//! What the benchmark sets up before the operator starts: the namespaces, the operator's own
//! identity (so its API-server requests can be told apart), the fake vaults holding the same
//! secrets, one AzureMLWorkspace with its service-principal Secret per namespace, and the
//! unrelated Secrets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::azure::{AzureFakes, FakeKeyVault, TENANT, VAULT_AUDIENCE};
use testenv::control_plane::ControlPlane;

use crate::objects::{secret_group, secret_name};

const SP_CLIENT: &str = "66666666-0000-0000-0000-000000000006";
const SP_OID: &str = "ffffffff-0000-0000-0000-000000000006";
const SP_SECRET: &str = "bench-client-secret";
/// The operator's namespace (POD_NAMESPACE) and that of its ServiceAccount.
pub(crate) const HOME: &str = "bench";
/// The operator's ServiceAccount, bound to cluster-admin.
const ACCOUNT: &str = "amlsecrets";
/// The audit user of the operator's requests.
pub(crate) const OPERATOR_USER: &str = "system:serviceaccount:bench:amlsecrets";

/// Namespace `k` of the WorkspaceSecrets: `bench`, then `bench-1`, `bench-2`…
pub(crate) fn namespace(k: usize) -> String {
    if k == 0 {
        HOME.to_owned()
    } else {
        format!("{HOME}-{k}")
    }
}

/// Creates namespaces.
pub(crate) async fn create_namespaces(client: &kube::Client, names: &[String]) {
    for name in names {
        let n = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
}

/// Makes the ServiceAccount `bench/amlsecrets` a cluster-admin and writes to `path` a
/// kubeconfig that acts as it, for the operator.
pub(crate) async fn operator_identity(cp: &ControlPlane, path: &Path) {
    cp.ensure_service_account(HOME, ACCOUNT).await.unwrap();
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("bench-amlsecrets".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: ACCOUNT.into(),
            namespace: Some(HOME.into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(cp.client())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // Long enough for any soak; the operator re-reads nothing, so it must outlive the run.
    cp.write_service_account_kubeconfig(HOME, ACCOUNT, 7 * 24 * 3600, path)
        .await
        .unwrap();
}

/// Starts `count` fake vaults (the first is `fakes.vault`) under Key Vault's service limit,
/// each holding the same `secrets` tagged secrets.
pub(crate) async fn vaults(fakes: &AzureFakes, count: usize, secrets: usize) -> Vec<FakeKeyVault> {
    fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
    let mut vaults = vec![fakes.vault.clone()];
    for _ in 1..count {
        vaults.push(fakes.another_vault().await);
    }
    for vault in &vaults {
        vault.enforce_limit(4000, Duration::from_secs(10));
    }
    for s in 0..secrets {
        put(&vaults, s, &format!("value-{s}-v1"));
    }
    vaults
}

/// Writes a new version of vault secret `s` with `value` to every vault.
pub(crate) fn put(vaults: &[FakeKeyVault], s: usize, value: &str) {
    for vault in vaults {
        vault.put_secret_tagged(&secret_name(s), value, &[("group", &secret_group(s))]);
    }
}

/// Sums a call count over the vaults.
pub(crate) fn calls(vaults: &[FakeKeyVault], op: &str) -> usize {
    vaults.iter().map(|v| v.calls.count(op)).sum()
}

/// Creates the service-principal Secret `sp` and the AzureMLWorkspace `ml` in `namespace`,
/// reading `vault`.
pub(crate) async fn workspace(
    client: &kube::Client,
    fakes: &AzureFakes,
    namespace: &str,
    vault: &FakeKeyVault,
) {
    let sp = Secret {
        metadata: ObjectMeta {
            name: Some("sp".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "clientSecret".into(),
            ByteString(SP_SECRET.into()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sp)
        .await
        .unwrap();
    let ws_ar = ApiResource {
        group: "amlsecrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "amlsecrets.io/v1alpha1".into(),
        kind: "AzureMLWorkspace".into(),
        plural: "azuremlworkspaces".into(),
    };
    let workspace: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": "ml" },
        "spec": { "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg", "workspaceName": "mlw-bench",
                  "cloud": "Custom",
                  "customCloud": { "authorityHost": fakes.entra.authority_host, "resourceManagerEndpoint": fakes.arm.endpoint,
                                   "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE },
                  "keyVault": { "uri": vault.uri },
                  "auth": { "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } } }
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ws_ar)
        .patch(
            "ml",
            &PatchParams::apply("bench"),
            &Patch::Apply(&workspace),
        )
        .await
        .unwrap();
}

/// Creates `count` Secrets of `kib` KiB in namespace `unrelated`, which no WorkspaceSecret
/// targets: the operator should not pay for them.
pub(crate) async fn unrelated_secrets(client: &kube::Client, count: usize, kib: usize) {
    let started = Instant::now();
    let payload = vec![b'x'; kib * 1024];
    let unrelated: Api<Secret> = Api::namespaced(client.clone(), "unrelated");
    futures::stream::iter(0..count)
        .for_each_concurrent(8, |i| {
            let (api, payload) = (unrelated.clone(), payload.clone());
            async move {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("unrelated-{i}")),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("blob".into(), ByteString(payload))])),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &s).await.unwrap();
            }
        })
        .await;
    if count > 0 {
        eprintln!(
            "created {count} unrelated Secrets of {kib} KiB in {:.1?}",
            started.elapsed()
        );
    }
}
