//! `pod_network_name_info{namespace,pod,interface,network_name} 1`: which
//! network each interface of each pod on the node belongs to, to join with
//! cAdvisor's `container_network_*` metrics (what OpenShift's
//! network-metrics-daemon offers).
//!
//! The metric is a [`Collector`] over a [`PodNetworks`] source, read at
//! every scrape. The source is swappable ([`PodNetworkSource::set`]): by
//! default it is [`ReportedPodNetworks`], fed by the plugin's ADD and DEL
//! reports; a watch cache of the node's pods can replace it, building
//! its entries from each pod's network-status annotation with
//! [`from_network_status`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use multus_config::agent_api::report::{CommandReport, ReportCommand};
use multus_config::npwg::status::parse_network_status_annotation;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::{Deserialize, Serialize};

use crate::agent::fsutil;

/// The metric's name (no prefix: the name network-metrics-daemon uses).
pub const METRIC_NAME: &str = "pod_network_name_info";

/// Most containers [`ReportedPodNetworks`] remembers (the oldest ADD goes
/// first beyond it); far above the pods a node runs.
pub const MAX_REPORTED_CONTAINERS: usize = 2048;

/// One interface of one pod: the labels of one `pod_network_name_info`
/// series.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, EncodeLabelSet,
)]
pub struct PodNetworkName {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The interface in the pod (`eth0`, `net1`, ...).
    pub interface: String,
    /// The network-status `name`: `namespace/nad`, or the cluster
    /// network's CNI name.
    pub network_name: String,
}

/// What `pod_network_name_info` shows: every interface of every pod on
/// the node. Called at each scrape; keep it cheap (a snapshot of a cache).
pub trait PodNetworks: Send + Sync + std::fmt::Debug + 'static {
    /// The entries, in any order (the collector sorts them).
    fn pod_networks(&self) -> Vec<PodNetworkName>;
}

/// The entries of one pod from its `k8s.v1.cni.cncf.io/network-status`
/// annotation: one per entry that names an interface. A missing or
/// unparsable annotation gives none.
pub fn from_network_status(
    namespace: &str,
    pod: &str,
    annotation: Option<&str>,
) -> Vec<PodNetworkName> {
    let Some(statuses) = annotation.and_then(|a| parse_network_status_annotation(a).ok()) else {
        return Vec::new();
    };
    statuses
        .into_iter()
        .filter_map(|s| {
            Some(PodNetworkName {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                interface: s.interface.filter(|i| !i.is_empty())?,
                network_name: s.name,
            })
        })
        .collect()
}

/// The swappable source of the collector.
#[derive(Debug, Clone)]
pub struct PodNetworkSource {
    inner: Arc<RwLock<Arc<dyn PodNetworks>>>,
}

impl PodNetworkSource {
    /// A source reading `initial`.
    pub fn new(initial: Arc<dyn PodNetworks>) -> Self {
        Self {
            inner: Arc::new(RwLock::new(initial)),
        }
    }

    /// From the next scrape on, reads `source`.
    pub fn set(&self, source: Arc<dyn PodNetworks>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = source;
    }

    fn current(&self) -> Arc<dyn PodNetworks> {
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The collector of `pod_network_name_info`.
#[derive(Debug)]
pub struct PodNetworkCollector {
    source: PodNetworkSource,
}

impl PodNetworkCollector {
    /// A collector over `source`.
    pub fn new(source: PodNetworkSource) -> Self {
        Self { source }
    }
}

impl Collector for PodNetworkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut entries = self.source.current().pod_networks();
        entries.sort();
        entries.dedup();
        let mut metric = encoder.encode_descriptor(
            METRIC_NAME,
            "1 for each interface of each pod on the node, naming its network (join with container_network_* on namespace, pod, interface)",
            None,
            MetricType::Gauge,
        )?;
        for entry in &entries {
            ConstGauge::new(1i64).encode(metric.encode_family(entry)?)?;
        }
        Ok(())
    }
}

