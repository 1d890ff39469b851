//! Azure Resource Manager: the ML workspace (kind, location, workspaceId) and its Key Vault,
//! through the hub for projects. Connections (listsecrets) will live beside this.

use reqwest::Method;
use serde::Deserialize;

use super::cloud::ArmId;
use super::credential::Credential;
use super::error::{AzureError, Service};
use super::http::{Http, HttpResponse, endpoint_of, retry_after};
use super::request::{CallError, ErrorBody, authorized};

/// The workspace API version used.
pub const WORKSPACE_API_VERSION: &str = "2025-06-01";
/// The permission needed to read a workspace.
pub const WORKSPACE_READ: &str = "Microsoft.MachineLearningServices/workspaces/read";

/// Names one Azure ML workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkspaceRef {
    /// The subscription id.
    pub subscription_id: String,
    /// The resource group.
    pub resource_group: String,
    /// The workspace name.
    pub workspace_name: String,
}

impl WorkspaceRef {
    /// Returns the workspace's ARM resource id.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.workspace_name
        )
    }
}

/// Where a vault came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultSource {
    /// `spec.keyVault.uri`.
    Spec,
    /// The workspace's own `properties.keyVault`.
    Workspace,
    /// The hub of a project.
    Hub,
}

impl VaultSource {
    /// Returns the name status shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            VaultSource::Spec => "Spec",
            VaultSource::Workspace => "Workspace",
            VaultSource::Hub => "Hub",
        }
    }
}

/// A workspace's Key Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultLocation {
    /// The vault's ARM id (absent when given by URI).
    pub resource_id: Option<String>,
    /// The data-plane URI, without a trailing slash.
    pub uri: String,
    /// Where it came from.
    pub source: VaultSource,
}

/// A workspace as ARM describes it, with its vault resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// The ARM resource id as ARM returns it.
    pub resource_id: String,
    /// The name.
    pub name: String,
    /// `Default`, `Hub`, `Project`, `FeatureStore` (ARM omits it for plain workspaces: `Default`).
    pub kind: String,
    /// The region.
    pub location: Option<String>,
    /// The immutable workspace GUID.
    pub workspace_id: Option<String>,
    /// For projects: the hub.
    pub hub_resource_id: Option<String>,
    /// The provisioning state.
    pub provisioning_state: Option<String>,
    /// The customer Key Vault, or `None` when the workspace has none (Microsoft-managed credential store).
    pub key_vault: Option<VaultLocation>,
}

