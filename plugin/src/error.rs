//! Errors of the plugin and their CNI error codes.
//!
//! Every failure keeps its typed cause down to [`PluginError::to_cni_error`]
//! (and [`DelegateError::to_cni_error`] for delegates), the one place that
//! turns it into the CNI error object (code, `msg`, `details`) printed on
//! stdout.

use multus_config::cni::CniVersion;
use multus_config::cni::error::{CniError, ErrorCode};
use multus_config::cni::netconf::ConfigError;
use multus_config::cni::result::{ConvertError, ResultError};
use multus_config::cni::version::UnknownVersion;
use multus_config::multus_conf::MultusConfError;
use multus_config::npwg::NETWORKS_ANNOTATION;
use multus_config::npwg::nad::NadError;
use multus_config::npwg::selection::AnnotationError;
use serde_json::Value;

use crate::cache::CacheError;
use crate::commands::gc::VALID_ATTACHMENTS_KEY;
use crate::delegate::DelegateError;
use crate::devices::DeviceError;
use crate::env::EnvError;
use crate::k8s::K8sError;
use crate::netns::NetnsError;
use crate::plan::MASTERPLUGIN_KEY;
use crate::podresources::PodResourcesError;
use crate::readiness::ReadinessError;
use crate::route::RouteError;

