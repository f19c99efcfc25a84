//! Network hot-plug (`spec.networkHotplug` of a MultusConfig): when the
//! networks annotation of a running pod changes, the node agent runs
//! `multus sync-networks` with a [`SyncInput`] on stdin; the plugin
//! attaches the networks added to the annotation and detaches the removed
//! ones in the pod's sandbox, and answers with a [`SyncOutcome`] on
//! stdout (always exit 0 once the input was read; the outcome says what
//! happened).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The subcommand of the `multus` binary.
pub const SUBCOMMAND: &str = "sync-networks";

/// containerd's CRI socket: the default runtime socket asked for a pod's
/// sandbox.
pub const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";

/// Reason of the Warning Event on a pod whose networks could not be
/// changed (the pod keeps the networks it had).
pub const REASON_HOTPLUG_FAILED: &str = "NetworkHotplugFailed";
/// Reason of the Warning Event on a pod whose networks cannot be changed
/// at all (host network, no sandbox set up through Multus, runtime not
/// answering).
pub const REASON_HOTPLUG_REFUSED: &str = "NetworkHotplugRefused";
/// Reason of the Event on a pod whose hot-plugged interface went.
pub const REASON_REMOVED_INTERFACE: &str = "RemovedInterface";

/// What the agent writes to `multus sync-networks`' stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInput {
    /// The node's Multus config as generated (`.conf` or `.conflist`).
    pub multus_config: Value,
    /// The pod as the agent's watch last saw it (its networks annotation
    /// is the one to reach).
    pub pod: Value,
    /// The container runtime's CRI socket (host path).
    pub cri_socket: String,
    /// Refusals are only logged, not published as Events (the agent's
    /// start-up pass over pods whose annotation did not change).
    #[serde(default)]
    pub quiet: bool,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// The pod's interfaces match its annotation (now or already).
    InStep,
    /// The pod has no ready sandbox yet (or any more): try again later.
    NoSandbox,
    /// The pod's networks cannot be changed until its annotation changes
    /// (host network, bad annotation, sandbox not set up through Multus).
    Refused,
    /// A detach or attach failed; what could be undone was; try again
    /// later.
    Failed,
}

/// One interface attached or detached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceChange {
    /// `namespace/name` of the network.
    pub network: String,
    /// The interface in the pod.
    pub interface: String,
}

/// What `multus sync-networks` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutcome {
    /// How it ended.
    pub state: SyncState,
    /// Interfaces attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<InterfaceChange>,
    /// Interfaces detached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached: Vec<InterfaceChange>,
    /// What went wrong, naming the culprit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SyncOutcome {
    /// An outcome without changes.
    pub fn new(state: SyncState, message: Option<String>) -> Self {
        Self {
            state,
            attached: Vec::new(),
            detached: Vec::new(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_with_camel_case_and_omits_empty_lists() {
        let outcome = SyncOutcome::new(SyncState::NoSandbox, None);
        let text = serde_json::to_string(&outcome).unwrap();
        assert_eq!(text, r#"{"state":"NoSandbox"}"#);
        let input: SyncInput = serde_json::from_str(
            r#"{"multusConfig":{},"pod":{},"criSocket":"/run/containerd/containerd.sock"}"#,
        )
        .unwrap();
        assert!(!input.quiet);
        assert_eq!(input.cri_socket, DEFAULT_CRI_SOCKET);
    }
}
