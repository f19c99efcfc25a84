//! One reconcile of a MultusConfig, through kube-runtime's finalizer
//! helper (which adds [`FINALIZER`] before the first apply and removes it
//! once the cleanup succeeded), its retry policy, and what a reconcile of
//! a live MultusConfig does, step by step:
//! 1. `node_pool`: the nodes, and those an older MultusConfig keeps;
//! 2. `roll_out`: validate, render, apply the operands with server-side
//!    apply under one field manager ([`super::apply`]) unless nothing
//!    changed, and prune what is no longer rendered;
//! 3. `assess_active`: compute the conditions ([`super::conditions`])
//!    from the rollout, the agents' reports and the chart's ClusterRoles
//!    ([`super::observe`]);
//! 4. publish the status and the Events of its changes
//!    ([`super::status`]), and requeue (`requeue_after`).
//!
//! What happens when a MultusConfig is deleted (the finalizer's cleanup)
//! is [`super::uninstall`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use multus_config::crd::MultusConfig;
use multus_config::crd::multus_config::CONDITION_PROGRESSING;

use super::apply::{self, owned};
use super::conditions::{self, Assessment, NodeReport, Observation, Phase, Rollout, Severity};
use super::context::Context;
use super::observe;
use super::pools::{self, Conflict, NodeInfo};
use super::prune;
use super::render::{self, Children, agent_name};
use super::status::{publish, publish_status, whole_seconds};
use super::uninstall;
use super::validate::{SpecProblem, validate};
use super::{Error, FINALIZER};

/// Requeue while a rollout is under way (stuck-rollout detection).
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(15);
/// Requeue in a steady state (a safety net; watches do the real work).
pub const REQUEUE_STEADY: Duration = Duration::from_secs(300);

