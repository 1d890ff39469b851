//! The admin server on `--admin-addr`: `/livez` (fails when reconciling has stalled), `/readyz`
//! (ready once the watches have synced and while the API server answers) and `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// How long `/readyz` waits for the API server's `/version`.
const API_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes look at.
#[derive(Clone)]
pub struct Admin {
    /// The metrics and health state.
    pub metrics: Arc<Metrics>,
    /// A client for the API server reachability check.
    pub client: kube::Client,
    /// How long work may wait with no reconcile finishing before `/livez` fails.
    pub stall_threshold: Duration,
    /// Whether leader election is on (a replica that does not lead is then ready as a standby).
    pub leader_election: bool,
}

/// Binds the admin address (so that a taken port fails start-up, not a background task).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Admin,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(admin);
    // Stop at once on shutdown: a graceful stop would wait for every keep-alive connection
    // (a Prometheus scraper holds one) to close, delaying the process's exit.
    tokio::select! {
        served = axum::serve(listener, app).into_future() => served,
        () = shutdown => Ok(()),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn livez(State(admin): State<Admin>) -> Response {
    match admin.metrics.health.stalled_for() {
        Some(waited) if waited > admin.stall_threshold => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: work has waited {}s with no reconcile finishing (threshold {}s)\n",
                waited.as_secs(),
                admin.stall_threshold.as_secs()
            ),
        ),
        _ => text(StatusCode::OK, "ok\n".into()),
    }
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let reachable = tokio::time::timeout(API_CHECK_TIMEOUT, admin.client.apiserver_version()).await;
    if let Err(e) = reachable
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the API server is unreachable: {e}\n"),
        );
    }
    let health = &admin.metrics.health;
    if health.watches_synced() {
        return text(StatusCode::OK, "ok: leading, watches synced\n".into());
    }
    if admin.leader_election && !health.leading() {
        return text(
            StatusCode::OK,
            "ok: standby (another replica leads)\n".into(),
        );
    }
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: the watches have not synced yet\n".into(),
    )
}

async fn metrics(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        admin.metrics.render(),
    )
        .into_response()
}
