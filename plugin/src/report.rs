//! The per-command report to the node agent (docs/metrics.md): what ran,
//! for which pod, with which result and how long, per attachment and per
//! delegate process. Sent as one datagram on the report socket the Multus
//! config names (`nodeAgentReportSocket`), without waiting: a missing
//! socket, a full buffer or an agent that is down only lose the report,
//! never delay or fail the command.
//!
//! Hooks: [`Report::start`], [`Report::record`] and [`Report::finish`] in
//! [`crate::invocation`]; [`attachment`] in
//! [`crate::delegate::ExecEnv::for_attachment`] and [`exec`] in
//! [`crate::delegate::exec_plugin`]. What the delegates do is recorded in
//! a task-local [`Recorder`]; outside [`Report::record`] (upkeep, tests of
//! single functions) the hooks do nothing.

use std::cell::RefCell;
use std::future::Future;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use multus_config::agent_api::report::{
    AttachmentReport, CommandReport, DelegateExec, MAX_ATTACHMENTS, MAX_EXECS, MAX_NAME_LEN,
    MAX_NETWORK_LEN, MAX_PLUGIN_TYPE_LEN, MAX_REPORT_BYTES, REPORT_VERSION, ReportCommand,
};
use multus_config::multus_conf::MultusNetConf;

use crate::attachment::Attachment;
use crate::commands::Command;
use crate::delegate::DelegateError;
use crate::env::CniEnv;

tokio::task_local! {
    static RECORDER: RefCell<Recorder>;
}

/// The attachments and delegate processes of one command, in the order
/// they were first touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorder {
    attachments: Vec<AttachmentReport>,
    current: Option<usize>,
    truncated: bool,
}

impl Recorder {
    /// What was recorded.
    pub fn attachments(&self) -> &[AttachmentReport] {
        &self.attachments
    }

    fn select(&mut self, network: &str, interface: &str, cluster_network: bool) {
        let network = label_safe(network, MAX_NETWORK_LEN);
        if let Some(i) = self
            .attachments
            .iter()
            .position(|a| a.network == network && a.interface == interface)
        {
            self.current = Some(i);
            return;
        }
        self.current = self.push(AttachmentReport {
            network,
            interface: label_safe(interface, 15),
            cluster_network,
            execs: Vec::new(),
        });
    }

    fn push(&mut self, attachment: AttachmentReport) -> Option<usize> {
        if self.attachments.len() >= MAX_ATTACHMENTS {
            self.truncated = true;
            return None;
        }
        self.attachments.push(attachment);
        Some(self.attachments.len() - 1)
    }

    fn exec(&mut self, interface: &str, exec: DelegateExec) {
        let target = match self.current {
            Some(i) if self.attachments[i].interface == interface => Some(i),
            _ => match self
                .attachments
                .iter()
                .rposition(|a| a.interface == interface)
            {
                Some(i) => Some(i),
                // A whole-network command (STATUS, GC): no attachment.
                None => self.push(AttachmentReport {
                    network: String::new(),
                    interface: label_safe(interface, 15),
                    cluster_network: false,
                    execs: Vec::new(),
                }),
            },
        };
        match target.map(|i| &mut self.attachments[i].execs) {
            Some(execs) if execs.len() < MAX_EXECS => execs.push(exec),
            _ => self.truncated = true,
        }
    }
}

/// Records that the delegates run next belong to `attachment`.
pub fn attachment(attachment: &Attachment) {
    let _ = RECORDER.try_with(|r| {
        r.borrow_mut().select(
            &attachment.name,
            &attachment.ifname,
            attachment.is_cluster_network,
        );
    });
}

/// Records one delegate process for interface `ifname`: `command`,
/// `plugin_type`, started at `started`, failed with `error` if any.
pub fn exec(
    ifname: &str,
    command: &str,
    plugin_type: &str,
    started: Instant,
    error: Option<&DelegateError>,
) {
    let duration = started.elapsed();
    let _ = RECORDER.try_with(|r| {
        let Some(command) = ReportCommand::parse(command) else {
            return;
        };
        r.borrow_mut().exec(
            ifname,
            DelegateExec {
                plugin_type: plugin_type_label(plugin_type),
                command,
                duration_us: micros(duration),
                error_code: error.map(|e| e.to_cni_error().code),
            },
        );
    });
}

