//! What a laptop command works on: the workspace (from flags, a manifest or the cluster), its
//! cloud and vault override, and the HTTP client to reach Azure with.

use kube::ResourceExt;
use kube::api::Api;

use super::args::{CloudName, LocalArgs, WorkspaceArgs};
use crate::api::workspace::{AzureMLWorkspace, AzureMLWorkspaceSpec, CustomCloud};
use crate::api::workspace_secret::WorkspaceSecret;
use crate::azure::{CloudEndpoints, Http, HttpConfig, WorkspaceRef};

/// A failure before any Azure call: bad flags, unreadable files, no cluster.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The workspace a command works on.
pub struct Target {
    /// The workspace as an `AzureMLWorkspace` (built from flags when none was given).
    pub workspace: AzureMLWorkspace,
    /// Whether the workspace came from a manifest or the cluster (then it has its own auth).
    pub from_manifest: bool,
    /// The WorkspaceSecret to check, if one was given.
    pub workspace_secret: Option<WorkspaceSecret>,
    /// The cloud.
    pub cloud: CloudEndpoints,
    /// A Kubernetes client, when the cluster was needed.
    pub client: Option<kube::Client>,
}

impl Target {
    /// Returns the ARM reference of the workspace.
    pub fn wref(&self) -> WorkspaceRef {
        WorkspaceRef {
            subscription_id: self.workspace.spec.subscription_id.clone(),
            resource_group: self.workspace.spec.resource_group.clone(),
            workspace_name: self.workspace.spec.workspace_name.clone(),
        }
    }
}

/// Builds the HTTP client of the laptop commands.
pub fn http(local: &LocalArgs) -> Result<Http, Usage> {
    let extra_ca_pem = match &local.extra_ca_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            Usage(format!(
                "cannot read --extra-ca-file {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    Http::new(&HttpConfig {
        extra_ca_pem,
        request_timeout: local.azure_timeout,
        ..HttpConfig::default()
    })
    .map_err(|e| Usage(e.to_string()))
}

fn cloud_of(args: &WorkspaceArgs) -> Result<Option<CloudEndpoints>, Usage> {
    let custom = args.authority_host.is_some()
        || args.resource_manager_endpoint.is_some()
        || args.key_vault_dns_suffix.is_some()
        || args.key_vault_audience.is_some();
    let name = match (args.cloud, custom) {
        (Some(c), _) => c,
        (None, true) => CloudName::Custom,
        (None, false) => return Ok(None),
    };
    Ok(Some(match name {
        CloudName::AzurePublicCloud => CloudEndpoints::public(),
        CloudName::AzureChinaCloud => CloudEndpoints::china(),
        CloudName::AzureUsGovernmentCloud => CloudEndpoints::us_government(),
        CloudName::Custom => CloudEndpoints::custom(&custom_cloud(args)?),
    }))
}

fn need(v: &Option<String>, flag: &str) -> Result<String, Usage> {
    v.clone()
        .ok_or_else(|| Usage(format!("a Custom cloud needs --{flag}")))
}

fn custom_cloud(args: &WorkspaceArgs) -> Result<CustomCloud, Usage> {
    Ok(CustomCloud {
        authority_host: need(&args.authority_host, "authority-host")?,
        resource_manager_endpoint: need(
            &args.resource_manager_endpoint,
            "resource-manager-endpoint",
        )?,
        resource_manager_audience: None,
        key_vault_dns_suffix: need(&args.key_vault_dns_suffix, "key-vault-dns-suffix")?,
        key_vault_audience: need(&args.key_vault_audience, "key-vault-audience")?,
    })
}

async fn kube_client() -> Result<kube::Client, Usage> {
    kube::Client::try_default()
        .await
        .map_err(|e| Usage(format!("cannot reach the Kubernetes API (kubeconfig): {e}")))
}

async fn default_namespace(args: &WorkspaceArgs) -> String {
    match &args.namespace {
        Some(n) => n.clone(),
        None => kube::Config::infer()
            .await
            .map(|c| c.default_namespace)
            .unwrap_or_else(|_| "default".into()),
    }
}

/// Reads the manifests of `-f`: an `AzureMLWorkspace` and/or a `WorkspaceSecret`.
fn read_manifests(
    path: &std::path::Path,
) -> Result<(Option<AzureMLWorkspace>, Option<WorkspaceSecret>), Usage> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut ws = None;
    let mut wsec = None;
    for doc in text.split("\n---") {
        let doc = doc.trim_start_matches('-');
        if doc.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_saphyr::from_str(doc)
            .map_err(|e| Usage(format!("{} is not YAML: {e}", path.display())))?;
        let bad = |e: serde_json::Error| Usage(format!("{}: {e}", path.display()));
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("AzureMLWorkspace") => ws = Some(serde_json::from_value(value).map_err(bad)?),
            Some("WorkspaceSecret") => wsec = Some(serde_json::from_value(value).map_err(bad)?),
            other => {
                return Err(Usage(format!(
                    "{}: expected kind AzureMLWorkspace or WorkspaceSecret, found {other:?}",
                    path.display()
                )));
            }
        }
    }
    Ok((ws, wsec))
}

