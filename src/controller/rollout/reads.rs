//! What a rollout check reads: the pods' start times, the Secrets followed (each once) and the
//! digest key.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use tracing::info;

use super::{KEY_SECRET, Problem, Rollouts, problem};
use crate::controller::Context;
use crate::sync::build::MANAGED_LABEL;

/// When the oldest running container of a workload's pods started.
pub(super) async fn oldest_start(
    ctx: &Context,
    obj: &DynamicObject,
) -> Result<Option<Timestamp>, Problem> {
    let Ok(selector) =
        serde_json::from_value::<LabelSelector>(obj.data["spec"]["selector"].clone())
    else {
        return Ok(None);
    };
    let Some(selector) = selector_string(&selector) else {
        return Ok(None);
    };
    let ns = obj.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| problem("list pods", e))?;
    let started = list
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| t.0)
        .min();
    Ok(started)
}

/// A label selector as the API's query string; `None` when it selects nothing.
fn selector_string(s: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The Secrets read during one check, each read at most once.
pub(super) struct SecretCache {
    api: Api<Secret>,
    seen: HashMap<String, Option<Secret>>,
}

impl SecretCache {
    pub(super) fn new(ctx: &Context, ns: &str) -> Self {
        SecretCache {
            api: Api::namespaced(ctx.client.clone(), ns),
            seen: HashMap::new(),
        }
    }

    pub(super) async fn load(&mut self, name: &str) -> Result<(), Problem> {
        if !self.seen.contains_key(name) {
            let s = self
                .api
                .get_opt(name)
                .await
                .map_err(|e| problem(&format!("read Secret {name}"), e))?;
            self.seen.insert(name.to_string(), s);
        }
        Ok(())
    }

    pub(super) fn get(&self, name: &str) -> Option<&Secret> {
        self.seen.get(name)?.as_ref()
    }

    /// Whether the operator manages this Secret (its label).
    pub(super) fn managed(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|s| s.labels().get(MANAGED_LABEL).is_some_and(|v| v == "true"))
    }
}

/// Loads the digest key from its Secret in the operator's namespace, creating it the first time.
pub(super) async fn key<'r>(
    ctx: &Context,
    rollouts: &'r Rollouts,
) -> Result<&'r hmac::Key, Problem> {
    rollouts
        .key
        .get_or_try_init(|| async {
            let ns = ctx.args.operator_namespace();
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let read = |s: Secret| {
                s.data
                    .and_then(|d| d.get("key").map(|k| k.0.clone()))
                    .filter(|k| k.len() >= 32)
                    .map(|k| hmac::Key::new(hmac::HMAC_SHA256, &k))
            };
            let what = format!("read Secret {ns}/{KEY_SECRET}");
            if let Some(k) = api
                .get_opt(KEY_SECRET)
                .await
                .map_err(|e| problem(&what, e))?
                .and_then(read)
            {
                return Ok(k);
            }
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| Problem::Failed("no system random numbers".into()))?;
            let secret: Secret = serde_json::from_value(json!({
                "metadata": { "name": KEY_SECRET, "labels": { "app.kubernetes.io/managed-by": "amlsecrets" } },
                "data": { "key": base64_encode(&bytes) } }))
            .map_err(|e| Problem::Failed(e.to_string()))?;
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    info!(namespace = %ns, secret = KEY_SECRET, "created the rollout digest key");
                    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
                }
                // Another replica created it first: use theirs.
                Err(kube::Error::Api(s)) if s.code == 409 => api
                    .get(KEY_SECRET)
                    .await
                    .map_err(|e| problem(&what, e))
                    .and_then(|s| read(s).ok_or_else(|| Problem::Failed(format!("Secret {ns}/{KEY_SECRET} holds no 32-byte key")))),
                Err(e) => Err(problem(&format!("create Secret {ns}/{KEY_SECRET}"), e)),
            }
        })
        .await
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_become_query_strings() {
        let s: LabelSelector = serde_json::from_value(json!({
            "matchLabels": { "app": "web" },
            "matchExpressions": [
                { "key": "tier", "operator": "In", "values": ["a", "b"] },
                { "key": "old", "operator": "DoesNotExist" },
                { "key": "track", "operator": "Exists" },
                { "key": "env", "operator": "NotIn", "values": ["dev"] } ] }))
        .unwrap();
        assert_eq!(
            selector_string(&s).unwrap(),
            "app=web,tier in (a,b),!old,track,env notin (dev)"
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }
}
