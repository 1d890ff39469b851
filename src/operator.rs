//! The operator process wired together: admin server, leader election and the controllers,
//! with the shutdown order that keeps replicas from overlapping.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use crate::azure::{AzureClient, Http, HttpConfig};
use crate::config::RunArgs;
use crate::controller::{self, Context};
use crate::leader::{self, AlwaysLeader, Elector, LeaseElector};
use crate::metrics::Metrics;
use crate::server::{self, Admin};

/// Runs the operator until `shutdown` resolves: serves `/livez`, `/readyz` and `/metrics`,
/// campaigns for leadership when `--leader-election` is on, and runs the controllers while it
/// leads. On shutdown the controllers finish their in-flight reconciles, then the Lease is
/// released, then the admin server stops.
pub async fn run(
    client: kube::Client,
    args: RunArgs,
    http_config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let metrics = Arc::new(Metrics::default());
    let http = Http::new(&http_config)
        .map_err(|e| e.to_string())?
        .with_metrics(metrics.clone());
    let elector: Box<dyn Elector> = if args.leader_election {
        let config = args.leader_election_config()?;
        tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "leader election on");
        Box::new(LeaseElector::new(client.clone(), config))
    } else {
        Box::new(AlwaysLeader)
    };
    let listener = server::bind(args.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on --admin-addr {}: {e}", args.admin_addr))?;
    let admin = Admin {
        metrics: metrics.clone(),
        client: client.clone(),
        stall_threshold: args.liveness_stall_threshold,
        leader_election: args.leader_election,
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_server = server::serve(listener, admin, admin_stopped.map(|_| ()));

    let azure = Arc::new(AzureClient::new(http.clone()));
    let mut ctx = Context::new(client, azure, http, args);
    ctx.metrics = metrics.clone();
    let ctx = Arc::new(ctx);
    let operate = async {
        leader::lead(
            &*elector,
            |stop| controller::run(ctx.clone(), stop),
            shutdown,
            |leading| metrics.set_leading(leading),
        )
        .await;
        let _ = stop_admin.send(());
    };
    let (served, ()) = futures::join!(admin_server, operate);
    served.map_err(|e| format!("admin server: {e}"))
}
