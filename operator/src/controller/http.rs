//! `/healthz`, `/readyz` and `/metrics` of the controller: ready once its
//! caches are filled (the routes live in `crate::health`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::metrics::Metrics;
use crate::health::Probe;

pub use crate::health::{router, serve};

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    /// The caches are filled and the controller runs.
    pub ready: AtomicBool,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

impl Health {
    /// Health over `metrics`, not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            ready: AtomicBool::new(false),
            metrics,
        }
    }

    /// Marks the controller ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

impl Probe for Health {
    fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("caches are filling".to_owned())
        }
    }

    fn encode_metrics(&self) -> String {
        self.metrics.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(address: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer_and_readiness_follows_the_flag() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let health = Arc::new(Health::new(Arc::new(Metrics::default())));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, health.clone(), async {
            let _ = stopped.await;
        }));
        assert!(get(address, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.1 200"));
        health.metrics.reconciles.inc();
        let m = get(address, "/metrics").await;
        assert!(m.contains("multus_operator_reconciles_total 1"), "{m}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
