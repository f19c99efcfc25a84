//! One reconcile of a MultusConfig (through kube-runtime's finalizer
//! helper): validate, render, apply the operands with server-side apply
//! under one field manager, prune what is no longer rendered, compute the
//! status and publish it (server-side apply on the status subresource)
//! with Events for state changes. On deletion: switch the agents to
//! uninstall, wait for every node, then delete the operands.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use multus_config::crd::multus_config::CONDITION_PROGRESSING;
use multus_config::crd::{MultusConfig, MultusNodeState};
use multus_config::generate::hex_sha256;
use serde_json::json;

use super::conditions::{
    self, Assessment, NodeReport, Observation, Phase, Rollout, Severity, StateEvent,
};
use super::context::{Context, Stores};
use super::nad::truncate_note;
use super::operand::{Kind, KindVisitor, ObjectKey, Operand};
use super::pools::{self, NodeInfo};
use super::prune;
use super::render::{
    self, ANNOTATION_RENDERED_HASH, ChildVisitor, Children, LABEL_CONFIG, LABEL_MODE,
    MODE_UNINSTALL, agent_name,
};
use super::uninstall;
use super::validate::{SpecProblem, validate};
use super::{Error, FIELD_MANAGER, FINALIZER};

/// Requeue while a rollout is under way (stuck-rollout detection).
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(15);
/// Requeue in a steady state (a safety net; watches do the real work).
pub const REQUEUE_STEADY: Duration = Duration::from_secs(300);
/// Requeue while waiting for the agents' uninstall.
pub const REQUEUE_UNINSTALL: Duration = Duration::from_secs(5);

/// Reconciles one MultusConfig.
pub async fn reconcile(config: Arc<MultusConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let name = config.name_any();
    let api: Api<MultusConfig> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, config, |event| async {
        match event {
            Finalize::Apply(config) => apply(&config, &ctx).await,
            Finalize::Cleanup(config) => cleanup(&config, &ctx).await,
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
        return Action::requeue(REQUEUE_UNINSTALL);
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

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Seconds precision, as the API server stores condition times.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn owned<K: Resource>(obj: &K, config: &str, uid: &str) -> bool {
    prune::is_owned(obj.meta(), config, uid)
}

fn node_infos(store: &Store<PartialObjectMeta<Node>>) -> Vec<NodeInfo> {
    store
        .state()
        .iter()
        .map(|n| NodeInfo {
            name: n.name_any(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
        })
        .collect()
}

/// Versions of the live children, in apply order (see
/// [`Operand::live_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveVersions(Vec<String>);

/// The versions of the children's live objects in the caches.
fn cached_versions(children: &Children, ctx: &Context) -> LiveVersions {
    struct Cached<'s> {
        stores: &'s Stores,
        versions: Vec<String>,
    }
    impl ChildVisitor<'_> for Cached<'_> {
        fn child<K: Operand>(&mut self, object: &K) {
            let live = self.stores.operand::<K>().get(&ObjectRef::from_obj(object));
            self.versions
                .push(K::live_version(live.as_deref().map(Resource::meta)));
        }
    }
    let mut cached = Cached {
        stores: &ctx.stores,
        versions: Vec::new(),
    };
    children.visit(&mut cached);
    LiveVersions(cached.versions)
}

/// A digest of what was rendered and the live objects it was applied
/// over: while neither changes, applying again would change nothing, so
/// the apply is skipped (a no-op reconcile writes nothing).
fn applied_digest(children: &Children, versions: &LiveVersions) -> Result<String, Error> {
    let documents = children.documents().map_err(render::RenderError::from)?;
    let rendered = serde_json::to_vec(&documents).map_err(render::RenderError::from)?;
    Ok(format!(
        "{}|{}",
        hex_sha256(&rendered),
        versions.0.join("|")
    ))
}

/// Server-side apply of one object given as JSON; returns its live
/// version (see [`Operand::live_version`]) as the API server has it.
struct ApplyOne<'a> {
    client: Client,
    namespace: &'a str,
    name: &'a str,
    body: &'a serde_json::Value,
}

impl<'a> KindVisitor for ApplyOne<'a> {
    type Output = BoxFuture<'a, Result<String, kube::Error>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move {
            let applied: K = K::api(self.client, self.namespace)
                .patch(self.name, &apply_params(), &Patch::Apply(self.body))
                .await?;
            Ok(K::live_version(Some(applied.meta())))
        })
    }
}

