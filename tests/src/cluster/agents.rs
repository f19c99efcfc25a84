//! The node agents of a MultusConfig: their pods, and waiting for their
//! DaemonSet to roll after a change of the MultusConfig's spec.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::objects::get_for_poll;
use super::pods::{hopeless_reason, pod_ready, pod_summary, pods_summary};
use crate::wait::wait_until;

/// The agent DaemonSet of the MultusConfig `config` (the operator's
/// `multus-agent-<config>`).
pub fn agent_daemon_set(config: &str) -> String {
    format!("multus-agent-{config}")
}

/// The agent pods of the MultusConfig `config` in the operator's
/// `namespace` (terminating ones too).
pub async fn agent_pods(client: &kube::Client, namespace: &str, config: &str) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/component=node-agent,multus.dev/config={config}");
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_else(|e| panic!("listing the agent pods of MultusConfig {config}: {e}"))
}

/// The UIDs of pods.
pub fn pod_uids(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect()
}

/// Waits until the agent DaemonSet of `config` has rolled out after a
/// change: its current generation observed and on every node, available,
/// none of the pods `old` (UIDs, non-empty: the agents before the change)
/// left and every agent pod Ready; returns the new agent pods. Fails at
/// once when an agent cannot start (image, config error).
pub async fn wait_agents_replaced(
    client: &kube::Client,
    namespace: &str,
    config: &str,
    old: &BTreeSet<String>,
    timeout: Duration,
) -> Vec<Pod> {
    assert!(
        !old.is_empty(),
        "wait_agents_replaced needs the UIDs of the agents before the change"
    );
    let name = agent_daemon_set(config);
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("DaemonSet {namespace}/{name} rolled out with new agent pods"),
        timeout,
        async || {
            let ds = get_for_poll(&daemon_sets, &name, "no DaemonSet").await?;
            let pods = agent_pods(client, namespace, config).await;
            for pod in &pods {
                if let Some(reason) = hopeless_reason(pod) {
                    panic!("agent pod cannot start: {reason} ({})", pod_summary(pod));
                }
            }
            let status = ds.status.clone().unwrap_or_default();
            let desired = status.desired_number_scheduled;
            let old_left = pods
                .iter()
                .filter(|p| p.metadata.uid.as_ref().is_some_and(|u| old.contains(u)))
                .count();
            let rolled = desired > 0
                && status.observed_generation == ds.metadata.generation
                && status.updated_number_scheduled == Some(desired)
                && status.number_available == Some(desired)
                && old_left == 0
                && pods.len() == usize::try_from(desired).unwrap_or(0)
                && pods.iter().all(pod_ready);
            if rolled {
                Ok(pods)
            } else {
                Err(format!(
                    "generation {:?} observed {:?}, desired {desired} updated {:?} available {:?}; \
                     old agent pods left {old_left}; {}",
                    ds.metadata.generation,
                    status.observed_generation,
                    status.updated_number_scheduled,
                    status.number_available,
                    pods_summary(&pods)
                ))
            }
        },
    )
    .await
}

/// `GET /metrics` of the node agent on this node (its `port` on
/// 127.0.0.1): the text, or why not.
pub fn scrape_agent_metrics(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let address = format!("127.0.0.1:{port}");
    let mut stream =
        std::net::TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("bad response {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_owned());
    }
    Ok(body.to_owned())
}

/// The value of the sample `series` (name and labels exactly as encoded)
/// in the metrics `text`.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
