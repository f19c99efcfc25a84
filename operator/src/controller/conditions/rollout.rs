//! `Ready` and `Progressing` from the DaemonSet's rollout and the agents'
//! reports: deploying, no nodes, rolling out (stuck past the deadline) or
//! rolled out.

use super::assess::Verdict;
use super::inputs::{NodeReport, Observation, Rollout};
use super::issues::Issue;
use super::reasons::{
    REASON_APPLY_FAILED, REASON_DEPLOYING, REASON_INVALID_SPEC, REASON_NO_NODES,
    REASON_NODES_NOT_READY, REASON_READY, REASON_ROLLING_OUT, REASON_ROLLOUT_COMPLETE,
    REASON_ROLLOUT_STUCK,
};
use super::wording::{NAMES_SHOWN, name_list, plural, shorten};

/// The nodes whose agent reports not ready, as `node (why)`.
fn not_ready_nodes(nodes: &[NodeReport]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| !n.ready)
        .map(
            |n| match n.message.as_deref().filter(|m| !m.trim().is_empty()) {
                Some(m) => format!("{} ({})", n.node, shorten(m, 160)),
                None => n.node.clone(),
            },
        )
        .collect()
}

/// Decides `Ready` and `Progressing` from the rollout and the agents'
/// reports, and whether a rollout stalled past the deadline is an issue.
pub(super) fn rollout_verdicts(
    obs: &Observation<'_>,
    pods_hint: &str,
) -> (Verdict, Verdict, Option<Issue>) {
    if !obs.spec_problems.is_empty() {
        let msg = "Nothing is rolled out while the spec is invalid; see the Degraded condition.";
        return (
            Verdict::new(false, REASON_INVALID_SPEC, msg),
            Verdict::new(false, REASON_INVALID_SPEC, msg),
            None,
        );
    }
    let not_ready = not_ready_nodes(obs.nodes);
    let stalled = obs.stalled_for > obs.deadline;
    match obs.rollout {
        None => {
            let (ready, progressing) = deploying(obs);
            (ready, progressing, None)
        }
        Some(r) if r.observed() && r.desired == 0 => {
            let (ready, progressing) = no_nodes(obs);
            (ready, progressing, None)
        }
        Some(r) if !r.complete() => rolling_out(obs, r, &not_ready, stalled, pods_hint),
        Some(r) => rolled_out(r, &not_ready, stalled),
    }
}

/// `Ready` and `Progressing` while the DaemonSet does not exist yet.
fn deploying(obs: &Observation<'_>) -> (Verdict, Verdict) {
    let msg = format!(
        "The node-agent DaemonSet {} is being created.",
        obs.daemon_set
    );
    let ready = match obs.apply_error {
        Some(_) => Verdict::new(
            false,
            REASON_APPLY_FAILED,
            "The operands could not be applied; see the Degraded condition.",
        ),
        None => Verdict::new(false, REASON_DEPLOYING, msg.clone()),
    };
    (ready, Verdict::new(true, REASON_DEPLOYING, msg))
}

/// `Ready` and `Progressing` when the DaemonSet runs on no node.
fn no_nodes(obs: &Observation<'_>) -> (Verdict, Verdict) {
    let msg = if obs.conflicts.is_empty() {
        format!(
            "No node matches spec.placement of MultusConfig {}, so Multus runs \
             nowhere. Label the nodes that should get Multus, or change \
             spec.placement.nodeSelector.",
            obs.name
        )
    } else {
        "Every node this MultusConfig selects is kept by an older MultusConfig; \
         see the Degraded condition."
            .to_owned()
    };
    (
        Verdict::new(false, REASON_NO_NODES, msg.clone()),
        Verdict::new(false, REASON_NO_NODES, msg),
    )
}

/// `Ready` and `Progressing` while the DaemonSet rolls out, and the
/// `RolloutStuck` issue when it made no progress within the deadline.
fn rolling_out(
    obs: &Observation<'_>,
    r: Rollout,
    not_ready: &[String],
    stalled: bool,
    pods_hint: &str,
) -> (Verdict, Verdict, Option<Issue>) {
    let mut msg = if r.observed() {
        format!(
            "{} of {} run the current agent, {} ready, {} unavailable.",
            r.updated,
            plural(usize::try_from(r.desired).unwrap_or(0), "node", "nodes"),
            r.ready,
            r.unavailable
        )
    } else {
        format!(
            "The DaemonSet {} has not yet picked up the latest change.",
            obs.daemon_set
        )
    };
    if !not_ready.is_empty() {
        msg.push_str(&format!(
            " Not ready: {}.",
            name_list(not_ready, NAMES_SHOWN)
        ));
    }
    let stuck = stalled.then(|| {
        (
            REASON_ROLLOUT_STUCK,
            format!(
                "The rollout of DaemonSet {} made no progress for {}s \
                 (progressDeadlineSeconds {}): {} Look at the agent pods: {}.",
                obs.daemon_set,
                obs.stalled_for.as_secs(),
                obs.deadline.as_secs(),
                msg,
                pods_hint
            ),
        )
    });
    (
        Verdict::new(false, REASON_ROLLING_OUT, msg.clone()),
        Verdict::new(true, REASON_ROLLING_OUT, msg),
        stuck,
    )
}