/// Applies the children in order; returns the DaemonSet as the API server
/// has it and the versions of what was applied. A changed DaemonSet is
/// first validated with a server-side dry run, so that a spec the API
/// server rejects changes nothing.
async fn apply_children(
    ctx: &Context,
    children: &Children,
    live_ds: Option<&DaemonSet>,
) -> Result<(DaemonSet, LiveVersions), Error> {
    let ns = ctx.settings.operands.namespace.as_str();
    let client = &ctx.client;
    let params = apply_params();
    let ds_name = children.daemon_set.name_any();
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    let rendered_hash = |d: &DaemonSet| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_RENDERED_HASH))
            .cloned()
    };
    if live_ds.and_then(rendered_hash) != rendered_hash(&children.daemon_set) {
        ds_api
            .patch(
                &ds_name,
                &params.clone().dry_run(),
                &Patch::Apply(&children.daemon_set),
            )
            .await
            .map_err(|e| Error::api("validate", format!("DaemonSet {ns}/{ds_name}"), e))?;
    }
    let documents = children.documents().map_err(render::RenderError::from)?;
    let mut versions = Vec::new();
    let mut applied_ds = None;
    for ((kind, meta), body) in children.metas().into_iter().zip(&documents) {
        let key = ObjectKey::of(kind, meta);
        if kind == Kind::DaemonSet {
            // Typed, for its rollout status.
            let ds = ds_api
                .patch(&ds_name, &params, &Patch::Apply(&children.daemon_set))
                .await
                .map_err(|e| Error::api("apply", key.to_string(), e))?;
            versions.push(DaemonSet::live_version(Some(&ds.metadata)));
            applied_ds = Some(ds);
            continue;
        }
        let version = kind
            .visit(ApplyOne {
                client: client.clone(),
                namespace: ns,
                name: &key.name,
                body,
            })
            .await
            .map_err(|e| Error::api("apply", key.to_string(), e))?;
        versions.push(version);
    }
    let ds = applied_ds.ok_or(Error::Incomplete("DaemonSet among the rendered operands"))?;
    Ok((ds, LiveVersions(versions)))
}

/// Our objects of a MultusConfig, from the caches, sorted (deletion order).
fn owned_objects(ctx: &Context, config: &str, uid: &str) -> Vec<ObjectKey> {
    struct Owned<'a> {
        stores: &'a Stores,
        config: &'a str,
        uid: &'a str,
    }
    impl KindVisitor for Owned<'_> {
        type Output = Vec<ObjectKey>;
        fn visit<K: Operand>(self) -> Vec<ObjectKey> {
            self.stores
                .operand::<K>()
                .state()
                .iter()
                .filter(|o| owned(o.as_ref(), self.config, self.uid))
                .map(|o| ObjectKey::of(K::KIND, o.meta()))
                .collect()
        }
    }
    let mut keys: Vec<ObjectKey> = Kind::ALL
        .iter()
        .flat_map(|kind| {
            kind.visit(Owned {
                stores: &ctx.stores,
                config,
                uid,
            })
        })
        .collect();
    keys.sort();
    keys
}

/// Deletes one object of the kind it visits.
struct DeleteOne<'a> {
    client: Client,
    key: &'a ObjectKey,
    params: &'a DeleteParams,
}

impl<'a> KindVisitor for DeleteOne<'a> {
    type Output = BoxFuture<'a, Result<(), kube::Error>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move {
            let ns = self.key.namespace.as_deref().unwrap_or_default();
            K::api(self.client, ns)
                .delete(&self.key.name, self.params)
                .await
                .map(drop)
        })
    }
}

/// Deletes one object (gone already is fine), only if its uid matches.
async fn delete(ctx: &Context, key: &ObjectKey) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: key.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let result = key
        .kind
        .visit(DeleteOne {
            client: ctx.client.clone(),
            key,
            params: &params,
        })
        .await;
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(Error::api("delete", key.to_string(), e)),
    }
}

/// Publishes an Event on the MultusConfig (best effort).
async fn publish(
    ctx: &Context,
    config: &MultusConfig,
    severity: Severity,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_: match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: reason.to_owned(),
        note: Some(truncate_note(note)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &config.object_ref(&())).await {
        tracing::warn!(multusconfig = %config.name_any(), reason, error = %e, "cannot publish an event");
    }
}

