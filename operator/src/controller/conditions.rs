//! `Ready`, `Progressing` and `Degraded` of a MultusConfig, computed from
//! what the controller observed (the spec's problems, the DaemonSet's
//! rollout, the agents' MultusNodeStates, node-pool conflicts and NAD
//! validation), and the Events a change of them deserves.
//!
//! Every message says what is wrong, names the nodes or objects, and the
//! next step, so `kubectl describe multusconfig` is enough to act on.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use multus_config::crd::multus_config::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY, PrimaryNetworkSummary,
};
use multus_config::crd::{CredentialSource, MultusConfigStatus, MultusNodeState};
use multus_config::text::prefix_on_char_boundary;

use super::pools::Conflict;
use super::render::LABEL_CONFIG;
use super::validate::SpecProblem;

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

/// How many names a message lists before "and N more".
pub const NAMES_SHOWN: usize = 5;

/// `a, b, c and 2 more`.
pub fn name_list<S: AsRef<str>>(names: &[S], shown: usize) -> String {
    let mut out = names
        .iter()
        .take(shown)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        out.push_str(&format!(" and {} more", names.len() - shown));
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` trimmed, cut to `max` bytes (on a char boundary) and marked with
/// "…" when it was longer.
fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", prefix_on_char_boundary(text, max))
}

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
    },
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
}

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
    fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Self {
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
}

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

/// A key that changes whenever the rollout or a node makes progress; the
/// deadline counts from its last change.
pub fn progress_signature(rollout: Option<&Rollout>, nodes: &[NodeReport]) -> String {
    let mut not_ready: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.ready)
        .map(|n| n.node.as_str())
        .collect();
    not_ready.sort_unstable();
    match rollout {
        Some(r) => format!(
            "{}/{}:{}/{}/{}/{}|{}",
            r.generation,
            r.observed_generation,
            r.desired,
            r.updated,
            r.ready,
            r.unavailable,
            not_ready.join(",")
        ),
        None => format!("none|{}", not_ready.join(",")),
    }
}

/// When progress was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressMark {
    /// [`progress_signature`] at the time.
    pub signature: String,
    /// When the signature last changed.
    pub since: Timestamp,
}

/// The new mark: `previous` if nothing changed, else `now`. Without a
/// previous mark (controller restart) the rollout counts from
/// `fallback` (the Progressing condition's transition time) if given.
pub fn advance(
    previous: Option<&ProgressMark>,
    signature: String,
    now: Timestamp,
    fallback: Option<Timestamp>,
) -> ProgressMark {
    match previous {
        Some(mark) if mark.signature == signature => mark.clone(),
        Some(_) => ProgressMark {
            signature,
            since: now,
        },
        None => ProgressMark {
            signature,
            since: fallback.filter(|t| *t <= now).unwrap_or(now),
        },
    }
}

fn primary_networks(
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

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// What is wrong with one node's plugin credential at `now`, and when it
/// next deserves a look. A plugin token is expiring when less than a
/// quarter of its lifetime is left (its agent refreshes at half); the
/// lifetime is the configured one or, when the API server issued a
/// shorter token, that token's. The fallback (the agent's own token) is a
/// problem once it lasts longer than `grace`, or when the copy expired.
pub fn credential_problem(
    credential: &CredentialReport,
    lifetime: Duration,
    grace: Duration,
    now: Timestamp,
) -> (Option<String>, Option<Timestamp>) {
    let at = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let expired = credential.expires_at.filter(|e| *e <= now);
    match credential.source {
        CredentialSource::TokenRequest => {
            let Some(expires) = credential.expires_at else {
                return (None, None);
            };
            if let Some(e) = expired {
                return (Some(format!("expired at {}", at(e))), None);
            }
            let mut life = span(lifetime);
            if let Some(issued) = credential.issued_at {
                life = life.min(expires.duration_since(issued));
            }
            let warn_at = expires.checked_sub(life / 4).unwrap_or(expires);
            if warn_at <= now {
                (
                    Some(format!("expires at {}, not refreshed", at(expires))),
                    Some(expires),
                )
            } else {
                (None, Some(warn_at))
            }
        }
        CredentialSource::AgentToken => {
            if let Some(e) = expired {
                return (
                    Some(format!(
                        "uses a copy of the agent's own token, which expired at {}",
                        at(e)
                    )),
                    None,
                );
            }
            let Some(since) = credential.since else {
                return (None, credential.expires_at);
            };
            let until = since.checked_add(span(grace)).unwrap_or(Timestamp::MAX);
            let next = credential.expires_at.map_or(until, |e| e.min(until));
            if until <= now {
                (
                    Some(format!(
                        "uses a copy of the agent's own token since {}",
                        at(since)
                    )),
                    credential.expires_at,
                )
            } else {
                (None, Some(next))
            }
        }
    }
}

/// A reason for `Degraded` and its message.
type Issue = (&'static str, String);

/// Computes the three conditions and the counters: while uninstalling
/// (`uninstalling`), else `Ready` and `Progressing` from the rollout
/// (`rollout_verdicts`, unless a failed apply or a missing role blocks
/// it: `ready_unless_blocked`) and `Degraded` from every issue, most
/// serious first (`degraded`).
pub fn assess(obs: &Observation<'_>) -> Assessment {
    let (primary, by_network) = primary_networks(obs.nodes);
    let rollout = obs.rollout.unwrap_or_default();
    let (ready, progressing, degraded, recheck_in) = match &obs.phase {
        Phase::Uninstalling { pending, desired } => {
            let (ready, progressing, degraded) = uninstalling(obs, pending, *desired);
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
    }
}

/// Decides the three conditions while the MultusConfig is deleted and the
/// agents remove Multus: waiting, naming the `pending` nodes.
fn uninstalling(
    obs: &Observation<'_>,
    pending: &[String],
    desired: i32,
) -> (Verdict, Verdict, Verdict) {
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

/// Decides whether the spec is an issue: it cannot be applied.
fn spec_issue(obs: &Observation<'_>) -> Option<Issue> {
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
fn apply_issue(obs: &Observation<'_>) -> Option<Issue> {
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
fn role_issue(obs: &Observation<'_>) -> Option<Issue> {
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
fn plugin_role_issue(obs: &Observation<'_>) -> Option<Issue> {
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
fn conflict_issue(obs: &Observation<'_>) -> Option<Issue> {
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

/// Decides `Ready` and `Progressing` from the rollout and the agents'
/// reports, and whether a rollout stalled past the deadline is an issue.
fn rollout_verdicts(obs: &Observation<'_>, pods_hint: &str) -> (Verdict, Verdict, Option<Issue>) {
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

/// Decides which nodes' plugin tokens are not being refreshed (see
/// [`credential_problem`]), and when the next one crosses a threshold.
fn credential_issue(obs: &Observation<'_>, pods_hint: &str) -> (Option<Issue>, Option<Timestamp>) {
    let mut expiring = Vec::new();
    let mut recheck: Option<Timestamp> = None;
    for node in obs.nodes {
        let Some(credential) = &node.credential else {
            continue;
        };
        let (problem, next) =
            credential_problem(credential, obs.token_lifetime, obs.deadline, obs.now);
        if let Some(problem) = problem {
            expiring.push(format!("{} ({problem})", node.node));
        }
        if let Some(next) = next.filter(|t| *t > obs.now) {
            recheck = Some(recheck.map_or(next, |r| r.min(next)));
        }
    }
    if expiring.is_empty() {
        return (None, recheck);
    }
    let issue = (
        REASON_CREDENTIAL_EXPIRING,
        format!(
            "The multus plugin's API token is not being refreshed on {}: {}. Pods with extra \
             networks fail to start on a node once its token has expired. The agent \
             refreshes the token at half its life and otherwise uses a copy of its own token \
             (which dies with the agent pod); see the reason in `kubectl get \
             multusnodestate <node> -o yaml` (status.pluginCredential.message) and the agent \
             pods: {}.",
            plural(expiring.len(), "node", "nodes"),
            name_list(&expiring, NAMES_SHOWN),
            pods_hint
        ),
    );
    (Some(issue), recheck)
}

/// Decides whether the nodes disagree on the primary network, naming the
/// nodes that differ from the majority.
fn primary_mismatch_issue(
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
fn invalid_nads_issue(obs: &Observation<'_>) -> Option<Issue> {
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

/// Decides `Degraded`: the first (most serious) issue's reason, and every
/// issue's message.
fn degraded(issues: &[Issue]) -> Verdict {
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

fn condition(
    type_: &str,
    verdict: &Verdict,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if verdict.status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.to_owned(),
        message: verdict.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The status for `assessment`: conditions keep their transition time
/// while their status stays the same.
pub fn status(
    previous: Option<&MultusConfigStatus>,
    assessment: &Assessment,
    generation: Option<i64>,
    invalid_nads: usize,
    now: Timestamp,
) -> MultusConfigStatus {
    let prev = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    MultusConfigStatus {
        observed_generation: generation,
        conditions: vec![
            condition(CONDITION_READY, &assessment.ready, prev, generation, now),
            condition(
                CONDITION_PROGRESSING,
                &assessment.progressing,
                prev,
                generation,
                now,
            ),
            condition(
                CONDITION_DEGRADED,
                &assessment.degraded,
                prev,
                generation,
                now,
            ),
        ],
        desired_nodes: assessment.desired_nodes,
        ready_nodes: assessment.ready_nodes,
        updated_nodes: assessment.updated_nodes,
        primary_networks: assessment.primary_networks.clone(),
        invalid_network_attachment_definitions: i32::try_from(invalid_nads).unwrap_or(i32::MAX),
    }
}

/// Severity of a state-change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Normal,
    /// Needs attention.
    Warning,
}

/// An Event to publish on the MultusConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason.
    pub reason: String,
    /// The condition's message.
    pub note: String,
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The Events for going from `previous` to `next` conditions: a Warning
/// when Degraded turns True or changes reason, Normal `Recovered` when it
/// turns False, Normal `Ready` when Ready turns True, and Normal events
/// when a rollout starts or completes. No event when nothing changed.
pub fn transition_events(previous: &[Condition], next: &[Condition]) -> Vec<StateEvent> {
    let mut events = Vec::new();
    let changed = |type_: &str| -> Option<(&Condition, Option<&Condition>)> {
        let now = find(next, type_)?;
        let before = find(previous, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!same).then_some((now, before))
    };
    if let Some((now, before)) = changed(CONDITION_DEGRADED) {
        if now.status == "True" {
            events.push(StateEvent {
                severity: Severity::Warning,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        } else if before.is_some_and(|b| b.status == "True") {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: "Recovered".to_owned(),
                note: format!(
                    "No longer degraded (was {}).",
                    before.map(|b| b.reason.as_str()).unwrap_or_default()
                ),
            });
        }
    }
    if let Some((now, _)) = changed(CONDITION_PROGRESSING) {
        let interesting = (now.status == "True" && now.reason != REASON_UNINSTALLING)
            || now.reason == REASON_ROLLOUT_COMPLETE;
        if interesting {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        }
    }
    if let Some((now, before)) = changed(CONDITION_READY) {
        if now.status == "True" {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: REASON_READY.to_owned(),
                note: now.message.clone(),
            });
        } else if now.reason == REASON_NODES_NOT_READY || now.reason == REASON_NO_NODES {
            events.push(StateEvent {
                severity: Severity::Warning,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        } else if before.is_some_and(|b| b.status == "True")
            && !events.iter().any(|e| e.reason == now.reason)
        {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: "NotReady".to_owned(),
                note: now.message.clone(),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(rollout: Option<Rollout>, nodes: &'a [NodeReport]) -> Observation<'a> {
        Observation {
            name: "default",
            daemon_set: "multus-system/multus-agent-default".into(),
            namespace: "multus-system",
            spec_problems: &[],
            apply_error: None,
            missing_role: None,
            missing_plugin_role: None,
            rollout,
            nodes,
            conflicts: &[],
            invalid_nads: &[],
            stalled_for: Duration::ZERO,
            deadline: Duration::from_secs(600),
            token_lifetime: Duration::from_secs(86_400),
            now: Timestamp::from_second(T0).unwrap(),
            phase: Phase::Active,
        }
    }

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn rollout(desired: i32, updated: i32, ready: i32, unavailable: i32) -> Rollout {
        Rollout {
            generation: 2,
            observed_generation: 2,
            desired,
            updated,
            ready,
            unavailable,
        }
    }

    fn node(name: &str, ready: bool, message: Option<&str>, primary: Option<&str>) -> NodeReport {
        NodeReport {
            node: name.into(),
            ready,
            message: message.map(Into::into),
            primary_network: primary.map(Into::into),
            credential: None,
        }
    }

    type Triple<'a> = (bool, &'a str, bool, &'a str, bool, &'a str);

    fn triple(a: &Assessment) -> Triple<'_> {
        (
            a.ready.status,
            a.ready.reason,
            a.progressing.status,
            a.progressing.reason,
            a.degraded.status,
            a.degraded.reason,
        )
    }

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
    fn transition_times_survive_unchanged_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let ok = [node("n1", true, None, None)];
        let a = assess(&obs(Some(rollout(1, 0, 0, 1)), &ok));
        let s0 = status(None, &a, Some(2), 0, t0);
        assert!(s0.conditions.iter().all(|c| c.last_transition_time.0 == t0));
        assert!(
            s0.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        // Same statuses, different message: times kept.
        let a2 = assess(&obs(Some(rollout(1, 0, 1, 1)), &ok));
        let s1 = status(Some(&s0), &a2, Some(2), 0, t1);
        assert!(s1.conditions.iter().all(|c| c.last_transition_time.0 == t0));
        // Ready flips: only Ready and Progressing move.
        let a3 = assess(&obs(Some(rollout(1, 1, 1, 0)), &ok));
        let s2 = status(Some(&s1), &a3, Some(2), 3, t1);
        let time = |s: &MultusConfigStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .last_transition_time
                .0
        };
        assert_eq!(time(&s2, "Ready"), t1);
        assert_eq!(time(&s2, "Progressing"), t1);
        assert_eq!(time(&s2, "Degraded"), t0);
        assert_eq!(s2.invalid_network_attachment_definitions, 3);
        assert_eq!(s2.observed_generation, Some(2));
    }

    #[test]
    fn progress_marks_move_only_on_change() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(1_500).unwrap();
        let r = rollout(2, 1, 1, 1);
        let sig = progress_signature(Some(&r), &[]);
        let m0 = advance(None, sig.clone(), t1, Some(t0));
        assert_eq!(
            m0.since, t0,
            "restart: counts from the condition's transition"
        );
        let m1 = advance(Some(&m0), sig.clone(), t1, None);
        assert_eq!(m1.since, t0);
        let moved = progress_signature(Some(&rollout(2, 2, 1, 1)), &[]);
        assert_eq!(advance(Some(&m1), moved, t1, None).since, t1);
        let node_changed = progress_signature(Some(&r), &[node("n1", false, None, None)]);
        assert_ne!(node_changed, sig);
        assert_eq!(
            advance(None, sig, t0, Some(t1)).since,
            t0,
            "future fallback ignored"
        );
    }

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} message"),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn events_follow_state_changes_only() {
        let ready = vec![
            cond("Ready", "True", "Ready"),
            cond("Progressing", "False", "RolloutComplete"),
            cond("Degraded", "False", "AsExpected"),
        ];
        assert!(transition_events(&ready, &ready).is_empty());
        let rolling = vec![
            cond("Ready", "False", "RollingOut"),
            cond("Progressing", "True", "RollingOut"),
            cond("Degraded", "False", "AsExpected"),
        ];
        let e = transition_events(&ready, &rolling);
        let reasons: Vec<_> = e.iter().map(|e| (e.severity, e.reason.as_str())).collect();
        // Ready dropping for the same reason adds no second event.
        assert_eq!(reasons, [(Severity::Normal, "RollingOut")]);
        let lost = vec![
            cond("Ready", "False", "ApplyFailed"),
            cond("Progressing", "False", "RolloutComplete"),
            cond("Degraded", "False", "AsExpected"),
        ];
        let e = transition_events(&ready, &lost);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].severity, e[0].reason.as_str()),
            (Severity::Normal, "NotReady")
        );
        let e = transition_events(&rolling, &ready);
        let reasons: Vec<_> = e.iter().map(|e| (e.severity, e.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (Severity::Normal, "RolloutComplete"),
                (Severity::Normal, "Ready")
            ]
        );
        let stuck = vec![
            cond("Ready", "False", "RollingOut"),
            cond("Progressing", "True", "RollingOut"),
            cond("Degraded", "True", "RolloutStuck"),
        ];
        let e = transition_events(&rolling, &stuck);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].severity, e[0].reason.as_str()),
            (Severity::Warning, "RolloutStuck")
        );
        assert_eq!(e[0].note, "RolloutStuck message");
        let e = transition_events(&stuck, &rolling);
        assert_eq!(e[0].reason, "Recovered");
        assert!(e[0].note.contains("RolloutStuck"));
        // First status ever: a Warning for Degraded, nothing for a rollout start? It starts.
        let e = transition_events(&[], &stuck);
        assert_eq!(
            e.iter().filter(|e| e.severity == Severity::Warning).count(),
            1
        );
        assert!(e.iter().any(|e| e.reason == "RollingOut"));
    }

    fn credential(
        source: CredentialSource,
        issued: Option<i64>,
        expires: Option<i64>,
        since: Option<i64>,
    ) -> CredentialReport {
        let t = |s: i64| Timestamp::from_second(T0 + s).unwrap();
        CredentialReport {
            source,
            issued_at: issued.map(t),
            expires_at: expires.map(t),
            since: since.map(t),
        }
    }

    #[test]
    fn credential_problem_table() {
        use CredentialSource::{AgentToken, TokenRequest};
        const DAY: i64 = 86_400;
        let now = Timestamp::from_second(T0).unwrap();
        let lifetime = Duration::from_secs(86_400);
        let grace = Duration::from_secs(600);
        let t = |s: i64| Timestamp::from_second(T0 + s).unwrap();
        #[allow(clippy::type_complexity)]
        let cases: Vec<(CredentialReport, Option<&str>, Option<Timestamp>)> = vec![
            // Refreshed at half its life: fine until a quarter is left.
            (
                credential(TokenRequest, Some(-DAY / 2), Some(DAY / 2), Some(-DAY)),
                None,
                Some(t(DAY / 4)),
            ),
            // A quarter left: its agent missed the refresh.
            (
                credential(TokenRequest, Some(-DAY * 3 / 4), Some(DAY / 4), None),
                Some("expires at 2026-01-01T06:00:00Z, not refreshed"),
                Some(t(DAY / 4)),
            ),
            (
                credential(TokenRequest, Some(-DAY), Some(0), None),
                Some("expired at 2026-01-01T00:00:00Z"),
                None,
            ),
            // The API server issued 1 h tokens: a quarter of that counts.
            (
                credential(TokenRequest, Some(-1800), Some(1800), None),
                None,
                Some(t(900)),
            ),
            (
                credential(TokenRequest, Some(-2800), Some(800), None),
                Some("expires at 2026-01-01T00:13:20Z, not refreshed"),
                Some(t(800)),
            ),
            // Without issuedAt, the configured lifetime.
            (
                credential(TokenRequest, None, Some(DAY / 5), None),
                Some("expires at 2026-01-01T04:48:00Z, not refreshed"),
                Some(t(DAY / 5)),
            ),
            // The fallback, briefly: fine; for longer than the grace: not.
            (
                credential(AgentToken, Some(-60), Some(3540), Some(-60)),
                None,
                Some(t(540)),
            ),
            (
                credential(AgentToken, Some(-700), Some(2900), Some(-700)),
                Some("uses a copy of the agent's own token since 2025-12-31T23:48:20Z"),
                Some(t(2900)),
            ),
            (
                credential(AgentToken, Some(-3600), Some(0), Some(-60)),
                Some("uses a copy of the agent's own token, which expired at 2026-01-01T00:00:00Z"),
                None,
            ),
        ];
        for (c, problem, next) in cases {
            let (p, n) = credential_problem(&c, lifetime, grace, now);
            assert_eq!((p.as_deref(), n), (problem, next), "{c:?}");
        }
    }

    #[test]
    fn unrefreshed_plugin_tokens_are_degraded_and_name_the_nodes() {
        let mut nodes = vec![
            node("n1", true, None, Some("k8s")),
            node("n2", true, None, Some("k8s")),
            node("n3", true, None, Some("k8s")),
            node("n4", true, None, Some("k8s")),
        ];
        const DAY: i64 = 86_400;
        nodes[0].credential = Some(credential(
            CredentialSource::TokenRequest,
            Some(-DAY / 2),
            Some(DAY / 2),
            Some(-DAY),
        ));
        nodes[1].credential = Some(credential(
            CredentialSource::TokenRequest,
            Some(-DAY + 60),
            Some(60),
            Some(-DAY),
        ));
        nodes[2].credential = Some(credential(
            CredentialSource::AgentToken,
            Some(-900),
            Some(2700),
            Some(-900),
        ));
        // n4: an agent older than this check reports nothing.
        let a = assess(&obs(Some(rollout(4, 4, 4, 0)), &nodes));
        assert_eq!(
            triple(&a),
            (
                true,
                "Ready",
                false,
                "RolloutComplete",
                true,
                "PluginCredentialExpiring"
            )
        );
        let m = &a.degraded.message;
        assert!(
            m.starts_with(
                "The multus plugin's API token is not being refreshed on 2 nodes: n2 (expires at \
                 2026-01-01T00:01:00Z, not refreshed), n3 (uses a copy of the agent's own token \
                 since 2025-12-31T23:45:00Z)."
            ),
            "{m}"
        );
        assert!(m.contains("status.pluginCredential.message"), "{m}");
        assert!(m.contains("kubectl -n multus-system get pods"), "{m}");
        // The next look: when n2's token expires.
        assert_eq!(a.recheck_in, Some(Duration::from_secs(60)));
        // The Warning event comes with the transition.
        let status = status(None, &a, Some(1), 0, Timestamp::from_second(T0).unwrap());
        let events = transition_events(&[], &status.conditions);
        assert!(
            events
                .iter()
                .any(|e| e.severity == Severity::Warning && e.reason == "PluginCredentialExpiring")
        );
        // Healthy credentials only schedule the next look.
        nodes.truncate(1);
        let a = assess(&obs(Some(rollout(1, 1, 1, 0)), &nodes));
        assert_eq!(a.degraded.reason, "AsExpected");
        assert_eq!(a.recheck_in, Some(Duration::from_secs(86_400 / 4)));
    }

    #[test]
    fn name_lists_are_bounded() {
        let names: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
        assert_eq!(name_list(&names, 5), "n1, n2, n3, n4, n5 and 3 more");
        assert_eq!(name_list(&names[..2], 5), "n1, n2");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
