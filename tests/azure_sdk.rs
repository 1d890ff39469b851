//! Microsoft's own clients as the judge of the fakes: Microsoft's Azure SDK for Python
//! (`azure-identity`, `azure-keyvault-secrets`, `azure-mgmt-machinelearningservices`, pinned in
//! `tests/azure_sdk/requirements.txt`) runs `tests/azure_sdk/test_*.py` with pytest against the
//! in-process fake Entra ID, IMDS, Key Vault and ARM (endpoints and datastores). Where the SDK
//! disagrees with a fake, the fake is wrong.
//!
//! The venv comes from `AMLSECRETS_SDK_PYTHON` (set by `scripts/test.sh`), else from
//! `scripts/sdk-venv.sh`, which creates it when missing; a missing Python fails the tests saying so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use testenv::azure::common::azure_error;
use testenv::azure::keys::{CLIENT_KEY_PEM, ClientCertificate, TokenIssuer, WRONG_KEY_PEM};
use testenv::azure::{AzureFakes, FakeKeyVault, Fault, FederatedCredential, NodeIdentity, TENANT};

/// The audience of the vault under test: a custom cloud's, whose vault DNS suffix is
/// `.vault.localhost` (the SDK checks the challenge's resource against the vault's host).
const AUDIENCE: &str = "https://vault.localhost";
/// The vault's name as the SDK reaches it (port 443, mapped to the fake's loopback port).
const VAULT_HOST: &str = "fakevault.vault.localhost";

const SP_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c001";
const SP_OID: &str = "5d4e0000-0000-4000-8000-0000000000a1";
const SP_SECRET: &str = "sdk-judge-client-secret";
const CERT_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c002";
const CERT_OID: &str = "5d4e0000-0000-4000-8000-0000000000a2";
const WI_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c003";
const WI_OID: &str = "5d4e0000-0000-4000-8000-0000000000a3";
const WI_ISSUER: &str = "https://oidc.cluster.test/issuer";
const DENIED_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c006";
const DENIED_OID: &str = "5d4e0000-0000-4000-8000-0000000000a6";
const DENIED_SECRET: &str = "sdk-judge-denied-secret";
const MI_SYSTEM_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c004";
const MI_SYSTEM_OID: &str = "5d4e0000-0000-4000-8000-0000000000a4";
const MI_USER_CLIENT: &str = "5d4e0000-0000-4000-8000-00000000c005";
const MI_USER_OID: &str = "5d4e0000-0000-4000-8000-0000000000a5";
const MI_USER_RESOURCE: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sdk-judge";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python: `AMLSECRETS_SDK_PYTHON`, else what `scripts/sdk-venv.sh` prints (once per
/// test binary). Panics with the reason when neither gives one.
fn python() -> &'static str {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        if let Ok(p) = std::env::var("AMLSECRETS_SDK_PYTHON") {
            return if Path::new(&p).is_file() {
                Ok(p)
            } else {
                Err(format!("AMLSECRETS_SDK_PYTHON={p} is not a file"))
            };
        }
        let out = std::process::Command::new("bash")
            .arg(repo().join("scripts/sdk-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run scripts/sdk-venv.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!("scripts/sdk-venv.sh failed ({})", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    match found {
        Ok(p) => p,
        Err(e) => panic!("Microsoft's Azure SDK for Python is not available: {e}"),
    }
}

