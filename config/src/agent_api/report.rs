//! The plugin's per-command report to the node agent: one JSON datagram
//! per CNI command on the report socket
//! ([`super::DEFAULT_REPORT_SOCKET`], `SOCK_DGRAM`), sent without waiting
//! and without caring whether anyone listens. The agent turns reports into
//! Prometheus metrics (docs/metrics.md).
//!
//! The agent trusts nothing in a datagram: [`decode`] rejects oversize,
//! garbage, unknown versions and values that would not make sane label
//! values, each with a [`Rejection`] it counts. Labels are never taken
//! from free text: results become [`result_class`] names, and pod names
//! never become labels of counters or histograms.

use serde::{Deserialize, Serialize};

use crate::cni::error::ErrorCode;

/// The version of [`CommandReport`] this crate writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// Largest datagram the agent accepts; the plugin never sends more.
pub const MAX_REPORT_BYTES: usize = 32 * 1024;

/// Most attachments one report may carry (the plugin drops the rest and
/// sets [`CommandReport::truncated`]).
pub const MAX_ATTACHMENTS: usize = 64;

/// Most plugin executions one attachment may carry (a conflist runs one
/// process per plugin; a rolled-back ADD adds the DELs).
pub const MAX_EXECS: usize = 32;

/// Longest network name (`namespace/name` of a NAD: 63 + 1 + 253).
pub const MAX_NETWORK_LEN: usize = 317;

/// Longest plugin type (a file name in the CNI bin dir).
pub const MAX_PLUGIN_TYPE_LEN: usize = 64;

/// Longest pod name or container ID accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Label value of a successful command, attachment or execution.
pub const RESULT_OK: &str = "ok";

/// The CNI commands that are reported (VERSION is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReportCommand {
    /// ADD.
    Add,
    /// DEL.
    Del,
    /// CHECK.
    Check,
    /// STATUS.
    Status,
    /// GC.
    Gc,
}

impl ReportCommand {
    /// Every command, for label values and tests.
    pub const ALL: [Self; 5] = [Self::Add, Self::Del, Self::Check, Self::Status, Self::Gc];

    /// The `CNI_COMMAND` text, also the `command` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
        }
    }

    /// Parses a `CNI_COMMAND` text (VERSION and unknown: `None`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// One CNI command as the plugin ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandReport {
    /// [`REPORT_VERSION`] of the writer.
    pub version: u32,
    /// The command.
    pub command: ReportCommand,
    /// The pod's namespace (`K8S_POD_NAMESPACE`; empty for STATUS/GC).
    #[serde(default)]
    pub namespace: String,
    /// The pod's name (`K8S_POD_NAME`; empty for STATUS/GC).
    #[serde(default)]
    pub pod: String,
    /// `CNI_CONTAINERID`.
    #[serde(default)]
    pub container_id: String,
    /// The CNI error code the command answered with; `None`: success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// Wall time of the whole command, microseconds.
    pub duration_us: u64,
    /// The attachments the command touched, in the order it first touched
    /// them.
    #[serde(default)]
    pub attachments: Vec<AttachmentReport>,
    /// Whether attachments were left out (more than [`MAX_ATTACHMENTS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One attachment (network on one interface) a command touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentReport {
    /// `namespace/name` of the NAD, or the cluster network's CNI name;
    /// empty for whole-network commands without one (STATUS, GC).
    #[serde(default)]
    pub network: String,
    /// Interface in the pod (empty for STATUS, GC).
    #[serde(default)]
    pub interface: String,
    /// Whether it is the pod's cluster (default) network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_network: bool,
    /// The plugin processes run for it, in order.
    #[serde(default)]
    pub execs: Vec<DelegateExec>,
}

impl AttachmentReport {
    /// The CNI error code of its first failed execution; `None`: all
    /// succeeded (an attachment that was rolled back because another one
    /// failed is a success of its own).
    pub fn error_code(&self) -> Option<u32> {
        self.execs.iter().find_map(|e| e.error_code)
    }

    /// Total time of its plugin processes, microseconds.
    pub fn duration_us(&self) -> u64 {
        self.execs.iter().map(|e| e.duration_us).sum()
    }
}

/// One delegate plugin process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelegateExec {
    /// The plugin (`type`).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The `CNI_COMMAND` it was run with (an ADD's rollback runs DEL).
    pub command: ReportCommand,
    /// Wall time from looking the binary up to its exit, microseconds.
    pub duration_us: u64,
    /// Its CNI error code; `None`: success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
}

