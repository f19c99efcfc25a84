//! `MultusConfig` (`multus.dev/v1alpha1`, cluster-scoped): how Multus is
//! installed and configured on a pool of nodes.
//!
//! Every spec field is optional; the accessor of the same name returns the
//! documented default when a field is unset, so the controller and the docs
//! share one source of truth.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::multus_conf::{
    DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, DEFAULT_CONF_DIR, DEFAULT_MULTUS_NAMESPACE,
    DEFAULT_SYSTEM_NAMESPACES,
};

/// Default image repository of the operator and node agent.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/multus-rs/multus";
/// Default priority class of the node agent pods.
pub const DEFAULT_PRIORITY_CLASS: &str = "system-node-critical";
/// Default `updateStrategy.maxUnavailable` of the node agent DaemonSet.
pub const DEFAULT_MAX_UNAVAILABLE: &str = "10%";
/// Default host directory of CNI configs.
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Default seconds a rollout may make no progress before it is Degraded.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// Default lifetime in seconds of the plugin's API token.
pub const DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS: u32 = 86_400;
/// Shortest plugin token lifetime the API server issues (TokenRequest).
pub const MIN_PLUGIN_TOKEN_EXPIRATION_SECONDS: u32 = 600;
/// Longest plugin token lifetime a MultusConfig may ask for (30 days).
pub const MAX_PLUGIN_TOKEN_EXPIRATION_SECONDS: u32 = 2_592_000;
/// `primaryConfigFile` value that elects the primary automatically.
pub const PRIMARY_CONFIG_AUTO: &str = "auto";

