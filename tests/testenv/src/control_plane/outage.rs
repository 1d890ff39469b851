//! Outages on a private control plane: the API server stopped and started again on the same
//! port, certificates and etcd, as clients see an API-server restart.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::startup::{spawn_apiserver, wait_ready};
use super::{ControlPlane, Error};

impl ControlPlane {
    /// Kills the API server (etcd and its data stay) and waits until its port refuses
    /// connections: an outage as clients see it. Meant for a private control plane
    /// ([`ControlPlane::start`]); on the shared one it would break the other tests.
    pub async fn stop_apiserver(&self) {
        let process = self.apiserver.lock().expect("apiserver lock").take();
        if let Some(process) = process {
            // Dropping waits (blocking) for the watchdog to kill the binary.
            tokio::task::spawn_blocking(move || drop(process))
                .await
                .expect("stopping the API server panicked");
        }
        let port = self.port();
        while tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the API server again with the same flags, port, certificates and etcd, and waits
    /// until it is ready. Does nothing if it is running.
    pub async fn start_apiserver(&self) -> Result<(), Error> {
        if self.apiserver.lock().expect("apiserver lock").is_some() {
            return Ok(());
        }
        let mut process = spawn_apiserver(
            &self.apiserver_binary,
            &self.apiserver_args,
            self.dir.path(),
        )?;
        wait_ready(&self.config, &mut [&mut process]).await?;
        *self.apiserver.lock().expect("apiserver lock") = Some(process);
        Ok(())
    }

    fn port(&self) -> u16 {
        self.server_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server URL ends with its port")
    }
}
