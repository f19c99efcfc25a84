//! The long-running node agent on temporary directories with real inotify
//! events: re-election, regeneration, keeping the last output, no loops, no
//! partial files, clean shutdown.

mod agent_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use agent_common::*;
use nix::sys::signal::Signal;

fn started(host: &Host) -> Agent {
    let agent = Agent::start(host.command());
    agent.wait_ready(true);
    agent
}

fn delegate_name(host: &Host) -> Option<String> {
    let bytes = std::fs::read(host.output()).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value["delegates"][0]["name"].as_str().map(str::to_owned)
}

#[test]
fn adding_an_earlier_sorting_config_switches_the_primary_and_removing_it_switches_back() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = started(&host);
    assert_eq!(delegate_name(&host).as_deref(), Some("k8s-pod-network"));

    write_renamed(
        &host.conf.join("05-bridge.conf"),
        &bridge_conf("bridge-net", 1500),
    );
    wait_for("the new primary", || {
        (delegate_name(&host).as_deref() == Some("bridge-net")).then_some(())
    });
    agent.wait_ready(true);

    std::fs::remove_file(host.conf.join("05-bridge.conf")).unwrap();
    wait_for("the old primary back", || {
        (delegate_name(&host).as_deref() == Some("k8s-pod-network")).then_some(())
    });
    agent.wait_ready(true);
    agent.assert_regenerations(3.0);
}

#[test]
fn editing_the_primary_in_place_regenerates() {
    let host = Host::new();
    let primary = host.conf.join("10-bridge.conf");
    std::fs::write(&primary, bridge_conf("bridge-net", 1500)).unwrap();
    let agent = started(&host);
    // an in-place rewrite (truncate + write), as many tools do
    std::fs::write(&primary, bridge_conf("bridge-net", 9000)).unwrap();
    wait_for("the edited primary in the output", || {
        let out = read_json(&host.output());
        (out["delegates"][0]["mtu"] == 9000).then_some(())
    });
    agent.wait_ready(true);
    agent.assert_regenerations(2.0);
}

#[test]
fn deleting_the_primary_keeps_the_last_output_and_reports_not_ready() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = started(&host);
    let before = std::fs::read(host.output()).unwrap();

    std::fs::remove_file(host.conf.join("10-calico.conflist")).unwrap();
    let body = agent.wait_ready(false);
    assert!(body.contains("no primary"), "{body}");
    assert!(body.contains("keeping the last generated config"), "{body}");
    assert_eq!(
        std::fs::read(host.output()).unwrap(),
        before,
        "kept as it was"
    );
    assert_eq!(agent.metric("multus_node_agent_ready"), 0.0);
    assert!(agent.metric("multus_node_agent_errors_total") >= 1.0);

    // the primary returns: ready again, nothing to rewrite
    write_renamed(&host.conf.join("10-calico.conflist"), &calico());
    agent.wait_ready(true);
    assert_eq!(std::fs::read(host.output()).unwrap(), before);
    assert_eq!(agent.regenerations(), 1.0);
}

#[test]
fn adding_a_multus_typed_config_is_ignored() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = started(&host);
    let idle = agent.wait_idle(Duration::from_millis(300));
    let before = std::fs::read(host.output()).unwrap();
    write_renamed(
        &host.conf.join("01-multus.conf"),
        r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[]}"#,
    );
    wait_for("a reconcile", || (agent.reconciles() > idle).then_some(()));
    agent.wait_idle(Duration::from_millis(300));
    agent.wait_ready(true);
    assert_eq!(std::fs::read(host.output()).unwrap(), before);
    assert_eq!(agent.regenerations(), 1.0);
}

#[test]
fn our_own_writes_do_not_loop() {
    let host = Host::new();
    let primary = host.conf.join("10-bridge.conf");
    std::fs::write(&primary, bridge_conf("bridge-net", 1500)).unwrap();
    let agent = started(&host);
    let idle = agent.wait_idle(Duration::from_millis(300));
    assert_eq!(agent.regenerations(), 1.0);
    // nothing happens by itself
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.reconciles(), idle, "reconciles while nothing changed");

    // one change: one write, and its own echo is a no-op
    write_renamed(&primary, &bridge_conf("bridge-net", 1400));
    wait_for("the regeneration", || {
        (agent.regenerations() == 2.0).then_some(())
    });
    let after = agent.wait_idle(Duration::from_millis(300));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        agent.reconciles(),
        after,
        "reconciles while nothing changed"
    );
    assert_eq!(agent.regenerations(), 2.0);
    assert!(
        after - idle <= 3.0,
        "one change took {} reconciles",
        after - idle
    );
}

#[test]
fn readers_never_see_an_empty_or_partial_file_during_1000_rapid_changes() {
    let host = Host::new();
    let primary = host.conf.join("10-bridge.conf");
    std::fs::write(&primary, bridge_conf("bridge-net", 1000)).unwrap();
    let agent = started(&host);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, reads, output) = (Arc::clone(&stop), Arc::clone(&reads), host.output());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let bytes = std::fs::read(&output).expect("the output always exists");
                assert!(!bytes.is_empty(), "empty output");
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("partial output ({e}): {bytes:?}"));
                assert_eq!(value["delegates"][0]["name"], "bridge-net");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for i in 1..=1000u32 {
        let text = bridge_conf("bridge-net", 1000 + i);
        if i % 2 == 0 {
            // in place: the agent may read a half-written primary
            std::fs::write(&primary, text).unwrap();
        } else {
            write_renamed(&primary, &text);
        }
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    wait_for("the last change in the output", || {
        let out = read_json(&host.output());
        (out["delegates"][0]["mtu"] == 2000).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw a bad file");
    assert!(reads.load(Ordering::Relaxed) > 100, "the reader barely ran");
    agent.wait_ready(true);
    assert!(agent.regenerations() >= 2.0);
}

#[test]
fn sigterm_stops_cleanly_and_leaves_the_config_in_place() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let host = Host::new();
        std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
        let mut agent = started(&host);
        let before = snapshot(&host.conf);
        let status = agent.stop(signal);
        assert!(status.success(), "{signal}: {status:?}\n{}", agent.logs());
        assert_eq!(
            snapshot(&host.conf),
            before,
            "{signal} changed the conf dir"
        );
        assert!(host.output().exists());
        assert!(host.multus_d().join("multus.kubeconfig").exists());
        assert!(host.bin.join("multus").exists());
    }
}

