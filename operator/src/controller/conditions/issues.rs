//! The reasons for `Degraded` besides a stuck rollout and expiring
//! credentials: an invalid spec, a failed apply, missing ClusterRoles,
//! node-pool conflicts, disagreeing primary networks and invalid NADs;
//! and how the issues combine into `Degraded`.

use std::collections::BTreeMap;

use multus_config::crd::multus_config::PrimaryNetworkSummary;

use super::assess::Verdict;
use super::inputs::{NodeReport, Observation};
use super::reasons::{
    REASON_APPLY_FAILED, REASON_AS_EXPECTED, REASON_CONFLICT, REASON_INVALID_NADS,
    REASON_INVALID_SPEC, REASON_PLUGIN_ROLE_MISSING, REASON_PRIMARY_MISMATCH, REASON_ROLE_MISSING,
};
use super::wording::{NAMES_SHOWN, name_list, plural, shorten};

/// A reason for `Degraded` and its message.
pub(super) type Issue = (&'static str, String);

/// Decides whether the spec is an issue: it cannot be applied.
pub(super) fn spec_issue(obs: &Observation<'_>) -> Option<Issue> {
    if obs.spec_problems.is_empty() {
        return None;
    }
    let list: Vec<String> = obs.spec_problems.iter().map(ToString::to_string).collect();
    Some((
        REASON_INVALID_SPEC,
        format!(
            "The spec cannot be applied, so nothing was changed on the cluster (the agents \
             keep their last good settings): {}. Fix it with `kubectl edit multusconfig {}`.",
            list.join("; "),
            obs.name
        ),
    ))
}

/// Decides whether applying the operands failed.
pub(super) fn apply_issue(obs: &Observation<'_>) -> Option<Issue> {
    let err = obs.apply_error?;
    Some((
        REASON_APPLY_FAILED,
        format!(
            "Applying the operands failed: {}. The controller retries with back-off; check \
             its RBAC (docs/rbac.md) and its log.",
            shorten(err, 400)
        ),
    ))
}

/// Decides whether the chart's agent ClusterRole is missing.
pub(super) fn role_issue(obs: &Observation<'_>) -> Option<Issue> {
    let role = obs.missing_role?;
    Some((
        REASON_ROLE_MISSING,
        format!(
            "ClusterRole {role} does not exist, so the node agents cannot report their \
             nodes' state. Install or upgrade the Helm chart, which ships it."
        ),
    ))
}

/// Decides whether the chart's plugin ClusterRole is missing.
pub(super) fn plugin_role_issue(obs: &Observation<'_>) -> Option<Issue> {
    let role = obs.missing_plugin_role?;
    Some((
        REASON_PLUGIN_ROLE_MISSING,
        format!(
            "ClusterRole {role} does not exist, so the multus plugin cannot read pods or \
             NetworkAttachmentDefinitions and pods with extra networks fail to start. \
             Install or upgrade the Helm chart, which ships it."
        ),
    ))
}

/// Decides whether older MultusConfigs keep some of the selected nodes.
pub(super) fn conflict_issue(obs: &Observation<'_>) -> Option<Issue> {
    if obs.conflicts.is_empty() {
        return None;
    }
    let nodes: Vec<&str> = obs.conflicts.iter().map(|c| c.node.as_str()).collect();
    let mut owners: Vec<&str> = obs.conflicts.iter().map(|c| c.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    Some((
        REASON_CONFLICT,
        format!(
            "{} also selected by the older MultusConfig {} and stay with it: {}. This \
             MultusConfig's agents skip them. Make the node selectors of {} and {} disjoint.",
            plural(nodes.len(), "node is", "nodes are"),
            owners.join(", "),
            name_list(&nodes, NAMES_SHOWN),
            obs.name,
            owners.join(", "),
        ),
    ))
}

/// The primary networks the agents elected, most nodes first, and the
/// nodes of each network (sorted).
pub(super) fn primary_networks(
    nodes: &[NodeReport],
) -> (Vec<PrimaryNetworkSummary>, BTreeMap<String, Vec<String>>) {
    let mut by_network: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes {
        if let Some(net) = n.primary_network.as_deref().filter(|s| !s.is_empty()) {
            by_network
                .entry(net.to_owned())
                .or_default()
                .push(n.node.clone());
        }
    }
    for list in by_network.values_mut() {
        list.sort();
    }
    let mut summary: Vec<PrimaryNetworkSummary> = by_network
        .iter()
        .map(|(name, list)| PrimaryNetworkSummary {
            name: name.clone(),
            nodes: i32::try_from(list.len()).unwrap_or(i32::MAX),
        })
        .collect();
    summary.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.name.cmp(&b.name)));
    (summary, by_network)
}

