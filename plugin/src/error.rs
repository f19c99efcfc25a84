//! Errors of the plugin and their CNI error codes.

use multus_config::cni::error::{CniError, ErrorCode};

/// Everything that can make a CNI command of `multus` fail.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A CNI environment variable is missing or invalid.
    #[error("{0}")]
    Env(String),
    /// The Multus config on stdin cannot be used.
    #[error("invalid Multus config: {0}")]
    Config(String),
    /// A network's config (NAD, file, cluster network) cannot be used.
    #[error("{0}")]
    NetworkConfig(String),
    /// A pod annotation cannot be used.
    #[error("{0}")]
    Annotation(String),
    /// The Kubernetes API could not answer.
    #[error("{msg}")]
    Kubernetes {
        /// What failed, naming the object.
        msg: String,
        /// Whether a retry may succeed.
        transient: bool,
    },
    /// A delegate plugin failed; `attachment` is `namespace/name` or the
    /// cluster network's name.
    #[error("{attachment}: {error}")]
    Delegate {
        /// The attachment whose delegate failed.
        attachment: String,
        /// The delegate's own error (its code is kept).
        error: CniError,
    },
    /// The per-container cache cannot be read or written.
    #[error("{0}")]
    Cache(String),
    /// Netlink work inside the pod's namespace failed.
    #[error("{0}")]
    Netlink(String),
    /// A file did not appear in time.
    #[error("{0}")]
    Readiness(String),
    /// A result cannot be converted to the requested version.
    #[error("{0}")]
    Version(String),
    /// An attachment whose NAD names a device resource gets no device.
    #[error(transparent)]
    Device(#[from] crate::devices::DeviceError),
    /// The kubelet could not tell which devices the pod holds.
    #[error("{attachment} needs a device of resource {resource}: {error}")]
    Kubelet {
        /// The first attachment that needs a device.
        attachment: String,
        /// Its resource.
        resource: String,
        /// What failed, naming the socket.
        error: crate::podresources::PodResourcesError,
    },
    /// Several failures (DEL keeps going and reports them all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<PluginError>),
}

impl PluginError {
    /// The CNI error object for stdout.
    pub fn to_cni_error(&self) -> CniError {
        let code = match self {
            Self::Env(_) => ErrorCode::InvalidEnvironmentVariables,
            Self::Config(_) | Self::NetworkConfig(_) => ErrorCode::InvalidNetworkConfig,
            Self::Annotation(_) => ErrorCode::InvalidAnnotation,
            Self::Kubernetes {
                transient: true, ..
            } => ErrorCode::TryAgainLater,
            Self::Kubernetes { .. } => ErrorCode::KubernetesApi,
            Self::Delegate { attachment, error } => {
                let mut err = error.clone();
                err.msg = format!("{attachment}: {}", error.msg);
                return err;
            }
            Self::Cache(_) => ErrorCode::CacheFailure,
            Self::Netlink(_) => ErrorCode::NetlinkFailure,
            Self::Readiness(_) => ErrorCode::ReadinessTimeout,
            Self::Version(_) => ErrorCode::IncompatibleCniVersion,
            Self::Device(_) => ErrorCode::InvalidNetworkConfig,
            Self::Kubelet { .. } => ErrorCode::TryAgainLater,
            Self::Many(errors) => {
                let first = errors
                    .first()
                    .map(Self::to_cni_error)
                    .and_then(|e| e.error_code())
                    .unwrap_or(ErrorCode::DelegateFailed);
                return CniError::new(first, self.to_string(), "");
            }
        };
        CniError::new(code, self.to_string(), "")
    }
}

impl From<crate::k8s::K8sError> for PluginError {
    /// Keeps whether a retry may help.
    fn from(e: crate::k8s::K8sError) -> Self {
        Self::Kubernetes {
            transient: e.is_transient(),
            msg: e.to_string(),
        }
    }
}

/// Shorthand for results of the plugin.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(PluginError::Env("x".into()).to_cni_error().code, 4);
        assert_eq!(PluginError::Config("x".into()).to_cni_error().code, 7);
        let transient = PluginError::Kubernetes {
            msg: "timeout".into(),
            transient: true,
        };
        assert_eq!(transient.to_cni_error().code, 11, "retryable");
    }

    #[test]
    fn delegate_errors_keep_the_delegate_code_and_name_the_attachment() {
        let err = PluginError::Delegate {
            attachment: "ns/macvlan".into(),
            error: CniError::new(ErrorCode::IoFailure, "no such device eth9", "details"),
        };
        let cni = err.to_cni_error();
        assert_eq!(cni.code, 5);
        assert_eq!(cni.msg, "ns/macvlan: no such device eth9");
        assert_eq!(cni.details, "details");
    }

    #[test]
    fn many_errors_are_joined() {
        let err = PluginError::Many(vec![
            PluginError::Cache("a".into()),
            PluginError::Netlink("b".into()),
        ]);
        let cni = err.to_cni_error();
        assert_eq!(cni.msg, "a; b");
        assert_eq!(cni.code, 102);
    }
}
