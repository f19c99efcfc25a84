//! Whether the agents finished removing Multus from their nodes.
//!
//! On deletion the DaemonSet is switched to `node-agent --uninstall` (see
//! [`super::render::uninstall_daemon_set`]). That command exits when done;
//! a DaemonSet restarts it (the uninstall is idempotent), so a node is done
//! once its uninstall container has exited 0 at least once: its current or
//! its last termination has exit code 0.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

use super::conditions::Rollout;
use super::render::{AGENT_CONTAINER, LABEL_MODE, MODE_UNINSTALL};

/// Where the uninstall stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallProgress {
    /// Every node's uninstall finished.
    pub done: bool,
    /// Nodes covered by the uninstall DaemonSet.
    pub desired: i32,
    /// Nodes that finished.
    pub finished: Vec<String>,
    /// Nodes still working, with the last failure if any.
    pub pending: Vec<String>,
}

fn succeeded(t: Option<&ContainerStateTerminated>) -> bool {
    t.is_some_and(|t| t.exit_code == 0)
}

fn failure(t: Option<&ContainerStateTerminated>) -> Option<String> {
    let t = t.filter(|t| t.exit_code != 0)?;
    let why = t
        .message
        .as_deref()
        .or(t.reason.as_deref())
        .map(|m| m.lines().last().unwrap_or(m).trim().to_owned())
        .unwrap_or_default();
    Some(format!("exit {}: {why}", t.exit_code))
}

/// The progress of the uninstall DaemonSet `ds` given its pods.
pub fn progress(ds: &DaemonSet, pods: &[Pod]) -> UninstallProgress {
    let rollout = Rollout::of(ds);
    let mut finished = BTreeSet::new();
    let mut pending = Vec::new();
    for pod in pods {
        let uninstall_pod = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MODE))
            .is_some_and(|m| m == MODE_UNINSTALL);
        if !uninstall_pod {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "(unscheduled)".to_owned());
        let status = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == AGENT_CONTAINER));
        let current = status
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let last = status
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        if succeeded(current) || succeeded(last) {
            finished.insert(node);
        } else {
            match failure(current).or_else(|| failure(last)) {
                Some(why) => pending.push(format!("{node} ({why})")),
                None => pending.push(node),
            }
        }
    }
    pending.sort();
    let finished: Vec<String> = finished.into_iter().collect();
    let missing = usize::try_from(rollout.desired)
        .unwrap_or(0)
        .saturating_sub(finished.len() + pending.len());
    if missing > 0 {
        pending.push(format!(
            "{missing} node(s) whose uninstall pod is not running yet"
        ));
    }
    let done = rollout.observed()
        && rollout.updated >= rollout.desired
        && pending.is_empty()
        && finished.len() >= usize::try_from(rollout.desired).unwrap_or(0);
    UninstallProgress {
        done,
        desired: rollout.desired,
        finished,
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn ds(desired: i32, updated: i32, observed: i64) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                updated_number_scheduled: Some(updated),
                observed_generation: Some(observed),
                ..DaemonSetStatus::default()
            }),
        }
    }

    fn terminated(code: i32, message: Option<&str>) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                message: message.map(Into::into),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn pod(
        node: &str,
        mode: &str,
        state: Option<ContainerState>,
        last: Option<ContainerState>,
    ) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(LABEL_MODE.into(), mode.into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: AGENT_CONTAINER.into(),
                    state,
                    last_state: last,
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn done_when_every_node_exited_zero_once() {
        let pods = [
            pod("n1", "uninstall", Some(terminated(0, None)), None),
            // restarted after success: the last state tells
            pod(
                "n2",
                "uninstall",
                Some(ContainerState::default()),
                Some(terminated(0, None)),
            ),
        ];
        let p = progress(&ds(2, 2, 3), &pods);
        assert!(p.done, "{p:?}");
        assert_eq!(p.finished, ["n1", "n2"]);
    }

    #[test]
    fn pending_nodes_are_named_with_their_failure() {
        let pods = [
            pod("n1", "uninstall", Some(terminated(0, None)), None),
            pod(
                "n2",
                "uninstall",
                Some(terminated(1, Some("line1\ncannot remove /x: busy"))),
                None,
            ),
            pod("n3", "install", None, None),
        ];
        let p = progress(&ds(3, 2, 3), &pods);
        assert!(!p.done);
        assert_eq!(
            p.pending,
            [
                "n2 (exit 1: cannot remove /x: busy)",
                "1 node(s) whose uninstall pod is not running yet"
            ]
        );
    }

    #[test]
    fn not_done_before_the_daemon_set_saw_the_switch() {
        let pods = [pod("n1", "uninstall", Some(terminated(0, None)), None)];
        assert!(!progress(&ds(1, 1, 2), &pods).done);
        assert!(progress(&ds(1, 1, 3), &pods).done);
        assert!(
            progress(&ds(0, 0, 3), &[]).done,
            "no nodes: nothing to wait for"
        );
    }
}
