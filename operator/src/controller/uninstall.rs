//! What the controller does when a MultusConfig is deleted (the cleanup
//! branch of the finalizer [`super::FINALIZER`], which holds the object
//! until [`cleanup`] succeeds), in order:
//! 1. `switch_to_uninstall`: the agents' DaemonSet is switched to
//!    `node-agent --uninstall` ([`super::render::uninstall_daemon_set`]);
//!    each agent removes the Multus config, kubeconfig and plugin binary
//!    it installed. NetworkAttachmentDefinitions are left untouched.
//! 2. `wait_for_agents`: that command exits when done; a DaemonSet
//!    restarts it (the uninstall is idempotent), so a node is done once its
//!    uninstall container has exited 0 at least once: its current or its
//!    last termination has exit code 0 ([`progress`]). Meanwhile the
//!    status says `Uninstalling` and names the pending nodes, and the
//!    reconcile is repeated ([`Error::UninstallPending`], every
//!    [`REQUEUE_UNINSTALL`]).
//! 3. After progressDeadlineSeconds since the deletion the controller
//!    stops waiting and says which nodes may keep Multus
//!    (`report_incomplete`).
//! 4. `delete_operands` and `delete_node_states`: every object of the
//!    MultusConfig and its agents' MultusNodeStates go, an `Uninstalled`
//!    Event says what went, and the controller forgets the MultusConfig.
//!
//! Elsewhere only what this uses: the uninstall DaemonSet is rendered by
//! [`super::render::uninstall_daemon_set`], the wording of the
//! `Uninstalling` conditions is in [`super::conditions`], and
//! [`super::reconcile`] hands the deleted MultusConfig over to [`cleanup`].

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch};
use kube::runtime::controller::Action;
use multus_config::crd::multus_config::CONDITION_READY;
use multus_config::crd::{MultusConfig, MultusNodeState};

use super::Error;
use super::apply::{self, apply_params, owned};
use super::conditions::{self, Observation, Phase, Rollout, Severity, WaitingNode};
use super::context::Context;
use super::reconcile::name_and_uid;
use super::render::{self, AGENT_CONTAINER, LABEL_CONFIG, LABEL_MODE, MODE_UNINSTALL, agent_name};
use super::status::{publish, publish_status, whole_seconds};
use crate::agent::args::{self as agent_args, AttachedPods, NodeAgentArgs};

/// Requeue while waiting for the agents' uninstall.
pub const REQUEUE_UNINSTALL: Duration = Duration::from_secs(5);

/// The cleanup branch: uninstall on the nodes, then delete the operands.
pub async fn cleanup(config: &MultusConfig, ctx: &Context) -> Result<Action, Error> {
    let (name, uid) = name_and_uid(config)?;
    let now = whole_seconds(ctx.now());
    let live = ctx
        .stores
        .daemon_set(&ctx.settings.operands.namespace, &agent_name(name))
        .filter(|d| owned(d.as_ref(), name, uid));
    if let Some(live) = live {
        let ds = switch_to_uninstall(ctx, config, &live).await?;
        let incomplete = wait_for_agents(ctx, config, &ds, now).await?;
        if !incomplete.is_empty() {
            report_incomplete(ctx, config, &incomplete).await;
        }
    }
    let removed = delete_operands(ctx, name, uid).await?;
    delete_node_states(ctx, name).await?;
    publish(
        ctx,
        config,
        Severity::Normal,
        "Uninstalled",
        &format!(
            "Removed Multus from the nodes and deleted {}. NetworkAttachmentDefinitions are left \
             untouched.",
            if removed.is_empty() {
                "nothing else (no operands existed)".to_owned()
            } else {
                removed.join(", ")
            }
        ),
    )
    .await;
    ctx.forget(name);
    Ok(Action::await_change())
}

/// `spec.progressDeadlineSeconds`.
fn deadline(config: &MultusConfig) -> Duration {
    Duration::from_secs(u64::from(config.spec.progress_deadline_seconds()))
}

/// Decides whether the agents had their time: progressDeadlineSeconds
/// since the deletion.
fn gave_up(config: &MultusConfig, now: Timestamp) -> bool {
    let deleted_at = config
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let deadline =
        SignedDuration::from_secs(i64::try_from(deadline(config).as_secs()).unwrap_or(i64::MAX));
    now >= deleted_at.checked_add(deadline).unwrap_or(Timestamp::MAX)
}