/// Decides whether the nodes disagree on the primary network, naming the
/// nodes that differ from the majority.
pub(super) fn primary_mismatch_issue(
    primary: &[PrimaryNetworkSummary],
    by_network: &BTreeMap<String, Vec<String>>,
) -> Option<Issue> {
    if by_network.len() <= 1 {
        return None;
    }
    let majority = primary.first().map(|p| p.name.clone()).unwrap_or_default();
    let minority: Vec<String> = by_network
        .iter()
        .filter(|(name, _)| **name != majority)
        .map(|(name, nodes)| format!("{name:?} on {}", name_list(nodes, NAMES_SHOWN)))
        .collect();
    Some((
        REASON_PRIMARY_MISMATCH,
        format!(
            "Nodes disagree on the primary (cluster) network: {:?} on {}, but {}. Pods on \
             those nodes get a different default network. Remove the stray CNI config from \
             the conf dir of those nodes, or pin spec.primaryConfigFile.",
            majority,
            plural(
                by_network.get(&majority).map_or(0, Vec::len),
                "node",
                "nodes"
            ),
            minority.join("; ")
        ),
    ))
}

/// Decides whether NetworkAttachmentDefinitions used on these nodes are
/// invalid.
pub(super) fn invalid_nads_issue(obs: &Observation<'_>) -> Option<Issue> {
    if obs.invalid_nads.is_empty() {
        return None;
    }
    let list: Vec<String> = obs
        .invalid_nads
        .iter()
        .map(|n| format!("{} ({})", n.key, n.reason))
        .collect();
    Some((
        REASON_INVALID_NADS,
        format!(
            "{} invalid: {}. Pods that use them fail to start; \
             `kubectl describe network-attachment-definition -n <namespace> <name>` shows \
             why in its Warning events.",
            plural(
                list.len(),
                "NetworkAttachmentDefinition is",
                "NetworkAttachmentDefinitions are"
            ),
            name_list(&list, NAMES_SHOWN)
        ),
    ))
}

