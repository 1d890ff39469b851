//! A tenant on the node as a user sets one up: a namespace with a service-principal workspace,
//! WorkspaceSecrets, and waiting for their Secrets.

use std::time::{Duration, Instant};

use amlsecrets::api::conditions::find_ready;
use amlsecrets::api::{AzureMLWorkspace, WorkspaceSecret};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use serde_json::{Value, json};
use testenv::azure::{TENANT, VAULT_AUDIENCE};

use crate::support::*;

impl Env {
    /// Creates namespace `ns` with the service principal's Secret and the AzureMLWorkspace `ml`
    /// pointing at the fakes as pods reach them.
    pub async fn tenant(&self, ns: &str) {
        let client = self.client();
        create_namespace(&client, ns).await;
        let pp = PatchParams::apply("e2e").force();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("sp".into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "clientSecret".to_string(),
                    ByteString(SP_SECRET.as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        Api::<Secret>::namespaced(client.clone(), ns)
            .patch("sp", &pp, &Patch::Apply(secret))
            .await
            .unwrap();
        let auth = json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT,
            "clientSecretRef": { "name": "sp", "key": "clientSecret" } } });
        self.workspace(ns, "ml", auth).await;
    }

    /// Applies the AzureMLWorkspace `name` in `ns` with this `auth`, pointing at the fakes.
    pub async fn workspace(&self, ns: &str, name: &str, auth: Value) {
        let ws = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": name },
            "spec": { "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg-ml", "workspaceName": "mlw-e2e",
                "cloud": "Custom",
                "customCloud": { "authorityHost": self.authority, "resourceManagerEndpoint": self.arm,
                                 "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE },
                "keyVault": { "uri": self.vault },
                "auth": auth } });
        Api::<AzureMLWorkspace>::namespaced(self.client(), ns)
            .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(ws))
            .await
            .unwrap();
    }

    /// Applies the WorkspaceSecret `name` of workspace `workspace` with `items` (key, ref),
    /// refreshed every `refresh`.
    pub async fn workspace_secret(
        &self,
        ns: &str,
        name: &str,
        workspace: &str,
        refresh: &str,
        items: &[(&str, &str)],
    ) {
        let data: Vec<Value> = items
            .iter()
            .map(|(k, r)| json!({ "key": k, "ref": r }))
            .collect();
        let wsec = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name },
            "spec": { "workspaceRef": { "name": workspace }, "refreshInterval": refresh, "data": data } });
        Api::<WorkspaceSecret>::namespaced(self.client(), ns)
            .patch(
                name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(wsec),
            )
            .await
            .unwrap();
    }

    /// Waits until WorkspaceSecret `ns/name` is Ready with reason `Synced`.
    pub async fn wait_synced(&self, ns: &str, name: &str, timeout: Duration) {
        let api: Api<WorkspaceSecret> = Api::namespaced(self.client(), ns);
        let ws_api: Api<AzureMLWorkspace> = Api::namespaced(self.client(), ns);
        let start = Instant::now();
        loop {
            let reason = api.get_opt(name).await.ok().flatten().and_then(|w| {
                w.status
                    .and_then(|s| find_ready(&s.conditions).map(|c| c.reason.clone()))
            });
            if reason.as_deref() == Some("Synced") {
                return;
            }
            if start.elapsed() > timeout {
                let ws = ws_api.list(&ListParams::default()).await.ok();
                let ws_status: Vec<String> = ws
                    .map(|l| {
                        l.items
                            .iter()
                            .map(|w| format!("{:?}", w.status.as_ref().map(|s| &s.conditions)))
                            .collect()
                    })
                    .unwrap_or_default();
                panic!(
                    "WorkspaceSecret {ns}/{name} not Synced after {timeout:?} (reason {reason:?}); workspaces: {ws_status:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Returns the data of Secret `ns/name`.
    pub async fn secret_data(&self, ns: &str, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let s = Api::<Secret>::namespaced(self.client(), ns)
            .get_opt(name)
            .await
            .ok()??;
        Some(s.data?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
