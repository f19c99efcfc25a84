//! The HTTP endpoints both operator processes serve: `/healthz` (the
//! process answers), `/readyz` (200, or 503 with the reason) and `/metrics`
//! (OpenMetrics text). The controller and the node agent differ only in
//! what they report, which each says through [`Probe`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What a process reports on its endpoints.
pub trait Probe: Send + Sync + 'static {
    /// `Ok(())` when ready; otherwise why not (shown after "not ready: ").
    fn readiness(&self) -> Result<(), String>;
    /// The metrics in OpenMetrics text format.
    fn encode_metrics(&self) -> String;
}

/// The routes, over `probe`.
pub fn router<P: Probe>(probe: Arc<P>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probe)
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve<P: Probe>(
    listener: tokio::net::TcpListener,
    probe: Arc<P>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(probe))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz<P: Probe>(State(probe): State<Arc<P>>) -> impl IntoResponse {
    match probe.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics<P: Probe>(State(probe): State<Arc<P>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.encode_metrics(),
    )
}