/// The fakes, the files the SDK reads, and the environment of one pytest run.
struct Judge {
    fakes: AzureFakes,
    vault: FakeKeyVault,
    _dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

impl Judge {
    /// Starts the fakes and registers one identity of every kind.
    async fn start() -> Judge {
        let fakes = AzureFakes::start().await;
        let vault = FakeKeyVault::start(&fakes.ca, fakes.tokens.clone(), TENANT, AUDIENCE).await;
        vault.put_secret("seeded", "seeded-value", true, None);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();

        fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
        fakes
            .entra
            .add_secret(TENANT, DENIED_CLIENT, DENIED_OID, DENIED_SECRET);
        vault.deny(DENIED_OID);
        let cert = ClientCertificate::new(CLIENT_KEY_PEM, "sdk-judge");
        fakes
            .entra
            .add_client_certificate(TENANT, CERT_CLIENT, CERT_OID, &cert);
        let unknown = ClientCertificate::new(WRONG_KEY_PEM, "not-uploaded");
        let issuer = TokenIssuer::new(WI_ISSUER);
        fakes.entra.add_federated(
            TENANT,
            WI_CLIENT,
            WI_OID,
            FederatedCredential {
                issuer: WI_ISSUER.into(),
                subject: "system:serviceaccount:ml:trainer".into(),
                audience: "api://AzureADTokenExchange".into(),
                jwks: issuer.jwks(),
            },
        );
        fakes.imds.set_system_assigned(NodeIdentity {
            client_id: MI_SYSTEM_CLIENT.into(),
            object_id: MI_SYSTEM_OID.into(),
            resource_id: None,
        });
        fakes.imds.add_user_assigned(NodeIdentity {
            client_id: MI_USER_CLIENT.into(),
            object_id: MI_USER_OID.into(),
            resource_id: Some(MI_USER_RESOURCE.into()),
        });

        let port = vault.uri.rsplit(':').next().unwrap().to_string();
        let env = [
            ("REQUESTS_CA_BUNDLE", write(d, "ca.crt", &fakes.ca.pem())),
            ("AZURE_AUTHORITY_HOST", fakes.entra.authority_host.clone()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                fakes.imds.endpoint.clone(),
            ),
            ("AZURE_TENANT_ID", TENANT.into()),
            (
                "AMLSECRETS_SDK_CONNECT_TO",
                format!("{VAULT_HOST}:443=127.0.0.1:{port}"),
            ),
            ("FAKE_VAULT_URL", format!("https://{VAULT_HOST}")),
            ("FAKE_VAULT_RAW_URL", vault.uri.clone()),
            ("FAKE_ARM_URL", fakes.arm.endpoint.clone()),
            ("SP_CLIENT_ID", SP_CLIENT.into()),
            ("SP_OBJECT_ID", SP_OID.into()),
            ("SP_CLIENT_SECRET", SP_SECRET.into()),
            ("DENIED_CLIENT_ID", DENIED_CLIENT.into()),
            ("DENIED_CLIENT_SECRET", DENIED_SECRET.into()),
            ("CERT_CLIENT_ID", CERT_CLIENT.into()),
            ("CERT_OBJECT_ID", CERT_OID.into()),
            (
                "CERT_PEM_PATH",
                write(d, "client.pem", &cert.combined_pem()),
            ),
            (
                "WRONG_CERT_PEM_PATH",
                write(d, "unknown.pem", &unknown.combined_pem()),
            ),
            ("WI_CLIENT_ID", WI_CLIENT.into()),
            ("WI_OBJECT_ID", WI_OID.into()),
            (
                "WI_TOKEN_FILE",
                write(
                    d,
                    "wi-token",
                    &issuer.token("ml", "trainer", "api://AzureADTokenExchange", 3600),
                ),
            ),
            (
                "WI_UNFEDERATED_TOKEN_FILE",
                write(
                    d,
                    "wi-other",
                    &issuer.token("ml", "intruder", "api://AzureADTokenExchange", 3600),
                ),
            ),
            ("MI_SYSTEM_OBJECT_ID", MI_SYSTEM_OID.into()),
            ("MI_USER_CLIENT_ID", MI_USER_CLIENT.into()),
            ("MI_USER_OBJECT_ID", MI_USER_OID.into()),
            ("MI_USER_RESOURCE_ID", MI_USER_RESOURCE.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Judge {
            fakes,
            vault,
            _dir: dir,
            env,
        }
    }

    /// Runs `tests/azure_sdk/{file}` with pytest in a clean environment (no proxy or Azure
    /// variables of the machine); panics with pytest's output unless every test passed.
    async fn pytest(&self, file: &str) {
        let python = python();
        let mut cmd = tokio::process::Command::new(python);
        cmd.current_dir(repo().join("tests/azure_sdk"))
            .args(["-m", "pytest", "-v", "-p", "no:cacheprovider", file])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(Duration::from_secs(180), cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("cannot run {python}: {e}"),
            Err(_) => panic!("pytest {file} did not finish within 180 s"),
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "Microsoft's SDK disagrees with the fakes ({file}, {}):\n{text}",
            out.status
        );
        assert!(
            text.contains(" passed") && !text.contains(" skipped"),
            "pytest ran no test or skipped some:\n{text}"
        );
        println!("{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_credentials_client_secret_certificate_and_workload_identity_against_fake_entra() {
    let j = Judge::start().await;
    j.pytest("test_entra.py").await;
    // MSAL reads the tenant's OpenID configuration before it asks for a token.
    assert!(j.fakes.entra.calls.count("openid-configuration") >= 1);
    assert!(j.fakes.entra.calls.count("token") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_managed_identity_credential_against_fake_imds() {
    let j = Judge::start().await;
    j.pytest("test_imds.py").await;
    assert!(j.fakes.imds.calls.count("token") >= 5);
    assert_eq!(j.fakes.entra.calls.count("token"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_secret_client_challenge_set_get_and_paged_lists_against_fake_vault() {
    let j = Judge::start().await;
    j.pytest("test_secrets_read.py").await;
    // The listings went through more than one page each.
    assert!(j.vault.calls.count("list") >= 3);
    assert!(j.vault.calls.count("versions") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_secret_client_update_delete_recover_purge_against_fake_vault() {
    let j = Judge::start().await;
    j.pytest("test_secrets_write.py").await;
    assert!(j.vault.calls.count("update") >= 3);
    assert!(j.vault.calls.count("deleted-get") >= 3);
    assert_eq!(j.vault.calls.count("purge"), 1);
    assert_eq!(j.vault.calls.count("recover"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_ml_client_reads_endpoint_keys_tokens_and_datastore_secrets_from_fake_arm() {
    let j = Judge::start().await;
    let ws = testenv::azure::arm::workspace_id(
        "00000000-1111-2222-3333-444444444444",
        "rg-ml",
        "mlw-judge",
    );
    let e = &j.fakes.arm.endpoints;
    e.put_online(&ws, "scorer", "Key", ("judge-primary", "judge-secondary"));
    e.put_online(&ws, "tokened", "AMLToken", ("", ""));
    e.put_datastore(
        &ws,
        "blobs",
        serde_json::json!({"secretsType": "AccountKey", "key": "judge-account-key"}),
    );
    e.put_datastore(
        &ws,
        "sas",
        serde_json::json!({"secretsType": "Sas", "sasToken": "judge-sas-token"}),
    );
    e.deny(DENIED_OID, "onlineEndpoints/listKeys/action");
    j.pytest("test_ml_endpoints.py").await;
    assert_eq!(j.fakes.arm.calls.count("onlineEndpoints.token"), 1);
    assert_eq!(j.fakes.arm.calls.count("datastores.listSecrets"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_ride_through_fake_throttling_and_server_errors_and_report_denials() {
    let j = Judge::start().await;
    j.vault.faults.push(
        Fault::new(
            429,
            azure_error(
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            ),
        )
        .header("retry-after", "1"),
    );
    j.vault.faults.push(Fault::new(
        503,
        azure_error("ServiceUnavailable", "The service is unavailable.", None),
    ));
    // IMDS's own 500 body (`getIdentityToken.json`).
    j.fakes.imds.faults.push(Fault::new(
        500,
        r#"{"error":"server_error","error_description":"Server error"}"#,
    ));
    j.pytest("test_faults.py").await;
    assert_eq!(j.fakes.imds.calls.count("token"), 2);
}