/// One command's report, from its start to [`Report::finish`].
#[derive(Debug)]
pub struct Report {
    command: Option<ReportCommand>,
    started: Instant,
    namespace: String,
    pod: String,
    container_id: String,
    recorded: Recorder,
}

impl Report {
    /// Starts timing `command`.
    pub fn start(command: Command) -> Self {
        let command = match command {
            Command::Add => Some(ReportCommand::Add),
            Command::Del => Some(ReportCommand::Del),
            Command::Check => Some(ReportCommand::Check),
            Command::Status => Some(ReportCommand::Status),
            Command::Gc => Some(ReportCommand::Gc),
            Command::Version => None,
        };
        Self {
            command,
            started: Instant::now(),
            namespace: String::new(),
            pod: String::new(),
            container_id: String::new(),
            recorded: Recorder::default(),
        }
    }

    /// Runs the command `fut` for the pod of `env`, recording its
    /// delegates.
    pub async fn record<F: Future>(&mut self, env: &CniEnv, fut: F) -> F::Output {
        self.namespace = label_safe(env.args.get("K8S_POD_NAMESPACE").unwrap_or_default(), 63);
        self.pod = label_safe(
            env.args.get("K8S_POD_NAME").unwrap_or_default(),
            MAX_NAME_LEN,
        );
        self.container_id = label_safe(&env.container_id, MAX_NAME_LEN);
        let (output, recorded) = RECORDER
            .scope(RefCell::new(Recorder::default()), async {
                let output = fut.await;
                (output, RECORDER.with(RefCell::take))
            })
            .await;
        self.recorded = recorded;
        output
    }

    /// The report of the command, which answered `error_code` (`None`:
    /// success).
    pub fn to_report(&self, error_code: Option<u32>) -> Option<CommandReport> {
        Some(CommandReport {
            version: REPORT_VERSION,
            command: self.command?,
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            container_id: self.container_id.clone(),
            error_code,
            duration_us: micros(self.started.elapsed()),
            attachments: self.recorded.attachments.clone(),
            truncated: self.recorded.truncated,
        })
    }

    /// Sends the report to the socket `conf` names, if any. Never waits,
    /// never fails: a report that cannot be sent is dropped (logged at
    /// debug level).
    pub fn finish(self, conf: &MultusNetConf, error_code: Option<u32>) {
        let Some(path) = conf
            .node_agent_report_socket
            .as_deref()
            .filter(|p| !p.is_empty())
        else {
            return;
        };
        let Some(report) = self.to_report(error_code) else {
            return;
        };
        if let Err(error) = send(Path::new(path), &fit(report)) {
            tracing::debug!(socket = path, %error, "report not delivered");
        }
    }
}

/// The encoded report, attachments dropped from the end (and `truncated`
/// set) until it fits in [`MAX_REPORT_BYTES`].
pub fn fit(mut report: CommandReport) -> Vec<u8> {
    loop {
        let bytes = report.encode();
        if bytes.len() <= MAX_REPORT_BYTES || report.attachments.is_empty() {
            return bytes;
        }
        report.attachments.pop();
        report.truncated = true;
    }
}

