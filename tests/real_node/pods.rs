//! Pods on the node: consumers that mount or `envFrom` a Secret, `kubectl exec`, a pod's HTTP
//! port, a release's pods and its leader.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use testenv::node::BUSYBOX_IMAGE;

use crate::support::*;

impl Env {
    /// Creates a busybox pod `name` that mounts Secret `secret` at /secret (`env_from`: as
    /// environment variables instead) and waits until it is Ready.
    pub async fn consumer_pod(&self, ns: &str, name: &str, secret: &str, env_from: bool) {
        let mut container = json!({ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
            "command": ["/bin/busybox", "sleep", "86400"],
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false,
                                 "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } } });
        let mut spec = json!({ "containers": [], "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false, "enableServiceLinks": false });
        if env_from {
            container["envFrom"] = json!([{ "secretRef": { "name": secret } }]);
        } else {
            container["volumeMounts"] =
                json!([{ "name": "secret", "mountPath": "/secret", "readOnly": true }]);
            spec["volumes"] = json!([{ "name": "secret", "secret": { "secretName": secret } }]);
        }
        spec["containers"] = json!([container]);
        let pod: Pod = serde_json::from_value(
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name }, "spec": spec }),
        )
        .unwrap();
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        api.create(&PostParams::default(), &pod).await.unwrap();
        self.wait_pod_ready(ns, name, Duration::from_secs(90)).await;
    }

    /// Waits until pod `ns/name` is Ready.
    pub async fn wait_pod_ready(&self, ns: &str, name: &str, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        let ready = eventually_opt(timeout, || async {
            let pod = api.get_opt(name).await.ok()??;
            pod.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;
        if ready.is_none() {
            let described = self
                .kubectl(&["describe", "pod", "-n", ns, name])
                .unwrap_or_default();
            panic!(
                "pod {ns}/{name} not Ready after {timeout:?}:\n{}\n{}",
                String::from_utf8_lossy(&described),
                self.node.log_tails()
            );
        }
    }

    /// Runs `command` in the first container of pod `ns/pod` (`kubectl exec`); returns stdout.
    pub fn exec(&self, ns: &str, pod: &str, command: &[&str]) -> Result<Vec<u8>, String> {
        let mut args = vec!["exec", "-n", ns, pod, "--"];
        args.extend(command);
        self.kubectl(&args)
    }

    /// GETs `path` of a pod's port through the API server's pod proxy.
    pub async fn pod_get(&self, ns: &str, pod: &str, port: u16, path: &str) -> Option<String> {
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}"
        ))
        .body(Vec::new())
        .unwrap();
        self.client().request_text(request).await.ok()
    }

    /// Returns the pods of a release, by name.
    pub async fn release_pods(&self, ns: &str, release: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client(), ns)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={release}")))
            .await
            .unwrap()
            .items
    }

    /// Returns the name of the pod holding the release's Lease (its identity is `<pod>_<id>`).
    pub async fn leader(&self, ns: &str) -> Option<String> {
        use k8s_openapi::api::coordination::v1::Lease;
        let lease = Api::<Lease>::namespaced(self.client(), ns)
            .get_opt("amlsecrets-leader")
            .await
            .ok()??;
        let holder = lease.spec?.holder_identity?;
        holder.split_once('_').map(|(pod, _)| pod.to_owned())
    }
}

/// The pod's main process as the host sees it: `/proc/<pid>` of the container's first process.
pub fn container_pid(env: &Env, pod: &Pod) -> u32 {
    let uid = pod.metadata.uid.as_deref().unwrap();
    let id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .as_deref()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_owned();
    let base = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(env.node.cgroup_root())
        .join("kubepods");
    for qos in ["", "burstable", "besteffort"] {
        let procs = base
            .join(qos)
            .join(format!("pod{uid}"))
            .join(&id)
            .join("cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(&procs)
            && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return pid;
        }
    }
    panic!("no process found in the cgroup of container {id} of pod {uid}");
}

/// Counts resourceVersion changes of a Secret until aborted (nothing to count is the goal;
/// the final assertion compares resourceVersions, this logs any change as it happens).
pub async fn count_changes(client: kube::Client, ns: String, name: String) {
    use futures::TryStreamExt as _;
    use kube::runtime::watcher;
    let api: Api<Secret> = Api::namespaced(client, &ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut seen: Option<String> = None;
    let mut stream = std::pin::pin!(watcher::watcher(api, config));
    while let Ok(Some(event)) = stream.try_next().await {
        if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = event {
            let rv = s.metadata.resource_version.clone();
            if seen.is_some() && seen != rv {
                eprintln!("Secret {ns}/{name} written during the restart: resourceVersion {rv:?}");
            }
            seen = rv;
        }
    }
}

/// Waits until a release's Deployment has `replicas` available replicas.
pub async fn wait_available(env: &Env, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(env.client(), ns);
    eventually(
        &format!("{name} available"),
        Duration::from_secs(120),
        || async {
            let d = api.get_opt(name).await.ok()??;
            let s = d.status?;
            (s.available_replicas == Some(replicas) && s.updated_replicas == Some(replicas))
                .then_some(())
        },
    )
    .await;
}

/// Returns a command's output as text.
pub fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
