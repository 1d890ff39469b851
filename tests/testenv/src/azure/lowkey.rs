//! Starts Lowkey Vault (an independent Key Vault emulator, a Java app) on free ports, trusts its
//! TLS certificate, and stops it when dropped.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running Lowkey Vault.
pub struct LowkeyVault {
    child: Child,
    /// The vault URI (`https://localhost:PORT`).
    pub vault_uri: String,
    /// The plain-http metadata base (managed identity token endpoint, default certificate).
    pub metadata_uri: String,
    /// Its TLS certificate in PEM, to trust.
    pub certificate_pem: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Finds the jar: `LOWKEY_VAULT_JAR`, else what `scripts/lowkey-vault.sh` prints.
pub fn locate_jar() -> Result<String, String> {
    if let Ok(j) = std::env::var("LOWKEY_VAULT_JAR") {
        return Ok(j);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lowkey-vault.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "scripts/lowkey-vault.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LowkeyVault {
    /// Starts the jar with java on free ports and waits until it serves.
    pub async fn start(jar: &str) -> Result<Self, String> {
        let (https, http) = (free_port(), free_port());
        let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
        let child = Command::new(java)
            .arg("-jar")
            .arg(jar)
            .arg(format!("--server.port={https}"))
            .arg(format!("--app.token.port={http}"))
            .arg("--LOWKEY_VAULT_RELAXED_PORTS=true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting java: {e}"))?;
        let metadata_uri = format!("http://localhost:{http}");
        let mut lv = LowkeyVault {
            child,
            vault_uri: format!("https://localhost:{https}"),
            metadata_uri,
            certificate_pem: String::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok(pem) = lv.fetch_certificate().await {
                lv.certificate_pem = pem;
                return Ok(lv);
            }
            if started.elapsed() > Duration::from_secs(90) {
                return Err("Lowkey Vault did not serve its certificate within 90 s".into());
            }
            if let Ok(Some(status)) = lv.child.try_wait() {
                return Err(format!("Lowkey Vault exited: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn fetch_certificate(&self) -> Result<String, String> {
        let p12 = http_get(&format!(
            "{}/metadata/default-cert/lowkey-vault.p12",
            self.metadata_uri
        ))
        .await?;
        let password = String::from_utf8(
            http_get(&format!(
                "{}/metadata/default-cert/password",
                self.metadata_uri
            ))
            .await?,
        )
        .map_err(|e| e.to_string())?;
        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            password.trim(),
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| e.to_string())?;
        let (_, chain) = store.private_key_chain().ok_or("no key chain")?;
        let der = chain.certs().first().ok_or("no certificate")?.as_der();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        Ok(format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ))
    }
}

impl Drop for LowkeyVault {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A minimal HTTP/1.1 GET over plain TCP (the metadata port), returning the body.
async fn http_get(url: &str) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("not http")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("chunked answers are not supported".into());
    }
    Ok(buf[split + 4..].to_vec())
}
