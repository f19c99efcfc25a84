//! `/healthz`, `/readyz` and `/metrics` of the node agent: ready when the
//! generated config is current (the routes live in `crate::health`).

use std::net::SocketAddr;

use super::fsutil::IoError;
use super::metrics::Shared;
use crate::health::Probe;

pub use crate::health::{router, serve};

impl Probe for Shared {
    fn readiness(&self) -> Result<(), String> {
        let health = self.health();
        if health.ready {
            Ok(())
        } else {
            Err(health.message)
        }
    }

    fn encode_metrics(&self) -> String {
        self.metrics.encode()
    }
}

/// Binds `address`; the caller serves on the listener with [`serve`].
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, IoError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| IoError::new("listen on", address.to_string(), e))
}