/// Installation and configuration of Multus on the nodes selected by
/// `placement.nodeSelector` (all nodes when unset).
// kube's printcolumn(...) lists repeat keys such as `type_` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multus.dev",
    version = "v1alpha1",
    kind = "MultusConfig",
    plural = "multusconfigs",
    singular = "multusconfig",
    shortname = "mc",
    category = "multus",
    status = "MultusConfigStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether Multus is installed and current on every selected node"
    ),
    printcolumn(
        name = "Nodes-Ready",
        type_ = "integer",
        json_path = ".status.readyNodes",
        description = "Nodes whose agent is ready"
    ),
    printcolumn(
        name = "Nodes-Desired",
        type_ = "integer",
        json_path = ".status.desiredNodes",
        description = "Nodes selected by this MultusConfig"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MultusConfigSpec {
    /// Image of the node agent (which also carries the plugin binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// Which nodes run the agent and how it is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Resources of the node agent container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Priority class of the agent pods. Default: system-node-critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Rolling update settings of the agent DaemonSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Seconds a rollout may make no progress before the MultusConfig turns
    /// Degraded. Default: 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30, max = 86400))]
    pub progress_deadline_seconds: Option<u32>,
    /// What removing Multus from a node (the MultusConfig deleted) does
    /// while pods there still have secondary networks attached through
    /// Multus. `Wait` (default): the removal waits until those pods are
    /// gone (their DEL still goes through Multus and releases every
    /// attachment), naming them in the status and Events; after
    /// progressDeadlineSeconds the controller gives up and Multus stays
    /// on that node. `Detach`: the agent DELs each remaining secondary
    /// attachment with its cached config (addresses released, the pods
    /// keep their cluster network only, an Event on each pod), then
    /// removes Multus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_pods_on_removal: Option<AttachedPodsPolicy>,
    /// Upstream Multus's thick-plugin delegate API (`POST /delegate` on a
    /// root-only unix socket), which tools such as
    /// multus-dynamic-networks-controller use to add networks to running
    /// pods. Served by the node agent; the delegates run in a `multus`
    /// child process in the container runtime's cgroup, never in the
    /// agent. Enabling it runs the agent pods in the host's PID namespace.
    /// Default: disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_api: Option<DelegateApiSpec>,
    /// Network hot-plug: when the `k8s.v1.cni.cncf.io/networks`
    /// annotation of a running pod changes, the node agent attaches the
    /// networks added to it and detaches the removed ones, in the pod's
    /// sandbox (found through the container runtime's CRI API), with the
    /// plugin's own planning, naming, cache and network-status; Events on
    /// the pod say what was done or why not. Enabling it runs the agent
    /// pods in the host's PID namespace. Default: disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_hotplug: Option<NetworkHotplugSpec>,
    /// Lifetime in seconds of the API token the node agent requests for the
    /// plugin's own ServiceAccount. The agent refreshes it at half its
    /// life, so pods keep starting on a node whose agent is down for at
    /// least half of this. The API server may issue shorter tokens
    /// (`--service-account-max-token-expiration`). Default: 86400 (24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 600, max = 2_592_000))]
    pub plugin_token_expiration_seconds: Option<u32>,
    /// Host directory of CNI configs (where 00-multus.conf is written).
    /// Default: /etc/cni/net.d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub cni_conf_dir: Option<String>,
    /// Host directory of CNI plugin binaries. Default: /opt/cni/bin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub cni_bin_dir: Option<String>,
    /// Host directory of CNI configs referenced by NADs without
    /// `spec.config`. Default: /etc/cni/multus/net.d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub multus_conf_dir: Option<String>,
    /// Host directory of the plugin's per-container cache.
    /// Default: /var/lib/cni/multus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub cache_dir: Option<String>,
    /// `auto` elects the lexically first CNI config of `cniConfDir`; a file
    /// name pins the primary (default) network config. Default: auto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(auto|[^/]+\.(conf|conflist))$"))]
    pub primary_config_file: Option<String>,
    /// CNI version of the generated Multus config. Default: the primary's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<CniVersionSpec>,
    /// Log level of the plugin. Default: verbose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<PluginLogLevel>,
    /// Host file the plugin also logs to. Default: none (stderr only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub log_file: Option<String>,
    /// Pods may only use NADs of their own namespace and of
    /// `globalNamespaces`. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_isolation: Option<bool>,
    /// Namespaces whose NADs every pod may use under namespace isolation.
    /// Default: [default].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_namespaces: Option<Vec<String>>,
    /// Namespaces whose pods get no `defaultNetworks` and no network-status.
    /// Default: [kube-system].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_namespaces: Option<Vec<String>>,
    /// Namespace of the NADs named by clusterNetwork, defaultNetworks and
    /// the default-network pod annotation. Default: kube-system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub multus_namespace: Option<String>,
    /// Cluster network (NAD name, CNI network name, or host path) instead of
    /// the elected primary config. Default: the elected primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<String>,
    /// Networks attached to every pod outside systemNamespaces.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_networks: Option<Vec<String>>,
    /// Host file that must exist before Multus config is generated and before
    /// ADD proceeds (the default network is ready). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub readiness_indicator_file: Option<String>,
    /// Extra host directory searched for delegate plugin binaries.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub additional_bin_dir: Option<String>,
    /// Host path of the kubelet's PodResources socket, asked which devices
    /// a pod holds when a NAD names a `resourceName` (docs/devices.md).
    /// Default: /var/lib/kubelet/pod-resources/kubelet.sock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*"))]
    pub pod_resources_socket: Option<String>,
}

/// Where the agent image comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository. Default: ghcr.io/multus-rs/multus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub repository: Option<String>,
    /// Image tag or `@sha256:` digest. Default: the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tag: Option<String>,
    /// Image pull policy. Default: IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Names of image pull secrets in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<String>>,
}

/// `spec.delegateApi`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateApiSpec {
    /// Serve the API. Default: false (upstream's thick daemon may own its
    /// socket on nodes migrating from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Host path of the socket. Default: /run/multus/multus.sock
    /// (upstream's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*[^/]$"), length(max = 107))]
    pub socket_path: Option<String>,
}

/// `spec.networkHotplug`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkHotplugSpec {
    /// Follow annotation changes of running pods. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Host path of the container runtime's CRI socket, asked for a pod's
    /// sandbox and network namespace. Default:
    /// /run/containerd/containerd.sock (CRI-O: /var/run/crio/crio.sock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/.*[^/]$"), length(max = 107))]
    pub cri_socket: Option<String>,
}

/// What removing Multus from a node does with pods that still have
/// secondary networks attached through it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AttachedPodsPolicy {
    /// Wait until those pods are gone.
    #[default]
    Wait,
    /// Detach their secondary networks, then remove Multus.
    Detach,
}

impl AttachedPodsPolicy {
    /// The policy as the spec spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "Wait",
            Self::Detach => "Detach",
        }
    }
}

