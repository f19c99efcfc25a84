//! The reasons of the `Ready`, `Progressing` and `Degraded` conditions
//! (and of their Events).

/// Ready: Multus is installed and current on every selected node.
pub const REASON_READY: &str = "Ready";
/// The spec cannot be applied.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Applying the operands failed.
pub const REASON_APPLY_FAILED: &str = "ApplyFailed";
/// The chart's agent ClusterRole is missing.
pub const REASON_ROLE_MISSING: &str = "AgentClusterRoleMissing";
/// The chart's plugin ClusterRole is missing.
pub const REASON_PLUGIN_ROLE_MISSING: &str = "PluginClusterRoleMissing";
/// Nodes' plugin tokens are not being refreshed.
pub const REASON_CREDENTIAL_EXPIRING: &str = "PluginCredentialExpiring";
/// Nodes are also selected by an older MultusConfig.
pub const REASON_CONFLICT: &str = "NodeSelectorConflict";
/// The DaemonSet does not exist yet.
pub const REASON_DEPLOYING: &str = "Deploying";
/// The DaemonSet is rolling out.
pub const REASON_ROLLING_OUT: &str = "RollingOut";
/// The rollout is done.
pub const REASON_ROLLOUT_COMPLETE: &str = "RolloutComplete";
/// The rollout made no progress within progressDeadlineSeconds.
pub const REASON_ROLLOUT_STUCK: &str = "RolloutStuck";
/// Agents report that their node's Multus config is not current.
pub const REASON_NODES_NOT_READY: &str = "NodesNotReady";
/// No node is selected.
pub const REASON_NO_NODES: &str = "NoMatchingNodes";
/// Nodes elected different primary networks.
pub const REASON_PRIMARY_MISMATCH: &str = "PrimaryNetworkMismatch";
/// Some NetworkAttachmentDefinitions are invalid.
pub const REASON_INVALID_NADS: &str = "InvalidNetworkAttachmentDefinitions";
/// Nothing needs attention.
pub const REASON_AS_EXPECTED: &str = "AsExpected";
/// The MultusConfig is being deleted and the agents uninstall.
pub const REASON_UNINSTALLING: &str = "Uninstalling";
/// The agents wait for pods with secondary networks before removing
/// Multus from their nodes.
pub const REASON_WAITING_FOR_PODS: &str = "WaitingForPods";