/// Writes the status when it changed, and the Events of the change.
async fn publish_status(
    ctx: &Context,
    config: &MultusConfig,
    assessment: &Assessment,
    invalid_nads: usize,
    now: Timestamp,
) -> Result<(), Error> {
    let name = config.name_any();
    let previous = config.status.as_ref();
    let status = conditions::status(
        previous,
        assessment,
        config.metadata.generation,
        invalid_nads,
        now,
    );
    if previous == Some(&status) {
        return Ok(());
    }
    let body = json!({
        "apiVersion": MultusConfig::api_version(&()),
        "kind": MultusConfig::kind(&()),
        "metadata": { "name": name },
        "status": status,
    });
    Api::<MultusConfig>::all(ctx.client.clone())
        .patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|e| Error::api("apply", format!("status of MultusConfig {name}"), e))?;
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for StateEvent {
        severity,
        reason,
        note,
    } in conditions::transition_events(before, &status.conditions)
    {
        publish(ctx, config, severity, &reason, &note).await;
    }
    Ok(())
}

/// The chart's ClusterRoles that do not exist; `None` for a role that
/// exists or cannot be checked.
#[derive(Debug, Default)]
struct MissingRoles {
    agent: Option<String>,
    plugin: Option<String>,
}

/// Whether a ClusterRole exists; `None` when it cannot be checked.
async fn role_exists(api: &Api<ClusterRole>, role: &str) -> Option<bool> {
    match api.get_opt(role).await {
        Ok(found) => Some(found.is_some()),
        Err(e) => {
            tracing::debug!(role, error = %e, "cannot check a ClusterRole");
            None
        }
    }
}

/// Checks the chart's agent and plugin ClusterRoles (at most once per
/// `role_check_interval` while both exist).
async fn missing_roles(ctx: &Context, now: Timestamp) -> MissingRoles {
    if ctx.role_recently_seen(now) {
        return MissingRoles::default();
    }
    let api = Api::<ClusterRole>::all(ctx.client.clone());
    let names = &ctx.settings.operands;
    let agent = role_exists(&api, &names.agent_cluster_role).await;
    let plugin = role_exists(&api, &names.plugin_cluster_role).await;
    let both = agent == Some(true) && plugin == Some(true);
    ctx.set_role_seen(both.then_some(now));
    MissingRoles {
        agent: (agent == Some(false)).then(|| names.agent_cluster_role.clone()),
        plugin: (plugin == Some(false)).then(|| names.plugin_cluster_role.clone()),
    }
}

/// Deletes the MultusNodeStates of `config` whose node no longer exists.
async fn collect_node_states(ctx: &Context, config: &str, nodes: &[NodeInfo]) {
    if nodes.is_empty() {
        return; // the node cache may not be filled; never guess.
    }
    let known: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let api: Api<MultusNodeState> = Api::all(ctx.client.clone());
    for state in ctx.stores.node_states.state() {
        let name = state.name_any();
        if state.spec.multus_config.as_deref() == Some(config) && !known.contains(name.as_str()) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(node = %name, "deleted the MultusNodeState of a deleted node")
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "cannot delete a stale MultusNodeState")
                }
            }
        }
    }
}

