//! Rolls the workloads that follow a synced Secret (IO; the decisions are in `crate::rollout`).
//!
//! After each sync of a WorkspaceSecret, the opted-in Deployments, StatefulSets and DaemonSets of
//! its namespace that follow its target Secret are checked: the keyed digest of the data they
//! follow is compared with the one recorded on them, and a changed one is set on the pod
//! template, so the workload controller rolls them with their own strategy. Nothing here fails
//! the sync: problems are reported as Events, and the next sync checks again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{ObjectReference, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use tracing::{debug, info, warn};

use super::Context;
use super::target::data_of;
use crate::api::conditions::events;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::rollout::{
    CHANGED_ANNOTATION, DIGEST_ANNOTATION, Decision, Facts, decide, digest, followed, opt_in,
};
use crate::sync::build::MANAGED_LABEL;

/// The Secret (in the operator's namespace) holding the key of the rollout digests, so that every
/// replica and every restart computes the same digest.
pub const KEY_SECRET: &str = "amlsecrets-rollout-key";

/// State of the rollout feature: the digest key, loaded once, and which WorkspaceSecrets were
/// already told that rollouts are not permitted.
pub struct Rollouts {
    key: tokio::sync::OnceCell<hmac::Key>,
    told: Mutex<HashSet<String>>,
}

impl Rollouts {
    pub(super) fn new() -> Self {
        Rollouts {
            key: tokio::sync::OnceCell::new(),
            told: Mutex::new(HashSet::new()),
        }
    }
}

/// One workload kind that can follow Secrets.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    resource: fn() -> ApiResource,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "Deployment",
        resource: || ApiResource::erase::<Deployment>(&()),
    },
    Kind {
        name: "StatefulSet",
        resource: || ApiResource::erase::<StatefulSet>(&()),
    },
    Kind {
        name: "DaemonSet",
        resource: || ApiResource::erase::<DaemonSet>(&()),
    },
];

/// Why rolling a workload did not happen.
enum Problem {
    /// The operator's role lacks a permission.
    Forbidden(String),
    /// Anything else (conflict after retries, gone, API error).
    Failed(String),
}

fn problem(what: &str, e: kube::Error) -> Problem {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            Problem::Forbidden(format!("{what}: {}", s.message))
        }
        e => Problem::Failed(format!("{what}: {e}")),
    }
}

/// Checks and rolls the workloads that follow `target` after a sync of `ws`.
pub(super) async fn follow(
    ctx: &Context,
    ws: &WorkspaceSecret,
    target: &str,
    data_changed: bool,
    changed_keys: &[String],
) {
    let Some(rollouts) = &ctx.rollout else {
        return;
    };
    let ns = ws.namespace().unwrap_or_default();
    let mut rolled = Vec::new();
    let mut failures = Vec::new();
    let mut forbidden = None;
    let mut secrets = SecretCache::new(ctx, &ns);
    for kind in KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &(kind.resource)());
        let listed = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                match problem(&format!("list {}s", kind.name), e) {
                    Problem::Forbidden(why) => forbidden = Some(why),
                    Problem::Failed(why) => failures.push(why),
                }
                continue;
            }
        };
        for meta in listed.items {
            if opt_in(meta.metadata.annotations.as_ref()).is_none() {
                continue;
            }
            let name = meta.name_any();
            let wanted = Wanted {
                api: &api,
                kind,
                name: &name,
                target,
                data_changed,
            };
            match roll_one(ctx, rollouts, &wanted, &mut secrets).await {
                Ok(Some(workload)) => {
                    ctx.metrics.rolled_out(&ns, kind.name);
                    announce_on_workload(ctx, ws, &workload, target, changed_keys).await;
                    rolled.push(format!("{}/{name}", kind.name));
                }
                Ok(None) => {}
                Err(Problem::Forbidden(why)) => forbidden = Some(why),
                Err(Problem::Failed(why)) => failures.push(format!("{}/{name}: {why}", kind.name)),
            }
        }
    }
    if !rolled.is_empty() {
        let keys = keys_note(changed_keys);
        let note = format!(
            "rolled {} after Secret {target} changed{keys}",
            rolled.join(", ")
        );
        publish(ctx, &ws.object_ref(&()), events::ROLLED_OUT, &note, false).await;
    }
    for why in failures {
        warn!(error = %why, "rollout failed");
        let note = format!(
            "could not roll a workload following Secret {target}: {why}; the next sync tries again"
        );
        publish(
            ctx,
            &ws.object_ref(&()),
            events::ROLLOUT_FAILED,
            &note,
            true,
        )
        .await;
    }
    if let Some(why) = forbidden {
        tell_forbidden(ctx, rollouts, ws, &why).await;
    }
}

/// What one workload is checked for.
struct Wanted<'a> {
    api: &'a Api<DynamicObject>,
    kind: Kind,
    name: &'a str,
    target: &'a str,
    data_changed: bool,
}