#[derive(Deserialize)]
struct WireWorkspace {
    id: String,
    name: String,
    kind: Option<String>,
    location: Option<String>,
    #[serde(default)]
    properties: WireProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireProperties {
    key_vault: Option<String>,
    workspace_id: Option<String>,
    hub_resource_id: Option<String>,
    provisioning_state: Option<String>,
}

/// Sends an ARM request for a resource and classifies its errors.
pub(crate) async fn arm_call(
    http: &Http,
    cred: &Credential,
    operation: &'static str,
    method: Method,
    resource_id: &str,
    api_version: &str,
    action: &str,
) -> Result<HttpResponse, AzureError> {
    let cloud = cred.cloud();
    let url = format!(
        "{}{}?api-version={api_version}",
        cloud.resource_manager, resource_id
    );
    let resp = authorized(
        http,
        cred,
        &cloud.arm_scope(),
        operation,
        method,
        &url,
        None,
    )
    .await
    .map_err(|e| match e {
        CallError::Token(e) => e,
        CallError::Transport(t) => AzureError::Network {
            service: Service::Arm,
            endpoint: endpoint_of(&url),
            failure: t.failure,
            detail: t.detail,
        },
    })?;
    if resp.status.is_success() {
        return Ok(resp);
    }
    let body = ErrorBody::parse(&resp);
    let status = resp.status.as_u16();
    Err(match status {
        401 => AzureError::AuthenticationFailed {
            principal: cred.identity().to_string(),
            code: None,
            detail: format!(
                "Azure Resource Manager rejected the token ({}): {}",
                body.error.code,
                body.message_lines(1)
            ),
        },
        403 => AzureError::Forbidden {
            principal: cred.identity().to_string(),
            action: action.to_string(),
            resource: resource_id.to_string(),
            model: None,
            detail: format!(
                "assign the principal a role that grants it (e.g. 'AzureML Data Scientist' or Reader) on the workspace. ARM said ({}): {}",
                body.error.code,
                body.message_lines(1)
            ),
        },
        404 => AzureError::WorkspaceNotFound {
            workspace: resource_id.to_string(),
            code: body.error.code.clone(),
            detail: body.message_lines(1),
        },
        _ => throttled_or_server(&resp, &body),
    })
}

/// Classifies an ARM answer that no caller-specific rule covers: 429 is `Throttled` (with its
/// `Retry-After`), anything else a server error quoting ARM's code and message.
pub(crate) fn throttled_or_server(resp: &HttpResponse, body: &ErrorBody) -> AzureError {
    match resp.status.as_u16() {
        429 => AzureError::Throttled {
            service: Service::Arm,
            retry_after: retry_after(&resp.headers),
        },
        status => AzureError::Server {
            service: Service::Arm,
            status,
            code: body.error.code.clone(),
            detail: body.message_lines(2),
        },
    }
}

async fn get_raw(
    http: &Http,
    cred: &Credential,
    resource_id: &str,
) -> Result<WireWorkspace, AzureError> {
    let resp = arm_call(
        http,
        cred,
        "arm.workspace.get",
        Method::GET,
        resource_id,
        WORKSPACE_API_VERSION,
        WORKSPACE_READ,
    )
    .await?;
    resp.json(Service::Arm)
}

fn vault_from_id(
    cred: &Credential,
    id: Option<&str>,
    source: VaultSource,
) -> Result<Option<VaultLocation>, AzureError> {
    let Some(id) = id.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let parsed = ArmId::parse(id).filter(|p| {
        p.resource_type
            .eq_ignore_ascii_case("Microsoft.KeyVault/vaults")
    });
    let parsed = parsed.ok_or_else(|| AzureError::InvalidResponse {
        service: Service::Arm,
        detail: format!("properties.keyVault is not a Key Vault resource id: {id}"),
    })?;
    Ok(Some(VaultLocation {
        resource_id: Some(id.to_string()),
        uri: cred.cloud().vault_uri(&parsed.name),
        source,
    }))
}

/// Gets a workspace and resolves its Key Vault (through the hub for a project without one).
pub async fn get_workspace(
    http: &Http,
    cred: &Credential,
    ws: &WorkspaceRef,
) -> Result<Workspace, AzureError> {
    let raw = get_raw(http, cred, &ws.resource_id()).await?;
    let kind = raw
        .kind
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "Default".into());
    let mut key_vault = vault_from_id(
        cred,
        raw.properties.key_vault.as_deref(),
        VaultSource::Workspace,
    )?;
    if key_vault.is_none()
        && kind.eq_ignore_ascii_case("Project")
        && let Some(hub) = raw
            .properties
            .hub_resource_id
            .as_deref()
            .filter(|h| !h.is_empty())
    {
        let hub = get_raw(http, cred, hub).await?;
        key_vault = vault_from_id(cred, hub.properties.key_vault.as_deref(), VaultSource::Hub)?;
    }
    tracing::debug!(
        workspace = %raw.id,
        kind = %kind,
        has_vault = key_vault.is_some(),
        "resolved workspace"
    );
    Ok(Workspace {
        resource_id: raw.id,
        name: raw.name,
        kind,
        location: raw.location,
        workspace_id: raw.properties.workspace_id,
        hub_resource_id: raw.properties.hub_resource_id,
        provisioning_state: raw.properties.provisioning_state,
        key_vault,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_workspace_example_parses_with_vault_id() {
        let raw: WireWorkspace = serde_json::from_str(
            r#"{"name":"testworkspace","id":"/subscriptions/0/resourceGroups/workspace-1234/providers/Microsoft.MachineLearningServices/workspaces/testworkspace","location":"eastus2euap","properties":{"keyVault":"/subscriptions/0/resourceGroups/workspace-1234/providers/Microsoft.KeyVault/vaults/testkv","discoveryUrl":"http://example.com"}}"#,
        )
        .unwrap();
        assert!(raw.kind.is_none());
        assert_eq!(
            ArmId::parse(raw.properties.key_vault.as_deref().unwrap())
                .unwrap()
                .name,
            "testkv"
        );
    }

    #[test]
    fn workspace_ref_builds_the_arm_id() {
        let w = WorkspaceRef {
            subscription_id: "s".into(),
            resource_group: "rg".into(),
            workspace_name: "ws".into(),
        };
        assert_eq!(
            w.resource_id(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
        );
    }
}
