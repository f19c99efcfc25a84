//! The plugin's per-command reports (docs/metrics.md): the report socket
//! ([`socket`]), the Prometheus metrics made of them ([`ReportMetrics`])
//! and `pod_network_name_info` ([`pod_networks`]).
//!
//! Labels come only from bounded sets: the command, a result class
//! ([`result_class`]) and the delegate type, the pod's namespace and the
//! network, each of the last three capped at a number of distinct values
//! beyond which new values count as [`OVERFLOW_LABEL`]. Pod names are never
//! labels here, only in `pod_network_name_info` (one series per interface
//! of a pod on the node).

pub mod cached;
pub mod pod_networks;
pub mod socket;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use multus_config::agent_api::report::{CommandReport, Rejection, result_class};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use pod_networks::{PodNetworkCollector, PodNetworkSource, PodNetworks, ReportedPodNetworks};

/// Buckets of `multus_plugin_command_duration_seconds` (seconds): from a
/// few milliseconds (DEL, CHECK) to the minutes a stuck ADD may take.
pub const COMMAND_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of `multus_plugin_delegate_duration_seconds` (seconds): plugin
/// processes take a millisecond or two up to the 90 s limit.
pub const DELEGATE_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 90.0,
];

/// The label value standing for every value beyond a cap.
pub const OVERFLOW_LABEL: &str = "_other";

/// Most distinct namespaces used as label values.
pub const MAX_NAMESPACES: usize = 500;
/// Most distinct networks used as label values.
pub const MAX_NETWORKS: usize = 1000;
/// Most distinct delegate types used as label values.
pub const MAX_DELEGATE_TYPES: usize = 100;

/// Labels of the command metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CommandLabels {
    /// ADD, DEL, CHECK, STATUS or GC.
    pub command: String,
    /// `ok` or the error class.
    pub result: String,
}

/// Labels of the command counter with the pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NamespaceCommandLabels {
    /// ADD, DEL, CHECK, STATUS or GC.
    pub command: String,
    /// `ok` or the error class.
    pub result: String,
    /// The pod's namespace (empty for STATUS and GC).
    pub namespace: String,
}

/// Labels of the delegate histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DelegateLabels {
    /// The plugin (`type` of its config).
    pub delegate_type: String,
    /// The CNI command it ran.
    pub command: String,
    /// `ok` or the error class.
    pub result: String,
}

/// Labels of the attachment counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AttachmentLabels {
    /// The CNI command of the plugin run.
    pub command: String,
    /// The pod's namespace.
    pub namespace: String,
    /// `namespace/name` of the NAD or the cluster network's name.
    pub network: String,
    /// `ok` or the error class of its first failed plugin process.
    pub result: String,
}

/// Labels of the rejection counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RejectionLabels {
    /// Why the datagram was dropped.
    pub reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn command_histogram() -> Histogram {
    Histogram::new(COMMAND_BUCKETS)
}

fn delegate_histogram() -> Histogram {
    Histogram::new(DELEGATE_BUCKETS)
}

/// A set of label values that stops growing at `max`.
#[derive(Debug)]
struct LabelCap {
    seen: Mutex<HashSet<String>>,
    max: usize,
}

impl LabelCap {
    fn new(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            max,
        }
    }

    fn admit(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() >= self.max {
            return OVERFLOW_LABEL.to_owned();
        }
        seen.insert(value.to_owned());
        value.to_owned()
    }
}

/// The metrics made of the plugin's reports, plus the report-fed
/// `pod_network_name_info` source.
#[derive(Debug)]
pub struct ReportMetrics {
    /// Reports accepted.
    pub reports: Counter,
    /// Datagrams dropped, by reason.
    pub rejected: Family<RejectionLabels, Counter>,
    command_duration: HistogramFamily<CommandLabels>,
    commands: Family<NamespaceCommandLabels, Counter>,
    delegate_duration: HistogramFamily<DelegateLabels>,
    attachments: Family<AttachmentLabels, Counter>,
    namespaces: LabelCap,
    networks: LabelCap,
    delegate_types: LabelCap,
    reported: Arc<ReportedPodNetworks>,
    source: PodNetworkSource,
}

