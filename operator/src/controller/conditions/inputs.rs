//! What the conditions are computed from: the DaemonSet's rollout
//! counters, the agents' reports, invalid NADs and the MultusConfig's
//! phase, gathered in an [`Observation`].

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::jiff::Timestamp;
use multus_config::crd::{CredentialSource, MultusNodeState};

use super::features::ServerFeatures;
use crate::controller::pools::Conflict;
use crate::controller::validate::SpecProblem;

/// The rollout counters of a DaemonSet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rollout {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// Nodes that should run an agent.
    pub desired: i32,
    /// Nodes running the current pod template.
    pub updated: i32,
    /// Nodes whose agent is ready.
    pub ready: i32,
    /// Nodes whose agent is not available.
    pub unavailable: i32,
}

impl Rollout {
    /// The counters of a DaemonSet (zero where the status is missing).
    pub fn of(ds: &DaemonSet) -> Self {
        let status = ds.status.clone().unwrap_or_default();
        Self {
            generation: ds.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired: status.desired_number_scheduled,
            updated: status.updated_number_scheduled.unwrap_or(0),
            ready: status.number_ready,
            unavailable: status.number_unavailable.unwrap_or(0),
        }
    }

    /// Whether the DaemonSet controller saw the latest spec.
    pub fn observed(&self) -> bool {
        self.observed_generation >= self.generation
    }

    /// Whether every desired node runs a ready agent of the current spec.
    pub fn complete(&self) -> bool {
        self.observed()
            && self.updated >= self.desired
            && self.ready >= self.desired
            && self.unavailable == 0
    }
}

/// What an agent reported about its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Whether the node's Multus config is current.
    pub ready: bool,
    /// Why not, in the agent's words.
    pub message: Option<String>,
    /// CNI name of the elected primary network.
    pub primary_network: Option<String>,
    /// The plugin's credential, when the agent manages it.
    pub credential: Option<CredentialReport>,
}

/// What an agent reported about the plugin's token on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    /// The plugin's own token, or a copy of the agent's (the fallback).
    pub source: CredentialSource,
    /// When the token was issued.
    pub issued_at: Option<Timestamp>,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
    /// Since when the source is in use.
    pub since: Option<Timestamp>,
    /// The Node the token is bound to.
    pub bound_node: Option<String>,
    /// Why it is not bound to the node, in the API server's words.
    pub binding_unavailable: Option<String>,
}

impl NodeReport {
    /// The report of a MultusNodeState (not ready when it has no status).
    pub fn of(state: &MultusNodeState) -> Self {
        let status = state.status.clone().unwrap_or_default();
        Self {
            node: state
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| state.spec.node_name.clone()),
            ready: status.ready,
            message: status.message.or_else(|| {
                (state.status.is_none()).then(|| "the agent has not reported yet".into())
            }),
            primary_network: status.primary_network_name,
            credential: status.plugin_credential.map(|c| CredentialReport {
                source: c.source,
                issued_at: c.issued_at.map(|t| t.0),
                expires_at: c.expires_at.map(|t| t.0),
                since: c.since.map(|t| t.0),
                bound_node: c.bound_node,
                binding_unavailable: c.node_binding_unavailable,
            }),
        }
    }
}

/// A NetworkAttachmentDefinition that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNad {
    /// `namespace/name`.
    pub key: String,
    /// `InvalidConfig`, `PluginMissing` or `ConfigFileMissing`.
    pub reason: String,
}

/// Whether the MultusConfig is active or being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Reconciled normally.
    Active,
    /// Deleted: the agents are removing Multus from the nodes.
    Uninstalling {
        /// Nodes whose uninstall has not finished.
        pending: Vec<String>,
        /// Nodes the uninstall DaemonSet covers.
        desired: i32,
        /// Nodes whose agent waits for pods with secondary attachments
        /// (`MultusNodeState.status.removal`), sorted by node.
        waiting: Vec<WaitingNode>,
    },
}

/// A node whose removal waits for pods attached through Multus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingNode {
    /// The node.
    pub node: String,
    /// The pods (`namespace/name`), sorted.
    pub pods: Vec<String>,
}

/// "waiting for 1 pod with secondary networks on node vm: leak/p1; ...",
/// or `None` when no node waits.
pub fn waiting_for_pods(waiting: &[WaitingNode]) -> Option<String> {
    let parts: Vec<String> = waiting
        .iter()
        .filter(|w| !w.pods.is_empty())
        .map(|w| {
            format!(
                "waiting for {} with secondary networks on node {}: {}",
                super::wording::plural(w.pods.len(), "pod", "pods"),
                w.node,
                super::wording::name_list(&w.pods, super::wording::NAMES_SHOWN)
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Everything the conditions are computed from.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// MultusConfig name.
    pub name: &'a str,
    /// `namespace/name` of its DaemonSet.
    pub daemon_set: String,
    /// Operator namespace (for the commands in messages).
    pub namespace: &'a str,
    /// Problems of the spec (nothing was applied when non-empty).
    pub spec_problems: &'a [SpecProblem],
    /// The error of the last apply, if it failed.
    pub apply_error: Option<&'a str>,
    /// The agent ClusterRole's name when it does not exist.
    pub missing_role: Option<&'a str>,
    /// The plugin ClusterRole's name when it does not exist.
    pub missing_plugin_role: Option<&'a str>,
    /// The DaemonSet's rollout, `None` when there is no DaemonSet.
    pub rollout: Option<Rollout>,
    /// The agents' reports of this MultusConfig's nodes.
    pub nodes: &'a [NodeReport],
    /// Nodes claimed by older MultusConfigs.
    pub conflicts: &'a [Conflict],
    /// Invalid NADs that concern this MultusConfig's nodes.
    pub invalid_nads: &'a [InvalidNad],
    /// How long nothing changed while not everything is ready.
    pub stalled_for: Duration,
    /// `spec.progressDeadlineSeconds` (also how long a node may stay on
    /// the credential fallback).
    pub deadline: Duration,
    /// `spec.pluginTokenExpirationSeconds`.
    pub token_lifetime: Duration,
    /// The time of the observation.
    pub now: Timestamp,
    /// Active or being deleted.
    pub phase: Phase,
    /// What the API server offers (`None` until the controller looked).
    pub server: Option<&'a ServerFeatures>,
}
