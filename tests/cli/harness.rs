//! A laptop for the CLI tests: a temp home with a fake `az` on `PATH` that answers like the real
//! one (its JSON, its error texts and exit codes), the fakes' CA in a file, a private cache
//! directory, and the built binary run against the fakes (and the test control plane when a
//! test needs the cluster).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use testenv::azure::common::{Grant, now};
use testenv::azure::{AzureFakes, TENANT, VAULT_AUDIENCE};
use tokio::io::AsyncWriteExt;

/// The subscription of the test workspaces.
pub const SUB: &str = "00000000-1111-2222-3333-444444444444";
/// The signed-in user's object id.
pub const USER_OID: &str = "bbbbbbbb-2222-3333-4444-000000000042";
/// The Azure CLI's public client id (the appid of its tokens).
pub const AZ_CLIENT: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// The fake `az`: `account get-access-token --output json --resource R [--tenant T]` prints the
/// token file of that resource; it records each call; signed out, or asked for another tenant,
/// it fails like the real one (exit code 1 and its ERROR text on stderr).
const FAKE_AZ: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
echo "$*" >> "$dir/calls"
if [ "$1 $2" != "account get-access-token" ]; then
  echo "ERROR: the fake az only knows 'account get-access-token'" >&2
  exit 2
fi
if [ -f "$dir/signed-out" ]; then
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
fi
resource=""; tenant=""
while [ $# -gt 0 ]; do
  case "$1" in
    --resource) resource="$2"; shift ;;
    --scope) resource="${2%/.default}"; shift ;;
    --tenant) tenant="$2"; shift ;;
  esac
  shift
done
if [ -n "$tenant" ] && [ "$tenant" != "$(cat "$dir/tenant")" ]; then
  echo "ERROR: AADSTS50020: User account 'dev@contoso.com' from identity provider 'https://sts.windows.net/$(cat "$dir/tenant")/' does not exist in tenant 'Other' and cannot access the application '04b07795-8ddb-461a-bbee-02f9e1bf7b46'(Microsoft Azure CLI) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account. Trace ID: 0 Correlation ID: 0 Timestamp: 2025-01-01 00:00:00Z" >&2
  echo "Interactive authentication is needed. Please run:" >&2
  echo "az login --tenant \"$tenant\" --scope \"$resource/.default\"" >&2
  exit 1
fi
key="$(printf %s "$resource" | tr -c 'A-Za-z0-9' '_')"
if [ ! -f "$dir/token-$key.json" ]; then
  echo "ERROR: AADSTS500011: The resource principal named $resource was not found in the tenant named $(cat "$dir/tenant"). Trace ID: 0" >&2
  exit 1
fi
cat "$dir/token-$key.json"
"#;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the logs go there, at trace level in these tests).
    pub stderr: String,
}