/// Everything that can make a CNI command of `multus` fail.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// `CNI_COMMAND` is not set.
    #[error("CNI_COMMAND is not set")]
    NoCommand,
    /// `CNI_COMMAND` is not a command of the spec.
    #[error("unknown CNI_COMMAND {0:?}")]
    UnknownCommand(String),
    /// The answer to VERSION cannot be encoded.
    #[error("cannot encode the VERSION answer")]
    VersionAnswer(#[source] serde_json::Error),
    /// A CNI environment variable is missing or invalid.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The async runtime of the invocation cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The Multus config on stdin cannot be used.
    #[error("invalid Multus config: {0}")]
    Config(#[from] MultusConfigError),
    /// A network's config (NAD, file, cluster network) cannot be used.
    #[error(transparent)]
    NetworkConfig(Box<NetworkConfigError>),
    /// What the pod's annotations ask for cannot be done.
    #[error(transparent)]
    PodRequest(Box<PodRequestError>),
    /// The Kubernetes API could not answer.
    #[error(transparent)]
    Kubernetes(#[from] K8sError),
    /// The runtime named a pod the API does not have.
    #[error("pod {namespace}/{name} not found: it was deleted or the runtime's CNI_ARGS are wrong")]
    PodNotFound {
        /// `K8S_POD_NAMESPACE`.
        namespace: String,
        /// `K8S_POD_NAME`.
        name: String,
    },
    /// A delegate plugin failed; `attachment` is `namespace/name` or the
    /// cluster network's name. Shown as its CNI error (message, then the
    /// details if any).
    #[error("{attachment}: {}", .error.to_cni_error())]
    Delegate {
        /// The attachment whose delegate failed.
        attachment: String,
        /// Why (a plugin's own error keeps its code).
        #[source]
        error: Box<DelegateError>,
    },
    /// A delegate's result cannot be encoded again.
    #[error("{attachment}: {source}")]
    DelegateResult {
        /// The attachment whose delegate returned it.
        attachment: String,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The per-container cache cannot be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Netlink work inside the pod's namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The pod's default routes could not be set.
    #[error(transparent)]
    DefaultRoute(RouteError),
    /// The readiness indicator file did not appear in time (ADD).
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
    /// STATUS: the readiness indicator file does not exist.
    #[error("readiness: {0}")]
    NotReady(#[source] ReadinessError),
    /// A result cannot be converted to the requested version.
    #[error(transparent)]
    ResultConversion(#[from] ResultConversionError),
    /// An attachment whose NAD names a device resource gets no device.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The kubelet could not tell which devices the pod holds.
    #[error("{attachment} needs a device of resource {resource}: {error}")]
    Kubelet {
        /// The first attachment that needs a device.
        attachment: String,
        /// Its resource.
        resource: String,
        /// What failed, naming the socket.
        #[source]
        error: PodResourcesError,
    },
    /// The pod's ResourceClaims or its node's ResourceSlices could not be
    /// read (the device plugins left an attachment without a device).
    #[error("{attachment} needs a device of resource {resource}: {error}")]
    ResourceClaims {
        /// The first attachment the device plugins have no device for.
        attachment: String,
        /// Its resource.
        resource: String,
        /// What failed, naming the claim or the slices (boxed: the
        /// largest cause).
        #[source]
        error: Box<K8sError>,
    },
    /// Several failures (DEL keeps going and reports them all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<PluginError>),
}

/// Why the Multus config cannot be used (shown after "invalid Multus
/// config: ").
#[derive(Debug, thiserror::Error)]
pub enum MultusConfigError {
    /// The config on stdin does not parse or validate.
    #[error(transparent)]
    Parse(#[from] MultusConfError),
    /// Its `cniVersion` is not one we know.
    #[error(transparent)]
    CniVersion(#[from] UnknownVersion),
    /// Two inline delegates claim the cluster network.
    #[error(
        "delegates[{first}] and delegates[{second}] both set \"{key}\": true; at most one delegate can be the cluster network",
        key = MASTERPLUGIN_KEY
    )]
    TwoMasterplugins {
        /// The first claiming delegate.
        first: usize,
        /// The second one.
        second: usize,
    },
    /// `masterplugin` of an inline delegate is not a boolean.
    #[error("delegates[{index}].{key} must be true or false, not {value}", key = MASTERPLUGIN_KEY)]
    MasterpluginNotBool {
        /// The delegate's position.
        index: usize,
        /// Its `masterplugin` value.
        value: Value,
    },
    /// An inline delegate is not a network config.
    #[error("delegates[{index}]: {source}")]
    Delegate {
        /// The delegate's position.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// Neither `clusterNetwork` nor inline delegates give a cluster network.
    #[error("no cluster network: set clusterNetwork or delegates")]
    NoClusterNetwork,
    /// ADD ran but no attachment was the cluster network.
    #[error("no cluster network result")]
    NoClusterNetworkResult,
    /// GC's `cni.dev/valid-attachments` has the wrong shape.
    #[error("{key} is not a list of {{containerID, ifname}}: {0}", key = VALID_ATTACHMENTS_KEY)]
    ValidAttachments(#[source] serde_json::Error),
}

/// Why a network named by the config or the pod cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NetworkConfigError {
    /// A network path names a directory without a config file.
    #[error("network {reference:?}: the directory holds no .conf, .conflist or .json file")]
    EmptyDirectory {
        /// The path.
        reference: String,
    },
    /// A network path cannot be read.
    #[error("network {reference:?}: cannot read it: {source}")]
    Unreadable {
        /// The path.
        reference: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A network file is not a network config.
    #[error("network {reference:?} ({file}): {source}")]
    InvalidFile {
        /// The path given.
        reference: String,
        /// The file read.
        file: String,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// A reference is neither a NAD nor a config of the conf dir.
    #[error(
        "network {reference:?}: no NetworkAttachmentDefinition {namespace}/{reference} and no config named {reference:?} in {conf_dir}: {source}"
    )]
    Unresolved {
        /// The reference.
        reference: String,
        /// The namespace it was looked up in.
        namespace: String,
        /// The Multus conf dir.
        conf_dir: String,
        /// Why the conf dir does not resolve it.
        #[source]
        source: NadError,
    },
    /// A NAD's config cannot be resolved.
    #[error(transparent)]
    Nad(#[from] NadError),
    /// The resolved config of a reference is not a network config.
    #[error("network {namespace}/{reference}: {source}")]
    InvalidReferenced {
        /// The namespace it was looked up in.
        namespace: String,
        /// The reference.
        reference: String,
        /// What is wrong with the config.
        #[source]
        source: ConfigError,
    },
    /// The resolved config of a NAD the pod asks for is not a network
    /// config.
    #[error("{network}: {source}")]
    InvalidRequested {
        /// `namespace/name` of the NAD.
        network: String,
        /// What is wrong with the config.
        #[source]
        source: ConfigError,
    },
    /// A NAD the pod asks for does not exist.
    #[error(
        "NetworkAttachmentDefinition {network} not found (named by the pod's {annotation} annotation)",
        annotation = NETWORKS_ANNOTATION
    )]
    NadNotFound {
        /// `namespace/name` of the NAD.
        network: String,
    },
}

/// Why what the pod's annotations ask for cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum PodRequestError {
    /// The networks or default-network annotation does not parse.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// The pod may not use a NAD of another namespace.
    #[error(
        "namespace isolation: pod {pod} may not use NetworkAttachmentDefinition {network} (allowed: its own namespace and {allowed})"
    )]
    NamespaceIsolation {
        /// `namespace/name` of the pod.
        pod: String,
        /// `namespace/name` of the NAD.
        network: String,
        /// The global namespaces, comma-separated.
        allowed: String,
    },
    /// The pod asks for capabilities no plugin of the network declares.
    #[error(
        "{network}: the pod requests {} but no plugin of this network declares the capability (add \"capabilities\": {{{}}} to the NAD's config)",
        .undeclared.join(", "),
        .undeclared.iter().map(|k| format!("\"{k}\": true")).collect::<Vec<_>>().join(", ")
    )]
    UndeclaredCapabilities {
        /// `namespace/name` of the NAD.
        network: String,
        /// The capability keys.
        undeclared: Vec<String>,
    },
    /// An interface name is not valid.
    #[error("{attachment}: interface name {ifname:?} is invalid: {problem}")]
    InvalidInterfaceName {
        /// The attachment.
        attachment: String,
        /// The name.
        ifname: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two attachments ask for the same interface.
    #[error("interface {ifname:?} is requested by both {first} and {second}")]
    DuplicateInterface {
        /// The interface.
        ifname: String,
        /// The attachment planned first.
        first: String,
        /// The other one.
        second: String,
    },
    /// The interface exists in the pod's namespace already.
    #[error("{attachment}: interface {ifname:?} already exists in the pod's network namespace")]
    InterfaceExists {
        /// The attachment.
        attachment: String,
        /// The interface.
        ifname: String,
    },
    /// The default-route requests cannot be honoured together.
    #[error(transparent)]
    DefaultRoute(#[from] RouteError),
}

/// Why a delegate's result cannot be turned into the result to return.
#[derive(Debug, thiserror::Error)]
pub enum ResultConversionError {
    /// The cluster network's result does not parse.
    #[error("cluster network result: {0}")]
    ClusterResult(#[source] ResultError),
    /// The cluster network's result cannot be given in the config's version.
    #[error("cannot return the cluster network's result as CNI {version}: {source}")]
    ClusterVersion {
        /// The Multus config's version.
        version: CniVersion,
        /// Why not.
        #[source]
        source: ConvertError,
    },
    /// A result cannot be converted to its delegate's version.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A result cannot be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

// Boxed (as a delegate's error is): they are the largest causes, and
// every `Result` of the plugin carries a `PluginError`
// (clippy::result_large_err).
impl From<NetworkConfigError> for PluginError {
    fn from(error: NetworkConfigError) -> Self {
        Self::NetworkConfig(Box::new(error))
    }
}

impl From<PodRequestError> for PluginError {
    fn from(error: PodRequestError) -> Self {
        Self::PodRequest(Box::new(error))
    }
}

impl PluginError {
    /// The delegate of `attachment` failed.
    pub fn delegate(attachment: &str, error: DelegateError) -> Self {
        Self::Delegate {
            attachment: attachment.to_owned(),
            error: Box::new(error),
        }
    }

    /// The CNI error code: the one place that decides it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoCommand | Self::UnknownCommand(_) | Self::Env(_) | Self::Runtime(_) => {
                ErrorCode::InvalidEnvironmentVariables
            }
            Self::VersionAnswer(_) => ErrorCode::IoFailure,
            Self::Config(_) | Self::NetworkConfig(_) | Self::Device(_) => {
                ErrorCode::InvalidNetworkConfig
            }
            Self::PodRequest(_) => ErrorCode::InvalidAnnotation,
            Self::Kubernetes(e) if e.is_transient() => ErrorCode::TryAgainLater,
            Self::ResourceClaims { error, .. } if error.is_transient() => ErrorCode::TryAgainLater,
            Self::Kubernetes(_) | Self::ResourceClaims { .. } | Self::PodNotFound { .. } => {
                ErrorCode::KubernetesApi
            }
            Self::Delegate { error, .. } => error
                .to_cni_error()
                .error_code()
                .unwrap_or(ErrorCode::DelegateFailed),
            Self::DelegateResult { .. } => ErrorCode::DecodingFailure,
            Self::Cache(_) => ErrorCode::CacheFailure,
            Self::Netns(_) | Self::DefaultRoute(_) => ErrorCode::NetlinkFailure,
            Self::Readiness(_) => ErrorCode::ReadinessTimeout,
            Self::NotReady(_) => ErrorCode::PluginNotAvailable,
            Self::ResultConversion(_) => ErrorCode::IncompatibleCniVersion,
            Self::Kubelet { .. } => ErrorCode::TryAgainLater,
            Self::Many(errors) => errors.first().map_or(ErrorCode::DelegateFailed, Self::code),
        }
    }

    /// The CNI error `details`: a hint for the operator, or the cause
    /// when `msg` does not show it.
    fn details(&self) -> String {
        match self {
            Self::NoCommand => "the multus CNI plugin is executed by the container runtime; run `multus --version` to see its version".to_owned(),
            Self::UnknownCommand(_) => "expected one of ADD, DEL, CHECK, STATUS, GC, VERSION".to_owned(),
            Self::VersionAnswer(e) => e.to_string(),
            _ => String::new(),
        }
    }

    /// The CNI error object for stdout. A delegate's error keeps its code
    /// and details; its message is prefixed with the attachment.
    pub fn to_cni_error(&self) -> CniError {
        if let Self::Delegate { attachment, error } = self {
            let mut err = error.to_cni_error();
            err.msg = format!("{attachment}: {}", err.msg);
            return err;
        }
        CniError::new(self.code(), self.to_string(), self.details())
    }
}

impl DelegateError {
    /// The CNI error object of a delegate failure: the plugin's own when it
    /// printed one, else one made here for what went wrong.
    pub fn to_cni_error(&self) -> CniError {
        let (code, details) = match self {
            Self::Failed(error) => return error.clone(),
            Self::InvalidType(_) => (
                ErrorCode::InvalidNetworkConfig,
                "a plugin type is a file name in the CNI bin directories",
            ),
            Self::NotFound { .. } => (
                ErrorCode::PluginNotAvailable,
                "install the plugin binary on the node or fix the network's \"type\"",
            ),
            Self::Start { .. } | Self::Wait { .. } => (ErrorCode::IoFailure, ""),
            Self::Timeout { .. } => (ErrorCode::TryAgainLater, "the plugin process was killed"),
            Self::Version(_) => (ErrorCode::IncompatibleCniVersion, ""),
            Self::InvalidResult { output, .. } => (ErrorCode::DecodingFailure, output.as_str()),
            Self::PrevResult(_) => (ErrorCode::DecodingFailure, ""),
            Self::NoPlugins => (ErrorCode::InvalidNetworkConfig, ""),
        };
        CniError::new(code, self.to_string(), details)
    }
}

/// Shorthand for results of the plugin.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(PluginError::from(EnvError::NoNetns).to_cni_error().code, 4);
        let config = PluginError::from(MultusConfigError::NoClusterNetwork);
        assert_eq!(config.to_cni_error().code, 7);
        let transient = PluginError::from(K8sError::Timeout {
            op: "getting pod a/b".into(),
            after: Duration::from_secs(5),
        });
        assert_eq!(transient.to_cni_error().code, 11, "retryable");
    }

    #[test]
    fn claim_read_errors_name_the_attachment_and_keep_transience() {
        let claims = |error: K8sError| PluginError::ResourceClaims {
            attachment: "ns/nic-net".into(),
            resource: "example.com/nic".into(),
            error: Box::new(error),
        };
        let timeout = claims(K8sError::Timeout {
            op: "getting ResourceClaim ns/web-nic".into(),
            after: Duration::from_secs(5),
        });
        assert_eq!(timeout.to_cni_error().code, 11);
        assert_eq!(
            timeout.to_string(),
            "ns/nic-net needs a device of resource example.com/nic: timed out after 5s getting ResourceClaim ns/web-nic"
        );
        let forbidden = claims(K8sError::Api {
            op: "getting ResourceClaim ns/web-nic".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "forbidden".into(),
        });
        assert_eq!(forbidden.to_cni_error().code, 100);
    }

    #[test]
    fn delegate_errors_keep_the_delegate_code_and_name_the_attachment() {
        let err = PluginError::delegate(
            "ns/macvlan",
            DelegateError::Failed(CniError::new(
                ErrorCode::IoFailure,
                "no such device eth9",
                "details",
            )),
        );
        let cni = err.to_cni_error();
        assert_eq!(cni.code, 5);
        assert_eq!(cni.msg, "ns/macvlan: no such device eth9");
        assert_eq!(cni.details, "details");
    }

    #[test]
    fn many_errors_are_joined() {
        let err = PluginError::Many(vec![
            CacheError::InvalidContainerId("a".into()).into(),
            NetnsError::NotFound {
                netns: PathBuf::from("b"),
            }
            .into(),
        ]);
        let cni = err.to_cni_error();
        assert_eq!(
            cni.msg,
            "refusing cache path for invalid container ID \"a\"; network namespace \"b\" does not exist"
        );
        assert_eq!(cni.code, 102);
    }

    #[test]
    fn messages_name_the_config_keys() {
        let err = PluginError::from(MultusConfigError::MasterpluginNotBool {
            index: 1,
            value: Value::from("yes"),
        });
        assert_eq!(
            err.to_string(),
            "invalid Multus config: delegates[1].masterplugin must be true or false, not \"yes\""
        );
        let err = PluginError::from(PodRequestError::UndeclaredCapabilities {
            network: "ns/nad".into(),
            undeclared: vec!["ips".into(), "mac".into()],
        });
        assert_eq!(
            err.to_string(),
            "ns/nad: the pod requests ips, mac but no plugin of this network declares the capability (add \"capabilities\": {\"ips\": true, \"mac\": true} to the NAD's config)"
        );
        let invalid = serde_json::from_str::<Vec<u8>>("{}").unwrap_err();
        let err = PluginError::from(MultusConfigError::ValidAttachments(invalid));
        assert!(
            err.to_string()
                .starts_with("invalid Multus config: cni.dev/valid-attachments is not a list of {containerID, ifname}: "),
            "{err}"
        );
    }
}