/// Kubernetes image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy as Kubernetes spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Scheduling of the node agent pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Nodes this MultusConfig applies to. Default: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the agent pods. Default: tolerate everything, so every
    /// node (control plane and tainted nodes included) gets Multus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity of the agent pods. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// Rolling update settings of the agent DaemonSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Nodes (count or percentage) updated at once. Default: 10%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// CNI versions the generated Multus config may use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CniVersionSpec {
    #[serde(rename = "0.3.0")]
    V0_3_0,
    #[serde(rename = "0.3.1")]
    V0_3_1,
    #[serde(rename = "0.4.0")]
    V0_4_0,
    #[serde(rename = "1.0.0")]
    V1_0_0,
    #[serde(rename = "1.1.0")]
    V1_1_0,
}

impl CniVersionSpec {
    /// The same version as the CNI type.
    pub const fn cni_version(self) -> crate::cni::CniVersion {
        use crate::cni::CniVersion as V;
        match self {
            Self::V0_3_0 => V::V0_3_0,
            Self::V0_3_1 => V::V0_3_1,
            Self::V0_4_0 => V::V0_4_0,
            Self::V1_0_0 => V::V1_0_0,
            Self::V1_1_0 => V::V1_1_0,
        }
    }
}

/// Plugin log levels, least to most verbose.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginLogLevel {
    Panic,
    Error,
    Verbose,
    Debug,
}

impl PluginLogLevel {
    /// The same level as the Multus config type.
    pub const fn log_level(self) -> crate::multus_conf::LogLevel {
        use crate::multus_conf::LogLevel as L;
        match self {
            Self::Panic => L::Panic,
            Self::Error => L::Error,
            Self::Verbose => L::Verbose,
            Self::Debug => L::Debug,
        }
    }
}

/// Observed state of a MultusConfig.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultusConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Nodes that should run the agent.
    #[serde(default)]
    pub desired_nodes: i32,
    /// Nodes whose agent is ready and whose Multus config is current.
    #[serde(default)]
    pub ready_nodes: i32,
    /// Nodes running the agent of the current spec.
    #[serde(default)]
    pub updated_nodes: i32,
    /// Primary (default) networks elected on the nodes, with node counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_networks: Vec<PrimaryNetworkSummary>,
    /// NetworkAttachmentDefinitions that failed validation.
    #[serde(default)]
    pub invalid_network_attachment_definitions: i32,
    /// The API server's version (`gitVersion`), as the controller last
    /// read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// What this cluster offers that Multus uses where it exists (features
    /// of newer Kubernetes versions), and whether it is in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_features: Vec<ClusterFeature>,
}

/// A cluster feature Multus uses where the API server offers it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFeature {
    /// `NodeBoundPluginTokens` (the plugin's tokens are bound to their
    /// Node), `PluginAdmissionPolicy` (an admission policy limits the
    /// plugin's writes to the pods of its node) or
    /// `DynamicResourceAllocation` (NADs get devices of ResourceClaims).
    pub name: String,
    /// Whether it is in use.
    pub state: FeatureState,
    /// What it means here, and why it is not in use.
    pub message: String,
}

/// Whether a cluster feature is in use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FeatureState {
    /// In use everywhere it applies.
    Active,
    /// In use on some nodes only.
    Partial,
    /// The cluster does not offer it, or it is not installed.
    Unavailable,
    /// Not known yet (no node has reported, or the controller cannot look).
    Unknown,
}

impl FeatureState {
    /// The state as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Partial => "Partial",
            Self::Unavailable => "Unavailable",
            Self::Unknown => "Unknown",
        }
    }
}

/// One primary network seen on the nodes of a MultusConfig.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryNetworkSummary {
    /// CNI network name of the elected primary config.
    pub name: String,
    /// Nodes that elected it.
    pub nodes: i32,
}

/// Condition type: Multus is installed and current on every selected node.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: a rollout is under way.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: something needs a user's attention.
pub const CONDITION_DEGRADED: &str = "Degraded";

impl MultusConfigSpec {
    /// Image repository, defaulted.
    pub fn image_repository(&self) -> &str {
        self.image
            .as_ref()
            .and_then(|i| i.repository.as_deref())
            .unwrap_or(DEFAULT_IMAGE_REPOSITORY)
    }

