//! The node agent's report socket, end to end through the binary: the
//! agent binds the socket its generated config announces, datagrams sent
//! to it (good, garbage, unknown versions, oversize) show in `/metrics`,
//! and `pod_network_name_info` follows ADD and DEL, also across a restart.

mod agent_common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use agent_common::*;
use multus_config::agent_api::report::{
    AttachmentReport, CommandReport, DelegateExec, MAX_REPORT_BYTES, REPORT_VERSION, ReportCommand,
};
use nix::sys::signal::Signal;

struct Setup {
    host: Host,
    socket: PathBuf,
    cache: PathBuf,
}

fn setup() -> Setup {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let run = host.root.path().join("run/multus");
    let socket = run.join("agent-reports.sock");
    let cache = host.root.path().join("var/lib/cni/multus");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        host.root.path().join("agent.yaml"),
        format!(
            "nodeAgentReportSocket: {}\ncacheDir: {}\n",
            socket.display(),
            cache.display()
        ),
    )
    .unwrap();
    Setup {
        host,
        socket,
        cache,
    }
}

fn start(setup: &Setup) -> Agent {
    let mut command = setup.host.command();
    command
        .arg("--config")
        .arg(setup.host.root.path().join("agent.yaml"));
    let agent = Agent::start(command);
    agent.wait_ready(true);
    wait_for("the report socket", || setup.socket.exists().then_some(()));
    agent
}

fn send(socket: &Path, bytes: &[u8]) {
    UnixDatagram::unbound()
        .unwrap()
        .send_to(bytes, socket)
        .unwrap();
}

fn report(command: ReportCommand, container: &str, error_code: Option<u32>) -> CommandReport {
    let exec = |plugin: &str, us| DelegateExec {
        plugin_type: plugin.into(),
        command,
        duration_us: us,
        error_code,
    };
    CommandReport {
        version: REPORT_VERSION,
        command,
        namespace: "team-a".into(),
        pod: "web-0".into(),
        container_id: container.into(),
        error_code,
        duration_us: 80_000,
        attachments: vec![
            AttachmentReport {
                network: "k8s-pod-network".into(),
                interface: "eth0".into(),
                cluster_network: true,
                execs: vec![exec("calico", 40_000), exec("portmap", 2_000)],
            },
            AttachmentReport {
                network: "team-a/macvlan-a".into(),
                interface: "net1".into(),
                cluster_network: false,
                execs: vec![exec("macvlan", 3_000)],
            },
            AttachmentReport {
                network: "team-a/macvlan-b".into(),
                interface: "net2".into(),
                cluster_network: false,
                execs: vec![exec("macvlan", 4_000)],
            },
        ],
        truncated: false,
    }
}

fn metrics_text(agent: &Agent) -> String {
    let (code, body) = agent.get("/metrics");
    assert_eq!(code, 200);
    body
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "{line} in\n{text}");
    }
}

const POD_INFO: [&str; 3] = [
    "pod_network_name_info{namespace=\"team-a\",pod=\"web-0\",interface=\"eth0\",network_name=\"k8s-pod-network\"} 1",
    "pod_network_name_info{namespace=\"team-a\",pod=\"web-0\",interface=\"net1\",network_name=\"team-a/macvlan-a\"} 1",
    "pod_network_name_info{namespace=\"team-a\",pod=\"web-0\",interface=\"net2\",network_name=\"team-a/macvlan-b\"} 1",
];

