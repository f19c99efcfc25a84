//! The Multus network configuration (`00-multus.conf`) as the `multus`
//! plugin reads it from stdin.
//!
//! Every key of upstream Multus is understood with upstream's default, so a
//! file written for upstream Multus works unchanged. Keys we do not know are
//! kept in [`MultusNetConf::extra`] so nothing is lost on a round trip.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// `confDir` when the config does not set it.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// `cniDir` (the per-container cache) when the config does not set it.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// `binDir` when the config does not set it.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// `multusNamespace` when the config does not set it.
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
/// `systemNamespaces` when the config does not set it.
pub const DEFAULT_SYSTEM_NAMESPACES: &[&str] = &["kube-system"];
/// The namespace whose NADs every pod may use when `namespaceIsolation` is on
/// and `globalNamespaces` is not set.
pub const DEFAULT_GLOBAL_NAMESPACE: &str = "default";
/// The network name of the generated configuration.
pub const MULTUS_NETWORK_NAME: &str = "multus-cni-network";
/// The plugin `type` of the generated configuration.
pub const MULTUS_PLUGIN_TYPE: &str = "multus";
/// The plugin type upstream's thick mode writes; never elected as primary.
pub const MULTUS_SHIM_TYPE: &str = "multus-shim";
/// `podResourcesSocket` when the config does not set it: the kubelet's
/// PodResources API (the path upstream Multus hard-codes).
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// Log verbosity of the plugin, least to most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LogLevel {
    /// Only failures that abort the command (upstream's default).
    #[default]
    Panic,
    Error,
    Verbose,
    Debug,
}

impl LogLevel {
    /// The level as written in the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Error => "error",
            Self::Verbose => "verbose",
            Self::Debug => "debug",
        }
    }

    /// Parses a level case-insensitively, as upstream does.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "panic" => Some(Self::Panic),
            "error" => Some(Self::Error),
            "verbose" => Some(Self::Verbose),
            "debug" => Some(Self::Debug),
            _ => None,
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown logLevel {text:?} (expected panic, error, verbose or debug)"
            ))
        })
    }
}

/// Log file rotation settings (`logOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// Days to keep rotated files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// Size in megabytes at which the file is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// Rotated files to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<u32>,
    /// Whether rotated files are gzip-compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
}

