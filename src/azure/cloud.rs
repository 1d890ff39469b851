//! The endpoint table of the Azure clouds, custom clouds from the spec, and vault URI derivation.

use crate::api::workspace::{Cloud, CustomCloud};

/// The endpoints and token audiences of one Azure cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CloudEndpoints {
    /// A short name for logs and status, e.g. `AzurePublicCloud`.
    pub name: String,
    /// The Entra ID authority host, without a trailing slash.
    pub authority_host: String,
    /// The ARM endpoint, without a trailing slash.
    pub resource_manager: String,
    /// The ARM token audience (resource), without `/.default`.
    pub resource_manager_audience: String,
    /// The vault DNS suffix with its leading dot, e.g. `.vault.azure.net`.
    pub key_vault_dns_suffix: String,
    /// The Key Vault token audience (resource), without `/.default`.
    pub key_vault_audience: String,
    /// The audience of workload-identity service-account tokens.
    pub token_exchange_audience: String,
}

fn trim(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

impl CloudEndpoints {
    /// Returns the Azure public cloud.
    pub fn public() -> Self {
        Self::known(
            "AzurePublicCloud",
            "https://login.microsoftonline.com",
            "https://management.azure.com",
            ".vault.azure.net",
            "https://vault.azure.net",
            "api://AzureADTokenExchange",
        )
    }

    /// Returns Azure operated by 21Vianet (China).
    pub fn china() -> Self {
        Self::known(
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn",
            "https://management.chinacloudapi.cn",
            ".vault.azure.cn",
            "https://vault.azure.cn",
            "api://AzureADTokenExchangeChina",
        )
    }

    /// Returns Azure US Government.
    pub fn us_government() -> Self {
        Self::known(
            "AzureUSGovernmentCloud",
            "https://login.microsoftonline.us",
            "https://management.usgovcloudapi.net",
            ".vault.usgovcloudapi.net",
            "https://vault.usgovcloudapi.net",
            "api://AzureADTokenExchangeUSGov",
        )
    }

    fn known(
        name: &str,
        authority: &str,
        arm: &str,
        suffix: &str,
        kv: &str,
        exchange: &str,
    ) -> Self {
        CloudEndpoints {
            name: name.into(),
            authority_host: authority.into(),
            resource_manager: arm.into(),
            resource_manager_audience: arm.into(),
            key_vault_dns_suffix: suffix.into(),
            key_vault_audience: kv.into(),
            token_exchange_audience: exchange.into(),
        }
    }

    /// Builds a custom cloud from the spec's `customCloud` (token exchange audience as in the public cloud).
    pub fn custom(c: &CustomCloud) -> Self {
        CloudEndpoints {
            name: "Custom".into(),
            authority_host: trim(&c.authority_host),
            resource_manager: trim(&c.resource_manager_endpoint),
            resource_manager_audience: trim(
                c.resource_manager_audience
                    .as_deref()
                    .unwrap_or(&c.resource_manager_endpoint),
            ),
            key_vault_dns_suffix: c.key_vault_dns_suffix.clone(),
            key_vault_audience: trim(&c.key_vault_audience),
            token_exchange_audience: "api://AzureADTokenExchange".into(),
        }
    }

    /// Resolves the spec's `cloud` and `customCloud`; `None` when `Custom` lacks `customCloud`.
    pub fn from_spec(cloud: Cloud, custom: Option<&CustomCloud>) -> Option<Self> {
        match cloud {
            Cloud::AzurePublicCloud => Some(Self::public()),
            Cloud::AzureChinaCloud => Some(Self::china()),
            Cloud::AzureUSGovernmentCloud => Some(Self::us_government()),
            Cloud::Custom => custom.map(Self::custom),
        }
    }

    /// Returns the OAuth2 v2 scope for ARM (`{audience}/.default`).
    pub fn arm_scope(&self) -> String {
        format!("{}/.default", self.resource_manager_audience)
    }

    /// Returns the OAuth2 v2 scope for Key Vault (`{audience}/.default`).
    pub fn key_vault_scope(&self) -> String {
        format!("{}/.default", self.key_vault_audience)
    }

    /// Returns the v2 token endpoint of a tenant.
    pub fn token_endpoint(&self, tenant_id: &str) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority_host, tenant_id)
    }

    /// Tells whether tokens of this cloud may be sent to `vault_uri`: in the built-in clouds only
    /// hosts under the cloud's Key Vault DNS suffix are vaults (so a spec cannot direct a token
    /// to an arbitrary host); a custom cloud trusts the endpoints its spec names.
    pub fn allows_vault(&self, vault_uri: &str) -> bool {
        if self.name == "Custom" {
            return true;
        }
        let host = vault_uri
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let suffix = self.key_vault_dns_suffix.to_ascii_lowercase();
        host.ends_with(&suffix) && host.len() > suffix.len()
    }

    /// Derives a vault's data-plane URI from its name: `https://{name}{suffix}`.
    pub fn vault_uri(&self, vault_name: &str) -> String {
        format!("https://{}{}", vault_name, self.key_vault_dns_suffix)
    }
}

