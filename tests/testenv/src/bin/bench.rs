//! The efficiency benchmark: runs the real `amlsecrets` binary against the test control plane and
//! the fake Key Vault (which enforces Key Vault's service limit) and prints Key Vault requests per
//! refresh cycle, token requests, WorkspaceSecret-created → Ready latency, the operator's CPU per
//! cycle and peak RSS, ending with one JSON line.
//!
//! `scripts/bench.sh [--secrets N] [--workspace-secrets N] [--changed-percent P] [--cycles N]
//!  [--refresh 30s] [--unrelated N] [--unrelated-kib N] [--new-during-wave N] [--soak-cycles N]`

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};
use testenv::control_plane::ControlPlane;

const SP_CLIENT: &str = "66666666-0000-0000-0000-000000000006";
const SP_OID: &str = "ffffffff-0000-0000-0000-000000000006";
const SP_SECRET: &str = "bench-client-secret";
const NS: &str = "bench";

#[path = "bench/objects.rs"]
mod objects;
#[path = "bench/process.rs"]
mod process;

use objects::{create_wsec, referenced_secrets, watch_ready, wsec_spec};
use process::{percentile, runtime_tasks, sample};

struct Opts {
    secrets: usize,
    workspace_secrets: usize,
    changed_percent: f64,
    cycles: usize,
    refresh: Duration,
    unrelated: usize,
    unrelated_kib: usize,
    new_during_wave: usize,
    soak_cycles: usize,
    operator: PathBuf,
    extra: Vec<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        secrets: 1000,
        workspace_secrets: 500,
        changed_percent: 1.0,
        cycles: 3,
        refresh: Duration::from_secs(30),
        unrelated: 0,
        unrelated_kib: 100,
        new_during_wave: 20,
        soak_cycles: 0,
        operator: PathBuf::from(
            std::env::var("AMLSECRETS_BIN").unwrap_or_else(|_| "target/release/amlsecrets".into()),
        ),
        extra: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let (k, v) = match args[i].split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                i += 1;
                (
                    args[i - 1].clone(),
                    args.get(i).cloned().unwrap_or_default(),
                )
            }
        };
        i += 1;
        let n = || {
            v.parse::<usize>()
                .unwrap_or_else(|_| panic!("{k} takes a number"))
        };
        match k.as_str() {
            "--secrets" => o.secrets = n(),
            "--workspace-secrets" => o.workspace_secrets = n(),
            "--changed-percent" => {
                o.changed_percent = v.parse().expect("--changed-percent takes a number")
            }
            "--cycles" => o.cycles = n(),
            "--refresh" => {
                o.refresh = Duration::from_secs(
                    v.trim_end_matches('s')
                        .parse()
                        .expect("--refresh takes seconds, e.g. 30s"),
                )
            }
            "--unrelated" => o.unrelated = n(),
            "--unrelated-kib" => o.unrelated_kib = n(),
            "--new-during-wave" => o.new_during_wave = n(),
            "--soak-cycles" => o.soak_cycles = n(),
            "--operator" => o.operator = PathBuf::from(v),
            "--operator-arg" => o.extra.push(v),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

#[tokio::main]
async fn main() {
    let o = opts();
    assert!(
        o.operator.exists(),
        "operator binary {} not found (scripts/bench.sh builds it)",
        o.operator.display()
    );
    let cp = ControlPlane::start().await.expect("control plane");
    let client = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig).unwrap();
    let fakes = AzureFakes::start().await;
    fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
    fakes.vault.enforce_limit(4000, Duration::from_secs(10));
    let ca_file = dir.path().join("fake-azure-ca.pem");
    std::fs::write(&ca_file, fakes.ca.pem()).unwrap();

    for ns in [NS, "unrelated"] {
        let n = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    for s in 0..o.secrets {
        fakes.vault.put_secret_tagged(
            &format!("s{s:05}"),
            &format!("value-{s}-v1"),
            &[("group", &format!("g{}", s % 50))],
        );
    }
    let started = Instant::now();
    let payload = vec![b'x'; o.unrelated_kib * 1024];
    let unrelated: Api<Secret> = Api::namespaced(client.clone(), "unrelated");
    futures::stream::iter(0..o.unrelated)
        .for_each_concurrent(8, |i| {
            let (api, payload) = (unrelated.clone(), payload.clone());
            async move {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("unrelated-{i}")),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("blob".into(), ByteString(payload))])),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &s).await.unwrap();
            }
        })
        .await;
    if o.unrelated > 0 {
        eprintln!(
            "created {} unrelated Secrets of {} KiB in {:.1?}",
            o.unrelated,
            o.unrelated_kib,
            started.elapsed()
        );
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let sp = Secret {
        metadata: ObjectMeta {
            name: Some("sp".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "clientSecret".into(),
            ByteString(SP_SECRET.into()),
        )])),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &sp).await.unwrap();
    let ws_ar = ApiResource {
        group: "amlsecrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "amlsecrets.io/v1alpha1".into(),
        kind: "AzureMLWorkspace".into(),
        plural: "azuremlworkspaces".into(),
    };
    let workspace: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": "ml" },
        "spec": { "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg", "workspaceName": "mlw-bench",
                  "cloud": "Custom",
                  "customCloud": { "authorityHost": fakes.entra.authority_host, "resourceManagerEndpoint": fakes.arm.endpoint,
                                   "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE },
                  "keyVault": { "uri": fakes.vault.uri },
                  "auth": { "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT, "clientSecretRef": { "name": "sp", "key": "clientSecret" } } } }
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), NS, &ws_ar)
        .patch(
            "ml",
            &PatchParams::apply("bench"),
            &Patch::Apply(&workspace),
        )
        .await
        .unwrap();

    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut operator = std::process::Command::new(&o.operator)
        .arg("run")
        .arg(format!("--extra-ca-file={}", ca_file.display()))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .arg("--log-level=warn")
        .args(&o.extra)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", NS)
        .spawn()
        .expect("start the operator");
    let pid = operator.id();
    let ready = watch_ready(client.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = sample(pid);

    // Phase 1: create every WorkspaceSecret at once and wait until all are Ready.
    let mut created = HashMap::new();
    let t0 = Instant::now();
    for i in 0..o.workspace_secrets {
        let name = format!("wsec-{i:04}");
        create_wsec(&client, &name, wsec_spec(i, o.secrets, o.refresh)).await;
        created.insert(name, Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while ready.lock().unwrap().len() < o.workspace_secrets {
        assert!(
            Instant::now() < deadline,
            "only {} of {} Ready after 10 minutes",
            ready.lock().unwrap().len(),
            o.workspace_secrets
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_sync = t0.elapsed();
    let latencies = |names: &HashMap<String, Instant>| {
        let r = ready.lock().unwrap();
        let mut v: Vec<f64> = names
            .iter()
            .filter_map(|(n, t)| {
                r.get(n)
                    .map(|d| d.duration_since(*t).as_secs_f64() * 1000.0)
            })
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let initial = latencies(&created);
    let after_first = sample(pid);
    let first_lists = fakes.vault.calls.count("list");
    let first_gets = fakes.vault.calls.count("get");
    eprintln!(
        "first sync: {} WorkspaceSecrets Ready in {:.1?} (p50 {:.0} ms, p99 {:.0} ms); {} list requests, {} gets; operator CPU {:.2} s",
        o.workspace_secrets,
        first_sync,
        percentile(&initial, 50.0),
        percentile(&initial, 99.0),
        first_lists,
        first_gets,
        after_first.cpu_secs - baseline.cpu_secs
    );

    // Phase 2: refresh cycles with a share of the secrets changed at the start of each; new
    // WorkspaceSecrets are created while the refresh wave of the initial ones is under way.
    tokio::time::sleep(o.refresh.mul_f64(0.5)).await;
    fakes.vault.calls.reset();
    let tokens_before = fakes.entra.calls.total();
    let cycle_start = sample(pid);
    let changed_per_cycle = ((o.secrets as f64) * o.changed_percent / 100.0).round() as usize;
    let referenced = referenced_secrets(o.workspace_secrets, o.secrets);
    let all: Vec<usize> = (0..o.secrets).collect();
    let mut new_created = HashMap::new();
    let mut changed_total = 0;
    for cycle in 0..o.cycles {
        for k in 0..changed_per_cycle {
            let s = all[(cycle * 7919 + k * 104_729) % all.len()];
            fakes.vault.put_secret_tagged(
                &format!("s{s:05}"),
                &format!("value-{s}-c{cycle}"),
                &[("group", &format!("g{}", s % 50))],
            );
            changed_total += usize::from(referenced.contains(&s));
        }
        let wave = Instant::now();
        let spread = o.refresh.mul_f64(0.5) / (o.new_during_wave.max(1) as u32);
        for n in 0..o.new_during_wave {
            tokio::time::sleep(spread).await;
            let name = format!("new-{cycle}-{n:03}");
            create_wsec(&client, &name, wsec_spec(n * 2, o.secrets, o.refresh)).await;
            new_created.insert(name, Instant::now());
        }
        let rest = o.refresh.saturating_sub(wave.elapsed());
        tokio::time::sleep(rest).await;
    }
    let cycles_end = sample(pid);
    let lists = fakes.vault.calls.count("list");
    let gets = fakes.vault.calls.count("get");
    let throttled = fakes.vault.calls.count("throttled");
    let tokens = fakes.entra.calls.total() - tokens_before;
    let new_lat = latencies(&new_created);
    let cycles = o.cycles.max(1) as f64;
    let list_pages = o.secrets.div_ceil(25);
    let minimum = list_pages as f64 + changed_total as f64 / cycles;
    eprintln!(
        "{} refresh cycles of {:?}: per cycle {:.1} list requests (one listing = {list_pages}), {:.1} gets ({} secrets changed per cycle, {:.1} of them read by some WorkspaceSecret); minimum {:.1}; {throttled} throttled; {tokens} token requests during the cycles",
        o.cycles,
        o.refresh,
        lists as f64 / cycles,
        gets as f64 / cycles,
        changed_per_cycle,
        changed_total as f64 / cycles,
        minimum
    );
    eprintln!(
        "new WorkspaceSecrets during refresh waves: {} Ready, p50 {:.0} ms, p99 {:.0} ms; operator CPU {:.2} s per cycle",
        new_lat.len(),
        percentile(&new_lat, 50.0),
        percentile(&new_lat, 99.0),
        (cycles_end.cpu_secs - cycle_start.cpu_secs) / cycles
    );

    // Phase 3 (optional): soak — many more cycles, watching RSS, threads and file descriptors.
    let soak_start = sample(pid);
    let tasks_start = runtime_tasks(admin_port).await;
    for _ in 0..o.soak_cycles {
        tokio::time::sleep(o.refresh).await;
    }
    let soak_end = sample(pid);
    let tasks_end = runtime_tasks(admin_port).await;
    if o.soak_cycles > 0 {
        eprintln!(
            "soak of {} cycles: RSS {:.1} → {:.1} MiB, tokio tasks {tasks_start} → {tasks_end}, threads {} → {}, fds {} → {}",
            o.soak_cycles,
            soak_start.rss_mib,
            soak_end.rss_mib,
            soak_start.threads,
            soak_end.threads,
            soak_start.fds,
            soak_end.fds
        );
    }
    let fin = sample(pid);
    let _ = operator.kill();
    let _ = operator.wait();
    let summary = json!({
        "secrets": o.secrets, "workspace_secrets": o.workspace_secrets, "unrelated_secrets": o.unrelated,
        "unrelated_kib": o.unrelated_kib, "refresh_s": o.refresh.as_secs(), "cycles": o.cycles,
        "kv_list_calls": lists as f64 / cycles, "kv_get_calls": gets as f64 / cycles, "kv_minimum_calls": minimum,
        "first_sync_list_calls": first_lists, "first_sync_get_calls": first_gets,
        "token_requests": fakes.entra.calls.total(), "token_requests_during_cycles": tokens, "throttled_responses": throttled,
        "ready_p50_ms": percentile(&initial, 50.0), "ready_p99_ms": percentile(&initial, 99.0),
        "new_ready_p50_ms": percentile(&new_lat, 50.0), "new_ready_p99_ms": percentile(&new_lat, 99.0),
        "cpu_s_per_cycle": (cycles_end.cpu_secs - cycle_start.cpu_secs) / cycles,
        "peak_rss_mib": fin.peak_rss_mib, "rss_mib": fin.rss_mib,
        "soak_cycles": o.soak_cycles, "soak_rss_start_mib": soak_start.rss_mib, "soak_rss_end_mib": soak_end.rss_mib,
        "soak_threads": [soak_start.threads, soak_end.threads], "soak_tasks": [tasks_start, tasks_end], "soak_fds": [soak_start.fds, soak_end.fds],
    });
    println!("{summary}");
}
