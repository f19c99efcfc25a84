//! What the node agent puts into `00-multus.conf` besides the primary config:
//! the settings the controller renders from a `MultusConfig` spec. This type
//! is also the node agent's `--config` file format (YAML or JSON).

use serde::{Deserialize, Serialize};

use crate::agent_api;
use crate::cni::CniVersion;
use crate::crd::MultusConfigSpec;
use crate::multus_conf::LogLevel;

/// The kubeconfig path written into the generated config by default.
pub const DEFAULT_KUBECONFIG_PATH: &str = "/etc/cni/net.d/multus.d/multus.kubeconfig";

/// Options of the generated Multus config. Unset options are left out of the
/// generated file so the plugin applies its documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    /// Host path of the plugin's kubeconfig; `None` writes no `kubeconfig`
    /// key (the plugin then runs without Kubernetes access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Plugin log level.
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
    /// Host file the plugin logs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Whether the plugin logs to stderr.
    #[serde(default = "default_true")]
    pub log_to_stderr: bool,
    /// Namespace isolation of NAD references.
    #[serde(default)]
    pub namespace_isolation: bool,
    /// Namespaces whose NADs are usable from every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_namespaces: Vec<String>,
    /// Namespaces without default networks; `None` keeps the plugin default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_namespaces: Option<Vec<String>>,
    /// Namespace of cluster/default network NADs; `None` keeps the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus_namespace: Option<String>,
    /// Cluster network reference, used by the plugin instead of the embedded
    /// primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<String>,
    /// Networks attached to every non-system pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_networks: Vec<String>,
    /// File that must exist before the config is generated and ADD proceeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_indicator_file: Option<String>,
    /// Extra directory for delegate binaries (`binDir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_bin_dir: Option<String>,
    /// The kubelet's PodResources socket (`podResourcesSocket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_resources_socket: Option<String>,
    /// The node agent's lookup socket (`nodeAgentSocket`); `None`: the
    /// plugin reads only from the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_agent_socket: Option<String>,
    /// The node agent's report socket (`nodeAgentReportSocket`); `None`:
    /// the plugin reports nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_agent_report_socket: Option<String>,
    /// Directory of NAD file references (`confDir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus_conf_dir: Option<String>,
    /// Directory of the per-container cache (`cniDir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
    /// CNI version of the generated config; `None` uses the primary's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<CniVersion>,
    /// File name of the primary config; `None` elects automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_config_file: Option<String>,
}

fn default_log_level() -> LogLevel {
    LogLevel::Verbose
}

fn default_true() -> bool {
    true
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            log_level: default_log_level(),
            log_file: None,
            log_to_stderr: true,
            namespace_isolation: false,
            global_namespaces: Vec::new(),
            system_namespaces: None,
            multus_namespace: None,
            cluster_network: None,
            default_networks: Vec::new(),
            readiness_indicator_file: None,
            additional_bin_dir: None,
            pod_resources_socket: None,
            node_agent_socket: None,
            node_agent_report_socket: None,
            multus_conf_dir: None,
            cache_dir: None,
            cni_version: None,
            primary_config_file: None,
        }
    }
}

impl GeneratorOptions {
    /// The options a `MultusConfig` spec asks for; `kubeconfig` is the host
    /// path the node agent writes the plugin's kubeconfig to.
    pub fn from_spec(spec: &MultusConfigSpec, kubeconfig: Option<String>) -> Self {
        Self {
            kubeconfig,
            log_level: spec.log_level().log_level(),
            log_file: spec.log_file.clone(),
            log_to_stderr: true,
            namespace_isolation: spec.namespace_isolation(),
            global_namespaces: spec.global_namespaces.clone().unwrap_or_default(),
            system_namespaces: spec.system_namespaces.clone(),
            multus_namespace: spec.multus_namespace.clone(),
            cluster_network: spec.cluster_network.clone(),
            default_networks: spec.default_networks.clone().unwrap_or_default(),
            readiness_indicator_file: spec.readiness_indicator_file.clone(),
            additional_bin_dir: spec.additional_bin_dir.clone(),
            pod_resources_socket: spec.pod_resources_socket.clone(),
            node_agent_socket: Some(agent_api::DEFAULT_LOOKUP_SOCKET.to_owned()),
            node_agent_report_socket: Some(agent_api::DEFAULT_REPORT_SOCKET.to_owned()),
            multus_conf_dir: spec.multus_conf_dir.clone(),
            cache_dir: spec.cache_dir.clone(),
            cni_version: spec.cni_version.map(|v| v.cni_version()),
            primary_config_file: spec.pinned_primary_config_file().map(str::to_owned),
        }
    }
}