/// The agents' reports for `config`'s nodes: nodes it selects (when the
/// node cache is filled) and does not leave to an older MultusConfig.
fn reports_of(
    ctx: &Context,
    config: &str,
    excluded: &BTreeSet<String>,
    selected: Option<&BTreeSet<String>>,
) -> Vec<NodeReport> {
    let mut reports: Vec<NodeReport> = ctx
        .stores
        .node_states
        .state()
        .iter()
        .filter(|s| s.spec.multus_config.as_deref() == Some(config))
        .map(|s| NodeReport::of(s))
        .filter(|r| !excluded.contains(&r.node))
        .filter(|r| selected.is_none_or(|nodes| nodes.contains(&r.node)))
        .collect();
    reports.sort_by(|a, b| a.node.cmp(&b.node));
    reports
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

/// The Apply branch.
async fn apply(config: &MultusConfig, ctx: &Context) -> Result<Action, Error> {
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
    let ns = ctx.settings.operands.namespace.clone();
    let now = whole_seconds(ctx.now());
    let mut problems = validate(config);

    let nodes = node_infos(&ctx.stores.nodes);
    let all = ctx.stores.configs.state();
    let others: Vec<&MultusConfig> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| c.metadata.uid.as_deref() != Some(uid))
        .collect();
    let conflicts = pools::conflicts(config, &others, &nodes);
    let excluded: BTreeSet<String> = conflicts.iter().map(|c| c.node.clone()).collect();

    let ds_name = agent_name(name);
    let live_ds = ctx
        .stores
        .daemon_set(&ns, &ds_name)
        .filter(|d| owned(d.as_ref(), name, uid));
    let mut daemon_set: Option<DaemonSet> = live_ds.as_deref().cloned();
    let mut apply_error: Option<Error> = None;
    if problems.is_empty() {
        let excluded: Vec<String> = excluded.iter().cloned().collect();
        let children = render::render(config, &ctx.settings.operands, &excluded)?;
        let digest = applied_digest(&children, &cached_versions(&children, ctx))?;
        if ctx.applied(name).as_deref() != Some(digest.as_str()) {
            match apply_children(ctx, &children, live_ds.as_deref()).await {
                Ok((ds, versions)) => {
                    daemon_set = Some(ds);
                    ctx.set_applied(name, Some(applied_digest(&children, &versions)?));
                }
                Err(e) => {
                    ctx.set_applied(name, None);
                    match rejected_by_dry_run(&e) {
                        Some(problem) => problems.push(problem),
                        None => apply_error = Some(e),
                    }
                }
            }
        }
        if apply_error.is_none() && problems.is_empty() {
            let complete = daemon_set
                .as_ref()
                .is_some_and(|d| Rollout::of(d).complete());
            let stale = prune::stale(
                &owned_objects(ctx, name, uid),
                &prune::desired_keys(&children),
                complete,
            );
            for key in stale {
                match delete(ctx, &key).await {
                    Ok(()) => {
                        publish(
                            ctx,
                            config,
                            Severity::Normal,
                            "Pruned",
                            &format!("Deleted {key}, which the current spec no longer uses."),
                        )
                        .await;
                    }
                    Err(e) => {
                        apply_error = Some(e);
                        break;
                    }
                }
            }
        }
    }

    let missing = missing_roles(ctx, now).await;
    collect_node_states(ctx, name, &nodes).await;
    let selected: Option<BTreeSet<String>> = (!nodes.is_empty()).then(|| {
        nodes
            .iter()
            .filter(|n| pools::selects(config, n))
            .map(|n| n.name.clone())
            .collect()
    });
    let reports = reports_of(ctx, name, &excluded, selected.as_ref());
    let node_names: BTreeSet<String> = reports.iter().map(|r| r.node.clone()).collect();
    let invalid_nads = ctx.nads.invalid_for(&node_names);
    let rollout = daemon_set.as_ref().map(Rollout::of);
    let mark = conditions::advance(
        ctx.progress(name).as_ref(),
        conditions::progress_signature(rollout.as_ref(), &reports),
        now,
        progressing_since(config),
    );
    ctx.set_progress(name, mark.clone());
    let apply_text = apply_error.as_ref().map(ToString::to_string);
    let observation = Observation {
        name,
        daemon_set: format!("{ns}/{ds_name}"),
        namespace: &ns,
        spec_problems: &problems,
        apply_error: apply_text.as_deref(),
        missing_role: missing.agent.as_deref(),
        missing_plugin_role: missing.plugin.as_deref(),
        rollout,
        nodes: &reports,
        conflicts: &conflicts,
        invalid_nads: &invalid_nads,
        stalled_for: elapsed(mark.since, now),
        deadline: Duration::from_secs(u64::from(config.spec.progress_deadline_seconds())),
        token_lifetime: Duration::from_secs(u64::from(
            config.spec.plugin_token_expiration_seconds(),
        )),
        now,
        phase: Phase::Active,
    };
    let assessment = conditions::assess(&observation);
    publish_status(ctx, config, &assessment, invalid_nads.len(), now).await?;
    if let Some(e) = apply_error {
        return Err(e);
    }
    let requeue = if assessment.progressing.status {
        REQUEUE_PROGRESSING
    } else {
        REQUEUE_STEADY
    };
    // Look again when a node's plugin token reaches its last quarter or
    // expires, even if nothing else happens (at least a second later).
    let requeue = assessment
        .recheck_in
        .map_or(requeue, |d| requeue.min(d.max(Duration::from_secs(1))));
    Ok(Action::requeue(requeue))
}