/// `Ready` and `Progressing` once every node runs the current agent:
/// ready unless agents report their node's Multus config is not current
/// (an issue once that lasts past the deadline).
fn rolled_out(
    r: Rollout,
    not_ready: &[String],
    stalled: bool,
) -> (Verdict, Verdict, Option<Issue>) {
    let nodes = plural(usize::try_from(r.desired).unwrap_or(0), "node", "nodes");
    let progressing = Verdict::new(
        false,
        REASON_ROLLOUT_COMPLETE,
        format!("All {nodes} run the current agent."),
    );
    if not_ready.is_empty() {
        let ready = Verdict::new(
            true,
            REASON_READY,
            format!("Multus is installed and current on all {nodes}."),
        );
        return (ready, progressing, None);
    }
    let msg = format!(
        "The agents of {} report that the Multus config is not current: {}. \
         Usually the node's default network is not installed yet or its CNI \
         config is broken; see `kubectl get multusnodestate <node> -o yaml`.",
        plural(not_ready.len(), "node", "nodes"),
        name_list(not_ready, NAMES_SHOWN)
    );
    let issue = stalled.then(|| (REASON_NODES_NOT_READY, msg.clone()));
    (
        Verdict::new(false, REASON_NODES_NOT_READY, msg),
        progressing,
        issue,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::controller::conditions::assess;
    use crate::controller::conditions::fixtures::{Triple, node, obs, rollout, triple};

    #[test]
    fn rollout_table() {
        let ok = [
            node("n1", true, None, Some("k8s")),
            node("n2", true, None, Some("k8s")),
        ];
        let cases: Vec<(Option<Rollout>, Triple<'_>)> = vec![
            (
                None,
                (false, "Deploying", true, "Deploying", false, "AsExpected"),
            ),
            (
                Some(Rollout {
                    observed_generation: 1,
                    ..rollout(2, 2, 2, 0)
                }),
                (false, "RollingOut", true, "RollingOut", false, "AsExpected"),
            ),
            (
                Some(rollout(2, 1, 2, 0)),
                (false, "RollingOut", true, "RollingOut", false, "AsExpected"),
            ),
            (
                Some(rollout(2, 2, 1, 1)),
                (false, "RollingOut", true, "RollingOut", false, "AsExpected"),
            ),
            (
                Some(rollout(2, 2, 2, 0)),
                (true, "Ready", false, "RolloutComplete", false, "AsExpected"),
            ),
            (
                Some(rollout(0, 0, 0, 0)),
                (
                    false,
                    "NoMatchingNodes",
                    false,
                    "NoMatchingNodes",
                    false,
                    "AsExpected",
                ),
            ),
        ];
        for (r, want) in cases {
            let a = assess(&obs(r, &ok));
            assert_eq!(triple(&a), want, "{r:?}");
        }
        let a = assess(&obs(Some(rollout(2, 1, 1, 1)), &ok));
        assert_eq!(
            a.ready.message,
            "1 of 2 nodes run the current agent, 1 ready, 1 unavailable."
        );
        assert_eq!((a.desired_nodes, a.ready_nodes, a.updated_nodes), (2, 1, 1));
        let a = assess(&obs(Some(rollout(0, 0, 0, 0)), &[]));
        assert!(
            a.ready.message.contains("Label the nodes"),
            "{}",
            a.ready.message
        );
    }

    #[test]
    fn a_stalled_rollout_is_degraded_and_names_the_nodes_and_next_step() {
        let nodes = [
            node("n1", true, None, Some("k8s")),
            node(
                "n2",
                false,
                Some("no primary CNI config in /etc/cni/net.d"),
                None,
            ),
        ];
        let mut o = obs(Some(rollout(2, 1, 1, 1)), &nodes);
        o.stalled_for = Duration::from_secs(599);
        assert!(!assess(&o).degraded.status, "within the deadline");
        o.stalled_for = Duration::from_secs(601);
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "RollingOut",
                true,
                "RollingOut",
                true,
                "RolloutStuck"
            )
        );
        let m = &a.degraded.message;
        assert!(
            m.contains("made no progress for 601s (progressDeadlineSeconds 600)"),
            "{m}"
        );
        assert!(
            m.contains("n2 (no primary CNI config in /etc/cni/net.d)"),
            "{m}"
        );
        assert!(
            m.contains("kubectl -n multus-system get pods -l multus.dev/config=default"),
            "{m}"
        );
        assert!(m.contains("describe daemonset multus-agent-default"), "{m}");
    }

    #[test]
    fn nodes_not_ready_after_a_complete_rollout() {
        let nodes = [
            node("n1", true, None, Some("k8s")),
            node(
                "n2",
                false,
                Some("readiness indicator /run/calico/ready missing"),
                None,
            ),
        ];
        let mut o = obs(Some(rollout(2, 2, 2, 0)), &nodes);
        let a = assess(&o);
        assert_eq!(
            triple(&a),
            (
                false,
                "NodesNotReady",
                false,
                "RolloutComplete",
                false,
                "AsExpected"
            )
        );
        assert!(
            a.ready
                .message
                .contains("n2 (readiness indicator /run/calico/ready missing)")
        );
        assert!(a.ready.message.contains("kubectl get multusnodestate"));
        o.stalled_for = Duration::from_secs(700);
        assert_eq!(assess(&o).degraded.reason, "NodesNotReady");
    }
}
