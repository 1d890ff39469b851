//! Typed output of a registry connection: the `.dockerconfigjson` of a
//! `kubernetes.io/dockerconfigjson` Secret, built from the connection's target (the registry) and
//! its username and password (or service principal id and secret). No IO.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::azure::{Connection, Credentials};

/// The connection category that maps to a registry login.
pub const REGISTRY_CATEGORY: &str = "ContainerRegistry";

/// Returns the registry host of a connection target: `https://myacr.azurecr.io/` → `myacr.azurecr.io`.
pub fn registry_host(target: &str) -> Option<String> {
    let t = target.trim();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let host = t.split('/').next().unwrap_or_default();
    (!host.is_empty()).then(|| host.to_string())
}

/// Builds `{"auths":{"<registry>":{"username","password","auth"}}}` for a ContainerRegistry
/// connection with UsernamePassword (`username`/`password`) or ServicePrincipal
/// (`clientId`/`clientSecret`) credentials; anything else is explained, never guessed.
pub fn docker_config(
    connection: &Connection,
    credentials: &Credentials,
) -> Result<Vec<u8>, String> {
    let name = &connection.name;
    if !connection.is_category(REGISTRY_CATEGORY) {
        return Err(format!(
            "connection {name} is a {} connection; only {REGISTRY_CATEGORY} connections map to a kubernetes.io/dockerconfigjson Secret (use an Opaque target to sync its fields)",
            connection.category
        ));
    }
    let login = [("username", "password"), ("clientId", "clientSecret")]
        .into_iter()
        .find_map(|(u, p)| Some((credentials.get(u)?, credentials.get(p)?)));
    let Some((user, pass)) = login else {
        return Err(format!(
            "registry connection {name} uses {} credentials; a kubernetes.io/dockerconfigjson Secret needs UsernamePassword (username, password) or ServicePrincipal (clientId, clientSecret) credentials",
            connection.auth_type
        ));
    };
    let host = connection
        .target
        .as_deref()
        .and_then(registry_host)
        .ok_or_else(|| format!("registry connection {name} has no target (registry address)"))?;
    let (user, pass) = (user.expose(), pass.expose());
    let auth = STANDARD.encode(format!("{user}:{pass}"));
    let config = serde_json::json!({
        "auths": { host: { "username": user, "password": pass, "auth": auth } }
    });
    Ok(serde_json::to_vec(&config).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(auth_type: &str, category: &str) -> Connection {
        Connection {
            name: "acr".into(),
            auth_type: auth_type.into(),
            category: category.into(),
            target: Some("https://myacr.azurecr.io/".into()),
            ..Connection::default()
        }
    }

    #[test]
    fn username_password_registry_becomes_a_docker_config() {
        let creds = Credentials::from_fields([("username", "u"), ("password", "p")]);
        let bytes =
            docker_config(&registry("UsernamePassword", "ContainerRegistry"), &creds).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let entry = &v["auths"]["myacr.azurecr.io"];
        assert_eq!(entry["username"], "u");
        assert_eq!(entry["password"], "p");
        assert_eq!(entry["auth"], STANDARD.encode("u:p"));
    }

    #[test]
    fn service_principal_registry_logs_in_with_client_id_and_secret() {
        let creds = Credentials::from_fields([
            ("clientId", "id"),
            ("clientSecret", "s"),
            ("tenantId", "t"),
        ]);
        let bytes =
            docker_config(&registry("ServicePrincipal", "containerregistry"), &creds).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["auths"]["myacr.azurecr.io"]["username"], "id");
    }

    #[test]
    fn other_categories_and_credentials_are_explained_without_values() {
        let creds = Credentials::from_fields([("pat", "planted-pat")]);
        let e = docker_config(&registry("PAT", "ContainerRegistry"), &creds).unwrap_err();
        assert!(
            e.contains("UsernamePassword") && !e.contains("planted-pat"),
            "{e}"
        );
        let creds = Credentials::from_fields([("username", "u"), ("password", "p")]);
        let e = docker_config(&registry("UsernamePassword", "Git"), &creds).unwrap_err();
        assert!(e.contains("only ContainerRegistry"), "{e}");
    }

    #[test]
    fn registry_host_strips_scheme_and_path() {
        assert_eq!(registry_host("https://r.io/x").as_deref(), Some("r.io"));
        assert_eq!(registry_host("r.io:5000").as_deref(), Some("r.io:5000"));
        assert_eq!(registry_host(""), None);
    }
}
