//! Upstream Multus's thick-plugin delegate API on a root-only unix socket
//! (`--delegate-socket`, upstream's default `/run/multus/multus.sock`):
//! `POST /delegate` adds a network to (ADD) or removes it from (DEL) a
//! running pod, `GET`/`POST /healthz` answers 200. Tools written for the
//! thick daemon (multus-dynamic-networks-controller) work unchanged.
//!
//! The agent only checks the request (JSON, size, the CNI variables, that
//! the pod runs on this node) and runs `multus delegate` ([`child`]) with
//! the node's Multus config and the request; the delegates run in that
//! child, in the host's mount namespace and the runtime's cgroup, never in
//! the agent. At most [`MAX_CONCURRENT`] requests run at once, each bounded
//! to [`child::DELEGATE_TIMEOUT`].
//!
//! Errors are CNI error objects (`code`, `msg`, `details`) naming the
//! culprit, with an HTTP status saying whose fault it is: 400 (the
//! request), 403 (a pod of another node), 404 (unknown pod, container or
//! path), 405, 413 (body over [`MAX_BODY_BYTES`]), 503 (busy, no config
//! yet, API unreachable), 504 (the plugin did not finish), 500 (the
//! delegate failed).

pub mod child;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use k8s_openapi::api::core::v1::Pod;
use multus_config::cni::error::{CniError, ErrorCode};
pub use multus_config::delegate_api::{DEFAULT_SOCKET_PATH, MAX_BODY_BYTES};
use multus_config::delegate_api::{DelegateRequest, parse_request};
use tokio::sync::Semaphore;

pub use child::{DELEGATE_TIMEOUT, Delegator};

/// Requests that may run at once; more wait (up to [`QUEUE_TIMEOUT`]).
pub const MAX_CONCURRENT: usize = 4;
/// How long a request waits for its turn before 503.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of the pod lookup.
pub const POD_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a pod runs, per the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlacement {
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `metadata.uid`.
    pub uid: Option<String>,
}

/// How the node of a request's pod is checked.
#[derive(Clone)]
pub enum PodCheck {
    /// No API access (`--no-kube`): not checked; the plugin still refuses
    /// containers that have no Multus cache on this node.
    Off,
    /// A GET of the pod.
    Api {
        /// The agent's client.
        client: kube::Client,
        /// This node.
        node: String,
    },
    /// Fixed answers (tests): `namespace/name` to placement.
    Fixed {
        /// The pods.
        pods: std::collections::HashMap<String, PodPlacement>,
        /// This node.
        node: String,
    },
}

impl std::fmt::Debug for PodCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("Off"),
            Self::Api { node, .. } => f.debug_struct("Api").field("node", node).finish(),
            Self::Fixed { node, .. } => f.debug_struct("Fixed").field("node", node).finish(),
        }
    }
}

/// A refused or failed request: the HTTP status and the CNI error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub error: CniError,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            error: CniError::new(code, msg, ""),
        }
    }

    fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidEnvironmentVariables,
            msg,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.error).unwrap_or_else(|_| self.error.msg.into_bytes());
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl PodCheck {
    /// Refuses pods that are unknown or run on another node.
    pub async fn check(&self, request: &DelegateRequest) -> Result<(), ApiError> {
        let pod = request.pod();
        let (placement, node) = match self {
            Self::Off => return Ok(()),
            Self::Fixed { pods, node } => (pods.get(&pod).cloned(), node),
            Self::Api { client, node } => {
                let api: kube::Api<Pod> =
                    kube::Api::namespaced(client.clone(), &request.pod_namespace);
                let found = tokio::time::timeout(POD_LOOKUP_TIMEOUT, api.get_opt(&request.pod_name))
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::TryAgainLater,
                            format!("cannot read pod {pod}: the API server did not answer within {POD_LOOKUP_TIMEOUT:?}"),
                        )
                    })?
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::TryAgainLater,
                            format!("cannot read pod {pod}: {e}"),
                        )
                    })?;
                let placement = found.map(|p| PodPlacement {
                    node: p.spec.and_then(|s| s.node_name),
                    uid: p.metadata.uid,
                });
                (placement, node)
            }
        };
        let Some(placement) = placement else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::KubernetesApi,
                format!("pod {pod} (env.CNI_ARGS) does not exist"),
            ));
        };
        if placement.node.as_deref() != Some(node.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::KubernetesApi,
                format!(
                    "pod {pod} runs on node {}, not on this node ({node}): send the request to that node's socket",
                    placement.node.as_deref().unwrap_or("(none yet)")
                ),
            ));
        }
        if let (Some(requested), Some(actual)) = (&request.pod_uid, &placement.uid)
            && requested != actual
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::KubernetesApi,
                format!(
                    "pod {pod} has UID {actual}, not K8S_POD_UID {requested}: it was recreated"
                ),
            ));
        }
        Ok(())
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct DelegateApi {
    /// Runs `multus delegate`.
    pub delegator: Delegator,
    /// The pod check.
    pub pods: PodCheck,
    permits: Semaphore,
}