    /// Image pull policy, defaulted.
    pub fn image_pull_policy(&self) -> PullPolicy {
        self.image
            .as_ref()
            .and_then(|i| i.pull_policy)
            .unwrap_or(PullPolicy::IfNotPresent)
    }

    /// Priority class, defaulted.
    pub fn priority_class_name(&self) -> &str {
        self.priority_class_name
            .as_deref()
            .unwrap_or(DEFAULT_PRIORITY_CLASS)
    }

    /// `maxUnavailable`, defaulted.
    pub fn max_unavailable(&self) -> IntOrString {
        self.update_strategy
            .as_ref()
            .and_then(|u| u.max_unavailable.clone())
            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_UNAVAILABLE.to_owned()))
    }

    /// Rollout progress deadline in seconds, defaulted.
    pub fn progress_deadline_seconds(&self) -> u32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// What removal does with attached pods, defaulted.
    pub fn attached_pods_on_removal(&self) -> AttachedPodsPolicy {
        self.attached_pods_on_removal.unwrap_or_default()
    }

    /// The delegate API's socket (host path) when it is enabled.
    pub fn delegate_socket(&self) -> Option<&str> {
        let api = self.delegate_api.as_ref()?;
        api.enabled.unwrap_or(false).then(|| {
            api.socket_path
                .as_deref()
                .unwrap_or(crate::delegate_api::DEFAULT_SOCKET_PATH)
        })
    }

    /// The CRI socket (host path) when network hot-plug is enabled.
    pub fn network_hotplug_cri_socket(&self) -> Option<&str> {
        let hotplug = self.network_hotplug.as_ref()?;
        hotplug.enabled.unwrap_or(false).then(|| {
            hotplug
                .cri_socket
                .as_deref()
                .unwrap_or(crate::hotplug::DEFAULT_CRI_SOCKET)
        })
    }

    /// Whether the agent runs `multus` children in the host's namespaces
    /// and the runtime's cgroup (delegate API, network hot-plug): the
    /// agent pods then share the host's PID namespace.
    pub fn runs_host_children(&self) -> bool {
        self.delegate_socket().is_some() || self.network_hotplug_cri_socket().is_some()
    }

    /// Plugin token lifetime in seconds, defaulted.
    pub fn plugin_token_expiration_seconds(&self) -> u32 {
        self.plugin_token_expiration_seconds
            .unwrap_or(DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS)
    }

    /// Host CNI config dir, defaulted.
    pub fn cni_conf_dir(&self) -> &str {
        self.cni_conf_dir.as_deref().unwrap_or(DEFAULT_CNI_CONF_DIR)
    }

    /// Host CNI bin dir, defaulted.
    pub fn cni_bin_dir(&self) -> &str {
        self.cni_bin_dir.as_deref().unwrap_or(DEFAULT_BIN_DIR)
    }

    /// Host Multus conf dir (NAD file references), defaulted.
    pub fn multus_conf_dir(&self) -> &str {
        self.multus_conf_dir.as_deref().unwrap_or(DEFAULT_CONF_DIR)
    }

    /// Host cache dir, defaulted.
    pub fn cache_dir(&self) -> &str {
        self.cache_dir.as_deref().unwrap_or(DEFAULT_CNI_DIR)
    }

    /// The pinned primary config file, or `None` for automatic election.
    pub fn pinned_primary_config_file(&self) -> Option<&str> {
        self.primary_config_file
            .as_deref()
            .filter(|f| *f != PRIMARY_CONFIG_AUTO)
    }

    /// Plugin log level, defaulted.
    pub fn log_level(&self) -> PluginLogLevel {
        self.log_level.unwrap_or(PluginLogLevel::Verbose)
    }

    /// Whether namespace isolation is on, defaulted.
    pub fn namespace_isolation(&self) -> bool {
        self.namespace_isolation.unwrap_or(false)
    }

    /// System namespaces, defaulted.
    pub fn system_namespaces(&self) -> Vec<String> {
        self.system_namespaces.clone().unwrap_or_else(|| {
            DEFAULT_SYSTEM_NAMESPACES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        })
    }

    /// Multus namespace, defaulted.
    pub fn multus_namespace(&self) -> &str {
        self.multus_namespace
            .as_deref()
            .unwrap_or(DEFAULT_MULTUS_NAMESPACE)
    }
}