/// The pod networks the plugin reported: a successful ADD adds its
/// attachments, any DEL of the container removes them.
///
/// Agent restarts: once [`Self::persist_in`] named a state file (beside
/// the report socket, on the host's `/run/multus`: tmpfs, it outlives
/// agent restarts, not a reboot, like the pods' sandboxes), the entries
/// are [saved](Self::save) there (0600; the caller saves at most once a
/// second, never per report). At start they are loaded and, like every
/// minute after, [pruned](Self::prune) to the containers whose plugin
/// cache file (`<cniDir>/<containerID>`, written before ADD runs a
/// delegate and removed by a successful DEL) still exists, so a DEL the
/// agent missed while it was down drops its entries within a minute.
/// Pods attached while no agent listened are not shown until their next
/// ADD (the watch cache of the node's pods, once it replaces this source,
/// has them all).
#[derive(Debug, Default)]
pub struct ReportedPodNetworks {
    state: Mutex<State>,
    files: OnceLock<Files>,
}

#[derive(Debug)]
struct Files {
    state_file: PathBuf,
    cache_dir: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    /// containerID -> (ADD sequence number, entries)
    containers: HashMap<String, (u64, Vec<PodNetworkName>)>,
    next: u64,
    /// Changed since the last save.
    dirty: bool,
}

/// The state file's format.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    containers: BTreeMap<String, Vec<PodNetworkName>>,
}

const SAVED_VERSION: u32 = 1;

impl ReportedPodNetworks {
    /// From now on, saves the entries in `state_file` ([`Self::save`])
    /// and prunes them against the plugin cache in `cache_dir`
    /// ([`Self::prune`]); first loads what a previous run saved there (a
    /// missing file is an empty start; an unreadable one too, logged) and
    /// prunes. Only the first call has an effect.
    pub fn persist_in(&self, state_file: PathBuf, cache_dir: PathBuf) {
        let loaded = match std::fs::read(&state_file) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) if saved.version == SAVED_VERSION => saved.containers,
                Ok(_) | Err(_) => {
                    tracing::warn!(file = %state_file.display(), "ignoring an unreadable pod network state file");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                tracing::warn!(file = %state_file.display(), %error, "cannot read the pod network state file");
                BTreeMap::new()
            }
        };
        if self
            .files
            .set(Files {
                state_file,
                cache_dir,
            })
            .is_err()
        {
            return;
        }
        {
            let mut state = self.lock();
            for (container, entries) in loaded {
                let seq = state.next;
                state.next += 1;
                state.containers.entry(container).or_insert((seq, entries));
            }
        }
        self.prune();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a report: a successful ADD records the attachments of the
    /// container, a DEL forgets them. Returns whether anything changed.
    pub fn apply(&self, report: &CommandReport) -> bool {
        if report.container_id.is_empty() {
            return false;
        }
        let mut state = self.lock();
        let changed = match (report.command, report.error_code) {
            (ReportCommand::Add, None) => {
                let entries: Vec<PodNetworkName> = report
                    .attachments
                    .iter()
                    .filter(|a| !a.network.is_empty() && !a.interface.is_empty())
                    .map(|a| PodNetworkName {
                        namespace: report.namespace.clone(),
                        pod: report.pod.clone(),
                        interface: a.interface.clone(),
                        network_name: a.network.clone(),
                    })
                    .collect();
                if !state.containers.contains_key(&report.container_id)
                    && state.containers.len() >= MAX_REPORTED_CONTAINERS
                    && let Some(oldest) = state
                        .containers
                        .iter()
                        .min_by_key(|(_, (seq, _))| *seq)
                        .map(|(k, _)| k.clone())
                {
                    state.containers.remove(&oldest);
                }
                let seq = state.next;
                state.next += 1;
                state
                    .containers
                    .insert(report.container_id.clone(), (seq, entries));
                true
            }
            (ReportCommand::Del, _) => state.containers.remove(&report.container_id).is_some(),
            _ => false,
        };
        state.dirty |= changed;
        changed
    }

    /// Drops the containers whose plugin cache file is gone (their DEL
    /// was missed). Without a readable cache dir nothing is judged.
    pub fn prune(&self) {
        let Some(files) = self.files.get() else {
            return;
        };
        let dir = &files.cache_dir;
        if !dir.is_dir() {
            return;
        }
        let removed = {
            let mut state = self.lock();
            let before = state.containers.len();
            state
                .containers
                .retain(|container, _| cache_file_exists(dir, container));
            let removed = before - state.containers.len();
            state.dirty |= removed > 0;
            removed
        };
        if removed > 0 {
            tracing::info!(
                removed,
                "forgot the pod networks of containers without a plugin cache file"
            );
        }
        self.save();
    }

    /// Writes the entries to the state file when they changed since the
    /// last save (best effort, logged at debug level).
    pub fn save(&self) {
        let Some(files) = self.files.get() else {
            return;
        };
        let saved = {
            let mut state = self.lock();
            if !state.dirty {
                return;
            }
            state.dirty = false;
            Saved {
                version: SAVED_VERSION,
                containers: state
                    .containers
                    .iter()
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect(),
            }
        };
        let bytes = serde_json::to_vec(&saved).unwrap_or_default();
        if let Err(error) = fsutil::write_atomic(&files.state_file, &bytes, 0o600) {
            tracing::debug!(%error, "cannot save the pod network state");
        }
    }
}

