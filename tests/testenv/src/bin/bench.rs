//! The efficiency benchmark: runs the real `amlsecrets` binary against the test control plane and
//! fake Key Vaults (which enforce Key Vault's service limit) and prints, per refresh cycle, Key
//! Vault requests, token requests, the operator's API-server requests by verb and resource
//! (from the kube-apiserver's audit log; the operator runs as the ServiceAccount
//! `bench/amlsecrets`), the kube-apiserver's and the operator's CPU, change → every reading
//! Secret updated, WorkspaceSecret-created → Ready latency and peak RSS, ending with one JSON line.
//!
//! Phases: start-up; first sync of all WorkspaceSecrets; changing cycles (vault changes at
//! spread-out moments, new WorkspaceSecrets during the refresh wave); waiting for the last
//! changes to arrive; quiet cycles (nothing changes); an optional soak.
//!
//! `scripts/bench.sh [--secrets N] [--workspace-secrets N] [--namespaces N] [--vaults N]
//!  [--changed-percent P] [--cycles N] [--quiet-cycles N] [--refresh 30s] [--unrelated N]
//!  [--unrelated-kib N] [--new-during-wave N] [--soak-cycles N] [--operator-arg ARG]
//!  [--keep-audit-log PATH]`
//!
//! WorkspaceSecrets are spread round-robin over `--namespaces` namespaces (`bench`, `bench-1`…),
//! each with its own AzureMLWorkspace; the workspace of namespace k reads vault k % `--vaults`.
//! Every vault holds the same secrets and gets the same changes; Key Vault counts and the
//! minimum are summed over the vaults.
//!
//! The three scenarios:
//! - default, 500 objects: `scripts/bench.sh`
//! - 5,000 objects over 10 namespaces and 5 vaults:
//!   `scripts/bench.sh --workspace-secrets 5000 --namespaces 10 --vaults 5`
//! - 10,000 unrelated Secrets: `scripts/bench.sh --unrelated 10000`
//!
//! A quick check: `scripts/bench.sh --workspace-secrets 50 --secrets 200 --cycles 2 --refresh 20s`.

use std::time::{Duration, Instant};

use testenv::azure::AzureFakes;
use testenv::control_plane::{ControlPlane, Options};

#[path = "bench/audit.rs"]
mod audit;
#[path = "bench/cycles.rs"]
mod cycles;
#[path = "bench/meter.rs"]
mod meter;
#[path = "bench/objects.rs"]
mod objects;
#[path = "bench/options.rs"]
mod options;
#[path = "bench/process.rs"]
mod process;
#[path = "bench/propagation.rs"]
mod propagation;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/setup.rs"]
mod setup;

use audit::AuditLog;
use meter::Meter;
use objects::{Population, Ready, watch_ready};
use process::{percentile, runtime_tasks, sample};
use propagation::Propagation;
use report::Report;
use setup::{HOME, OPERATOR_USER, calls, namespace};

