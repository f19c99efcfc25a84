//! `pod_network_name_info` from the agent's watch cache of its node's pods
//! ([`crate::agent::local_api`]): each cached pod's network-status
//! annotation, read at scrape time. While the cache is not in step with
//! the API server (first list not done, watch broken) the report-fed
//! entries are shown instead.

use std::sync::Arc;

use multus_config::npwg::NETWORK_STATUS_ANNOTATION;
use serde::Deserialize;

use super::pod_networks::{PodNetworkName, PodNetworks, ReportedPodNetworks, from_network_status};
use crate::agent::local_api::store::Store;

/// The pod cache as a [`PodNetworks`] source.
#[derive(Debug)]
pub struct CachedPodNetworks {
    pods: Arc<Store>,
    fallback: Arc<ReportedPodNetworks>,
}

impl CachedPodNetworks {
    /// Reads `pods`; `fallback` while it is not synced.
    pub fn new(pods: Arc<Store>, fallback: Arc<ReportedPodNetworks>) -> Self {
        Self { pods, fallback }
    }
}

/// What is read of a cached pod's JSON.
#[derive(Deserialize)]
struct PodMeta {
    metadata: Meta,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl PodNetworks for CachedPodNetworks {
    fn pod_networks(&self) -> Vec<PodNetworkName> {
        if !self.pods.is_synced() {
            return self.fallback.pod_networks();
        }
        self.pods
            .entries()
            .iter()
            .filter_map(|entry| serde_json::from_slice::<PodMeta>(&entry.body).ok())
            .flat_map(|pod| {
                let meta = pod.metadata;
                from_network_status(
                    &meta.namespace,
                    &meta.name,
                    meta.annotations
                        .get(NETWORK_STATUS_ANNOTATION)
                        .map(String::as_str),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::local_api::store::{Entry, key};
    use multus_config::agent_api::report::ReportCommand;

    fn pod(namespace: &str, name: &str, status: Option<&str>) -> Entry {
        let mut meta = serde_json::json!({"namespace": namespace, "name": name, "uid": "u"});
        if let Some(status) = status {
            meta["annotations"] = serde_json::json!({ NETWORK_STATUS_ANNOTATION: status });
        }
        Entry {
            uid: "u".into(),
            static_pod: false,
            body: serde_json::to_vec(&serde_json::json!({"metadata": meta}))
                .unwrap()
                .into(),
        }
    }

    #[test]
    fn synced_cache_wins_over_reports_and_pods_without_status_show_nothing() {
        let store = Arc::new(Store::default());
        let reported = Arc::new(ReportedPodNetworks::default());
        reported.apply(&multus_config::agent_api::report::CommandReport {
            version: 1,
            command: ReportCommand::Add,
            namespace: "ns".into(),
            pod: "from-report".into(),
            container_id: "c".into(),
            error_code: None,
            duration_us: 1,
            attachments: vec![multus_config::agent_api::report::AttachmentReport {
                network: "ns/a".into(),
                interface: "net1".into(),
                cluster_network: false,
                execs: vec![],
            }],
            truncated: false,
        });
        let source = CachedPodNetworks::new(Arc::clone(&store), reported);
        let pods = |s: &CachedPodNetworks| -> Vec<String> {
            let mut v: Vec<String> = s
                .pod_networks()
                .into_iter()
                .map(|e| {
                    format!(
                        "{}/{} {} {}",
                        e.namespace, e.pod, e.interface, e.network_name
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            pods(&source),
            ["ns/from-report net1 ns/a"],
            "not synced yet"
        );

        store.insert(
            key("ns", "web"),
            pod(
                "ns",
                "web",
                Some(r#"[{"name":"cbr0","interface":"eth0","dns":{}},{"name":"ns/a","interface":"net1","dns":{}}]"#),
            ),
        );
        store.insert(key("ns", "plain"), pod("ns", "plain", None));
        store.set_synced(true);
        assert_eq!(pods(&source), ["ns/web eth0 cbr0", "ns/web net1 ns/a"]);
    }
}