/// Whether the plugin's cache file of `container` exists in `dir`.
fn cache_file_exists(dir: &Path, container: &str) -> bool {
    !container.contains('/') && dir.join(container).exists()
}

impl PodNetworks for ReportedPodNetworks {
    fn pod_networks(&self) -> Vec<PodNetworkName> {
        self.lock()
            .containers
            .values()
            .flat_map(|(_, entries)| entries.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::agent_api::report::{AttachmentReport, REPORT_VERSION};
    use prometheus_client::registry::Registry;

    pub(crate) fn report(
        command: ReportCommand,
        container: &str,
        pod: &str,
        nets: &[(&str, &str)],
        error_code: Option<u32>,
    ) -> CommandReport {
        CommandReport {
            version: REPORT_VERSION,
            command,
            namespace: "ns1".into(),
            pod: pod.into(),
            container_id: container.into(),
            error_code,
            duration_us: 1000,
            attachments: nets
                .iter()
                .map(|(network, interface)| AttachmentReport {
                    network: (*network).into(),
                    interface: (*interface).into(),
                    cluster_network: *interface == "eth0",
                    execs: Vec::new(),
                })
                .collect(),
            truncated: false,
        }
    }

    fn encode(source: Arc<dyn PodNetworks>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(PodNetworkCollector::new(PodNetworkSource::new(
            source,
        ))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn add_shows_and_del_removes_the_interfaces() {
        let store = Arc::new(ReportedPodNetworks::default());
        let nets = [("kindnet", "eth0"), ("ns1/a", "net1"), ("ns1/b", "net2")];
        assert!(store.apply(&report(ReportCommand::Add, "c1", "web", &nets, None)));
        assert!(
            !store.apply(&report(ReportCommand::Add, "c2", "db", &nets, Some(7))),
            "failed ADD"
        );
        assert!(!store.apply(&report(ReportCommand::Check, "c1", "web", &nets, None)));
        let text = encode(store.clone());
        assert_eq!(
            text,
            "# HELP pod_network_name_info 1 for each interface of each pod on the node, naming its network (join with container_network_* on namespace, pod, interface)\n\
             # TYPE pod_network_name_info gauge\n\
             pod_network_name_info{namespace=\"ns1\",pod=\"web\",interface=\"eth0\",network_name=\"kindnet\"} 1\n\
             pod_network_name_info{namespace=\"ns1\",pod=\"web\",interface=\"net1\",network_name=\"ns1/a\"} 1\n\
             pod_network_name_info{namespace=\"ns1\",pod=\"web\",interface=\"net2\",network_name=\"ns1/b\"} 1\n\
             # EOF\n"
        );
        assert!(store.apply(&report(ReportCommand::Del, "c1", "web", &[], Some(101))));
        assert!(store.pod_networks().is_empty());
    }

    #[test]
    fn the_source_can_be_replaced() {
        #[derive(Debug)]
        struct Fixed;
        impl PodNetworks for Fixed {
            fn pod_networks(&self) -> Vec<PodNetworkName> {
                from_network_status(
                    "prod",
                    "api-0",
                    Some(
                        r#"[{"name":"cbr0","interface":"eth0","ips":["10.0.0.5"],"default":true,"dns":{}},
                            {"name":"prod/sriov","interface":"net1","dns":{}},
                            {"name":"no-interface","dns":{}}]"#,
                    ),
                )
            }
        }
        let source = PodNetworkSource::new(Arc::new(ReportedPodNetworks::default()));
        let collector = PodNetworkCollector::new(source.clone());
        source.set(Arc::new(Fixed));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("pod_network_name_info{namespace=\"prod\",pod=\"api-0\",interface=\"eth0\",network_name=\"cbr0\"} 1"), "{text}");
        assert!(
            text.contains("interface=\"net1\",network_name=\"prod/sriov\"} 1"),
            "{text}"
        );
        assert!(!text.contains("no-interface"), "{text}");
        assert!(from_network_status("a", "b", Some("garbage")).is_empty());
        assert!(from_network_status("a", "b", None).is_empty());
    }

    #[test]
    fn entries_survive_a_restart_and_missed_dels_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        std::fs::write(cache.join("c1"), "[]").unwrap();
        std::fs::write(cache.join("c2"), "[]").unwrap();
        let state = dir.path().join("pod-networks.json");
        let store = ReportedPodNetworks::default();
        store.persist_in(state.clone(), cache.clone());
        store.apply(&report(
            ReportCommand::Add,
            "c1",
            "web",
            &[("ns1/a", "net1")],
            None,
        ));
        store.apply(&report(
            ReportCommand::Add,
            "c2",
            "db",
            &[("ns1/b", "net1")],
            None,
        ));
        assert!(
            !state.exists(),
            "saved by the caller's timer, not per report"
        );
        store.save();
        drop(store);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // c2 was DELed while no agent listened.
        std::fs::remove_file(cache.join("c2")).unwrap();
        let store = ReportedPodNetworks::default();
        store.persist_in(state.clone(), cache.clone());
        let pods: Vec<String> = store.pod_networks().into_iter().map(|e| e.pod).collect();
        assert_eq!(pods, ["web"]);

        std::fs::remove_file(cache.join("c1")).unwrap();
        store.prune();
        assert!(store.pod_networks().is_empty());

        std::fs::write(&state, "garbage").unwrap();
        let store = ReportedPodNetworks::default();
        store.persist_in(state, cache);
        assert!(
            store.pod_networks().is_empty(),
            "a bad file is an empty start"
        );
    }

    #[test]
    fn the_oldest_container_goes_beyond_the_bound() {
        let store = ReportedPodNetworks::default();
        for i in 0..=MAX_REPORTED_CONTAINERS {
            store.apply(&report(
                ReportCommand::Add,
                &format!("c{i}"),
                &format!("p{i}"),
                &[("n", "net1")],
                None,
            ));
        }
        let pods = store.pod_networks();
        assert_eq!(pods.len(), MAX_REPORTED_CONTAINERS);
        assert!(!pods.iter().any(|e| e.pod == "p0"), "the oldest went");
    }
}