impl ReportMetrics {
    /// Registers the metrics: the agent's own (`reports`, `rejected`) in
    /// `agent` (prefix `multus_node_agent`), the plugin's in `root` under
    /// `multus_plugin`, and `pod_network_name_info` in `root` unprefixed.
    /// `reported` is the report-fed source of `pod_network_name_info`.
    pub fn register(root: &mut Registry, reported: Arc<ReportedPodNetworks>) -> Self {
        let this = Self {
            reports: Counter::default(),
            rejected: Family::default(),
            command_duration: Family::new_with_constructor(command_histogram),
            commands: Family::default(),
            delegate_duration: Family::new_with_constructor(delegate_histogram),
            attachments: Family::default(),
            namespaces: LabelCap::new(MAX_NAMESPACES),
            networks: LabelCap::new(MAX_NETWORKS),
            delegate_types: LabelCap::new(MAX_DELEGATE_TYPES),
            source: PodNetworkSource::new(reported.clone()),
            reported,
        };
        for reason in Rejection::ALL {
            // Every reason shows, at 0, from the start.
            let _ = this.rejected.get_or_create(&RejectionLabels {
                reason: reason.as_label().to_owned(),
            });
        }
        root.register_collector(Box::new(PodNetworkCollector::new(this.source.clone())));
        let agent = root.sub_registry_with_prefix("multus_node_agent");
        agent.register(
            "reports",
            "Reports of CNI commands received from the plugin and accepted",
            this.reports.clone(),
        );
        agent.register(
            "reports_rejected",
            "Datagrams on the report socket that were dropped, by reason",
            this.rejected.clone(),
        );
        let plugin = root.sub_registry_with_prefix("multus_plugin");
        plugin.register_with_unit(
            "command_duration",
            "Wall time of the plugin's CNI commands on this node, by command and result",
            Unit::Seconds,
            this.command_duration.clone(),
        );
        plugin.register(
            "commands",
            "CNI commands of the plugin on this node, by command, result and pod namespace",
            this.commands.clone(),
        );
        plugin.register_with_unit(
            "delegate_duration",
            "Wall time of each delegate plugin process, by delegate type, CNI command and result",
            Unit::Seconds,
            this.delegate_duration.clone(),
        );
        plugin.register(
            "attachments",
            "Attachments (network on an interface) a CNI command ran delegates for, by command, pod namespace, network and result",
            this.attachments.clone(),
        );
        this
    }

    /// Counts a dropped datagram.
    pub fn reject(&self, why: Rejection) {
        self.rejected
            .get_or_create(&RejectionLabels {
                reason: why.as_label().to_owned(),
            })
            .inc();
    }

    /// Records an accepted report.
    pub fn record(&self, report: &CommandReport) {
        self.reports.inc();
        let command = report.command.as_str().to_owned();
        let result = result_class(report.error_code).to_owned();
        let namespace = self.namespaces.admit(&report.namespace);
        #[allow(clippy::cast_precision_loss)] // microseconds fit f64 exactly up to 2^53
        let seconds = |us: u64| us as f64 / 1e6;
        self.command_duration
            .get_or_create(&CommandLabels {
                command: command.clone(),
                result: result.clone(),
            })
            .observe(seconds(report.duration_us));
        self.commands
            .get_or_create(&NamespaceCommandLabels {
                command: command.clone(),
                result,
                namespace: namespace.clone(),
            })
            .inc();
        for attachment in &report.attachments {
            for exec in &attachment.execs {
                self.delegate_duration
                    .get_or_create(&DelegateLabels {
                        delegate_type: self.delegate_types.admit(&exec.plugin_type),
                        command: exec.command.as_str().to_owned(),
                        result: result_class(exec.error_code).to_owned(),
                    })
                    .observe(seconds(exec.duration_us));
            }
            if attachment.network.is_empty() {
                continue;
            }
            self.attachments
                .get_or_create(&AttachmentLabels {
                    command: command.clone(),
                    namespace: namespace.clone(),
                    network: self.networks.admit(&attachment.network),
                    result: result_class(attachment.error_code()).to_owned(),
                })
                .inc();
        }
        self.reported.apply(report);
    }

    /// Makes `pod_network_name_info` read `source` from the next scrape on
    /// (the watch cache of the node's pods). The report-fed entries are
    /// still kept and can be restored with [`Self::use_reported`].
    pub fn set_pod_networks(&self, source: Arc<dyn PodNetworks>) {
        self.source.set(source);
    }

    /// Makes `pod_network_name_info` read the report-fed entries again.
    pub fn use_reported(&self) {
        self.source.set(self.reported.clone());
    }