impl Out {
    /// Parses stdout as JSON, or panics showing both streams.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The laptop.
pub struct Laptop {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub ca_file: PathBuf,
    pub cache: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    /// Extra environment for every run.
    pub env: Vec<(String, String)>,
}

impl Laptop {
    /// Sets up the laptop for these fakes (nobody signed in to `az` yet).
    pub fn new(fakes: &AzureFakes) -> Laptop {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let az = bin.join("az");
        std::fs::write(&az, FAKE_AZ).unwrap();
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("signed-out"), "").unwrap();
        std::fs::write(bin.join("tenant"), TENANT).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, fakes.ca.pem()).unwrap();
        let cache = dir.path().join("cache");
        Laptop {
            dir,
            bin,
            ca_file,
            cache,
            kubeconfig: None,
            env: Vec::new(),
        }
    }

    /// Points the binary at the test control plane.
    pub fn with_cluster(mut self, cp: &testenv::control_plane::ControlPlane, ns: &str) -> Self {
        let path = self.dir.path().join("kubeconfig");
        cp.write_kubeconfig(&path).unwrap();
        self.kubeconfig = Some(path);
        self.env.push(("AMLSECRETS_TEST_NS".into(), ns.into()));
        self
    }

    /// Signs `az` in as `oid`: writes the token answers for ARM and Key Vault, shaped like the
    /// real CLI's (`accessToken`, `expiresOn` in local time, `expires_on`, `subscription`,
    /// `tenant`, `tokenType`).
    pub fn az_login(&self, fakes: &AzureFakes, oid: &str) {
        let exp = now() + 3599;
        for audience in [fakes.arm.endpoint.clone(), VAULT_AUDIENCE.to_string()] {
            let token = fakes.tokens.issue(Grant {
                audience: audience.clone(),
                oid: oid.into(),
                appid: AZ_CLIENT.into(),
                tid: TENANT.into(),
                exp,
            });
            let local = jiff::Timestamp::from_second(exp)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S.000000")
                .to_string();
            let body = serde_json::json!({
                "accessToken": token, "expiresOn": local, "expires_on": exp,
                "subscription": SUB, "tenant": TENANT, "tokenType": "Bearer",
            });
            let key: String = audience
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            std::fs::write(
                self.bin.join(format!("token-{key}.json")),
                serde_json::to_string_pretty(&body).unwrap(),
            )
            .unwrap();
        }
        let _ = std::fs::remove_file(self.bin.join("signed-out"));
    }

    /// Signs `az` out.
    pub fn az_logout(&self) {
        std::fs::write(self.bin.join("signed-out"), "").unwrap();
    }

    /// Returns the fake `az`'s calls, one line each.
    pub fn az_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The flags that point the binary at the fakes' cloud, and at workspace `name`.
    pub fn workspace_flags(&self, fakes: &AzureFakes, name: &str) -> Vec<String> {
        let mut f = self.cloud_flags(fakes);
        f.extend([
            format!("--subscription={SUB}"),
            "--resource-group=rg-ml".into(),
            format!("--workspace={name}"),
        ]);
        f
    }

    /// The flags of the fakes' cloud; the vault suffix is the fake vault's `:PORT`, so that a
    /// vault named `127.0.0.1` in ARM is discovered as the fake vault.
    pub fn cloud_flags(&self, fakes: &AzureFakes) -> Vec<String> {
        let port = fakes.vault.uri.rsplit(':').next().unwrap().to_string();
        vec![
            "--cloud=Custom".into(),
            format!("--authority-host={}", fakes.entra.authority_host),
            format!("--resource-manager-endpoint={}", fakes.arm.endpoint),
            format!("--key-vault-dns-suffix=:{port}"),
            format!("--key-vault-audience={VAULT_AUDIENCE}"),
            format!("--extra-ca-file={}", self.ca_file.display()),
        ]
    }

    /// Runs the binary with `args`, feeding `stdin`.
    pub async fn run(&self, args: &[String], stdin: Option<&[u8]>) -> Out {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_amlsecrets"));
        cmd.args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("AMLSECRETS_CACHE_DIR", &self.cache)
            .env("RUST_LOG", "amlsecrets=trace,info")
            .env("AMLSECRETS_AZURE_TIMEOUT", "5s")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(k) = &self.kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the amlsecrets binary runs");
        if let Some(input) = stdin {
            let mut s = child.stdin.take().unwrap();
            // A command that fails before reading stdin closes it: that is its answer, not ours.
            if let Err(e) = s.write_all(input).await {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
            drop(s);
        }
        let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .expect("the command finishes within 90 s")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `args` followed by the workspace flags of `name`.
    pub async fn run_on(&self, fakes: &AzureFakes, name: &str, args: &[&str]) -> Out {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.workspace_flags(fakes, name));
        self.run(&all, None).await
    }
}

/// Puts workspace `name` in the fake ARM, its vault being the fake vault (see [`Laptop::cloud_flags`]).
pub fn arm_workspace(fakes: &AzureFakes, name: &str) {
    use testenv::azure::arm::{vault_id, workspace_json};
    fakes.arm.put(workspace_json(
        SUB,
        "rg-ml",
        name,
        None,
        Some(&vault_id(SUB, "rg-ml", "127.0.0.1")),
        None,
    ));
}

/// Asserts that no token the fakes issued and none of `planted` is in `text`.
pub fn assert_no_secrets(fakes: &AzureFakes, text: &str, planted: &[&str]) {
    for t in fakes.tokens.issued() {
        assert!(!text.contains(&t), "a token appeared in the output: {text}");
        // The signature-less body of the token is unique enough to catch a partial leak.
        let body = t.split('.').nth(1).unwrap_or_default();
        assert!(
            body.len() < 20 || !text.contains(body),
            "a token's claims appeared in the output"
        );
    }
    for p in planted {
        assert!(!text.contains(p), "{p:?} appeared in the output: {text}");
    }
}

impl Laptop {
    /// Starts `amlsecrets run` with `args` on this laptop (its `PATH`, so the fake `az`), against
    /// the cluster given by [`Laptop::with_cluster`]; killed when dropped.
    pub fn spawn_operator(&self, args: &[String]) -> tokio::process::Child {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_amlsecrets"));
        cmd.arg("run")
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("AMLSECRETS_LOG_LEVEL", "amlsecrets=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(k) = &self.kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        cmd.spawn().expect("amlsecrets run starts")
    }
}

impl Laptop {
    /// Runs the binary inside a pseudo-terminal (`script`), so that stdin, stdout and stderr are
    /// a terminal; returns everything the terminal showed.
    pub async fn run_in_terminal(&self, args: &[String]) -> Out {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = format!("exec {}", quote(env!("CARGO_BIN_EXE_amlsecrets")));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("TERM", "xterm")
            .env("AMLSECRETS_CACHE_DIR", &self.cache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .expect("the command finishes within 90 s")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