#[test]
fn reports_become_metrics_and_bad_datagrams_are_counted() {
    let setup = setup();
    let agent = start(&setup);
    assert_eq!(mode_of(&setup.socket), 0o600);
    let generated = read_json(&setup.host.output());
    assert_eq!(
        generated["nodeAgentReportSocket"]
            .as_str()
            .map(PathBuf::from),
        Some(setup.socket.clone()),
        "the plugin is told where to report"
    );
    // The plugin writes its cache file before the first delegate runs;
    // entries without one are pruned.
    for container in ["c1", "c2", "c3"] {
        std::fs::write(setup.cache.join(container), "[]").unwrap();
    }

    send(
        &setup.socket,
        &report(ReportCommand::Add, "c1", None).encode(),
    );
    send(
        &setup.socket,
        &report(ReportCommand::Add, "c2", Some(11)).encode(),
    );
    send(&setup.socket, b"garbage");
    send(
        &setup.socket,
        br#"{"version":9,"command":"ADD","durationUs":1}"#,
    );
    send(&setup.socket, &vec![b'{'; MAX_REPORT_BYTES + 100]);
    let mut invalid = report(ReportCommand::Add, "c3", None);
    invalid.namespace = "a namespace with spaces".into();
    send(&setup.socket, &invalid.encode());

    wait_for("the reports", || {
        (agent.metric("multus_node_agent_reports_total") >= 2.0
            && agent.metric("multus_node_agent_reports_rejected_total{reason=\"invalid\"}") >= 1.0)
            .then_some(())
    });
    let text = metrics_text(&agent);
    let mut expected = vec![
        "multus_node_agent_reports_total 2",
        "multus_node_agent_reports_rejected_total{reason=\"malformed\"} 1",
        "multus_node_agent_reports_rejected_total{reason=\"unknown_version\"} 1",
        "multus_node_agent_reports_rejected_total{reason=\"oversize\"} 1",
        "multus_node_agent_reports_rejected_total{reason=\"invalid\"} 1",
        "multus_plugin_command_duration_seconds_count{command=\"ADD\",result=\"ok\"} 1",
        "multus_plugin_command_duration_seconds_count{command=\"ADD\",result=\"try_again_later\"} 1",
        "multus_plugin_command_duration_seconds_bucket{le=\"0.05\",command=\"ADD\",result=\"ok\"} 0",
        "multus_plugin_command_duration_seconds_bucket{le=\"0.1\",command=\"ADD\",result=\"ok\"} 1",
        "multus_plugin_commands_total{command=\"ADD\",result=\"ok\",namespace=\"team-a\"} 1",
        "multus_plugin_delegate_duration_seconds_count{delegate_type=\"macvlan\",command=\"ADD\",result=\"ok\"} 2",
        "multus_plugin_delegate_duration_seconds_count{delegate_type=\"calico\",command=\"ADD\",result=\"try_again_later\"} 1",
        "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"team-a/macvlan-a\",result=\"ok\"} 1",
        "multus_plugin_attachments_total{command=\"ADD\",namespace=\"team-a\",network=\"team-a/macvlan-b\",result=\"try_again_later\"} 1",
        // the agent's own metrics keep their names
        "multus_node_agent_ready 1",
    ];
    expected.extend(POD_INFO);
    assert_lines(&text, &expected);
    assert!(
        !text.contains("c2") && text.matches("pod=").count() == 3,
        "{text}"
    );

    send(
        &setup.socket,
        &report(ReportCommand::Del, "c1", None).encode(),
    );
    wait_for("the DEL", || {
        (agent.metric("multus_node_agent_reports_total") >= 3.0).then_some(())
    });
    let text = metrics_text(&agent);
    assert!(!text.contains("pod_network_name_info{"), "{text}");
    assert_lines(
        &text,
        &["multus_plugin_commands_total{command=\"DEL\",result=\"ok\",namespace=\"team-a\"} 1"],
    );
}

#[test]
fn pod_networks_survive_a_restart_unless_their_cache_file_went() {
    let setup = setup();
    let mut agent = start(&setup);
    std::fs::write(setup.cache.join("c1"), "[]").unwrap();
    std::fs::write(setup.cache.join("c2"), "[]").unwrap();
    send(
        &setup.socket,
        &report(ReportCommand::Add, "c1", None).encode(),
    );
    let mut other = report(ReportCommand::Add, "c2", None);
    other.pod = "db-0".into();
    send(&setup.socket, &other.encode());
    wait_for("the reports", || {
        (agent.metric("multus_node_agent_reports_total") >= 2.0).then_some(())
    });
    assert!(agent.stop(Signal::SIGTERM).success());
    let state = setup.socket.with_file_name("pod-networks.json");
    assert_eq!(mode_of(&state), 0o600);

    // c2 was DELed while the agent was away: its cache file is gone.
    std::fs::remove_file(setup.cache.join("c2")).unwrap();
    let agent = start(&setup);
    let text = metrics_text(&agent);
    assert_lines(&text, &POD_INFO);
    assert!(!text.contains("db-0"), "{text}");
    assert_eq!(agent.metric("multus_node_agent_reports_total"), 0.0);
}

#[test]
fn an_unusable_socket_path_leaves_the_agent_working() {
    let setup = setup();
    std::fs::create_dir_all(setup.socket.parent().unwrap()).unwrap();
    std::fs::write(&setup.socket, "not a socket").unwrap();
    let mut command = setup.host.command();
    command
        .arg("--config")
        .arg(setup.host.root.path().join("agent.yaml"));
    let agent = Agent::start(command);
    agent.wait_ready(true);
    wait_for("the warning", || {
        agent
            .logs()
            .contains("cannot bind the report socket")
            .then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(&setup.socket).unwrap(),
        "not a socket"
    );
    assert!(metrics_text(&agent).contains("multus_node_agent_reports_total 0"));
}
