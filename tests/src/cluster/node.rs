//! The cluster's node, which must be this machine: the end-to-end tests
//! check the files the agents write to it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::multus_config::assert_no_multus_configs;
use crate::host::{assert_no_multus_conf_on_node, host_name};
use crate::wait::wait_until;

/// Waits (a minute at most) until the node that is this machine is Ready,
/// and fails at once when it is not the cluster's only node; returns its
/// name.
pub async fn wait_single_node_here(client: &kube::Client) -> String {
    let nodes: Api<Node> = Api::all(client.clone());
    let host = host_name();
    wait_until(
        &format!("node {host} (this machine) Ready"),
        Duration::from_secs(60),
        async || {
            let all = nodes
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = all.items.iter().map(|n| n.name_any()).collect();
            let node = all.items.iter().find(|n| n.name_any() == host).ok_or_else(|| {
                format!(
                    "no node named {host}; nodes: {names:?} (this suite needs a cluster whose node \
                     runs on this machine: it checks the node's files)"
                )
            })?;
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                return Err(format!("node {host} is not Ready"));
            }
            assert_eq!(
                names.len(),
                1,
                "this suite needs a single-node cluster, found nodes {names:?} (Node objects \
                 left by node_pools_on_cluster carry e2e.multus.dev/test=pools)"
            );
            Ok(node.name_any())
        },
    )
    .await
}

/// The preflight of a test that installs Multus on the node: the node is
/// this machine, Ready and alone ([`wait_single_node_here`]); no
/// MultusConfig and no Multus configuration on the node; returns the
/// node's name.
pub async fn single_node_without_multus(client: &kube::Client) -> String {
    let node = wait_single_node_here(client).await;
    assert_no_multus_configs(client).await;
    assert_no_multus_conf_on_node();
    node
}
