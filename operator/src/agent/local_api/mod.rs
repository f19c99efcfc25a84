//! The agent as a node-local service for the plugin: watch caches of the
//! node's pods and of every NAD, served on a root-only unix socket (the
//! lookup API of `multus_config::agent_api`). The plugin asks here first and
//! the API server on any miss, error or timeout, so an agent that is down
//! costs only a failed connect.
//!
//! - [`store`]: one kind's cache and its in-step flag;
//! - [`trim`]: what is kept of an object (what the plugin reads);
//! - [`reflect`]: LIST + WATCH keeping a store in step;
//! - [`server`]: the HTTP routes.

pub mod reflect;
pub mod server;
pub mod store;
pub mod trim;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use multus_config::npwg::NetworkAttachmentDefinition;
use tokio::task::JoinHandle;

pub use server::Caches;
pub use store::Store;

/// How long a pod lookup waits for the watch to deliver the pod.
pub const POD_WAIT: Duration = Duration::from_millis(60);

/// Why the lookup socket could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the lookup API on {}: {source}", path.display())]
pub struct BindError {
    /// The socket path.
    pub path: PathBuf,
    /// The failure.
    pub source: std::io::Error,
}

/// Binds the unix socket at `path`, root-only, replacing a stale one.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, BindError> {
    let error = |source| BindError {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(listener)
}

/// The running service: caches, their watch tasks and the server task.
/// Dropping it stops everything and removes the socket.
#[derive(Debug)]
pub struct LocalApi {
    /// The caches (for metrics and status).
    pub caches: Arc<Caches>,
    socket: PathBuf,
    /// Device and inode of the socket file we bound.
    socket_id: Option<(u64, u64)>,
    tasks: Vec<JoinHandle<()>>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn is_same_file(path: &Path, id: Option<(u64, u64)>) -> bool {
    id.is_some() && file_id(path) == id
}

impl LocalApi {
    /// Starts the caches of `node`'s pods and of every NAD and serves them
    /// on `listener` (bound at `socket`).
    pub fn start(
        client: kube::Client,
        node: &str,
        listener: tokio::net::UnixListener,
        socket: PathBuf,
    ) -> Self {
        let caches = Arc::new(Caches {
            node: node.to_owned(),
            pods: Arc::new(Store::default()),
            nads: Arc::new(Store::default()),
            pod_wait: POD_WAIT,
        });
        let pods = tokio::spawn(reflect::reflect(
            Api::<Pod>::all(client.clone()),
            reflect::Selection {
                fields: Some(format!("spec.nodeName={node}")),
            },
            Arc::clone(&caches.pods),
        ));
        let nads = tokio::spawn(reflect::reflect(
            Api::<NetworkAttachmentDefinition>::all(client),
            reflect::Selection::default(),
            Arc::clone(&caches.nads),
        ));
        let router = server::router(Arc::clone(&caches));
        let path = socket.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(socket = %path.display(), error = %e, "the lookup API stopped");
            }
        });
        tracing::info!(socket = %socket.display(), node, "serving the pod and NAD caches to the plugin");
        Self {
            caches,
            socket_id: file_id(&socket),
            socket,
            tasks: vec![pods, nads, server],
        }
    }
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // A socket nobody answers on costs the plugin a failed connect
        // only, but remove it so it does not even try; unless it is no
        // longer ours (a newer agent, surging in a rollout, bound its own
        // at this path).
        if is_same_file(&self.socket, self.socket_id) {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}