/// Reads one opted-in workload and records or rolls it as decided; returns it when it was
/// rolled. A conflicting concurrent write is retried from a fresh read.
async fn roll_one(
    ctx: &Context,
    rollouts: &Rollouts,
    w: &Wanted<'_>,
    secrets: &mut SecretCache,
) -> Result<Option<DynamicObject>, Problem> {
    for _attempt in 0..3 {
        let Some(obj) = w
            .api
            .get_opt(w.name)
            .await
            .map_err(|e| problem(&format!("read {} {}", w.kind.name, w.name), e))?
        else {
            return Ok(None);
        };
        let Some(opt) = opt_in(obj.metadata.annotations.as_ref()) else {
            return Ok(None);
        };
        let template = &obj.data["spec"]["template"];
        let spec: PodSpec = serde_json::from_value(template["spec"].clone()).unwrap_or_default();
        let mut candidates = crate::rollout::secrets_used(&spec);
        if let crate::rollout::OptIn::Named(names) = &opt {
            candidates.extend(names.iter().cloned());
        }
        for name in &candidates {
            secrets.load(name).await?;
        }
        let follows = followed(&opt, &spec, |n| secrets.managed(n));
        if !follows.contains(w.target) {
            return Ok(None);
        }
        let data: BTreeMap<String, BTreeMap<String, Vec<u8>>> = follows
            .iter()
            .filter_map(|n| Some((n.clone(), data_of(secrets.get(n)?))))
            .collect();
        let current = digest(key(ctx, rollouts).await?, &data);
        let recorded = obj.annotations().get(DIGEST_ANNOTATION).cloned();
        if recorded.as_deref() == Some(current.as_str()) {
            return Ok(None);
        }
        let oldest_start = match recorded {
            Some(_) => None,
            None => oldest_start(ctx, &obj).await?,
        };
        let last_change = follows
            .iter()
            .filter_map(|n| {
                secrets
                    .get(n)?
                    .annotations()
                    .get(CHANGED_ANNOTATION)?
                    .parse::<Timestamp>()
                    .ok()
            })
            .max();
        let decision = decide(&Facts {
            digest: &current,
            recorded: recorded.as_deref(),
            changed_now: w.data_changed,
            oldest_start,
            last_change,
        });
        let mut patch = json!({ "metadata": {
            "resourceVersion": obj.resource_version(),
            "annotations": { DIGEST_ANNOTATION: current } } });
        match decision {
            Decision::Current => return Ok(None),
            Decision::Stamp => {}
            Decision::Roll => {
                patch["spec"] = json!({ "template": { "metadata": { "annotations": { DIGEST_ANNOTATION: current } } } });
            }
        }
        match w
            .api
            .patch(w.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(patched) => {
                debug!(
                    kind = w.kind.name,
                    workload = w.name,
                    ?decision,
                    "rollout digest recorded"
                );
                return Ok((decision == Decision::Roll).then_some(patched));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(problem(&format!("patch {} {}", w.kind.name, w.name), e)),
        }
    }
    Err(Problem::Failed(format!(
        "{} {} kept changing while it was being rolled",
        w.kind.name, w.name
    )))
}

/// When the oldest running container of a workload's pods started.
async fn oldest_start(ctx: &Context, obj: &DynamicObject) -> Result<Option<Timestamp>, Problem> {
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
struct SecretCache {
    api: Api<Secret>,
    seen: HashMap<String, Option<Secret>>,
}

impl SecretCache {
    fn new(ctx: &Context, ns: &str) -> Self {
        SecretCache {
            api: Api::namespaced(ctx.client.clone(), ns),
            seen: HashMap::new(),
        }
    }

    async fn load(&mut self, name: &str) -> Result<(), Problem> {
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

    fn get(&self, name: &str) -> Option<&Secret> {
        self.seen.get(name)?.as_ref()
    }

    /// Whether the operator manages this Secret (its label).
    fn managed(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|s| s.labels().get(MANAGED_LABEL).is_some_and(|v| v == "true"))
    }
}

/// Loads the digest key from its Secret in the operator's namespace, creating it the first time.
async fn key<'r>(ctx: &Context, rollouts: &'r Rollouts) -> Result<&'r hmac::Key, Problem> {
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

fn keys_note(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" (keys: {})", keys.join(", "))
    }
}

/// Tells a WorkspaceSecret once (per operator process) that rollouts are not permitted.
async fn tell_forbidden(ctx: &Context, rollouts: &Rollouts, ws: &WorkspaceSecret, why: &str) {
    let id = ws.uid().unwrap_or_default();
    if !rollouts.told.lock().expect("told lock").insert(id) {
        return;
    }
    let note = format!(
        "rollout annotations of workloads are ignored here: the operator may not read or patch them ({why}); grant get/list/patch on deployments, statefulsets and daemonsets and list on pods (chart value config.rolloutWorkloads)"
    );
    publish(
        ctx,
        &ws.object_ref(&()),
        events::ROLLOUT_NOT_PERMITTED,
        &note,
        true,
    )
    .await;
}

/// Publishes `RolledOut` on a rolled workload, naming the Secret, the keys and the WorkspaceSecret.
async fn announce_on_workload(
    ctx: &Context,
    ws: &WorkspaceSecret,
    workload: &DynamicObject,
    target: &str,
    changed_keys: &[String],
) {
    let reference = ObjectReference {
        api_version: workload.types.as_ref().map(|t| t.api_version.clone()),
        kind: workload.types.as_ref().map(|t| t.kind.clone()),
        name: workload.metadata.name.clone(),
        namespace: workload.metadata.namespace.clone(),
        uid: workload.metadata.uid.clone(),
        resource_version: workload.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let why = if changed_keys.is_empty() {
        format!("its pods ran with older data of Secret {target}")
    } else {
        format!("Secret {target} changed{}", keys_note(changed_keys))
    };
    let note = format!("rolling out: {why}; by WorkspaceSecret {}", ws.name_any());
    publish(ctx, &reference, events::ROLLED_OUT, &note, false).await;
}

async fn publish(
    ctx: &Context,
    regarding: &ObjectReference,
    reason: &str,
    note: &str,
    warning: bool,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(super::status::event_note(note, 1000)),
        action: "Rollout".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        warn!(error = %e, reason, "cannot publish event");
    } else {
        info!(reason, note, "event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