/// Decides `Degraded`: the first (most serious) issue's reason, and every
/// issue's message.
pub(super) fn degraded(issues: &[Issue]) -> Verdict {
    match issues.first() {
        None => Verdict::new(false, REASON_AS_EXPECTED, "Nothing needs attention."),
        Some((reason, _)) => Verdict::new(
            true,
            reason,
            issues
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" Also: "),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::controller::conditions::assess;
    use crate::controller::conditions::fixtures::{node, obs, rollout, triple};
    use crate::controller::pools::Conflict;
    use crate::controller::validate::SpecProblem;

    #[test]
    fn invalid_spec_wins_and_says_nothing_was_applied() {
        let problems = [SpecProblem {
            field: "spec.updateStrategy.maxUnavailable".into(),
            message: "0 would never let the DaemonSet replace a pod".into(),
        }];
        let mut o = obs(Some(rollout(2, 2, 2, 0)), &[]);
        o.spec_problems = &problems;
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "InvalidSpec",
                false,
                "InvalidSpec",
                true,
                "InvalidSpec"
            )
        );
        assert!(
            a.degraded
                .message
                .contains("nothing was changed on the cluster")
        );
        assert!(
            a.degraded
                .message
                .contains("spec.updateStrategy.maxUnavailable: 0 would")
        );
        assert!(
            a.degraded
                .message
                .contains("kubectl edit multusconfig default")
        );
    }

    #[test]
    fn apply_errors_and_a_missing_role_are_degraded() {
        let mut o = obs(Some(rollout(1, 1, 1, 0)), &[]);
        o.apply_error = Some("daemonsets.apps is forbidden");
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "ApplyFailed",
                false,
                "RolloutComplete",
                true,
                "ApplyFailed"
            )
        );
        assert!(a.degraded.message.contains("forbidden"));
        let mut o = obs(Some(rollout(1, 1, 1, 0)), &[]);
        o.missing_role = Some("multus-node-agent");
        let a = assess(&o);
        assert_eq!(a.ready.reason, "AgentClusterRoleMissing");
        assert!(
            a.degraded
                .message
                .starts_with("ClusterRole multus-node-agent does not exist")
        );
        assert!(a.degraded.message.contains("Helm chart"));
        let mut o = obs(Some(rollout(1, 1, 1, 0)), &[]);
        o.missing_plugin_role = Some("multus-plugin");
        let a = assess(&o);
        assert_eq!(a.ready.reason, "PluginClusterRoleMissing");
        assert_eq!(a.degraded.reason, "PluginClusterRoleMissing");
        assert!(
            a.degraded
                .message
                .starts_with("ClusterRole multus-plugin does not exist, so the multus plugin")
        );
        o.missing_role = Some("multus-node-agent");
        let a = assess(&o);
        assert_eq!(a.ready.reason, "AgentClusterRoleMissing");
        assert!(
            a.degraded
                .message
                .contains(" Also: ClusterRole multus-plugin does not exist"),
            "both are named: {}",
            a.degraded.message
        );
    }

    #[test]
    fn conflicts_name_the_nodes_and_the_older_config() {
        let conflicts = [
            Conflict {
                node: "n1".into(),
                owner: "pool-a".into(),
            },
            Conflict {
                node: "n2".into(),
                owner: "pool-a".into(),
            },
        ];
        let mut o = obs(Some(rollout(3, 3, 3, 0)), &[]);
        o.conflicts = &conflicts;
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                true,
                "Ready",
                false,
                "RolloutComplete",
                true,
                "NodeSelectorConflict"
            )
        );
        assert_eq!(
            a.degraded.message,
            "2 nodes are also selected by the older MultusConfig pool-a and stay with it: n1, n2. \
             This MultusConfig's agents skip them. Make the node selectors of default and pool-a \
             disjoint."
        );
        let mut o = obs(Some(rollout(0, 0, 0, 0)), &[]);
        o.conflicts = &conflicts;
        assert!(
            assess(&o)
                .ready
                .message
                .contains("kept by an older MultusConfig")
        );
    }

    #[test]
    fn disagreeing_primary_networks_name_the_odd_nodes() {
        let nodes = [
            node("n1", true, None, Some("k8s-pod-network")),
            node("n2", true, None, Some("k8s-pod-network")),
            node("n3", true, None, Some("cbr0")),
        ];
        let a = assess(&obs(Some(rollout(3, 3, 3, 0)), &nodes));
        assert_eq!(a.degraded.reason, "PrimaryNetworkMismatch");
        assert!(
            a.degraded
                .message
                .contains("\"k8s-pod-network\" on 2 nodes, but \"cbr0\" on n3")
        );
        assert_eq!(a.primary_networks[0].name, "k8s-pod-network");
        assert_eq!(a.primary_networks[0].nodes, 2);
        assert_eq!(a.primary_networks[1].nodes, 1);
        assert!(a.ready.status);
    }
}