impl DelegateApi {
    /// The API over `delegator` and `pods`.
    pub fn new(delegator: Delegator, pods: PodCheck) -> Self {
        Self {
            delegator,
            pods,
            permits: Semaphore::new(MAX_CONCURRENT),
        }
    }
}

/// The routes.
pub fn router(api: Arc<DelegateApi>) -> Router {
    Router::new()
        .route(
            multus_config::delegate_api::DELEGATE_PATH,
            post(delegate).fallback(method_not_allowed),
        )
        .route(multus_config::delegate_api::HEALTH_PATH, any(healthz))
        .fallback(not_found)
        .with_state(api)
}

async fn healthz(method: axum::http::Method) -> Response {
    if method == axum::http::Method::GET || method == axum::http::Method::POST {
        StatusCode::OK.into_response()
    } else {
        method_not_allowed().await
    }
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidEnvironmentVariables,
        "method not allowed: POST /delegate, GET or POST /healthz",
    )
    .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::InvalidEnvironmentVariables,
        format!("no endpoint {}: POST /delegate, GET /healthz", uri.path()),
    )
    .into_response()
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::InvalidEnvironmentVariables,
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })
}

async fn delegate(State(api): State<Arc<DelegateApi>>, body: Body) -> Response {
    match handle(&api, body).await {
        // DEL: an empty body, as upstream answers.
        Ok(bytes) if matches!(bytes.trim_ascii(), b"" | b"{}") => StatusCode::OK.into_response(),
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(status = %error.status, error = %error.error.msg, "delegate request refused or failed");
            error.into_response()
        }
    }
}

async fn handle(api: &DelegateApi, body: Body) -> Result<Vec<u8>, ApiError> {
    let bytes = read_body(body).await?;
    let request = parse_request(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    api.pods.check(&request).await?;
    let _permit = tokio::time::timeout(QUEUE_TIMEOUT, api.permits.acquire())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TryAgainLater,
                format!("{MAX_CONCURRENT} delegate requests are running; try again"),
            )
        })?
        .map_err(|_| ApiError::bad_request("shutting down"))?;
    tracing::info!(command = ?request.command, pod = %request.pod(), container = %request.container_id, ifname = %request.ifname, network = %request.network, "delegate request");
    api.delegator.run(&request).await
}

/// Binds the socket at `path`: its directory is created (0700) when
/// missing, a stale socket file is replaced, a socket another server
/// answers on is not (upstream's thick daemon may own it); mode 0600.
pub async fn bind(path: &Path) -> Result<tokio::net::UnixListener, std::io::Error> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "another server answers on {} (upstream's thick daemon?); not replacing it",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Created 0600 from the start: no window in which others may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the API on `listener` until `shutdown` completes, then removes
/// the socket file `path`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    api: Arc<DelegateApi>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = std::fs::remove_file(&path);
    served
}

#[cfg(test)]
mod tests;
