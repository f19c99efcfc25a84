//! [`assess`]: the three conditions and the counters of one
//! observation, as named steps (the rollout's verdicts in `rollout`, the
//! issues in `issues` and `credential`).

use std::time::Duration;

use multus_config::crd::ClusterFeature;
use multus_config::crd::multus_config::PrimaryNetworkSummary;

use super::credential::credential_issue;
use super::features::cluster_features;
use super::inputs::{Observation, Phase, WaitingNode, waiting_for_pods};
use super::issues::{
    Issue, apply_issue, conflict_issue, degraded, invalid_nads_issue, plugin_role_issue,
    primary_mismatch_issue, primary_networks, role_issue, spec_issue,
};
use super::reasons::{
    REASON_APPLY_FAILED, REASON_PLUGIN_ROLE_MISSING, REASON_ROLE_MISSING, REASON_UNINSTALLING,
    REASON_WAITING_FOR_PODS,
};
use super::rollout::rollout_verdicts;
use super::wording::{NAMES_SHOWN, name_list, plural};
use crate::controller::render::LABEL_CONFIG;

/// One condition's computed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `True`/`False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl Verdict {
    /// The verdict `status` for `reason`, saying `message`.
    pub(super) fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The computed conditions and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// `Ready`.
    pub ready: Verdict,
    /// `Progressing`.
    pub progressing: Verdict,
    /// `Degraded`.
    pub degraded: Verdict,
    /// Nodes that should run the agent.
    pub desired_nodes: i32,
    /// Nodes whose agent is ready.
    pub ready_nodes: i32,
    /// Nodes running the current agent.
    pub updated_nodes: i32,
    /// Primary networks seen, most nodes first.
    pub primary_networks: Vec<PrimaryNetworkSummary>,
    /// When a node's credential next crosses a threshold (a token reaching
    /// its last quarter or expiring, the fallback outlasting the deadline):
    /// the reconcile should look again by then.
    pub recheck_in: Option<Duration>,
    /// The API server's version, when known.
    pub kubernetes_version: Option<String>,
    /// Which features of newer Kubernetes versions are in use.
    pub cluster_features: Vec<ClusterFeature>,
}

/// Computes the three conditions and the counters: while uninstalling
/// (`uninstalling`), else `Ready` and `Progressing` from the rollout
/// (`rollout_verdicts`, unless a failed apply or a missing role blocks
/// it: `ready_unless_blocked`) and `Degraded` from every issue, most
/// serious first (`degraded`).
pub fn assess(obs: &Observation<'_>) -> Assessment {
    let (primary, by_network) = primary_networks(obs.nodes);
    let rollout = obs.rollout.unwrap_or_default();
    let (ready, progressing, degraded, recheck_in) = match &obs.phase {
        Phase::Uninstalling {
            pending,
            desired,
            waiting,
        } => {
            let (ready, progressing, degraded) = uninstalling(obs, pending, *desired, waiting);
            (ready, progressing, degraded, None)
        }
        Phase::Active => {
            let pods_hint = pods_hint(obs);
            let (ready, progressing, rollout_issue) = rollout_verdicts(obs, &pods_hint);
            let (credential_issue, recheck) = credential_issue(obs, &pods_hint);
            let issues: Vec<Issue> = [
                spec_issue(obs),
                apply_issue(obs),
                role_issue(obs),
                plugin_role_issue(obs),
                conflict_issue(obs),
                rollout_issue,
                credential_issue,
                primary_mismatch_issue(&primary, &by_network),
                invalid_nads_issue(obs),
            ]
            .into_iter()
            .flatten()
            .collect();
            let recheck_in = recheck
                .map(|t| Duration::try_from(t.duration_since(obs.now)).unwrap_or(Duration::ZERO));
            (
                ready_unless_blocked(obs, ready),
                progressing,
                degraded(&issues),
                recheck_in,
            )
        }
    };
    Assessment {
        ready,
        progressing,
        degraded,
        desired_nodes: rollout.desired,
        ready_nodes: rollout.ready,
        updated_nodes: rollout.updated,
        primary_networks: primary,
        recheck_in,
        kubernetes_version: obs.server.map(|s| s.git_version.clone()),
        cluster_features: cluster_features(obs.server, obs.nodes),
    }
}

