//! `MultusNodeState` (`multus.dev/v1alpha1`, cluster-scoped, one per node,
//! named after the node): what the node agent did on its node.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The node a MultusNodeState reports on.
// kube's printcolumn(...) lists repeat keys such as `type_` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multus.dev",
    version = "v1alpha1",
    kind = "MultusNodeState",
    plural = "multusnodestates",
    singular = "multusnodestate",
    shortname = "mns",
    category = "multus",
    status = "MultusNodeStateStatus",
    printcolumn(
        name = "Primary",
        type_ = "string",
        json_path = ".status.primaryConfigFile",
        description = "The elected primary (default network) CNI config file"
    ),
    printcolumn(
        name = "Ready",
        type_ = "boolean",
        json_path = ".status.ready",
        description = "Whether the generated Multus config is current"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.pluginVersion",
        description = "Version of the installed multus plugin"
    ),
    printcolumn(
        name = "Token-Expires",
        type_ = "string",
        json_path = ".status.pluginCredential.expiresAt",
        description = "When the plugin's API token expires (the agent refreshes it at half its life)"
    ),
    printcolumn(
        name = "Credential",
        type_ = "string",
        json_path = ".status.pluginCredential.source",
        description = "Where the plugin's API token comes from",
        priority = "1"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MultusNodeStateSpec {
    /// Name of the node (equals metadata.name).
    pub node_name: String,
    /// The MultusConfig whose agent manages this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus_config: Option<String>,
}

/// What the node agent observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultusNodeStateStatus {
    /// Whether a Multus config is generated from the current primary.
    #[serde(default)]
    pub ready: bool,
    /// Why the node is not ready (empty when ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// File name of the elected primary config in the CNI conf dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_config_file: Option<String>,
    /// CNI network name of the elected primary config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_network_name: Option<String>,
    /// File name of the generated Multus config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_config_file: Option<String>,
    /// SHA-256 (hex) of the generated Multus config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_config_hash: Option<String>,
    /// Version of the installed multus plugin binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
    /// CNI plugin binaries found in the CNI bin dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_plugins: Vec<String>,
    /// CNI network names of the configs found in the Multus conf dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multus_conf_networks: Vec<String>,
    /// Config files skipped during election, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_configs: Vec<SkippedConfig>,
    /// When the Multus config was last (re)generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_generated: Option<Time>,
    /// The API credential the plugin on this node uses (the token file its
    /// kubeconfig names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_credential: Option<PluginCredential>,
    /// While the agent removes Multus from the node (`node-agent
    /// --uninstall`): the pods that still have secondary networks attached
    /// through Multus there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<NodeRemoval>,
}

/// Where removing Multus from a node stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeRemoval {
    /// Pods (`namespace/name`) whose secondary attachments hold the
    /// removal back (`attachedPodsOnRemoval: Wait`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_pods: Vec<String>,
    /// What the agent is doing or waiting for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where the plugin's API token comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CredentialSource {
    /// A token of the plugin's own ServiceAccount (`multus-plugin-<mc>`),
    /// obtained by the agent with the TokenRequest API. It does not depend
    /// on the agent pod: the plugin keeps working while the agent is down,
    /// until the token expires.
    TokenRequest,
    /// A copy of the agent's own projected token: the fallback while no
    /// plugin token can be had. It is invalidated when the agent pod goes.
    AgentToken,
}

impl CredentialSource {
    /// The source as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenRequest => "TokenRequest",
            Self::AgentToken => "AgentToken",
        }
    }
}

/// The plugin's API credential on a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginCredential {
    /// The ServiceAccount the token belongs to (`multus-plugin-<mc>`, or
    /// the agent's own on the fallback).
    pub service_account: String,
    /// Where the token comes from.
    pub source: CredentialSource,
    /// When the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    /// When the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The Node the token is bound to: it stops working when that Node
    /// object is deleted, and it carries the node's name, which the chart's
    /// admission policy compares with the pods the plugin writes. Absent:
    /// the token is bound to no object (or, for the fallback, to the agent
    /// pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_node: Option<String>,
    /// Why a token of the plugin's ServiceAccount is not bound to the node:
    /// the API server's answer to the node-bound TokenRequest (servers
    /// before Kubernetes 1.33 may not offer node-bound tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_binding_unavailable: Option<String>,
    /// Since when the plugin uses a token of this source (for the fallback:
    /// since when no plugin token could be had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Why the agent uses the fallback, or why the last refresh failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A config file that was not elected, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedConfig {
    /// File name in the CNI conf dir.
    pub file: String,
    /// Why it was skipped.
    pub reason: String,
}