#[tokio::main]
async fn main() {
    let o = options::opts();
    assert!(
        o.operator.exists(),
        "operator binary {} not found (scripts/bench.sh builds it)",
        o.operator.display()
    );
    let cp = ControlPlane::start_with(Options { audit_log: true })
        .await
        .expect("control plane");
    let client = cp.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let fakes = AzureFakes::start().await;
    let ca_file = dir.path().join("fake-azure-ca.pem");
    std::fs::write(&ca_file, fakes.ca.pem()).unwrap();

    let namespaces: Vec<String> = (0..o.namespaces).map(namespace).collect();
    let mut all = namespaces.clone();
    all.push("unrelated".into());
    setup::create_namespaces(&client, &all).await;
    setup::operator_identity(&cp, &kubeconfig).await;
    let vaults = setup::vaults(&fakes, o.vaults, o.secrets).await;
    setup::unrelated_secrets(&client, o.unrelated, o.unrelated_kib).await;
    for (k, ns) in namespaces.iter().enumerate() {
        setup::workspace(&client, &fakes, ns, &vaults[k % vaults.len()]).await;
    }

    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let audit = AuditLog::open(cp.audit_log_path().expect("audit log on"), OPERATOR_USER);
    let apiserver = cp.apiserver_pid().expect("the API server runs");
    let mut operator = std::process::Command::new(&o.operator)
        .arg("run")
        .arg(format!("--extra-ca-file={}", ca_file.display()))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .arg("--log-level=warn")
        .args(&o.extra)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", HOME)
        .spawn()
        .expect("start the operator");
    let pid = operator.id();
    let comm = std::fs::read_to_string(format!("/proc/{apiserver}/comm")).unwrap_or_default();
    eprintln!(
        "operator pid {pid} (as {OPERATOR_USER}); kube-apiserver pid {apiserver} ({})",
        comm.trim()
    );
    let mut meter = Meter::start(pid, apiserver, audit);
    let ready = watch_ready(client.clone());
    let propagation = Propagation::watch(&client, &namespaces);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let startup = meter.lap();
    eprintln!("operator start-up, {}", startup.line());

    // Phase 1: create every WorkspaceSecret at once and wait until all are Ready. The deadline
    // grows with the count: 5,000 objects on 2 cores take minutes.
    let mut population = Population::new(o.secrets, o.namespaces, o.vaults, o.refresh);
    let t0 = Instant::now();
    let mut initial_keys = Vec::new();
    for i in 0..o.workspace_secrets {
        initial_keys.push(population.create(&client, i, &format!("wsec-{i:04}")).await);
    }
    let limit = Duration::from_secs(600)
        .max(Duration::from_secs(120) + Duration::from_millis(200) * o.workspace_secrets as u32);
    let deadline = t0 + limit;
    while ready.lock().unwrap().len() < o.workspace_secrets {
        assert!(
            Instant::now() < deadline,
            "only {} of {} Ready after {limit:?}",
            ready.lock().unwrap().len(),
            o.workspace_secrets
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_sync = t0.elapsed();
    let initial = latencies(&ready, &population, &initial_keys);
    let first = meter.lap();
    let first_lists = calls(&vaults, "list");
    let first_gets = calls(&vaults, "get");
    eprintln!(
        "first sync: {} WorkspaceSecrets Ready in {:.1?} (p50 {:.0} ms, p99 {:.0} ms); {} list requests, {} gets; {}",
        o.workspace_secrets,
        first_sync,
        percentile(&initial, 50.0),
        percentile(&initial, 99.0),
        first_lists,
        first_gets,
        first.line()
    );

    // Phase 2: changing cycles, then (once the last changes have arrived) quiet cycles.
    tokio::time::sleep(o.refresh.mul_f64(0.5)).await;
    let _settle = meter.lap();
    for v in &vaults {
        v.calls.reset();
    }
    let tokens_before = fakes.entra.calls.total();
    let changing = cycles::changing(
        &o,
        &client,
        &vaults,
        &mut population,
        &propagation,
        &mut meter,
    )
    .await;
    let kv = [calls(&vaults, "list"), calls(&vaults, "get")];
    let throttled = calls(&vaults, "throttled");
    let tokens = fakes.entra.calls.total() - tokens_before;
    cycles::drain(&propagation, o.refresh * 2 + Duration::from_secs(30)).await;
    let drained = meter.lap();
    eprintln!(
        "until the last changes arrived: {}; {} (change, reader) pairs still awaited",
        drained.line(),
        propagation.outstanding()
    );
    let kv_quiet_start = [calls(&vaults, "list"), calls(&vaults, "get")];
    let quiet = cycles::quiet(&o, &mut meter).await;
    let kv_quiet = [
        calls(&vaults, "list") - kv_quiet_start[0],
        calls(&vaults, "get") - kv_quiet_start[1],
    ];
    let new_lat = latencies(&ready, &population, &changing.new);

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
    if let (Some(to), Some(from)) = (&o.keep_audit_log, cp.audit_log_path()) {
        std::fs::copy(&from, to).expect("copy the audit log");
        eprintln!("audit log copied to {}", to.display());
    }
    let report = Report {
        o: &o,
        initial: &initial,
        new: &new_lat,
        first: &first,
        first_kv: [first_lists, first_gets],
        changing: &changing,
        kv,
        throttled,
        tokens,
        tokens_total: fakes.entra.calls.total(),
        quiet: &quiet,
        kv_quiet,
        objects: population.created.len(),
        propagation: &propagation,
        audit_unreadable: meter.unreadable(),
        fin,
        soak: [soak_start, soak_end],
        tasks: [tasks_start, tasks_end],
        tls: vaults.iter().map(|v| v.tls_connections()).collect(),
    };
    report.print();
}

/// Created → Ready of the WorkspaceSecrets `keys` that are Ready, in ms, sorted.
fn latencies(ready: &Ready, population: &Population, keys: &[String]) -> Vec<f64> {
    let ready = ready.lock().unwrap();
    let mut v: Vec<f64> = keys
        .iter()
        .filter_map(|k| {
            let created = population.created.get(k)?;
            let ready = ready.get(k)?;
            Some(ready.duration_since(*created).as_secs_f64() * 1000.0)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}
