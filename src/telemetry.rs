//! Tracing setup: plain or JSON logs on stdout, level from `--log-level` or `RUST_LOG`; colour
//! only on a terminal.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::fmt::MakeWriter;

/// The log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured only when stdout is a terminal).
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// kube's client logs an ERROR for every failed request (`failed with error client error
/// (Connect)`), without saying which call failed: during an API-server outage about one a second;
/// a WARN (`eof in poll`) for every watch connection the API server drops; and a WARN quoting
/// a whole response body it could not parse (which may be a Secret). The operator reports those
/// failures itself, once per watch and naming it, so these are off unless the filter names
/// `kube_client`; its TLS warnings (a CA bundle that failed to reload) stay.
const KUBE_CLIENT_REQUEST_LOGS: [&str; 3] = [
    "kube_client::client=error",
    "kube_client::client::builder=off",
    "kube_client::client::tls=warn",
];

/// Installs the global tracing subscriber writing to stdout. `level` is an `EnvFilter` directive
/// such as `info` or `amlsecrets=debug,kube=info`; `RUST_LOG` wins when set. Plain lines are
/// coloured only when stdout is a terminal, never in files or pipes.
pub fn init(format: LogFormat, level: &str) {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| level.to_string());
    let colour = std::io::stdout().is_terminal();
    let subscriber = subscriber(format, &directives, std::io::stdout, colour);
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("tracing already initialised: {e}");
    }
}

/// Builds the subscriber [`init`] installs, writing to `writer`; `colour` adds ANSI colours to
/// plain lines (JSON never has them).
pub fn subscriber<W>(
    format: LogFormat,
    directives: &str,
    writer: W,
    colour: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(directives))
        .with_target(true)
        .with_writer(writer);
    match format {
        LogFormat::Plain => Box::new(builder.with_ansi(colour).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// Parses filter directives (an invalid one is reported and skipped) and silences kube's
/// per-request error log unless the directives name `kube_client`.
fn filter(directives: &str) -> EnvFilter {
    let mut filter = EnvFilter::builder().parse_lossy(directives);
    if directives.contains("kube_client") {
        return filter;
    }
    for quiet in KUBE_CLIENT_REQUEST_LOGS {
        let quiet: Directive = quiet.parse().expect("a valid static directive");
        filter = filter.add_directive(quiet);
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_into(directives: &str, colour: bool) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = subscriber(LogFormat::Plain, directives, move || out.clone(), colour);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(watch = "WorkspaceSecrets", "watch broke");
            tracing::error!(target: "kube_client::client::builder", "failed with error client error (Connect)");
            tracing::warn!(target: "kube_client::client", "eof in poll");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_lines_are_coloured_only_when_asked_and_kube_request_errors_are_off_by_default() {
        let plain = log_into("info", false);
        assert!(plain.contains("watch broke"), "{plain}");
        assert!(!plain.contains('\u{1b}'), "escape codes: {plain:?}");
        assert!(!plain.contains("client error (Connect)"), "{plain}");
        assert!(!plain.contains("eof in poll"), "{plain}");
        assert!(log_into("info", true).contains('\u{1b}'));
        let asked = log_into("info,kube_client=error", false);
        assert!(asked.contains("client error (Connect)"), "{asked}");
    }
}
