//! Rolls the workloads that follow a synced Secret (IO; the decisions are in `crate::rollout`).
//!
//! After each sync of a WorkspaceSecret, the opted-in Deployments, StatefulSets and DaemonSets of
//! its namespace that follow its target Secret are checked: the keyed digest of the data they
//! follow is compared with the one recorded on them, and a changed one is set on the pod
//! template, so the workload controller rolls them with their own strategy. Nothing here fails
//! the sync: problems are reported as Events, and the next sync checks again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodSpec;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use ring::hmac;
use serde_json::json;
use tracing::{debug, warn};

use super::Context;
use super::target::data_of;
use crate::api::conditions::events;
use crate::api::workspace_secret::WorkspaceSecret;
use crate::rollout::{
    CHANGED_ANNOTATION, DIGEST_ANNOTATION, Decision, Facts, decide, digest, followed, opt_in,
};

mod reads;
mod tell;

use reads::{SecretCache, key, oldest_start};
use tell::{announce_on_workload, keys_note, publish, tell_forbidden};

/// The Secret (in the operator's namespace) holding the key of the rollout digests, so that every
/// replica and every restart computes the same digest.
const KEY_SECRET: &str = "amlsecrets-rollout-key";

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