    /// The report-fed entries (pruned every minute by [`socket::serve`]).
    pub fn reported(&self) -> &Arc<ReportedPodNetworks> {
        &self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::agent_api::report::{
        AttachmentReport, DelegateExec, REPORT_VERSION, ReportCommand,
    };

    fn exec(plugin: &str, command: ReportCommand, us: u64, code: Option<u32>) -> DelegateExec {
        DelegateExec {
            plugin_type: plugin.into(),
            command,
            duration_us: us,
            error_code: code,
        }
    }

    fn add(container: &str, error_code: Option<u32>) -> CommandReport {
        CommandReport {
            version: REPORT_VERSION,
            command: ReportCommand::Add,
            namespace: "team-a".into(),
            pod: format!("pod-{container}"),
            container_id: container.into(),
            error_code,
            duration_us: 42_000,
            attachments: vec![
                AttachmentReport {
                    network: "cbr0".into(),
                    interface: "eth0".into(),
                    cluster_network: true,
                    execs: vec![exec("bridge", ReportCommand::Add, 3_000, None)],
                },
                AttachmentReport {
                    network: "team-a/macvlan".into(),
                    interface: "net1".into(),
                    cluster_network: false,
                    execs: vec![exec("macvlan", ReportCommand::Add, 700, error_code)],
                },
            ],
            truncated: false,
        }
    }

    fn metrics() -> (Registry, ReportMetrics) {
        let mut root = Registry::default();
        let m = ReportMetrics::register(&mut root, Arc::new(ReportedPodNetworks::default()));
        (root, m)
    }

    fn text(root: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, root).unwrap();
        out
    }

    #[test]
    fn reports_become_histograms_counters_and_pod_networks() {
        let (root, m) = metrics();
        m.record(&add("c1", None));
        m.record(&add("c2", Some(11)));
        m.reject(Rejection::Malformed);
        let text = text(&root);
        for line in [
            "multus_node_agent_reports_total 2",
            "multus_node_agent_reports_rejected_total{reason=\"malformed\"} 1",
            "multus_node_agent_reports_rejected_total{reason=\"unknown_version\"} 0",
            // 42 ms falls in the 0.05 bucket, not in 0.025
            "multus_plugin_command_duration_seconds_bucket{le=\"0.025\",command=\"ADD\",result=\"ok\"} 0",
            "multus_plugin_command_duration_seconds_bucket{le=\"0.05\",command=\"ADD\",result=\"ok\"} 1",
            "multus_plugin_command_duration_seconds_count{command=\"ADD\",result=\"try_again_later\"} 1",
            "multus_plugin_command_duration_seconds_sum{command=\"ADD\",result=\"ok\"} 0.042",
            "multus_plugin_commands_total{command=\"ADD\",result=\"ok\",namespace=\"team-a\"} 1",
            "multus_plugin_commands_total{command=\"ADD\",result=\"try_again_later\",namespace=\"team-a\"} 1",
            // 700 us: in the 0.001 bucket
            "multus_plugin_delegate_duration_seconds_bucket{le=\"0.001\",delegate_type=\"macvlan\",command=\"ADD\",result=\"ok\"} 1",
            "multus_plugin_delegate_duration_seconds_bucket{le=\"0.0025\",delegate_type=\"bridge\",command=\"ADD\",result=\"ok\"} 0",
            "multus_plugin_delegate_duration_seconds_count{delegate_type=\"bridge\",command=\"ADD\",result=\"ok\"} 2",
            "multus_plugin_delegate_duration_seconds_count{delegate_type=\"macvlan\",command=\"ADD\",result=\"try_again_later\"} 1",
            "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"team-a/macvlan\",result=\"ok\"} 1",
            "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"team-a/macvlan\",result=\"try_again_later\"} 1",
            "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"cbr0\",result=\"ok\"} 2",
            "pod_network_name_info{namespace=\"team-a\",pod=\"pod-c1\",interface=\"net1\",network_name=\"team-a/macvlan\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("pod-c2"), "a failed ADD has no interfaces");
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with("pod_network_name_info") && l.contains("pod=")),
            "pod names only in pod_network_name_info:\n{text}"
        );
        assert!(text.contains("# TYPE multus_plugin_command_duration_seconds histogram"));
        assert!(text.contains("# UNIT multus_plugin_command_duration_seconds seconds"));
    }

    #[test]
    fn label_values_are_capped() {
        let (root, m) = metrics();
        for i in 0..MAX_NETWORKS + 5 {
            let mut r = add("c", None);
            r.attachments[1].network = format!("ns/n{i}");
            m.record(&r);
        }
        let text = text(&root);
        let networks = text
            .lines()
            .filter(|l| {
                l.starts_with("multus_plugin_attachments_total{") && l.contains("network=\"ns/")
            })
            .count();
        assert_eq!(networks, MAX_NETWORKS - 1, "cbr0 took one of the places");
        assert!(
            text.contains(
                "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"_other\",result=\"ok\"} 6"
            ),
            "{}",
            text.lines().filter(|l| l.contains("_other")).collect::<Vec<_>>().join("\n")
        );
    }
}