/// The Multus network configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultusNetConf {
    /// CNI version of the Multus config; results are returned in it.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_version: Option<String>,
    /// Network name (`multus-cni-network` when generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Plugin type (`multus`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub plugin_type: Option<String>,
    /// Path of the kubeconfig; absent means in-cluster config or no API access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Inline delegate configs, all attached (without `clusterNetwork`): the
    /// one with `"masterplugin": true`, else the first, is the cluster network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<Value>,
    /// Cluster network as NAD name, CNI network name, directory or file path;
    /// wins over `delegates`.
    #[serde(
        rename = "clusterNetwork",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_network: Option<String>,
    /// Extra networks for every pod outside `systemNamespaces`.
    #[serde(
        rename = "defaultNetworks",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_networks: Vec<String>,
    /// Directory of CNI configs referenced by NADs without `spec.config`.
    #[serde(rename = "confDir", default = "default_conf_dir")]
    pub conf_dir: String,
    /// Directory of the per-container cache.
    #[serde(rename = "cniDir", default = "default_cni_dir")]
    pub cni_dir: String,
    /// Directory searched for delegate binaries before `CNI_PATH`.
    #[serde(rename = "binDir", default = "default_bin_dir")]
    pub bin_dir: String,
    /// File the plugin logs to, in addition to stderr.
    #[serde(rename = "logFile", default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Log verbosity.
    #[serde(rename = "logLevel", default)]
    pub log_level: LogLevel,
    /// Whether the plugin logs to stderr.
    #[serde(rename = "logToStderr", default = "default_true")]
    pub log_to_stderr: bool,
    /// Log rotation settings.
    #[serde(
        rename = "logOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_options: Option<LogOptions>,
    /// File that must exist before ADD proceeds (the default network is ready).
    #[serde(
        rename = "readinessindicatorfile",
        alias = "readinessIndicatorFile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_indicator_file: Option<String>,
    /// Whether pods may only use NADs of their own namespace and the global ones.
    #[serde(rename = "namespaceIsolation", default)]
    pub namespace_isolation: bool,
    /// Namespaces whose NADs any pod may use under namespace isolation
    /// (written comma separated, as upstream does; a JSON list is accepted).
    #[serde(
        rename = "globalNamespaces",
        default,
        deserialize_with = "de_namespace_list",
        serialize_with = "ser_namespace_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub global_namespaces: Vec<String>,
    /// Namespaces whose pods get no `defaultNetworks` and no network-status.
    #[serde(
        rename = "systemNamespaces",
        default = "default_system_namespaces",
        deserialize_with = "de_namespace_list"
    )]
    pub system_namespaces: Vec<String>,
    /// Namespace of the NADs named by `clusterNetwork`, `defaultNetworks` and
    /// the default-network pod annotation.
    #[serde(rename = "multusNamespace", default = "default_multus_namespace")]
    pub multus_namespace: String,
    /// Capabilities advertised to the runtime (union of the primary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    /// Runtime-supplied values for the advertised capabilities.
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_config: Option<Map<String, Value>>,
    /// Keep the cache when a delegate DEL fails so that the runtime's retry
    /// can finish the job.
    #[serde(rename = "retryDeleteOnError", default)]
    pub retry_delete_on_error: bool,
    /// The kubelet's PodResources gRPC socket, asked which devices the pod
    /// holds when a NAD names a device-plugin resource
    /// (`k8s.v1.cni.cncf.io/resourceName`); unset means
    /// [`DEFAULT_POD_RESOURCES_SOCKET`]. Upstream has no key for it.
    #[serde(
        rename = "podResourcesSocket",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_resources_socket: Option<String>,
    /// The node agent's lookup socket: pods and NADs are asked there first
    /// (see [`crate::agent_api`]). Upstream has no key for it.
    #[serde(
        rename = "nodeAgentSocket",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node_agent_socket: Option<String>,
    /// The node agent's report socket for per-command outcomes. Upstream
    /// has no key for it.
    #[serde(
        rename = "nodeAgentReportSocket",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node_agent_report_socket: Option<String>,
    /// Base directory of the device-info files (`dp/` written by device
    /// plugins, `cni/` per attachment); unset means the multi-network
    /// spec's `/var/run/k8s.cni.cncf.io/devinfo`. Upstream has no key for it.
    #[serde(
        rename = "deviceInfoDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info_dir: Option<String>,
    /// Name of an auxiliary plugin chain run after the attachments.
    #[serde(
        rename = "auxiliaryCNIChainName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auxiliary_cni_chain_name: Option<String>,
    /// The previous result in a chained invocation.
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    /// Every key this type does not know, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_conf_dir() -> String {
    DEFAULT_CONF_DIR.to_owned()
}
fn default_cni_dir() -> String {
    DEFAULT_CNI_DIR.to_owned()
}
fn default_bin_dir() -> String {
    DEFAULT_BIN_DIR.to_owned()
}
fn default_true() -> bool {
    true
}
fn default_multus_namespace() -> String {
    DEFAULT_MULTUS_NAMESPACE.to_owned()
}
fn default_system_namespaces() -> Vec<String> {
    DEFAULT_SYSTEM_NAMESPACES
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Splits a comma separated namespace list, dropping blanks.
pub fn split_namespace_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn de_namespace_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Either::Text(text)) => split_namespace_list(&text),
        Some(Either::List(list)) => list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn ser_namespace_list<S: Serializer>(list: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&list.join(","))
}