/// Reconciles one MultusConfig.
pub async fn reconcile(config: Arc<MultusConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let name = config.name_any();
    let api: Api<MultusConfig> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, config, |event| async {
        match event {
            Finalize::Apply(config) => apply(&config, &ctx).await,
            Finalize::Cleanup(config) => uninstall::cleanup(&config, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe(started.elapsed());
    if result.is_ok() {
        ctx.record_success(&name);
    }
    result
}

/// What to do after a failed reconcile: wait briefly while the agents
/// uninstall, otherwise back off exponentially (5 s doubling to 5 min).
pub fn error_policy(config: Arc<MultusConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_uninstall_pending() {
        return Action::requeue(uninstall::REQUEUE_UNINSTALL);
    }
    ctx.metrics.error(error.metric_label());
    let failures = ctx.record_failure(&config.name_any());
    let delay = backoff(failures);
    tracing::warn!(
        multusconfig = %config.name_any(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The delay after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << exponent).min(300))
}

/// The name and uid of a MultusConfig (the API server always sets both).
pub fn name_and_uid(config: &MultusConfig) -> Result<(&str, &str), Error> {
    let name = config
        .metadata
        .name
        .as_deref()
        .ok_or(Error::Incomplete("metadata.name"))?;
    let uid = config
        .metadata
        .uid
        .as_deref()
        .ok_or(Error::Incomplete("metadata.uid"))?;
    Ok((name, uid))
}

/// The Apply branch: roll the spec out, then report how it stands.
async fn apply(config: &MultusConfig, ctx: &Context) -> Result<Action, Error> {
    let (name, uid) = name_and_uid(config)?;
    let now = whole_seconds(ctx.now());
    let pool = node_pool(ctx, config, uid);
    let outcome = roll_out(ctx, config, name, uid, &pool.excluded).await?;
    let (assessment, invalid_nads) = assess_active(ctx, config, name, &pool, &outcome, now).await;
    publish_status(ctx, config, &assessment, invalid_nads, now).await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    Ok(Action::requeue(requeue_after(&assessment)))
}

/// The nodes as a MultusConfig sees them.
#[derive(Debug)]
struct NodePool {
    /// Every node.
    nodes: Vec<NodeInfo>,
    /// The nodes it selects that an older MultusConfig keeps.
    conflicts: Vec<Conflict>,
    /// The names of those nodes (its agents skip them).
    excluded: BTreeSet<String>,
}

/// Decides which of the nodes the MultusConfig `uid` leaves to older
/// MultusConfigs that also select them.
fn node_pool(ctx: &Context, config: &MultusConfig, uid: &str) -> NodePool {
    let nodes = observe::node_infos(&ctx.stores.nodes);
    let all = ctx.stores.configs.state();
    let others: Vec<&MultusConfig> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| c.metadata.uid.as_deref() != Some(uid))
        .collect();
    let conflicts = pools::conflicts(config, &others, &nodes);
    let excluded = conflicts.iter().map(|c| c.node.clone()).collect();
    NodePool {
        nodes,
        conflicts,
        excluded,
    }
}

/// What rolling the spec out gave.
#[derive(Debug)]
struct Outcome {
    /// Why the spec cannot be applied (then nothing was).
    problems: Vec<SpecProblem>,
    /// Our DaemonSet, as applied or else as cached.
    daemon_set: Option<DaemonSet>,
    /// Why applying or pruning failed (reported, then retried).
    error: Option<Error>,
}

/// Decides what to change on the cluster: nothing for an invalid spec;
/// else the rendered operands are applied (unless neither they nor the
/// live objects changed since the last apply) and what the spec no longer
/// renders is pruned. A spec the API server's dry run rejects counts as
/// invalid. An `Err` (a MultusConfig that cannot be rendered) ends the
/// reconcile before its status is written.
async fn roll_out(
    ctx: &Context,
    config: &MultusConfig,
    name: &str,
    uid: &str,
    excluded: &BTreeSet<String>,
) -> Result<Outcome, Error> {
    let live_ds = ctx
        .stores
        .daemon_set(&ctx.settings.operands.namespace, &agent_name(name))
        .filter(|d| owned(d.as_ref(), name, uid));
    let mut outcome = Outcome {
        problems: validate(config),
        daemon_set: live_ds.as_deref().cloned(),
        error: None,
    };
    if !outcome.problems.is_empty() {
        return Ok(outcome);
    }
    let excluded: Vec<String> = excluded.iter().cloned().collect();
    let children = render::render(config, &ctx.settings.operands, &excluded)?;
    let digest = apply::applied_digest(&children, &apply::cached_versions(&children, &ctx.stores))?;
    if ctx.applied(name).as_deref() != Some(digest.as_str()) {
        match apply::apply_children(ctx, &children, live_ds.as_deref()).await {
            Ok(applied) => {
                let digest = apply::applied_digest(&children, &applied.versions)?;
                ctx.set_applied(name, Some(digest));
                outcome.daemon_set = Some(applied.daemon_set);
            }
            Err(e) => {
                ctx.set_applied(name, None);
                match rejected_by_dry_run(&e) {
                    Some(problem) => outcome.problems.push(problem),
                    None => outcome.error = Some(e),
                }
                return Ok(outcome);
            }
        }
    }
    let daemon_set = outcome.daemon_set.as_ref();
    outcome.error = prune_stale(ctx, config, (name, uid), &children, daemon_set)
        .await
        .err();
    Ok(outcome)
}

/// Deletes our objects that `children` no longer has (see
/// [`prune::stale`]: what the agent pods mount only once the rollout is
/// complete), with a `Pruned` Event each; stops at the first failure.
async fn prune_stale(
    ctx: &Context,
    config: &MultusConfig,
    (name, uid): (&str, &str),
    children: &Children,
    daemon_set: Option<&DaemonSet>,
) -> Result<(), Error> {
    let complete = daemon_set.is_some_and(|d| Rollout::of(d).complete());
    let stale = prune::stale(
        &apply::owned_objects(&ctx.stores, name, uid),
        &prune::desired_keys(children),
        complete,
    );
    for key in stale {
        apply::delete(&ctx.client, &key).await?;
        publish(
            ctx,
            config,
            Severity::Normal,
            "Pruned",
            &format!("Deleted {key}, which the current spec no longer uses."),
        )
        .await;
    }
    Ok(())
}

/// A spec problem when the API server's dry run rejected the rendered
/// DaemonSet as invalid (422): then nothing was applied, and the user's
/// spec (resources, affinity, tolerations, ...) is what needs fixing.
fn rejected_by_dry_run(error: &Error) -> Option<SpecProblem> {
    match error {
        Error::Api {
            verb: "validate",
            error: kube::Error::Api(status),
            ..
        } if status.code == 422 => Some(SpecProblem {
            field: "spec".to_owned(),
            message: format!(
                "the API server rejects the DaemonSet rendered from it: {}",
                status.message
            ),
        }),
        _ => None,
    }
}

fn progressing_since(config: &MultusConfig) -> Option<Timestamp> {
    config
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_PROGRESSING && c.status == "True")
        .map(|c| c.last_transition_time.0)
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// Decides how long the rollout has made no progress: the progress mark
/// (kept in the context) moves whenever the rollout or a node's readiness
/// changes.
fn stalled_for(
    ctx: &Context,
    config: &MultusConfig,
    rollout: Option<&Rollout>,
    reports: &[NodeReport],
    now: Timestamp,
) -> Duration {
    let name = config.name_any();
    let mark = conditions::advance(
        ctx.progress(&name).as_ref(),
        conditions::progress_signature(rollout, reports),
        now,
        progressing_since(config),
    );
    ctx.set_progress(&name, mark.clone());
    elapsed(mark.since, now)
}

/// Computes the conditions of an active MultusConfig from the outcome of
/// its rollout, its nodes' reports (dropping those of deleted nodes), the
/// NADs invalid on those nodes and the chart's ClusterRoles; also returns
/// how many NADs are invalid.
async fn assess_active(
    ctx: &Context,
    config: &MultusConfig,
    name: &str,
    pool: &NodePool,
    outcome: &Outcome,
    now: Timestamp,
) -> (Assessment, usize) {
    let ns = ctx.settings.operands.namespace.as_str();
    let missing = observe::missing_roles(ctx, now).await;
    observe::collect_node_states(ctx, name, &pool.nodes).await;
    let selected: Option<BTreeSet<String>> = (!pool.nodes.is_empty()).then(|| {
        pool.nodes
            .iter()
            .filter(|n| pools::selects(config, n))
            .map(|n| n.name.clone())
            .collect()
    });
    let reports = observe::reports_of(ctx, name, &pool.excluded, selected.as_ref());
    let node_names: BTreeSet<String> = reports.iter().map(|r| r.node.clone()).collect();
    let invalid_nads = ctx.nads.invalid_for(&node_names);
    let rollout = outcome.daemon_set.as_ref().map(Rollout::of);
    let stalled_for = stalled_for(ctx, config, rollout.as_ref(), &reports, now);
    let apply_error = outcome.error.as_ref().map(ToString::to_string);
    let server = ctx.server_features();
    let observation = Observation {
        name,
        daemon_set: format!("{ns}/{}", agent_name(name)),
        namespace: ns,
        spec_problems: &outcome.problems,
        apply_error: apply_error.as_deref(),
        missing_role: missing.agent.as_deref(),
        missing_plugin_role: missing.plugin.as_deref(),
        rollout,
        nodes: &reports,
        conflicts: &pool.conflicts,
        invalid_nads: &invalid_nads,
        stalled_for,
        deadline: Duration::from_secs(u64::from(config.spec.progress_deadline_seconds())),
        token_lifetime: Duration::from_secs(u64::from(
            config.spec.plugin_token_expiration_seconds(),
        )),
        now,
        phase: Phase::Active,
        server: server.as_ref(),
    };
    (conditions::assess(&observation), invalid_nads.len())
}

/// Decides when to look again without a watch event: soon while a rollout
/// is under way, rarely in a steady state, and when a node's plugin token
/// reaches its last quarter or expires (at least a second later).
fn requeue_after(assessment: &Assessment) -> Duration {
    let requeue = if assessment.progressing.status {
        REQUEUE_PROGRESSING
    } else {
        REQUEUE_STEADY
    };
    assessment
        .recheck_in
        .map_or(requeue, |d| requeue.min(d.max(Duration::from_secs(1))))
}
