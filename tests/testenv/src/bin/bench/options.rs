//! The benchmark's command-line options (see the header of bench.rs).

use std::path::PathBuf;
use std::time::Duration;

pub(crate) struct Opts {
    pub(crate) secrets: usize,
    pub(crate) workspace_secrets: usize,
    pub(crate) namespaces: usize,
    pub(crate) vaults: usize,
    pub(crate) changed_percent: f64,
    pub(crate) cycles: usize,
    pub(crate) quiet_cycles: usize,
    pub(crate) refresh: Duration,
    pub(crate) unrelated: usize,
    pub(crate) unrelated_kib: usize,
    pub(crate) new_during_wave: usize,
    pub(crate) soak_cycles: usize,
    pub(crate) operator: PathBuf,
    pub(crate) extra: Vec<String>,
    /// Where to copy the API server's audit log at the end, for checking the counts by hand.
    pub(crate) keep_audit_log: Option<PathBuf>,
}

pub(crate) fn opts() -> Opts {
    let mut o = Opts {
        secrets: 1000,
        workspace_secrets: 500,
        namespaces: 1,
        vaults: 1,
        changed_percent: 1.0,
        cycles: 3,
        quiet_cycles: 1,
        refresh: Duration::from_secs(30),
        unrelated: 0,
        unrelated_kib: 100,
        new_during_wave: 20,
        soak_cycles: 0,
        operator: PathBuf::from(
            std::env::var("AMLSECRETS_BIN").unwrap_or_else(|_| "target/release/amlsecrets".into()),
        ),
        extra: Vec::new(),
        keep_audit_log: None,
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
            "--namespaces" => o.namespaces = n().max(1),
            "--vaults" => o.vaults = n().max(1),
            "--changed-percent" => {
                o.changed_percent = v.parse().expect("--changed-percent takes a number")
            }
            "--cycles" => o.cycles = n(),
            "--quiet-cycles" => o.quiet_cycles = n(),
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
            "--keep-audit-log" => o.keep_audit_log = Some(PathBuf::from(v)),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.secrets > 0, "--secrets must be at least 1");
    o
}