/// Why a Multus config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MultusConfError {
    /// The bytes are not a valid Multus config document.
    #[error("invalid Multus config: {0}")]
    Parse(#[from] serde_json::Error),
    /// Neither a cluster network nor inline delegates are configured.
    #[error("invalid Multus config: set \"clusterNetwork\" or at least one entry of \"delegates\"")]
    NoClusterNetwork,
    /// `delegates[i]` is not a JSON object.
    #[error("invalid Multus config: delegates[{0}] is not a JSON object")]
    DelegateNotObject(usize),
    /// `cniVersion` is not a version we know.
    #[error("invalid Multus config: {0}")]
    Version(#[from] crate::cni::version::UnknownVersion),
}

impl MultusNetConf {
    /// Parses and validates a Multus config from the bytes the runtime passes
    /// on stdin.
    pub fn parse(bytes: &[u8]) -> Result<Self, MultusConfError> {
        let conf: Self = serde_json::from_slice(bytes)?;
        conf.validate()?;
        Ok(conf)
    }

    /// Checks the rules that serde cannot express.
    pub fn validate(&self) -> Result<(), MultusConfError> {
        if self
            .cluster_network
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
            && self.delegates.is_empty()
        {
            return Err(MultusConfError::NoClusterNetwork);
        }
        if let Some(index) = self.delegates.iter().position(|d| !d.is_object()) {
            return Err(MultusConfError::DelegateNotObject(index));
        }
        self.cni_version()?;
        Ok(())
    }

    /// The config's CNI version; a config without one is 0.1.0 per the spec.
    pub fn cni_version(
        &self,
    ) -> Result<crate::cni::CniVersion, crate::cni::version::UnknownVersion> {
        match self.cni_version.as_deref() {
            None | Some("") => Ok(crate::cni::CniVersion::V0_1_0),
            Some(text) => text.parse(),
        }
    }

    /// The namespaces whose NADs are usable from any namespace under
    /// isolation: `globalNamespaces` or `default` when unset. The Multus
    /// namespace is always global (cluster and default networks live there).
    pub fn effective_global_namespaces(&self) -> Vec<String> {
        let mut list = if self.global_namespaces.is_empty() {
            vec![DEFAULT_GLOBAL_NAMESPACE.to_owned()]
        } else {
            self.global_namespaces.clone()
        };
        if !list.contains(&self.multus_namespace) {
            list.push(self.multus_namespace.clone());
        }
        list
    }

    /// Whether a pod in `pod_namespace` may use a NAD in `nad_namespace`.
    pub fn namespace_allowed(&self, pod_namespace: &str, nad_namespace: &str) -> bool {
        !self.namespace_isolation
            || pod_namespace == nad_namespace
            || self
                .effective_global_namespaces()
                .iter()
                .any(|g| g == nad_namespace)
    }

    /// The kubelet's PodResources socket (`podResourcesSocket` or the
    /// default).
    pub fn pod_resources_socket(&self) -> &str {
        self.pod_resources_socket
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(DEFAULT_POD_RESOURCES_SOCKET)
    }

    /// The base directory of device-info files (`deviceInfoDir` or the
    /// spec's).
    pub fn device_info_dir(&self) -> &str {
        self.device_info_dir
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(crate::npwg::device_info::DEFAULT_DEVICE_INFO_DIR)
    }

    /// Whether pods of `namespace` are system pods (no default networks, no
    /// network-status). Compares the namespace, not the pod name (upstream
    /// bug #1205).
    pub fn is_system_namespace(&self, namespace: &str) -> bool {
        self.system_namespaces.iter().any(|n| n == namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<MultusNetConf, MultusConfError> {
        MultusNetConf::parse(&serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn minimal_config_gets_upstream_defaults() {
        let conf =
            parse(json!({"name": "m", "type": "multus", "clusterNetwork": "k8s-pod-network"}))
                .unwrap();
        assert_eq!(conf.conf_dir, "/etc/cni/multus/net.d");
        assert_eq!(conf.cni_dir, "/var/lib/cni/multus");
        assert_eq!(conf.bin_dir, "/opt/cni/bin");
        assert_eq!(conf.log_level, LogLevel::Panic);
        assert!(conf.log_to_stderr);
        assert!(!conf.namespace_isolation);
        assert!(conf.global_namespaces.is_empty());
        assert_eq!(conf.system_namespaces, vec!["kube-system"]);
        assert_eq!(conf.multus_namespace, "kube-system");
        assert!(!conf.retry_delete_on_error);
        assert!(conf.kubeconfig.is_none());
        assert!(conf.readiness_indicator_file.is_none());
        assert_eq!(conf.cni_version().unwrap(), crate::cni::CniVersion::V0_1_0);
        assert_eq!(
            conf.pod_resources_socket(),
            "/var/lib/kubelet/pod-resources/kubelet.sock"
        );
        assert_eq!(conf.device_info_dir(), "/var/run/k8s.cni.cncf.io/devinfo");
        let back = serde_json::to_value(&conf).unwrap();
        assert!(
            back.get("podResourcesSocket").is_none(),
            "defaults not written"
        );
    }

    #[test]
    fn reads_the_calico_fixture_output() {
        let conf = MultusNetConf::parse(include_bytes!(
            "../../tests/fixtures/net.d-calico/expected-00-multus.conf"
        ))
        .unwrap();
        assert_eq!(conf.log_level, LogLevel::Verbose);
        assert_eq!(conf.delegates.len(), 1);
        assert_eq!(conf.delegates[0]["name"], "k8s-pod-network");
        assert_eq!(
            conf.kubeconfig.as_deref(),
            Some("/etc/cni/net.d/multus.d/multus.kubeconfig")
        );
        assert_eq!(conf.capabilities.unwrap()["portMappings"], true);
    }

    #[test]
    fn every_key_is_read() {
        let conf = parse(json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "kubeconfig": "/k", "delegates": [{"type": "bridge"}], "clusterNetwork": "cn",
            "defaultNetworks": ["a", "b"], "confDir": "/c", "cniDir": "/d", "binDir": "/b",
            "logFile": "/l", "logLevel": "DEBUG", "logToStderr": false,
            "logOptions": {"maxAge": 1, "maxSize": 2, "maxBackups": 3, "compress": true},
            "readinessindicatorfile": "/r", "namespaceIsolation": true,
            "globalNamespaces": "default, tenant-a ,", "systemNamespaces": ["kube-system", "infra"],
            "multusNamespace": "multus", "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": []}, "retryDeleteOnError": true,
            "auxiliaryCNIChainName": "aux", "somethingNew": 7,
            "podResourcesSocket": "/run/kubelet/pr.sock", "deviceInfoDir": "/run/devinfo"
        }))
        .unwrap();
        assert_eq!(conf.default_networks, vec!["a", "b"]);
        assert_eq!(conf.log_level, LogLevel::Debug);
        assert!(!conf.log_to_stderr);
        assert_eq!(conf.log_options.as_ref().unwrap().max_backups, Some(3));
        assert_eq!(conf.readiness_indicator_file.as_deref(), Some("/r"));
        assert_eq!(conf.global_namespaces, vec!["default", "tenant-a"]);
        assert_eq!(conf.system_namespaces, vec!["kube-system", "infra"]);
        assert_eq!(conf.multus_namespace, "multus");
        assert!(conf.retry_delete_on_error);
        assert_eq!(conf.auxiliary_cni_chain_name.as_deref(), Some("aux"));
        assert_eq!(conf.extra["somethingNew"], 7);
        assert_eq!(conf.pod_resources_socket(), "/run/kubelet/pr.sock");
        assert_eq!(conf.device_info_dir(), "/run/devinfo");
        assert!(!conf.extra.contains_key("podResourcesSocket"));
        let back = serde_json::to_value(&conf).unwrap();
        assert_eq!(back["globalNamespaces"], "default,tenant-a");
        assert_eq!(back["somethingNew"], 7);
        assert_eq!(back["logLevel"], "debug");
    }

    #[test]
    fn rejects_configs_without_a_cluster_network() {
        let err = parse(json!({"name": "m", "type": "multus"})).unwrap_err();
        assert!(err.to_string().contains("clusterNetwork"), "{err}");
        let err = parse(json!({"type": "multus", "clusterNetwork": "  "})).unwrap_err();
        assert!(matches!(err, MultusConfError::NoClusterNetwork));
    }

    #[test]
    fn rejects_bad_values_naming_them() {
        let err = parse(json!({"clusterNetwork": "x", "logLevel": "loud"})).unwrap_err();
        assert!(err.to_string().contains("\"loud\""), "{err}");
        let err = parse(json!({"delegates": [{"type": "x"}, 3]})).unwrap_err();
        assert!(err.to_string().contains("delegates[1]"), "{err}");
        let err = parse(json!({"clusterNetwork": "x", "cniVersion": "9.9.9"})).unwrap_err();
        assert!(err.to_string().contains("9.9.9"), "{err}");
        let err = MultusNetConf::parse(b"{\"clusterNetwork\": ").unwrap_err();
        assert!(matches!(err, MultusConfError::Parse(_)));
    }

    #[test]
    fn namespace_isolation_rules() {
        let mut conf = parse(json!({"clusterNetwork": "x"})).unwrap();
        assert!(
            conf.namespace_allowed("a", "b"),
            "isolation off allows everything"
        );
        conf.namespace_isolation = true;
        assert!(conf.namespace_allowed("a", "a"));
        assert!(!conf.namespace_allowed("a", "b"));
        assert!(
            conf.namespace_allowed("a", "default"),
            "default is global by default"
        );
        assert!(
            conf.namespace_allowed("a", "kube-system"),
            "multus namespace is global"
        );
        conf.global_namespaces = vec!["shared".into()];
        assert!(conf.namespace_allowed("a", "shared"));
        assert!(!conf.namespace_allowed("a", "default"));
    }

    #[test]
    fn system_namespaces_compare_the_namespace() {
        let conf = parse(json!({"clusterNetwork": "x"})).unwrap();
        assert!(conf.is_system_namespace("kube-system"));
        assert!(!conf.is_system_namespace("default"));
    }
}
