//! The benchmark's closing report: the summary lines of the cycles and the JSON line.

use serde_json::{Value, json};

use crate::cycles::Changing;
use crate::meter::Period;
use crate::options::Opts;
use crate::process::{Proc, percentile};
use crate::propagation::Propagation;

/// Everything the report is made of.
pub(crate) struct Report<'a> {
    pub(crate) o: &'a Opts,
    /// Created → Ready of the initial WorkspaceSecrets, ms, sorted.
    pub(crate) initial: &'a [f64],
    /// Created → Ready of those created during the changing cycles, ms, sorted.
    pub(crate) new: &'a [f64],
    pub(crate) first: &'a Period,
    /// Key Vault lists and gets of the first sync.
    pub(crate) first_kv: [usize; 2],
    pub(crate) changing: &'a Changing,
    /// Key Vault lists and gets over the changing cycles.
    pub(crate) kv: [usize; 2],
    pub(crate) throttled: usize,
    pub(crate) tokens: usize,
    pub(crate) tokens_total: usize,
    pub(crate) quiet: &'a [Period],
    /// Key Vault lists and gets over the quiet cycles.
    pub(crate) kv_quiet: [usize; 2],
    /// WorkspaceSecrets at the end.
    pub(crate) objects: usize,
    pub(crate) propagation: &'a Propagation,
    pub(crate) audit_unreadable: usize,
    pub(crate) fin: Proc,
    pub(crate) soak: [Proc; 2],
    pub(crate) tasks: [i64; 2],
    /// TLS connections the operator opened to each vault over the whole run.
    pub(crate) tls: Vec<usize>,
}