/// Parses an ARM resource id into its subscription, resource group, provider type and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmId {
    /// The subscription id.
    pub subscription: String,
    /// The resource group.
    pub resource_group: String,
    /// `{namespace}/{type}`, e.g. `Microsoft.KeyVault/vaults`.
    pub resource_type: String,
    /// The resource's name (the last segment).
    pub name: String,
}

impl ArmId {
    /// Parses `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}` (case-insensitive keywords).
    pub fn parse(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        if parts.len() != 8
            || !parts[0].eq_ignore_ascii_case("subscriptions")
            || !parts[2].eq_ignore_ascii_case("resourcegroups")
            || !parts[4].eq_ignore_ascii_case("providers")
            || parts.iter().any(|p| p.is_empty())
        {
            return None;
        }
        Some(ArmId {
            subscription: parts[1].into(),
            resource_group: parts[3].into(),
            resource_type: format!("{}/{}", parts[5], parts[6]),
            name: parts[7].into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_built_in_cloud_go_only_to_its_vaults() {
        let c = CloudEndpoints::public();
        assert!(c.allows_vault("https://kv1.vault.azure.net"));
        assert!(c.allows_vault("https://KV1.Vault.Azure.Net/"));
        assert!(!c.allows_vault("https://evil.example/secrets"));
        assert!(!c.allows_vault("https://vault.azure.net.evil.example"));
        assert!(!c.allows_vault("https://.vault.azure.net"));
        assert!(!c.allows_vault("http://kv1.vault.azure.net"));
        assert!(!CloudEndpoints::china().allows_vault("https://kv1.vault.azure.net"));
    }

    #[test]
    fn public_cloud_scopes_and_vault_uri_follow_the_table() {
        let c = CloudEndpoints::public();
        assert_eq!(c.arm_scope(), "https://management.azure.com/.default");
        assert_eq!(c.key_vault_scope(), "https://vault.azure.net/.default");
        assert_eq!(c.vault_uri("kv1"), "https://kv1.vault.azure.net");
        assert_eq!(
            c.token_endpoint("t"),
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        );
    }

    #[test]
    fn sovereign_clouds_use_their_own_suffixes() {
        assert_eq!(
            CloudEndpoints::china().vault_uri("a"),
            "https://a.vault.azure.cn"
        );
        assert_eq!(
            CloudEndpoints::us_government().key_vault_scope(),
            "https://vault.usgovcloudapi.net/.default"
        );
        assert_eq!(
            CloudEndpoints::china().token_exchange_audience,
            "api://AzureADTokenExchangeChina"
        );
    }

    #[test]
    fn custom_cloud_defaults_arm_audience_to_endpoint_and_trims_slashes() {
        let c = CloudEndpoints::custom(&CustomCloud {
            authority_host: "https://127.0.0.1:1/".into(),
            resource_manager_endpoint: "https://127.0.0.1:2/".into(),
            resource_manager_audience: None,
            key_vault_dns_suffix: ".vault.local:8443".into(),
            key_vault_audience: "https://vault.azure.net/".into(),
        });
        assert_eq!(c.arm_scope(), "https://127.0.0.1:2/.default");
        assert_eq!(
            c.token_endpoint("t"),
            "https://127.0.0.1:1/t/oauth2/v2.0/token"
        );
        assert_eq!(c.vault_uri("kv"), "https://kv.vault.local:8443");
        assert!(CloudEndpoints::from_spec(Cloud::Custom, None).is_none());
    }

    #[test]
    fn arm_id_parses_vault_ids_in_any_subscription() {
        let id = ArmId::parse(
            "/subscriptions/s2/resourcegroups/rg-b/providers/Microsoft.KeyVault/vaults/kv9",
        )
        .unwrap();
        assert_eq!(id.subscription, "s2");
        assert_eq!(id.resource_group, "rg-b");
        assert_eq!(id.resource_type, "Microsoft.KeyVault/vaults");
        assert_eq!(id.name, "kv9");
        assert!(ArmId::parse("/subscriptions/s/resourceGroups/rg").is_none());
        assert!(ArmId::parse("kv9").is_none());
    }
}