/// Sends one datagram to `path` without blocking.
pub fn send(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to(bytes, path).map(|_| ())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `text` cut to `max` bytes with whitespace and control characters
/// replaced, so the agent never rejects a report for a odd name.
fn label_safe(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            '_'
        } else {
            c
        };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// A plugin type as the agent accepts it: file-name characters, else
/// `invalid`.
fn plugin_type_label(plugin_type: &str) -> String {
    let valid = !plugin_type.is_empty()
        && plugin_type.len() <= MAX_PLUGIN_TYPE_LEN
        && plugin_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        plugin_type.to_owned()
    } else {
        "invalid".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::agent_api::report::decode;

    fn started_ago(ms: u64) -> Instant {
        Instant::now() - Duration::from_millis(ms)
    }

    #[test]
    fn records_attachments_and_their_processes_in_order() {
        let exec = |plugin: &str, command, error_code| DelegateExec {
            plugin_type: plugin.into(),
            command,
            duration_us: 10,
            error_code,
        };
        let mut recorder = Recorder::default();
        recorder.select("cluster", "eth0", true);
        recorder.exec("eth0", exec("bridge", ReportCommand::Add, None));
        recorder.select("default/a", "net1", false);
        recorder.exec("net1", exec("macvlan", ReportCommand::Add, Some(11)));
        // the rollback DELs in reverse order, selecting them again
        recorder.select("default/a", "net1", false);
        recorder.select("cluster", "eth0", true);
        recorder.exec("eth0", exec("bridge", ReportCommand::Del, None));
        let a = recorder.attachments();
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(
            (a[0].network.as_str(), a[0].interface.as_str()),
            ("cluster", "eth0")
        );
        assert_eq!(a[0].execs.len(), 2);
        assert_eq!(a[0].execs[1].command, ReportCommand::Del);
        assert_eq!(a[1].error_code(), Some(11));
    }

    #[tokio::test]
    async fn hooks_outside_a_recording_do_nothing_and_inside_they_record() {
        // No scope: must not panic.
        exec("eth0", "ADD", "bridge", started_ago(1), None);
        let mut report = Report::start(Command::Add);
        let env = CniEnv::from_lookup(Command::Add, |k| {
            Some(
                match k {
                    "CNI_CONTAINERID" => "ctr1",
                    "CNI_NETNS" => "/var/run/netns/x",
                    "CNI_IFNAME" => "eth0",
                    "CNI_ARGS" => "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web 0",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .unwrap();
        report
            .record(&env, async {
                exec("eth0", "ADD", "bridge", started_ago(3), None);
                exec("", "STATUS", "../odd", started_ago(1), None);
                exec("", "VERSION", "bridge", started_ago(1), None);
            })
            .await;
        let r = report.to_report(Some(101)).unwrap();
        assert_eq!(r.namespace, "ns1");
        assert_eq!(r.pod, "web_0", "whitespace replaced");
        assert_eq!(r.container_id, "ctr1");
        assert_eq!(r.error_code, Some(101));
        assert_eq!(r.attachments.len(), 2, "{:?}", r.attachments);
        assert_eq!(r.attachments[0].interface, "eth0");
        assert!(r.attachments[0].execs[0].duration_us >= 3_000);
        assert_eq!(r.attachments[1].execs[0].plugin_type, "invalid");
        assert_eq!(r.attachments[1].execs.len(), 1, "VERSION is not recorded");
        assert_eq!(decode(&fit(r.clone())), Ok(r), "the agent accepts it");
        assert!(Report::start(Command::Version).to_report(None).is_none());
    }

    #[test]
    fn reports_are_bounded() {
        let mut r = Recorder::default();
        for i in 0..MAX_ATTACHMENTS + 3 {
            r.select(&format!("ns/n{i}"), &format!("net{i}"), false);
        }
        assert_eq!(r.attachments.len(), MAX_ATTACHMENTS);
        assert!(r.truncated);
        let exec = DelegateExec {
            plugin_type: "p".repeat(MAX_PLUGIN_TYPE_LEN),
            command: ReportCommand::Add,
            duration_us: 1,
            error_code: Some(7),
        };
        for a in &mut r.attachments {
            a.network = "n".repeat(MAX_NETWORK_LEN);
            a.execs = vec![exec.clone(); MAX_EXECS];
        }
        let report = CommandReport {
            version: REPORT_VERSION,
            command: ReportCommand::Add,
            namespace: String::new(),
            pod: String::new(),
            container_id: String::new(),
            error_code: None,
            duration_us: 1,
            attachments: r.attachments.clone(),
            truncated: false,
        };
        let bytes = fit(report);
        assert!(bytes.len() <= MAX_REPORT_BYTES);
        let decoded = decode(&bytes).unwrap();
        assert!(decoded.truncated && !decoded.attachments.is_empty());
        assert_eq!(label_safe("ab\tcé", 4), "ab_c", "cut at a char boundary");
    }

    #[test]
    fn sending_to_a_missing_socket_fails_at_once() {
        let started = Instant::now();
        assert!(send(Path::new("/nonexistent/agent-reports.sock"), b"{}").is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_bound_socket_receives_the_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        send(&path, b"hello").unwrap();
        let mut buf = [0u8; 16];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }
}
