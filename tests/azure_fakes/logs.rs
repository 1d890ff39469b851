//! No planted secret value, client secret or token appears in the logs at TRACE level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use amlsecrets::azure::{AzureApi, CredentialSpec, NewSecret};
use testenv::azure::TENANT;

use super::support::{Env, SP_CLIENT, SP_SECRET};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trace_logs_of_all_flows_contain_no_secret_or_token() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The only test of its binary: a global subscriber sees every thread, and no other test can
    // have cached a callsite as uninteresting first.
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

    let env = Env::start().await;
    const VALUE: &str = "planted-vault-value-9f3K";
    env.fakes.vault.put_secret("planted", VALUE, true, None);
    let cred = env.sp();
    let got = env
        .client
        .get_secret(&cred, &env.vault(), "planted", None)
        .await
        .unwrap();
    tracing::debug!(secret = ?got, "what a careless caller might log");
    env.client
        .list_secret_properties(&cred, &env.vault())
        .await
        .unwrap();
    let new = NewSecret {
        value: "planted-written-value-77Q".into(),
        ..Default::default()
    };
    env.client
        .set_secret(&cred, &env.vault(), "written", &new)
        .await
        .unwrap();
    let bad = env.cred(CredentialSpec::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: SP_CLIENT.into(),
        secret: "planted-wrong-secret-Xy1".into(),
    });
    let err = env
        .client
        .get_secret(&bad, &env.vault(), "planted", None)
        .await
        .unwrap_err();
    tracing::error!(error = %err, "failure");

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("azure request"), "the flows did log: {text}");
    let tokens = env.fakes.tokens.issued();
    assert!(!tokens.is_empty());
    for planted in [
        VALUE,
        "planted-written-value-77Q",
        SP_SECRET,
        "planted-wrong-secret-Xy1",
    ]
    .into_iter()
    .map(String::from)
    .chain(tokens)
    {
        assert!(!text.contains(&planted), "log leaks {planted}");
    }
}
