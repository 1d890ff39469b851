//! The `amlsecrets` binary's own log output, as a file or pipe receives it: plain lines without
//! colour codes, and an unreachable API server told once per watch, not as an error per request.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The operator's watches, as its log lines name them (the AzureMLWorkspaces' one is shared by
/// all three controllers).
const WATCHES: [&str; 7] = [
    "AzureMLWorkspaces",
    "ServiceAccounts",
    "credential Secrets",
    "WorkspaceSecrets",
    "managed Secrets",
    "WorkspaceSecretPushes",
    "push source Secrets",
];

#[test]
fn plain_logs_into_a_pipe_have_no_colour_and_an_unreachable_api_server_is_one_line_per_watch() {
    let dir = tempfile::tempdir().unwrap();
    // An API server address nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: not-a-real-token\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_amlsecrets"))
        .args([
            "run",
            "--log-format=plain",
            "--log-level=info",
            "--admin-addr=127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .env_remove("AMLSECRETS_LOG_FORMAT")
        .env_remove("AMLSECRETS_LOG_LEVEL")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the amlsecrets binary starts");
    // Long enough for several retries of every watch (they back off up to a few seconds).
    std::thread::sleep(Duration::from_secs(8));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();

    assert!(
        out.contains("controllers started"),
        "no log lines on stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "colour escape codes in logs written to a pipe:\n{out:?}"
    );
    for watch in WATCHES {
        let lines = out
            .lines()
            .filter(|l| l.contains(&format!("watch of {watch} broke")))
            .count();
        assert_eq!(lines, 1, "watch of {watch}: {lines} 'broke' lines:\n{out}");
    }
    assert!(
        !out.lines()
            .any(|l| l.contains("watch of") && l.contains(" works again")),
        "a watch claimed to work while nothing answered:\n{out}"
    );
    let errors = out.lines().filter(|l| l.contains(" ERROR ")).count();
    assert_eq!(
        errors, 0,
        "{errors} ERROR lines in 8 s of an unreachable API server:\n{out}"
    );
    assert!(
        !out.contains("not-a-real-token"),
        "the token leaked:\n{out}"
    );
}