/// The Cleanup branch: uninstall on the nodes, then delete the operands.
async fn cleanup(config: &MultusConfig, ctx: &Context) -> Result<Action, Error> {
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
    let ns = ctx.settings.operands.namespace.clone();
    let now = whole_seconds(ctx.now());
    let deadline_secs = u64::from(config.spec.progress_deadline_seconds());
    let deleted_at = config
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let gave_up = now
        >= deleted_at
            .checked_add(SignedDuration::from_secs(
                i64::try_from(deadline_secs).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MAX);

    let ds_name = agent_name(name);
    let live = ctx
        .stores
        .daemon_set(&ns, &ds_name)
        .filter(|d| owned(d.as_ref(), name, uid));
    let mut incomplete: Vec<String> = Vec::new();
    if let Some(live) = live {
        let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        let ds = if render::is_uninstall_mode(&live) {
            (*live).clone()
        } else if let Some(switch) = render::uninstall_daemon_set(&live) {
            let applied = ds_api
                .patch(&ds_name, &apply_params(), &Patch::Apply(&switch))
                .await
                .map_err(|e| Error::api("apply", format!("DaemonSet {ns}/{ds_name}"), e))?;
            publish(
                ctx,
                config,
                Severity::Normal,
                "Uninstalling",
                &format!(
                    "Switched DaemonSet {ns}/{ds_name} to `node-agent --uninstall`: each agent \
                     removes the Multus config, kubeconfig and plugin binary it installed. \
                     NetworkAttachmentDefinitions are left untouched."
                ),
            )
            .await;
            applied
        } else {
            (*live).clone()
        };
        if render::is_uninstall_mode(&ds) {
            let selector = format!("{LABEL_CONFIG}={name},{LABEL_MODE}={MODE_UNINSTALL}");
            let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| Error::api("list", format!("uninstall pods in {ns}"), e))?;
            let progress = uninstall::progress(&ds, &pods.items);
            if !progress.done {
                if !gave_up {
                    let observation = Observation {
                        name,
                        daemon_set: format!("{ns}/{ds_name}"),
                        namespace: &ns,
                        spec_problems: &[],
                        apply_error: None,
                        missing_role: None,
                        missing_plugin_role: None,
                        rollout: Some(Rollout::of(&ds)),
                        nodes: &[],
                        conflicts: &[],
                        invalid_nads: &[],
                        stalled_for: Duration::ZERO,
                        deadline: Duration::from_secs(deadline_secs),
                        token_lifetime: Duration::ZERO,
                        now,
                        phase: Phase::Uninstalling {
                            pending: progress.pending.clone(),
                            desired: progress.desired,
                        },
                    };
                    let assessment = conditions::assess(&observation);
                    publish_status(ctx, config, &assessment, 0, now).await?;
                    return Err(Error::UninstallPending {
                        pending: progress.pending.len(),
                    });
                }
                incomplete = progress.pending;
            }
        }
    }
    if !incomplete.is_empty() {
        publish(
            ctx,
            config,
            Severity::Warning,
            "UninstallIncomplete",
            &format!(
                "Gave up after progressDeadlineSeconds ({deadline_secs}s) waiting for {}. Multus \
                 may remain on those nodes: run `multus-operator node-agent --uninstall` there, \
                 or remove 00-multus.conf(list) and multus.d/ from the CNI conf dir and multus \
                 from the CNI bin dir by hand.",
                conditions::name_list(&incomplete, conditions::NAMES_SHOWN)
            ),
        )
        .await;
    }
    let mut removed = Vec::new();
    for key in owned_objects(ctx, name, uid) {
        delete(ctx, &key).await?;
        removed.push(key.to_string());
    }
    let states_api: Api<MultusNodeState> = Api::all(ctx.client.clone());
    let mut states = ctx.stores.node_states.state();
    states.sort_by_key(|s| s.name_any());
    for state in states {
        if state.spec.multus_config.as_deref() == Some(name) {
            match states_api
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
    }
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
