//! Who may call the fake vault, checked before every operation: injected faults, the service
//! limit (429), the bearer challenge and token audience (401), `api-version` (400), and denials as
//! Azure RBAC or access policies word them (403).

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::response::Response;

use super::{FakeKeyVault, PermissionModel};
use crate::azure::common::{Fault, Grant, azure_error, now};

impl FakeKeyVault {
    /// Checks faults, api-version and authorization; returns the caller's grant or the answer.
    #[allow(clippy::result_large_err)]
    pub(super) async fn admit(
        &self,
        op: &str,
        headers: &HeaderMap,
        q: &HashMap<String, String>,
    ) -> Result<Grant, Response> {
        self.calls.hit(op);
        if let Some(f) = self.faults.next().await {
            return Err(f);
        }
        if let Some((max, window, seen)) = self.limit.lock().unwrap().as_mut() {
            let now = std::time::Instant::now();
            while seen
                .front()
                .is_some_and(|t| now.duration_since(*t) >= *window)
            {
                seen.pop_front();
            }
            if seen.len() >= *max {
                self.calls.hit("throttled");
                let wait = *window - now.duration_since(*seen.front().unwrap());
                return Err(Fault::new(
                    429,
                    azure_error(
                        "Throttled",
                        "Rate limit is exceeded. Try again later.",
                        None,
                    ),
                )
                .header("retry-after", &wait.as_secs().max(1).to_string())
                .response());
            }
            seen.push_back(now);
        }
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{}\"",
            self.tenant, self.audience
        );
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let Some(grant) = self.tokens.check(auth) else {
            let msg = if auth.is_none() {
                "AKV10000: Request is missing a Bearer or PoP token."
            } else {
                "AKV10032: Invalid issuer."
            };
            return Err(Fault::new(401, azure_error("Unauthorized", msg, None))
                .header("www-authenticate", &challenge)
                .response());
        };
        if grant.audience.trim_end_matches('/') != self.audience || grant.exp < now() {
            let msg = format!(
                "AKV10022: Invalid audience. Expected {}, found: {}.",
                self.audience, grant.audience
            );
            return Err(Fault::new(401, azure_error("Unauthorized", &msg, None))
                .header("www-authenticate", &challenge)
                .response());
        }
        if !q.contains_key("api-version") {
            return Err(Fault::new(
                400,
                azure_error(
                    "BadParameter",
                    "The request URI contains an invalid or missing api-version.",
                    None,
                ),
            )
            .response());
        }
        let refused = {
            let vault = self.vault.lock().unwrap();
            vault.denied.contains(&grant.oid)
                || (vault.read_only.contains(&grant.oid)
                    && matches!(op, "set" | "update" | "delete" | "purge" | "recover"))
        };
        if refused {
            let (action, perm) = match op {
                "get" => ("Microsoft.KeyVault/vaults/secrets/getSecret/action", "get"),
                "set" | "update" => ("Microsoft.KeyVault/vaults/secrets/setSecret/action", "set"),
                "delete" => ("Microsoft.KeyVault/vaults/secrets/delete", "delete"),
                "deleted-get" | "deleted-list" => {
                    ("Microsoft.KeyVault/vaults/deletedSecrets/read", "list")
                }
                "purge" => ("Microsoft.KeyVault/vaults/deletedSecrets/delete", "purge"),
                "recover" => (
                    "Microsoft.KeyVault/vaults/deletedSecrets/recover/action",
                    "recover",
                ),
                _ => (
                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                    "list",
                ),
            };
            let body = match *self.model.lock().unwrap() {
                PermissionModel::Rbac => azure_error(
                    "Forbidden",
                    &format!(
                        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: '{action}'\r\nResource: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/fakevault/secrets'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: fakevault;location=eastus2",
                        grant.appid, grant.oid, grant.tid
                    ),
                    Some("ForbiddenByRbac"),
                ),
                PermissionModel::AccessPolicy => azure_error(
                    "Forbidden",
                    &format!(
                        "The user, group or application 'appid={};oid={};iss=https://sts.windows.net/{}/' does not have secrets {perm} permission on key vault 'fakevault;location=eastus2'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                        grant.appid, grant.oid, grant.tid
                    ),
                    Some("AccessDenied"),
                ),
            };
            return Err(Fault::new(403, body).response());
        }
        Ok(grant)
    }
}
