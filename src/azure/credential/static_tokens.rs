//! Pre-issued bearer tokens per audience (ARM, Key Vault), kept fresh by someone else.

use std::time::Duration;

use super::{TokenSource, jwt};
use crate::azure::BoxFuture;
use crate::azure::cloud::CloudEndpoints;
use crate::azure::error::AzureError;
use crate::azure::http::Http;
use crate::azure::redact::SecretString;
use crate::azure::token_cache::AccessToken;

/// How long an opaque (non-JWT) token is used before it is looked at again.
const OPAQUE_LIFETIME: Duration = Duration::from_secs(300);

pub(crate) struct StaticTokens {
    arm_scope: String,
    key_vault_scope: String,
    arm: Option<SecretString>,
    key_vault: Option<SecretString>,
}

impl StaticTokens {
    pub(crate) fn new(
        cloud: &CloudEndpoints,
        arm: Option<SecretString>,
        key_vault: Option<SecretString>,
    ) -> Self {
        StaticTokens {
            arm_scope: cloud.arm_scope(),
            key_vault_scope: cloud.key_vault_scope(),
            arm,
            key_vault,
        }
    }

    fn pick(&self, scope: &str) -> Result<AccessToken, AzureError> {
        let (token, which) = if scope == self.arm_scope {
            (&self.arm, "ARM (armToken)")
        } else if scope == self.key_vault_scope {
            (&self.key_vault, "Key Vault (keyVaultToken)")
        } else {
            (&None, "this audience")
        };
        let token = token.as_ref().ok_or_else(|| {
            AzureError::InvalidCredential(format!(
                "no pre-issued token for {which} ({scope}) is in the Secret"
            ))
        })?;
        let exp = jwt::claims(token.expose()).and_then(|c| c.get("exp").and_then(|v| v.as_i64()));
        match exp {
            Some(exp) => {
                let t = AccessToken::expiring_at(token.clone(), exp);
                if t.expires_on <= std::time::SystemTime::now() {
                    return Err(AzureError::AuthenticationFailed {
                        principal: super::method_label(super::PRE_ISSUED_METHOD).into(),
                        code: None,
                        detail: format!(
                            "the pre-issued token for {which} expired at {}; whoever issues it must refresh the Secret",
                            jiff::Timestamp::from_second(exp)
                                .map(|t| t.to_string())
                                .unwrap_or_default()
                        ),
                    });
                }
                Ok(t)
            }
            None => Ok(AccessToken::new(token.clone(), OPAQUE_LIFETIME)),
        }
    }
}

impl TokenSource for StaticTokens {
    fn fetch<'a>(
        &'a self,
        _http: &'a Http,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AzureError>> {
        Box::pin(async move { self.pick(scope) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_exp(exp: i64) -> String {
        format!(
            "{}.{}.x",
            jwt::b64url(b"{}"),
            jwt::b64url(format!(r#"{{"exp":{exp}}}"#).as_bytes())
        )
    }

    #[test]
    fn tokens_are_chosen_by_audience_and_missing_ones_are_named() {
        let cloud = CloudEndpoints::public();
        let s = StaticTokens::new(&cloud, Some("arm-opaque".into()), None);
        assert_eq!(
            s.pick(&cloud.arm_scope()).unwrap().secret.expose(),
            "arm-opaque"
        );
        let e = s.pick(&cloud.key_vault_scope()).unwrap_err();
        assert!(e.to_string().contains("keyVaultToken"), "{e}");
    }

    #[test]
    fn an_expired_jwt_is_an_authentication_failure() {
        let cloud = CloudEndpoints::public();
        let s = StaticTokens::new(&cloud, None, Some(jwt_with_exp(1000).into()));
        let e = s.pick(&cloud.key_vault_scope()).unwrap_err();
        assert_eq!(e.reason(), "AuthenticationFailed");
        assert!(!e.to_string().contains(&jwt_with_exp(1000)));
        let fresh = jwt_with_exp(jiff::Timestamp::now().as_second() + 3600);
        let s = StaticTokens::new(&cloud, None, Some(fresh.into()));
        assert!(s.pick(&cloud.key_vault_scope()).unwrap().is_fresh());
    }
}
