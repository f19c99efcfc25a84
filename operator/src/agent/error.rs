//! [`AgentError`]: why the agent stopped or a one-shot run failed.

use std::path::PathBuf;

use super::fsutil::IoError;
use super::kubeconfig::KubeconfigError;
use super::node_state::NodeStateError;

/// Why the agent stopped or a one-shot run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The `--config` file is missing or invalid.
    #[error("invalid agent config: {0}")]
    Config(String),
    /// Reporting to the API server needs the node name.
    #[error(
        "the node name is required to report MultusNodeState: pass --node-name or set NODE_NAME (or pass --no-kube)"
    )]
    NoNodeName,
    /// No in-cluster Kubernetes client.
    #[error("cannot build a Kubernetes client (pass --no-kube to run without one): {0}")]
    Kube(#[source] kube::Error),
    /// A directory cannot be watched.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The watcher error.
        #[source]
        source: notify::Error,
    },
    /// The kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// Reporting to the API server failed.
    #[error(transparent)]
    NodeState(#[from] NodeStateError),
    /// `--once` could not generate a current config.
    #[error("the Multus config is not current: {0}")]
    NotReady(String),
    /// The HTTP server failed.
    #[error("the health/metrics server failed: {0}")]
    Http(#[source] std::io::Error),
    /// No in-cluster Kubernetes configuration.
    #[error("cannot find the Kubernetes configuration (pass --no-kube to run without one): {0}")]
    KubeConfig(#[source] kube::config::InferConfigError),
}