/// Resolves the workspace a command works on.
pub async fn resolve(args: &WorkspaceArgs) -> Result<Target, Usage> {
    let mut client = None;
    let (mut ws, mut wsec) = match &args.file {
        Some(path) => read_manifests(path)?,
        None => (None, None),
    };
    if let Some(from) = &args.from {
        let c = kube_client().await?;
        let ns = default_namespace(args).await;
        let (kind, name) = from.split_once('/').ok_or_else(|| {
            Usage(format!(
                "--from {from}: expected azuremlworkspace/NAME or workspacesecret/NAME"
            ))
        })?;
        let not_found = |what: &str| Usage(format!("{what} {ns}/{name} does not exist"));
        let read = |e: kube::Error| Usage(format!("cannot read {from}: {e}"));
        match kind.to_ascii_lowercase().as_str() {
            "azuremlworkspace" | "azuremlworkspaces" => {
                let api: Api<AzureMLWorkspace> = Api::namespaced(c.clone(), &ns);
                ws = Some(
                    api.get_opt(name)
                        .await
                        .map_err(read)?
                        .ok_or_else(|| not_found("AzureMLWorkspace"))?,
                );
            }
            "workspacesecret" | "workspacesecrets" => {
                let api: Api<WorkspaceSecret> = Api::namespaced(c.clone(), &ns);
                wsec = Some(
                    api.get_opt(name)
                        .await
                        .map_err(read)?
                        .ok_or_else(|| not_found("WorkspaceSecret"))?,
                );
            }
            _ => {
                return Err(Usage(format!(
                    "--from {from}: expected azuremlworkspace/NAME or workspacesecret/NAME"
                )));
            }
        }
        client = Some(c);
    }
    // A WorkspaceSecret without its workspace: read the workspace it names from the cluster.
    if let (None, Some(s)) = (&ws, &wsec) {
        let c = match client.take() {
            Some(c) => c,
            None => kube_client().await?,
        };
        let ns = match s.namespace() {
            Some(n) => n,
            None => default_namespace(args).await,
        };
        let name = &s.spec.workspace_ref.name;
        let api: Api<AzureMLWorkspace> = Api::namespaced(c.clone(), &ns);
        ws = Some(
            api.get_opt(name)
                .await
                .map_err(|e| Usage(format!("cannot read AzureMLWorkspace {ns}/{name}: {e}")))?
                .ok_or_else(|| {
                    Usage(format!(
                        "AzureMLWorkspace {ns}/{name} (the WorkspaceSecret's workspaceRef) does not exist"
                    ))
                })?,
        );
        client = Some(c);
    }
    let from_manifest = ws.is_some();
    let mut workspace = match ws {
        Some(w) => w,
        None => {
            let need = |v: &Option<String>, flag: &str| {
                v.clone().ok_or_else(|| {
                    Usage(format!(
                        "which workspace? give --subscription, --resource-group and --workspace, or -f MANIFEST, or --from azuremlworkspace/NAME (missing --{flag})"
                    ))
                })
            };
            AzureMLWorkspace::new(
                "cli",
                AzureMLWorkspaceSpec {
                    subscription_id: need(&args.subscription, "subscription")?,
                    resource_group: need(&args.resource_group, "resource-group")?,
                    workspace_name: need(&args.workspace, "workspace")?,
                    cloud: Default::default(),
                    custom_cloud: None,
                    key_vault: None,
                    auth: Default::default(),
                },
            )
        }
    };
    if workspace.metadata.namespace.is_none() && from_manifest {
        let ns = match (&args.namespace, &client) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(_)) => Some(default_namespace(args).await),
            (None, None) => None,
        };
        workspace.metadata.namespace = ns;
    }
    // Flags win over the manifest.
    if let Some(s) = &args.subscription {
        workspace.spec.subscription_id = s.clone();
    }
    if let Some(g) = &args.resource_group {
        workspace.spec.resource_group = g.clone();
    }
    if let Some(w) = &args.workspace {
        workspace.spec.workspace_name = w.clone();
    }
    if let Some(v) = &args.vault {
        workspace.spec.key_vault = Some(crate::api::workspace::KeyVaultOverride { uri: v.clone() });
    }
    let cloud = match cloud_of(args)? {
        Some(c) => c,
        None => {
            CloudEndpoints::from_spec(workspace.spec.cloud, workspace.spec.custom_cloud.as_ref())
                .ok_or_else(|| {
                    Usage("the manifest's cloud is Custom but customCloud is missing".into())
                })?
        }
    };
    Ok(Target {
        workspace,
        from_manifest,
        workspace_secret: wsec,
        cloud,
        client,
    })
}