/// Switches the agents' DaemonSet `live` to `node-agent --uninstall`
/// (once, with an `Uninstalling` Event); returns it as it now is.
async fn switch_to_uninstall(
    ctx: &Context,
    config: &MultusConfig,
    live: &DaemonSet,
) -> Result<DaemonSet, Error> {
    let policy = config.spec.attached_pods_on_removal();
    let Some(switch) = render::uninstall_daemon_set(live, policy.into()) else {
        return Ok(live.clone());
    };
    let already = render::is_uninstall_mode(live);
    if already && live_policy(live) == Some(policy.into()) {
        return Ok(live.clone());
    }
    let ns = ctx.settings.operands.namespace.as_str();
    let ds_name = live.name_any();
    let applied = Api::<DaemonSet>::namespaced(ctx.client.clone(), ns)
        .patch(&ds_name, &apply_params(), &Patch::Apply(&switch))
        .await
        .map_err(|e| Error::api("apply", format!("DaemonSet {ns}/{ds_name}"), e))?;
    let note = if already {
        format!(
            "attachedPodsOnRemoval is now {}: DaemonSet {ns}/{ds_name}'s agents apply it.",
            policy.as_str()
        )
    } else {
        format!(
            "Switched DaemonSet {ns}/{ds_name} to `node-agent --uninstall`: each agent \
             removes the Multus config, kubeconfig and plugin binary it installed, once no \
             pod on its node has secondary networks attached through Multus \
             (attachedPodsOnRemoval: {}). NetworkAttachmentDefinitions are left untouched.",
            policy.as_str()
        )
    };
    publish(ctx, config, Severity::Normal, "Uninstalling", &note).await;
    Ok(applied)
}

/// The `--attached-pods` of the agent container of an uninstall
/// DaemonSet; the default when its command line does not say (rendered
/// before the choice existed), `None` when it cannot be read.
fn live_policy(ds: &DaemonSet) -> Option<AttachedPods> {
    let args = ds
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == AGENT_CONTAINER)?
        .args
        .clone()
        .unwrap_or_else(|| vec![agent_args::SUBCOMMAND.to_owned()]);
    NodeAgentArgs::parse_rendered_lenient(&args)
        .ok()
        .map(|a| a.attached_pods)
}

