//! What a reconcile of an active MultusConfig looks at besides its own
//! objects: the nodes (from the cache), whether the chart's ClusterRoles
//! exist (asked at most once per `role_check_interval` while both do) and
//! the agents' MultusNodeStates of its nodes, removing those of nodes that
//! no longer exist.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use multus_config::crd::MultusNodeState;

use super::conditions::NodeReport;
use super::context::Context;
use super::pools::NodeInfo;

/// Every node's name and labels, from the cache.
pub fn node_infos(store: &Store<PartialObjectMeta<Node>>) -> Vec<NodeInfo> {
    store
        .state()
        .iter()
        .map(|n| NodeInfo {
            name: n.name_any(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
        })
        .collect()
}

/// The chart's ClusterRoles that do not exist; `None` for a role that
/// exists or cannot be checked.
#[derive(Debug, Default)]
pub struct MissingRoles {
    /// The agents' ClusterRole.
    pub agent: Option<String>,
    /// The plugin's ClusterRole.
    pub plugin: Option<String>,
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
pub async fn missing_roles(ctx: &Context, now: Timestamp) -> MissingRoles {
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
pub async fn collect_node_states(ctx: &Context, config: &str, nodes: &[NodeInfo]) {
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
pub fn reports_of(
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
