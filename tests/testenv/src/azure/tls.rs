//! A test CA (rcgen) and https/http servers for the fakes on 127.0.0.1 random ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A certificate authority that issues server certificates for 127.0.0.1 and localhost.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Names and addresses the server certificates carry besides 127.0.0.1 and localhost.
    extra_names: Vec<String>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// Creates a fresh CA.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "amlsecrets test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca cert"),
            extra_names: Vec::new(),
        }
    }

    /// Creates a fresh CA whose server certificates also name `extra` (host names or IP
    /// addresses, e.g. the real node's address where pods reach the fakes).
    pub fn with_extra_names(extra: &[&str]) -> Self {
        TestCa {
            extra_names: extra.iter().map(|n| (*n).to_owned()).collect(),
            ..Self::new()
        }
    }

    /// Returns the CA certificate as PEM (what clients add to their trust store).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a server TLS configuration for 127.0.0.1, localhost and `*.vault.localhost` (a
    /// vault reached by a name under a custom cloud's vault DNS suffix, as Microsoft's SDK checks
    /// the 401 challenge's resource against the vault's host).
    pub fn server_config(&self) -> rustls::ServerConfig {
        let mut names = vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "*.vault.localhost".to_string(),
        ];
        names.extend(self.extra_names.iter().cloned());
        let params = CertificateParams::new(names).expect("params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        let chain = vec![cert.der().clone(), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        // HTTP/2 where the client offers it (the operator does), else HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Returns the CA certificate in DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

/// A listener that completes TLS handshakes in the background.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Binds a listener on 127.0.0.1 with a random port.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    (tcp, addr)
}

/// Serves `router` on `tcp` over https with a certificate from `ca`, offering HTTP/2 and
/// HTTP/1.1; returns the count of TLS connections accepted.
pub fn serve_https(tcp: TcpListener, router: Router, ca: &TestCa) -> Arc<AtomicUsize> {
    serve_https_with(tcp, router, ca.server_config())
}

/// Serves `router` on `tcp` over https with `config` (e.g. one offering HTTP/1.1 only); returns
/// the count of TLS connections accepted.
pub fn serve_https_with(
    tcp: TcpListener,
    router: Router,
    config: rustls::ServerConfig,
) -> Arc<AtomicUsize> {
    let addr = tcp.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = tcp.accept().await else {
                continue;
            };
            let (acceptor, tx, counter) = (acceptor.clone(), tx.clone(), counter.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send((tls, peer)).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(TlsListener { rx, addr }, router).await;
    });
    accepted
}

/// Serves `router` on `tcp` over plain http (IMDS is plain http by design).
pub fn serve_http(tcp: TcpListener, router: Router) {
    tokio::spawn(async move {
        let _ = axum::serve(tcp, router).await;
    });
}