impl Report<'_> {
    /// Prints the summary lines (stderr) and the JSON line (stdout).
    pub(crate) fn print(&self) {
        let o = self.o;
        let cycles = o.cycles.max(1) as f64;
        let quiet_cycles = o.quiet_cycles as f64;
        let changing = Period::sum(&self.changing.periods);
        let quiet = Period::sum(self.quiet);
        let list_pages = o.secrets.div_ceil(25);
        let minimum = (o.vaults * list_pages) as f64 + self.changing.changed_read as f64 / cycles;
        let [lists, gets] = self.kv;
        eprintln!(
            "{} changing cycles of {:?}: per cycle {:.1} list requests (one listing = {list_pages} per vault, {} vaults), {:.1} gets ({} secrets changed per cycle, {:.1} (secret, vault) pairs read by some WorkspaceSecret); minimum {:.1}; {} throttled; {} token requests during the cycles",
            o.cycles,
            o.refresh,
            lists as f64 / cycles,
            o.vaults,
            gets as f64 / cycles,
            self.changing.changed_per_cycle,
            self.changing.changed_read as f64 / cycles,
            minimum,
            self.throttled,
            self.tokens
        );
        eprintln!(
            "new WorkspaceSecrets during refresh waves: {} Ready, p50 {:.0} ms, p99 {:.0} ms; per changing cycle: operator CPU {:.2} s, kube-apiserver CPU {:.2} s, {:.1} API-server requests ({:.3} per refresh of the {} initial WorkspaceSecrets)",
            self.new.len(),
            percentile(self.new, 50.0),
            percentile(self.new, 99.0),
            changing.operator_cpu_s / cycles,
            changing.apiserver_cpu_s / cycles,
            changing.requests.total as f64 / cycles,
            self.per_refresh(&changing, o.workspace_secrets, cycles),
            o.workspace_secrets
        );
        let seconds = self.propagation.seconds();
        eprintln!(
            "change → every reading Secret updated: {} (change, reader) pairs, p50 {:.1} s, p99 {:.1} s, max {:.1} s; {} never arrived, {} changed again first",
            seconds.len(),
            percentile(&seconds, 50.0),
            percentile(&seconds, 99.0),
            seconds.last().copied().unwrap_or(f64::NAN),
            self.propagation.outstanding(),
            self.propagation.superseded()
        );
        eprintln!(
            "{} quiet cycles: per cycle operator CPU {:.2} s, kube-apiserver CPU {:.2} s, {:.1} API-server requests = {:.3} per refresh of {} WorkspaceSecrets; {:.1} list, {:.1} get requests to Key Vault",
            o.quiet_cycles,
            quiet.operator_cpu_s / quiet_cycles,
            quiet.apiserver_cpu_s / quiet_cycles,
            quiet.requests.total as f64 / quiet_cycles,
            self.per_refresh(&quiet, self.objects, quiet_cycles),
            self.objects,
            self.kv_quiet[0] as f64 / quiet_cycles,
            self.kv_quiet[1] as f64 / quiet_cycles
        );
        eprintln!(
            "TLS connections opened to each vault over the whole run: {:?}",
            self.tls
        );
        println!("{}", self.json(&changing, &quiet, minimum, &seconds));
    }

    /// API-server requests per WorkspaceSecret refresh: requests / (objects × cycles).
    fn per_refresh(&self, period: &Period, objects: usize, cycles: f64) -> f64 {
        period.requests.total as f64 / (objects as f64 * cycles)
    }

    fn json(&self, changing: &Period, quiet: &Period, minimum: f64, seconds: &[f64]) -> Value {
        let o = self.o;
        let cycles = o.cycles.max(1) as f64;
        let quiet_cycles = o.quiet_cycles as f64;
        let c = changing.requests.per(cycles);
        let q = quiet.requests.per(quiet_cycles);
        let f = self.first.requests.per(1.0);
        let [soak_start, soak_end] = self.soak;
        let mut summary = json!({
            "secrets": o.secrets, "workspace_secrets": o.workspace_secrets, "unrelated_secrets": o.unrelated,
            "unrelated_kib": o.unrelated_kib, "refresh_s": o.refresh.as_secs(), "cycles": o.cycles,
            "kv_list_calls": self.kv[0] as f64 / cycles, "kv_get_calls": self.kv[1] as f64 / cycles, "kv_minimum_calls": minimum,
            "first_sync_list_calls": self.first_kv[0], "first_sync_get_calls": self.first_kv[1],
            "token_requests": self.tokens_total, "token_requests_during_cycles": self.tokens, "throttled_responses": self.throttled,
            "ready_p50_ms": percentile(self.initial, 50.0), "ready_p99_ms": percentile(self.initial, 99.0),
            "new_ready_p50_ms": percentile(self.new, 50.0), "new_ready_p99_ms": percentile(self.new, 99.0),
            "cpu_s_per_cycle": changing.operator_cpu_s / cycles,
            "peak_rss_mib": self.fin.peak_rss_mib, "rss_mib": self.fin.rss_mib,
            "soak_cycles": o.soak_cycles, "soak_rss_start_mib": soak_start.rss_mib, "soak_rss_end_mib": soak_end.rss_mib,
            "soak_threads": [soak_start.threads, soak_end.threads], "soak_tasks": self.tasks, "soak_fds": [soak_start.fds, soak_end.fds],
        });
        // The scenario, the operator's API-server load and change propagation (a second object:
        // one `json!` of every field would pass the macro recursion limit).
        let more = json!({
            "refresh_interval_s": o.refresh.as_secs_f64(), "namespaces": o.namespaces, "vaults": o.vaults,
            "quiet_cycles": o.quiet_cycles, "changed_per_cycle": self.changing.changed_per_cycle, "objects_at_end": self.objects,
            "apiserver_requests_per_refresh": self.per_refresh(quiet, self.objects, quiet_cycles),
            "apiserver_requests_per_refresh_changing": self.per_refresh(changing, o.workspace_secrets, cycles),
            "apiserver_requests_per_cycle": c["total"], "apiserver_requests_by_verb": c["by_verb"],
            "apiserver_requests_by_resource": c["by_resource"], "apiserver_requests_by_request": c["by_request"],
            "apiserver_requests_by_verb_each_cycle": self.changing.periods.iter().map(|p| p.requests.per(1.0)["by_verb"].clone()).collect::<Vec<_>>(),
            "quiet_apiserver_requests_per_cycle": q["total"], "quiet_apiserver_requests_by_verb": q["by_verb"],
            "quiet_apiserver_requests_by_request": q["by_request"],
            "first_sync_apiserver_requests": f["total"], "first_sync_apiserver_requests_by_verb": f["by_verb"],
            "first_sync_apiserver_requests_by_request": f["by_request"],
            "apiserver_cpu_s_per_cycle": changing.apiserver_cpu_s / cycles,
            "quiet_apiserver_cpu_s_per_cycle": quiet.apiserver_cpu_s / quiet_cycles,
            "first_sync_apiserver_cpu_s": self.first.apiserver_cpu_s,
            "quiet_cpu_s_per_cycle": quiet.operator_cpu_s / quiet_cycles,
            "quiet_kv_list_calls": self.kv_quiet[0] as f64 / quiet_cycles, "quiet_kv_get_calls": self.kv_quiet[1] as f64 / quiet_cycles,
            "change_propagation_p50_s": percentile(seconds, 50.0), "change_propagation_p99_s": percentile(seconds, 99.0),
            "change_propagation_max_s": seconds.last().copied().unwrap_or(f64::NAN),
            "change_propagation_pairs": seconds.len(), "change_propagation_unfinished": self.propagation.outstanding(),
            "change_propagation_superseded": self.propagation.superseded(),
            "audit_unreadable_lines": self.audit_unreadable,
            "vault_tls_connections": self.tls.iter().max().copied().unwrap_or(0),
            "vault_tls_connections_each": self.tls,
        });
        if let (Some(summary), Value::Object(more)) = (summary.as_object_mut(), more) {
            summary.extend(more);
        }
        summary
    }
}