/// Why the agent dropped a datagram; [`Rejection::as_label`] is the
/// `reason` label of `multus_node_agent_reports_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// Larger than [`MAX_REPORT_BYTES`].
    #[error("the datagram is larger than {MAX_REPORT_BYTES} bytes")]
    Oversize,
    /// Not JSON, or not a report object.
    #[error("the datagram is not a report")]
    Malformed,
    /// A `version` other than [`REPORT_VERSION`].
    #[error("unknown report version")]
    UnknownVersion,
    /// A report whose values are out of bounds (too many attachments, too
    /// long or non-printable names).
    #[error("the report has values out of bounds")]
    Invalid,
}

impl Rejection {
    /// Every reason, for label values.
    pub const ALL: [Self; 4] = [
        Self::Oversize,
        Self::Malformed,
        Self::UnknownVersion,
        Self::Invalid,
    ];

    /// The `reason` label value.
    pub const fn as_label(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Malformed => "malformed",
            Self::UnknownVersion => "unknown_version",
            Self::Invalid => "invalid",
        }
    }
}

/// Just the version, read before the rest so that a future format is
/// counted as such and not as garbage.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl CommandReport {
    /// The datagram: compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Reads a datagram the agent received.
pub fn decode(bytes: &[u8]) -> Result<CommandReport, Rejection> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(Rejection::Oversize);
    }
    let version: VersionOnly = serde_json::from_slice(bytes).map_err(|_| Rejection::Malformed)?;
    if version.version != REPORT_VERSION {
        return Err(Rejection::UnknownVersion);
    }
    let report: CommandReport = serde_json::from_slice(bytes).map_err(|_| Rejection::Malformed)?;
    if report.is_within_bounds() {
        Ok(report)
    } else {
        Err(Rejection::Invalid)
    }
}