/// Decides the three conditions while the MultusConfig is deleted and the
/// agents remove Multus: waiting, naming the `pending` nodes.
fn uninstalling(
    obs: &Observation<'_>,
    pending: &[String],
    desired: i32,
    waiting: &[WaitingNode],
) -> (Verdict, Verdict, Verdict) {
    if let Some(pods) = waiting_for_pods(waiting) {
        let message = format!(
            "Multus stays in place while pods use it ({pods}). Their secondary networks would \
             never be released once Multus is gone, so the removal waits until those pods are \
             deleted (attachedPodsOnRemoval: Wait); set attachedPodsOnRemoval: Detach to \
             release their secondary networks now. Deletion continues without those nodes \
             after progressDeadlineSeconds ({}s), leaving Multus there.",
            obs.deadline.as_secs()
        );
        return (
            Verdict::new(false, REASON_WAITING_FOR_PODS, message.clone()),
            Verdict::new(true, REASON_WAITING_FOR_PODS, message),
            Verdict::new(
                false,
                REASON_UNINSTALLING,
                "The MultusConfig is being deleted.",
            ),
        );
    }
    let message = if pending.is_empty() {
        "Multus is being removed from the nodes; the operands are deleted next.".to_owned()
    } else {
        format!(
            "Removing Multus from the nodes before the MultusConfig goes away: waiting for \
             {} of {desired} ({}). Deletion continues without them after \
             progressDeadlineSeconds ({}s); run `kubectl -n {} get pods -l {LABEL_CONFIG}={} \
             -o wide` to see their uninstall pods.",
            plural(pending.len(), "node", "nodes"),
            name_list(pending, NAMES_SHOWN),
            obs.deadline.as_secs(),
            obs.namespace,
            obs.name,
        )
    };
    (
        Verdict::new(false, REASON_UNINSTALLING, message.clone()),
        Verdict::new(true, REASON_UNINSTALLING, message),
        Verdict::new(
            false,
            REASON_UNINSTALLING,
            "The MultusConfig is being deleted.",
        ),
    )
}

/// The commands that show the agent pods and their DaemonSet.
fn pods_hint(obs: &Observation<'_>) -> String {
    format!(
        "`kubectl -n {} get pods -l {LABEL_CONFIG}={} -o wide` and `kubectl -n {} describe \
         daemonset {}`",
        obs.namespace,
        obs.name,
        obs.namespace,
        obs.daemon_set.rsplit('/').next().unwrap_or_default(),
    )
}

/// Decides `Ready` when something blocks the rollout's verdict: a failed
/// apply over an existing DaemonSet (the nodes may run an outdated agent)
/// or a missing ClusterRole, unless the spec itself is invalid.
fn ready_unless_blocked(obs: &Observation<'_>, ready: Verdict) -> Verdict {
    let missing_role = obs
        .missing_role
        .map(|role| (REASON_ROLE_MISSING, role))
        .or_else(|| {
            obs.missing_plugin_role
                .map(|role| (REASON_PLUGIN_ROLE_MISSING, role))
        });
    match (obs.apply_error, missing_role) {
        (Some(_), _) if obs.spec_problems.is_empty() && obs.rollout.is_some() => Verdict::new(
            false,
            REASON_APPLY_FAILED,
            "The operands could not be applied, so the nodes may run an outdated agent; see the \
             Degraded condition.",
        ),
        (_, Some((reason, role))) if obs.spec_problems.is_empty() => Verdict::new(
            false,
            reason,
            format!("ClusterRole {role} is missing; see the Degraded condition."),
        ),
        _ => ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::fixtures::{obs, rollout, triple};
    use crate::controller::conditions::inputs::InvalidNad;
    use crate::controller::pools::Conflict;

    #[test]
    fn several_issues_are_all_reported_most_serious_first() {
        let nads = [InvalidNad {
            key: "ns1/bad".into(),
            reason: "InvalidConfig".into(),
        }];
        let conflicts = [Conflict {
            node: "n9".into(),
            owner: "old".into(),
        }];
        let mut o = obs(Some(rollout(1, 1, 1, 0)), &[]);
        o.invalid_nads = &nads;
        o.conflicts = &conflicts;
        let a = assess(&o);
        assert_eq!(a.degraded.reason, "NodeSelectorConflict");
        assert!(
            a.degraded.message.contains(
                " Also: 1 NetworkAttachmentDefinition is invalid: ns1/bad (InvalidConfig)."
            )
        );
    }

    #[test]
    fn uninstalling_lists_the_pending_nodes() {
        let mut o = obs(Some(rollout(3, 3, 0, 3)), &[]);
        o.phase = Phase::Uninstalling {
            pending: vec!["n1".into(), "n2".into()],
            desired: 3,
            waiting: Vec::new(),
        };
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "Uninstalling",
                true,
                "Uninstalling",
                false,
                "Uninstalling"
            )
        );
        assert!(
            a.ready
                .message
                .contains("waiting for 2 nodes of 3 (n1, n2)"),
            "{}",
            a.ready.message
        );
    }

    #[test]
    fn uninstalling_names_the_pods_it_waits_for_per_node() {
        let mut o = obs(Some(rollout(2, 2, 0, 2)), &[]);
        o.phase = Phase::Uninstalling {
            pending: vec!["vm".into(), "vm2".into()],
            desired: 2,
            waiting: vec![
                WaitingNode {
                    node: "vm".into(),
                    pods: vec!["leak/p1".into()],
                },
                WaitingNode {
                    node: "vm2".into(),
                    pods: vec!["a/x".into(), "b/y".into()],
                },
            ],
        };
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "WaitingForPods",
                true,
                "WaitingForPods",
                false,
                "Uninstalling"
            )
        );
        assert!(
            a.ready.message.contains(
                "waiting for 1 pod with secondary networks on node vm: leak/p1; waiting for 2 \
                 pods with secondary networks on node vm2: a/x, b/y"
            ),
            "{}",
            a.ready.message
        );
        assert!(a.ready.message.contains("attachedPodsOnRemoval: Detach"));
    }
}
