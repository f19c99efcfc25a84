//! The per-command report to the node agent: the `multus` binary, run as a
//! runtime runs it with real plugins (bridge, host-local) in a real network
//! namespace, sends one datagram per command to the socket its config
//! names (`nodeAgentReportSocket`); the test binds that socket as the agent
//! does. Root only.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::*;
use multus_config::agent_api::report::{CommandReport, ReportCommand, decode};
use serde_json::{Value, json};

/// A bridge cluster network plus a file-based default network `extra`
/// (net1), reporting to `socket`.
fn config(sb: &mut Sandbox, socket: &Path, extra_type: &str) -> Value {
    let data = sb.path("ipam");
    let conf_dir = sb.path("multus.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let (br0, br1) = (sb.bridge(), sb.bridge());
    let mut extra = bridge_conf("extra", &br1, "10.98.2.0/24", &data);
    extra["type"] = json!(extra_type);
    std::fs::write(conf_dir.join("20-extra.conf"), extra.to_string()).unwrap();
    json!({
        "cniVersion": "1.0.0",
        "name": "multus-cni-network",
        "type": "multus",
        "confDir": conf_dir,
        "cniDir": sb.path("cache"),
        "binDir": "/nonexistent/bin",
        "defaultNetworks": ["extra"],
        "nodeAgentReportSocket": socket,
        "delegates": [bridge_conf("cluster", &br0, "10.98.1.0/24", &data)]
    })
}

fn bind(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
}

fn receive(socket: &UnixDatagram) -> CommandReport {
    let mut buf = vec![0u8; 64 * 1024];
    let n = socket.recv(&mut buf).expect("a report within 10 s");
    decode(&buf[..n]).unwrap_or_else(|e| {
        panic!(
            "the agent would reject it ({e}): {}",
            String::from_utf8_lossy(&buf[..n])
        )
    })
}

/// (plugin type, command, succeeded) of one delegate process.
type Exec = (String, ReportCommand, bool);

/// (network, interface, processes) of each attachment.
fn summary(report: &CommandReport) -> Vec<(String, String, Vec<Exec>)> {
    report
        .attachments
        .iter()
        .map(|a| {
            (
                a.network.clone(),
                a.interface.clone(),
                a.execs
                    .iter()
                    .map(|e| (e.plugin_type.clone(), e.command, e.error_code.is_none()))
                    .collect(),
            )
        })
        .collect()
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn add_and_del_report_their_attachments_and_delegates() {
    if !multus_e2e::root_or_skip("add_and_del_report_their_attachments_and_delegates") {
        return;
    }
    let mut sb = Sandbox::new();
    let socket_path = sb.path("agent-reports.sock");
    let socket = bind(&socket_path);
    let conf = config(&mut sb, &socket_path, "bridge");
    let netns = sb.netns_path();

    let add = multus("ADD", "rep1", Some(&netns), &conf);
    add.assert_success("ADD");
    let report = receive(&socket);
    assert_eq!(report.command, ReportCommand::Add);
    assert_eq!(
        (
            report.namespace.as_str(),
            report.pod.as_str(),
            report.container_id.as_str()
        ),
        ("default", "pod-rep1", "rep1")
    );
    assert_eq!(report.error_code, None);
    assert_eq!(
        summary(&report),
        [
            (
                s("cluster"),
                s("eth0"),
                vec![(s("bridge"), ReportCommand::Add, true)]
            ),
            (
                s("extra"),
                s("net1"),
                vec![(s("bridge"), ReportCommand::Add, true)]
            ),
        ]
    );
    assert!(report.attachments[0].cluster_network);
    assert!(!report.attachments[1].cluster_network);
    let delegates: u64 = report.attachments.iter().map(|a| a.duration_us()).sum();
    assert!(
        delegates > 0 && report.duration_us >= delegates,
        "command {} us, delegates {delegates} us",
        report.duration_us
    );

    let del = multus("DEL", "rep1", Some(&netns), &conf);
    del.assert_success("DEL");
    let report = receive(&socket);
    assert_eq!(report.command, ReportCommand::Del);
    assert_eq!(report.error_code, None);
    assert_eq!(
        summary(&report),
        [
            (
                s("extra"),
                s("net1"),
                vec![(s("bridge"), ReportCommand::Del, true)]
            ),
            (
                s("cluster"),
                s("eth0"),
                vec![(s("bridge"), ReportCommand::Del, true)]
            ),
        ],
        "DEL runs in reverse order"
    );
}

#[test]
fn a_failed_add_reports_its_error_class_and_the_rollback() {
    if !multus_e2e::root_or_skip("a_failed_add_reports_its_error_class_and_the_rollback") {
        return;
    }
    let mut sb = Sandbox::new();
    let socket_path = sb.path("agent-reports.sock");
    let socket = bind(&socket_path);
    let conf = config(&mut sb, &socket_path, "no-such-plugin");
    let netns = sb.netns_path();

    let add = multus("ADD", "rep2", Some(&netns), &conf);
    assert!(!add.success, "ADD must fail: {}", add.stderr);
    let answered = add.json()["code"].as_u64().unwrap();
    let report = receive(&socket);
    assert_eq!(report.command, ReportCommand::Add);
    assert_eq!(
        report.error_code.map(u64::from),
        Some(answered),
        "the code the runtime got"
    );
    assert_eq!(
        summary(&report),
        [
            (
                s("cluster"),
                s("eth0"),
                vec![
                    (s("bridge"), ReportCommand::Add, true),
                    (s("bridge"), ReportCommand::Del, true)
                ]
            ),
            (
                s("extra"),
                s("net1"),
                vec![
                    (s("no-such-plugin"), ReportCommand::Add, false),
                    (s("no-such-plugin"), ReportCommand::Del, false)
                ]
            ),
        ],
        "the failed attachment and the rollback of both"
    );
    assert_eq!(report.attachments[1].error_code(), Some(50));
    assert_eq!(report.attachments[0].error_code(), None);
}

#[test]
fn without_a_listener_commands_work_and_do_not_wait() {
    if !multus_e2e::root_or_skip("without_a_listener_commands_work_and_do_not_wait") {
        return;
    }
    let mut sb = Sandbox::new();
    // A stale socket file nobody reads (connection refused) and a path
    // whose directory does not exist.
    let stale = sb.path("stale.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    for socket in [stale, sb.path("missing/agent-reports.sock")] {
        let conf = config(&mut sb, &socket, "bridge");
        let netns = sb.netns_path();
        let add = multus("ADD", "rep3", Some(&netns), &conf);
        add.assert_success("ADD");
        let del = multus("DEL", "rep3", Some(&netns), &conf);
        del.assert_success("DEL");
        assert_eq!(sb.links(), ["lo"]);
    }
}
