//! Memory under the benchmark load against the chart's limit, as the kubelet measures it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::pods::*;
use crate::release::*;
use crate::support::*;

/// The chart's memory limit holds with room to spare under the benchmark's default load scaled
/// to this node (1,000 vault secrets, 250 WorkspaceSecrets: half with 10 named items, half
/// finding a tag group of 20; 1% changed per 30 s refresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_holds_under_the_benchmark_load() {
    const SECRETS: usize = 1000;
    const WORKSPACE_SECRETS: usize = 250;
    let _turn = SERIAL.lock().await;
    let env = setup().await;
    let ns = "amlsecrets-load";
    let release = "amlsecrets-load";
    let tenant = "team-load";
    let vault = &env.fakes.vault;
    for i in 0..SECRETS {
        let group = format!("g{:02}", i / 20);
        vault.put_secret_tagged(
            &format!("load-{i:04}"),
            &format!("value-{i}-0"),
            &[("group", &group)],
        );
    }
    let (_release, _) = install(env, release, ns, &[]);
    env.tenant(tenant).await;
    let api: Api<amlsecrets::api::WorkspaceSecret> = Api::namespaced(env.client(), tenant);
    let started = Instant::now();
    for chunk in (0..WORKSPACE_SECRETS).collect::<Vec<_>>().chunks(25) {
        let applies = chunk.iter().map(|&i| {
            let spec = if i % 2 == 0 {
                let data: Vec<_> = (0..10)
                    .map(|k| {
                        let n = (i * 7 + k * 97) % SECRETS;
                        json!({ "key": format!("k{k}"), "ref": format!("keyvault:load-{n:04}") })
                    })
                    .collect();
                json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "30s", "data": data })
            } else {
                json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "30s",
                        "dataFrom": [{ "find": { "tags": { "group": format!("g{:02}", i % 50) } } }] })
            };
            let name = format!("load-{i:03}");
            let body = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret",
                               "metadata": { "name": name }, "spec": spec });
            let api = api.clone();
            async move {
                api.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(body))
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(applies).await;
    }
    let leader_pod = |env: &'static Env| async move {
        let leader = env.leader(ns).await?;
        env.release_pods(ns, release)
            .await
            .into_iter()
            .find(|p| p.metadata.name.as_ref() == Some(&leader))
    };
    let mut peak_ws = 0u64;
    let mut peak_usage = 0u64;
    let mut limit = 0u64;
    let mut sample = |pod: &Pod| {
        if let Some(m) = env
            .node
            .pod_memory(pod.metadata.uid.as_deref().unwrap_or_default())
        {
            peak_ws = peak_ws.max(m.working_set);
            peak_usage = peak_usage.max(m.max_usage);
            limit = m.limit;
        }
    };
    // All synced…
    loop {
        if let Some(pod) = leader_pod(env).await {
            sample(&pod);
        }
        let list = api.list(&Default::default()).await.unwrap();
        let synced = list
            .items
            .iter()
            .filter(|w| {
                w.status.as_ref().is_some_and(|s| {
                    amlsecrets::api::conditions::find_ready(&s.conditions)
                        .is_some_and(|c| c.reason == "Synced")
                })
            })
            .count();
        if synced == WORKSPACE_SECRETS {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let reasons: Vec<String> = list
                .items
                .iter()
                .take(3)
                .map(|w| format!("{:?}", w.status.as_ref().map(|s| &s.conditions)))
                .collect();
            let logs = env
                .kubectl(&["logs", "-n", ns, &format!("deploy/{release}"), "--tail=10"])
                .map(text)
                .unwrap_or_else(|e| e);
            panic!(
                "only {synced}/{WORKSPACE_SECRETS} WorkspaceSecrets Synced after 5 min; e.g. {reasons:?}\n{logs}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report(
        "load: all WorkspaceSecrets Synced",
        format!("{:.1?}", started.elapsed()),
    );
    // …then two refresh cycles with 1% of the secrets changed at the start of each.
    for cycle in 1..=2 {
        for i in 0..SECRETS / 100 {
            let n = (i * 101 + cycle * 13) % SECRETS;
            let group = format!("g{:02}", n / 20);
            vault.put_secret_tagged(
                &format!("load-{n:04}"),
                &format!("value-{n}-{cycle}"),
                &[("group", &group)],
            );
        }
        let cycle_start = Instant::now();
        while cycle_start.elapsed() < Duration::from_secs(33) {
            if let Some(pod) = leader_pod(env).await {
                sample(&pod);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let kubelet_ws = kubelet_working_set(env, ns, release).await;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    report(
        "memory of the leader under load (cgroup)",
        format!(
            "peak working set {:.1} MiB, peak usage incl. page cache {:.1} MiB, limit {:.0} MiB; kubelet working set now {:.1} MiB",
            mib(peak_ws),
            mib(peak_usage),
            mib(limit),
            mib(kubelet_ws)
        ),
    );
    assert_eq!(
        limit,
        256 * 1024 * 1024,
        "the chart's default limit applies to the pod"
    );
    assert!(peak_ws > 0, "the pod's cgroup was sampled");
    assert!(
        peak_ws * 2 < limit,
        "peak working set {:.1} MiB leaves less than half of the {:.0} MiB limit",
        mib(peak_ws),
        mib(limit)
    );
}

/// Returns the leader's working set as the kubelet reports it (stats summary).
async fn kubelet_working_set(env: &Env, ns: &str, release: &str) -> u64 {
    let leader = env.leader(ns).await.unwrap_or_default();
    let path = format!(
        "/api/v1/nodes/{}/proxy/stats/summary",
        testenv::node::NODE_NAME
    );
    let summary = testenv::control_plane::get_json(&env.client(), &path)
        .await
        .unwrap_or_default();
    summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["podRef"]["name"] == leader.as_str() && p["podRef"]["namespace"] == ns)
        .and_then(|p| p["memory"]["workingSetBytes"].as_u64())
        .unwrap_or_else(|| {
            eprintln!("no kubelet stats for {release}'s leader {leader}");
            0
        })
}