/// The nodes among `pending` whose agent reports pods it waits for, from
/// the MultusNodeStates of the MultusConfig `name`.
pub fn waiting_nodes(
    states: &[MultusNodeState],
    name: &str,
    pending: &[String],
) -> Vec<WaitingNode> {
    let mut out: Vec<WaitingNode> = states
        .iter()
        .filter(|s| s.spec.multus_config.as_deref() == Some(name))
        .filter(|s| {
            pending.iter().any(|p| {
                p == &s.spec.node_name || p.starts_with(&format!("{} (", s.spec.node_name))
            })
        })
        .filter_map(|s| {
            let pods = s
                .status
                .as_ref()?
                .removal
                .as_ref()?
                .waiting_for_pods
                .clone();
            (!pods.is_empty()).then(|| WaitingNode {
                node: s.spec.node_name.clone(),
                pods,
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// Decides whether deletion may go on: yes when every node finished its
/// uninstall (or the DaemonSet is not in uninstall mode), or, naming the
/// nodes still pending, once [`gave_up`]; otherwise the status says whom
/// we wait for and [`Error::UninstallPending`] repeats the reconcile.
async fn wait_for_agents(
    ctx: &Context,
    config: &MultusConfig,
    ds: &DaemonSet,
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    if !render::is_uninstall_mode(ds) {
        return Ok(Vec::new());
    }
    let name = config.name_any();
    let ns = ctx.settings.operands.namespace.as_str();
    let selector = format!("{LABEL_CONFIG}={name},{LABEL_MODE}={MODE_UNINSTALL}");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api("list", format!("uninstall pods in {ns}"), e))?;
    let progress = progress(ds, &pods.items);
    if progress.done {
        return Ok(Vec::new());
    }
    let states: Vec<MultusNodeState> = ctx
        .stores
        .node_states
        .state()
        .iter()
        .map(|s| (**s).clone())
        .collect();
    let waiting = waiting_nodes(&states, &name, &progress.pending);
    if gave_up(config, now) {
        let mut pending = progress.pending;
        if let Some(pods) = conditions::waiting_for_pods(&waiting) {
            pending.push(format!("pods still attached: {pods}"));
        }
        return Ok(pending);
    }
    let observation = Observation {
        name: &name,
        daemon_set: format!("{ns}/{}", agent_name(&name)),
        namespace: ns,
        spec_problems: &[],
        apply_error: None,
        missing_role: None,
        missing_plugin_role: None,
        rollout: Some(Rollout::of(ds)),
        nodes: &[],
        conflicts: &[],
        invalid_nads: &[],
        stalled_for: Duration::ZERO,
        deadline: deadline(config),
        token_lifetime: Duration::ZERO,
        now,
        phase: Phase::Uninstalling {
            pending: progress.pending.clone(),
            desired: progress.desired,
            waiting: waiting.clone(),
        },
        server: None,
    };
    let assessment = conditions::assess(&observation);
    announce_waiting(ctx, config, &waiting).await;
    publish_status(ctx, config, &assessment, 0, now).await?;
    Err(Error::UninstallPending {
        pending: progress.pending.len(),
    })
}

/// A Normal `WaitingForPods` Event naming the pods per node, whenever the
/// pods waited for differ from what the status said so far.
async fn announce_waiting(ctx: &Context, config: &MultusConfig, waiting: &[WaitingNode]) {
    let Some(pods) = conditions::waiting_for_pods(waiting) else {
        return;
    };
    let said = config
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY))
        .is_some_and(|c| c.message.contains(&pods));
    if said {
        return;
    }
    publish(
        ctx,
        config,
        Severity::Normal,
        conditions::REASON_WAITING_FOR_PODS,
        &format!(
            "Multus stays on the nodes while pods use it: {pods}. Delete those pods, or set \
             attachedPodsOnRemoval: Detach to release their secondary networks now."
        ),
    )
    .await;
}

/// Warns that the agents of `incomplete` nodes did not finish in time and
/// how to remove Multus there by hand.
async fn report_incomplete(ctx: &Context, config: &MultusConfig, incomplete: &[String]) {
    publish(
        ctx,
        config,
        Severity::Warning,
        "UninstallIncomplete",
        &format!(
            "Gave up after progressDeadlineSeconds ({}s) waiting for {}. Multus \
             may remain on those nodes: run `multus-operator node-agent --uninstall` there, \
             or remove 00-multus.conf(list) and multus.d/ from the CNI conf dir and multus \
             from the CNI bin dir by hand.",
            deadline(config).as_secs(),
            conditions::name_list(incomplete, conditions::NAMES_SHOWN)
        ),
    )
    .await;
}

/// Deletes every object of the MultusConfig (from the caches, in deletion
/// order); returns what went.
async fn delete_operands(ctx: &Context, name: &str, uid: &str) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for key in apply::owned_objects(&ctx.stores, name, uid) {
        apply::delete(&ctx.client, &key).await?;
        removed.push(key.to_string());
    }
    Ok(removed)
}

/// Deletes the MultusNodeStates of the MultusConfig `name`'s agents.
async fn delete_node_states(ctx: &Context, name: &str) -> Result<(), Error> {
    let api: Api<MultusNodeState> = Api::all(ctx.client.clone());
    let mut states = ctx.stores.node_states.state();
    states.sort_by_key(|s| s.name_any());
    for state in states {
        if state.spec.multus_config.as_deref() != Some(name) {
            continue;
        }
        match api
            .delete(&state.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => {
                return Err(Error::api(
                    "delete",
                    format!("MultusNodeState {}", state.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

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

    fn state(node: &str, config: &str, pods: &[&str]) -> MultusNodeState {
        let mut s = MultusNodeState::new(
            node,
            multus_config::crd::MultusNodeStateSpec {
                node_name: node.into(),
                multus_config: Some(config.into()),
            },
        );
        s.status = Some(multus_config::crd::MultusNodeStateStatus {
            removal: Some(multus_config::crd::NodeRemoval {
                waiting_for_pods: pods.iter().map(|p| (*p).to_owned()).collect(),
                message: None,
            }),
            ..Default::default()
        });
        s
    }

    #[test]
    fn the_pods_waited_for_come_from_the_pending_nodes_of_this_config() {
        let states = [
            state("vm2", "default", &["a/x"]),
            state("vm", "default", &["leak/p1"]),
            state("done", "default", &["old/pod"]),
            state("other", "pool-b", &["b/y"]),
            state("idle", "default", &[]),
        ];
        let pending = [
            "vm".to_owned(),
            "vm2 (exit 1: boom)".to_owned(),
            "other".to_owned(),
            "idle".to_owned(),
        ];
        let waiting = waiting_nodes(&states, "default", &pending);
        assert_eq!(
            waiting,
            [
                WaitingNode {
                    node: "vm".into(),
                    pods: vec!["leak/p1".into()]
                },
                WaitingNode {
                    node: "vm2".into(),
                    pods: vec!["a/x".into()]
                },
            ]
        );
    }
}