/// Publishes `text` as `agent.yaml` the way the kubelet updates a ConfigMap
/// volume: a new data directory and a `..data` symlink swap.
fn publish_config(config_dir: &std::path::Path, version: u32, text: &str) {
    let data = format!("..v{version}");
    std::fs::create_dir_all(config_dir.join(&data)).unwrap();
    std::fs::write(config_dir.join(&data).join("agent.yaml"), text).unwrap();
    let old = std::fs::read_link(config_dir.join("..data")).ok();
    std::os::unix::fs::symlink(&data, config_dir.join("..data_tmp")).unwrap();
    std::fs::rename(config_dir.join("..data_tmp"), config_dir.join("..data")).unwrap();
    if !config_dir.join("agent.yaml").exists() {
        std::os::unix::fs::symlink("..data/agent.yaml", config_dir.join("agent.yaml")).unwrap();
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(config_dir.join(old)).unwrap();
    }
}

#[test]
fn a_config_file_change_regenerates() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let config_dir = host.root.path().join("config");
    publish_config(&config_dir, 1, "logLevel: debug\n");
    let agent = Agent::start({
        let mut c = host.command();
        c.arg("--config").arg(config_dir.join("agent.yaml"));
        c
    });
    agent.wait_ready(true);
    assert_eq!(read_json(&host.output())["logLevel"], "debug");

    publish_config(&config_dir, 2, "logLevel: error\nmultusNamespace: multus\n");
    wait_for("the new options in the output", || {
        let out = read_json(&host.output());
        (out["logLevel"] == "error" && out["multusNamespace"] == "multus").then_some(())
    });

    // a broken config keeps the last options and reports not ready
    publish_config(&config_dir, 3, "logLevel: [\n");
    let body = agent.wait_ready(false);
    assert!(body.contains("agent.yaml"), "{body}");
    assert_eq!(read_json(&host.output())["logLevel"], "error");
    publish_config(&config_dir, 4, "logLevel: error\nmultusNamespace: multus\n");
    agent.wait_ready(true);
    agent.assert_regenerations(2.0);
}

#[test]
fn generation_waits_for_the_readiness_indicator_file() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    // its directory does not exist yet either
    let indicator = host.root.path().join("run/calico/ready");
    let config = host.root.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!("readinessIndicatorFile: {}\n", indicator.display()),
    )
    .unwrap();
    let agent = Agent::start({
        let mut c = host.command();
        c.arg("--config").arg(&config);
        c
    });
    let body = agent.wait_ready(false);
    assert!(body.contains("readiness indicator"), "{body}");
    assert!(!host.output().exists());
    std::fs::create_dir_all(indicator.parent().unwrap()).unwrap();
    std::fs::write(&indicator, "").unwrap();
    agent.wait_ready(true);
    assert!(host.output().exists());
}

/// The networks the agent last logged for the Multus conf dir (what it
/// reports as `multusConfNetworks`), if it logged any.
fn logged_conf_networks(agent: &Agent) -> Option<String> {
    agent
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["fields"]["message"] == "networks in the Multus conf dir")
        .filter_map(|v| v["fields"]["networks"].as_str().map(str::to_owned))
        .next_back()
}

#[test]
fn multus_conf_dir_changes_are_seen_without_regenerating() {
    let host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = started(&host);
    assert_eq!(logged_conf_networks(&agent), None, "empty at start");

    write_renamed(
        &host.multus_conf.join("20-macvlan.conf"),
        r#"{"cniVersion":"0.3.1","name":"macvlan-conf","type":"macvlan"}"#,
    );
    write_renamed(
        &host.multus_conf.join("10-bridge.conflist"),
        r#"{"name":"bridge-net","plugins":[{"type":"bridge"}]}"#,
    );
    wait_for("both networks", || {
        (logged_conf_networks(&agent).as_deref() == Some("bridge-net,macvlan-conf")).then_some(())
    });
    std::fs::remove_file(host.multus_conf.join("20-macvlan.conf")).unwrap();
    wait_for("the removal", || {
        (logged_conf_networks(&agent).as_deref() == Some("bridge-net")).then_some(())
    });
    agent.wait_ready(true);
    // the Multus conf dir is only read: the generated config stays as it was
    agent.assert_regenerations(1.0);
}

#[test]
fn a_multus_conf_dir_created_later_is_watched() {
    let host = Host::new();
    std::fs::remove_dir_all(&host.multus_conf).unwrap();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    let agent = started(&host);
    std::fs::create_dir_all(&host.multus_conf).unwrap();
    write_renamed(
        &host.multus_conf.join("20-macvlan.json"),
        r#"{"name":"macvlan-conf","type":"macvlan"}"#,
    );
    wait_for("the network of the new directory", || {
        (logged_conf_networks(&agent).as_deref() == Some("macvlan-conf")).then_some(())
    });
    agent.assert_regenerations(1.0);
}
