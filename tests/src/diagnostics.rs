//! What a person needs to find why an end-to-end test failed, printed
//! while the evidence still exists.

use crate::cmd::Cmd;

/// Prints what a person needs to find why an end-to-end test failed: pods,
/// the logs of the pods in `namespaces` (all containers, the previous ones
/// too), events of all namespaces (sorted), MultusConfigs (status, describe),
/// MultusNodeStates, the node's CNI directories.
pub fn dump_diagnostics(namespaces: &[String]) {
    let show = |title: &str, cmd: Cmd| {
        let out = match cmd.run_blocking() {
            Ok(out) => out,
            Err(e) => e,
        };
        eprintln!("---- {title}: {}\n{}", cmd.line(), tail(&out, 300));
    };
    show("pods", Cmd::kubectl(["get", "pods", "-A", "-o", "wide"]));
    for ns in namespaces {
        let names = Cmd::kubectl(["get", "pods", "-n", ns, "-o", "name"])
            .run_blocking()
            .unwrap_or_default();
        for pod in names.lines().filter(|l| !l.is_empty()) {
            show(
                "logs",
                Cmd::kubectl(["logs", "-n", ns, pod, "--all-containers", "--prefix"])
                    .args(["--tail=200"]),
            );
            show(
                "previous logs",
                Cmd::kubectl(["logs", "-n", ns, pod, "--all-containers", "--prefix"])
                    .args(["--previous", "--tail=100"]),
            );
        }
    }
    show(
        "events",
        Cmd::kubectl(["get", "events", "-A", "--sort-by=.lastTimestamp"]),
    );
    show(
        "MultusConfigs",
        Cmd::kubectl(["get", "multusconfigs", "-o", "yaml"]),
    );
    show(
        "MultusConfigs described",
        Cmd::kubectl(["describe", "multusconfigs"]),
    );
    show(
        "MultusNodeStates",
        Cmd::kubectl(["get", "multusnodestates", "-o", "yaml"]),
    );
    show(
        "DaemonSets",
        Cmd::kubectl(["get", "daemonsets", "-A", "-o", "wide"]),
    );
    show(
        "node files",
        Cmd::new(
            "ls",
            [
                "-la",
                "/etc/cni/net.d",
                "/etc/cni/net.d/multus.d",
                "/opt/cni/bin",
            ],
        ),
    );
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} lines left out]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}