/// Whether `text` is at most `max` bytes of printable characters without
/// whitespace (what a label value or a name in a log may hold).
fn printable(text: &str, max: usize) -> bool {
    text.len() <= max && text.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

impl CommandReport {
    fn is_within_bounds(&self) -> bool {
        printable(&self.namespace, 63)
            && printable(&self.pod, MAX_NAME_LEN)
            && printable(&self.container_id, MAX_NAME_LEN)
            && self.attachments.len() <= MAX_ATTACHMENTS
            && self.attachments.iter().all(|a| {
                printable(&a.network, MAX_NETWORK_LEN)
                    && printable(&a.interface, 15)
                    && a.execs.len() <= MAX_EXECS
                    && a.execs.iter().all(|e| {
                        !e.plugin_type.is_empty()
                            && e.plugin_type.len() <= MAX_PLUGIN_TYPE_LEN
                            && e.plugin_type
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    })
            })
    }
}

/// The `result` label of a CNI error code: [`RESULT_OK`] for `None`,
/// else a fixed short name per code of the spec and of this project, and
/// `other` for any other code (a delegate's own), so the label has a
/// bounded set of values whatever plugins answer.
pub fn result_class(code: Option<u32>) -> &'static str {
    let Some(code) = code else {
        return RESULT_OK;
    };
    match ErrorCode::from_code(code) {
        Some(ErrorCode::IncompatibleCniVersion) => "incompatible_cni_version",
        Some(ErrorCode::UnsupportedField) => "unsupported_field",
        Some(ErrorCode::UnknownContainer) => "unknown_container",
        Some(ErrorCode::InvalidEnvironmentVariables) => "invalid_environment",
        Some(ErrorCode::IoFailure) => "io_failure",
        Some(ErrorCode::DecodingFailure) => "decoding_failure",
        Some(ErrorCode::InvalidNetworkConfig) => "invalid_network_config",
        Some(ErrorCode::TryAgainLater) => "try_again_later",
        Some(ErrorCode::PluginNotAvailable) => "plugin_not_available",
        Some(ErrorCode::PluginLimitedConnectivity) => "plugin_limited_connectivity",
        Some(ErrorCode::KubernetesApi) => "kubernetes_api",
        Some(ErrorCode::DelegateFailed) => "delegate_failed",
        Some(ErrorCode::CacheFailure) => "cache_failure",
        Some(ErrorCode::InvalidAnnotation) => "invalid_annotation",
        Some(ErrorCode::NetlinkFailure) => "netlink_failure",
        Some(ErrorCode::ReadinessTimeout) => "readiness_timeout",
        None => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CommandReport {
        CommandReport {
            version: REPORT_VERSION,
            command: ReportCommand::Add,
            namespace: "default".into(),
            pod: "web-0".into(),
            container_id: "abc123".into(),
            error_code: None,
            duration_us: 12_345,
            attachments: vec![
                AttachmentReport {
                    network: "kindnet".into(),
                    interface: "eth0".into(),
                    cluster_network: true,
                    execs: vec![DelegateExec {
                        plugin_type: "ptp".into(),
                        command: ReportCommand::Add,
                        duration_us: 5_000,
                        error_code: None,
                    }],
                },
                AttachmentReport {
                    network: "default/macvlan-a".into(),
                    interface: "net1".into(),
                    cluster_network: false,
                    execs: vec![
                        DelegateExec {
                            plugin_type: "macvlan".into(),
                            command: ReportCommand::Add,
                            duration_us: 3_000,
                            error_code: Some(11),
                        },
                        DelegateExec {
                            plugin_type: "macvlan".into(),
                            command: ReportCommand::Del,
                            duration_us: 1_000,
                            error_code: None,
                        },
                    ],
                },
            ],
            truncated: false,
        }
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        let report = sample();
        let bytes = report.encode();
        assert_eq!(decode(&bytes), Ok(report.clone()));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""command":"ADD""#), "{text}");
        assert!(text.contains(r#""type":"macvlan""#), "{text}");
        assert!(text.contains(r#""containerId":"abc123""#), "{text}");
        assert!(!text.contains("truncated"), "false is omitted: {text}");
        assert_eq!(report.attachments[1].error_code(), Some(11));
        assert_eq!(report.attachments[1].duration_us(), 4_000);
        assert_eq!(report.attachments[0].error_code(), None);
    }

    #[test]
    fn a_minimal_report_decodes() {
        let r = decode(br#"{"version":1,"command":"STATUS","durationUs":7}"#).unwrap();
        assert_eq!(r.command, ReportCommand::Status);
        assert!(r.attachments.is_empty() && r.pod.is_empty());
    }

    #[test]
    fn garbage_versions_and_oversize_are_rejected_each_with_its_reason() {
        assert_eq!(decode(b"not json"), Err(Rejection::Malformed));
        assert_eq!(decode(b""), Err(Rejection::Malformed));
        assert_eq!(decode(b"[1,2]"), Err(Rejection::Malformed));
        assert_eq!(
            decode(br#"{"version":1,"command":"FROB","durationUs":1}"#),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            decode(br#"{"version":1,"command":"ADD","durationUs":1,"extra":true}"#),
            Err(Rejection::Malformed),
            "unknown fields in a known version"
        );
        assert_eq!(
            decode(br#"{"version":2,"command":"ADD","whatever":[]}"#),
            Err(Rejection::UnknownVersion)
        );
        assert_eq!(
            decode(br#"{"version":0,"command":"ADD","durationUs":1}"#),
            Err(Rejection::UnknownVersion)
        );
        let mut big = sample().encode();
        big.resize(MAX_REPORT_BYTES + 1, b' ');
        assert_eq!(decode(&big), Err(Rejection::Oversize));
    }

    #[test]
    fn values_that_would_make_bad_labels_are_rejected() {
        let cases: Vec<fn(&mut CommandReport)> = vec![
            |r| r.namespace = "a".repeat(64),
            |r| r.namespace = "two words".into(),
            |r| r.pod = "line\nbreak".into(),
            |r| r.attachments[1].network = "x".repeat(MAX_NETWORK_LEN + 1),
            |r| r.attachments[1].interface = "a-very-long-name0".into(),
            |r| r.attachments[1].execs[0].plugin_type = "../bin/sh".into(),
            |r| r.attachments[1].execs[0].plugin_type = String::new(),
            |r| r.attachments[1].execs[0].plugin_type = "p".repeat(MAX_PLUGIN_TYPE_LEN + 1),
            |r| {
                let a = r.attachments[0].clone();
                r.attachments = vec![a; MAX_ATTACHMENTS + 1];
            },
            |r| {
                let e = r.attachments[0].execs[0].clone();
                r.attachments[0].execs = vec![e; MAX_EXECS + 1];
            },
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut report = sample();
            change(&mut report);
            assert_eq!(
                decode(&report.encode()),
                Err(Rejection::Invalid),
                "case {i}"
            );
        }
    }

    #[test]
    fn result_classes_are_a_fixed_set() {
        assert_eq!(result_class(None), "ok");
        assert_eq!(result_class(Some(11)), "try_again_later");
        assert_eq!(result_class(Some(101)), "delegate_failed");
        assert_eq!(result_class(Some(7)), "invalid_network_config");
        assert_eq!(result_class(Some(999)), "other");
        assert_eq!(result_class(Some(42)), "other");
        for code in crate::cni::error::ALL_ERROR_CODES {
            let class = result_class(Some(code.code()));
            assert!(
                class != "other" && class.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{class}"
            );
        }
    }

    #[test]
    fn commands_round_trip_their_text() {
        for c in ReportCommand::ALL {
            assert_eq!(ReportCommand::parse(c.as_str()), Some(c));
        }
        assert_eq!(ReportCommand::parse("VERSION"), None);
    }
}
