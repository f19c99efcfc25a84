//! Errors of the controller's reconcilers.

use super::render::RenderError;

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    /// (The client error is part of the message, not a `source`, so that
    /// error chains do not print it twice.)
    #[error("cannot {verb} {what}: {error}")]
    Api {
        /// `apply`, `delete`, `list`, ...
        verb: &'static str,
        /// `DaemonSet multus/multus-agent-default`, ...
        what: String,
        /// The client error.
        error: kube::Error,
    },
    /// The operands could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The object lacks name or uid (never from the API server).
    #[error("the MultusConfig has no {0}")]
    Incomplete(&'static str),
    /// Deletion waits for the agents to remove Multus from the nodes
    /// (not a failure: the reconcile is simply repeated).
    #[error("waiting for {pending} node(s) to remove Multus before the MultusConfig is deleted")]
    UninstallPending {
        /// Nodes still working.
        pending: usize,
    },
    /// The finalizer helper failed (adding/removing the finalizer, or the
    /// apply/cleanup branch).
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Builds [`Error::Api`].
    pub fn api(verb: &'static str, what: impl Into<String>, error: kube::Error) -> Self {
        Self::Api {
            verb,
            what: what.into(),
            error,
        }
    }

    /// The innermost error (through the finalizer wrapper).
    pub fn root(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.root(),
                _ => self,
            },
            other => other,
        }
    }

    /// Whether this is the wait for the agents' uninstall.
    pub fn is_uninstall_pending(&self) -> bool {
        matches!(self.root(), Self::UninstallPending { .. })
    }

    /// A short label for the errors metric.
    pub fn metric_label(&self) -> String {
        use kube::runtime::finalizer::Error as F;
        match self.root() {
            Self::Api { verb, error, .. } => match error {
                kube::Error::Api(status) => format!("{verb}_{}", status.code),
                _ => format!("{verb}_transport"),
            },
            Self::Render(_) => "render".to_owned(),
            Self::Incomplete(_) => "incomplete".to_owned(),
            Self::UninstallPending { .. } => "uninstall_pending".to_owned(),
            Self::Finalizer(inner) => match inner.as_ref() {
                F::AddFinalizer(_) => "add_finalizer".to_owned(),
                F::RemoveFinalizer(_) => "remove_finalizer".to_owned(),
                _ => "finalizer".to_owned(),
            },
        }
    }
}
