//! Benchmark: what `multus` itself costs per pod ADD/DEL with two
//! attachments (two inline `delegates`, no kubeconfig), excluding the
//! delegates' own time, and its peak memory.
//!
//! Run as root: `cargo bench -p multus-plugin --bench add_overhead`.
//! The delegates are a tiny shell-script plugin; their cost is measured by
//! running them directly the same number of times and subtracted. Before
//! timing, one ADD is checked to have run both delegates (`eth0` and
//! `net1`, each with its result in the cache).

#![allow(clippy::print_stdout)] // a bench binary reports its figures on stdout

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

const ITERATIONS: usize = 200;

const FAKE_PLUGIN: &str = r#"#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"interface":0,"address":"10.0.0.2/24"}]}' "$CNI_IFNAME" "$CNI_NETNS"
fi
"#;

fn run(
    bin: &Path,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    stdin: &[u8],
    path: &Path,
) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", path)
        .env("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{command} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// One ADD, checked: both delegates ran (each one's result, naming the
/// interface it was given, is cached), the returned result is eth0's; then
/// DEL removes the cache.
fn verify_both_delegates_run(
    multus: &Path,
    netns: &str,
    conf: &[u8],
    bin_dir: &Path,
    cache_dir: &Path,
) {
    let mut child = Command::new(multus)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "verify")
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin_dir)
        .env("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(conf).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "verification ADD failed");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["interfaces"][0]["name"], "eth0", "{result}");
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache_dir.join("verify")).unwrap()).unwrap();
    let attached: Vec<(&str, &str)> = cache
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["multusRs"]["ifname"].as_str().unwrap(),
                e["multusRs"]["result"]["interfaces"][0]["name"]
                    .as_str()
                    .expect("the delegate ran and its result is cached"),
            )
        })
        .collect();
    assert_eq!(attached, [("eth0", "eth0"), ("net1", "net1")], "{cache}");
    run(multus, "DEL", "verify", netns, "eth0", conf, bin_dir);
    assert!(!cache_dir.join("verify").exists());
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    (
        mean,
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 95 / 100]),
    )
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("add_overhead: needs root (creates a network namespace); skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let plugin = bin_dir.join("fake");
    std::fs::write(&plugin, FAKE_PLUGIN).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&plugin)
        .status()
        .unwrap();
    let netns_name = format!("multus-bench-{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &netns_name])
            .status()
            .unwrap()
            .success()
    );
    let netns = format!("/var/run/netns/{netns_name}");
    let cache_dir = dir.path().join("cache");
    // The node agent's report socket, drained as the agent does: every
    // ADD and DEL below reports to it.
    let report_socket = dir.path().join("agent-reports.sock");
    let received = drain_reports(&report_socket);
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
        "cniDir": cache_dir, "confDir": dir.path().join("net.d"), "binDir": bin_dir,
        "nodeAgentReportSocket": report_socket,
        "delegates": [
            {"cniVersion":"1.0.0","name":"cluster","type":"fake"},
            {"cniVersion":"1.0.0","name":"extra","type":"fake"}
        ]
    })
    .to_string();
    let multus = Path::new(env!("CARGO_BIN_EXE_multus"));
    let delegate_conf = br#"{"cniVersion":"1.0.0","name":"cluster","type":"fake"}"#;

    verify_both_delegates_run(multus, &netns, conf.as_bytes(), &bin_dir, &cache_dir);

    let mut add = Vec::new();
    let mut del = Vec::new();
    let mut delegates = Vec::new();
    for i in 0..ITERATIONS {
        let id = format!("bench{i}");
        add.push(run(
            multus,
            "ADD",
            &id,
            &netns,
            "eth0",
            conf.as_bytes(),
            &bin_dir,
        ));
        del.push(run(
            multus,
            "DEL",
            &id,
            &netns,
            "eth0",
            conf.as_bytes(),
            &bin_dir,
        ));
        // The same delegate work without multus: 2 ADDs + 2 DELs.
        let mut direct = Duration::ZERO;
        for cmd in ["ADD", "ADD", "DEL", "DEL"] {
            direct += run(&plugin, cmd, &id, &netns, "eth0", delegate_conf, &bin_dir);
        }
        delegates.push(direct / 2);
    }
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    let _ = Command::new("ip")
        .args(["netns", "del", &netns_name])
        .status();

    let (add_mean, add_p50, add_p95) = stats(add);
    let (del_mean, del_p50, del_p95) = stats(del);
    let (dg_mean, dg_p50, _) = stats(delegates);
    println!("multus plugin, 2 attachments (2 inline delegates), {ITERATIONS} runs");
    println!("  ADD wall: mean {add_mean:.2} ms, p50 {add_p50:.2} ms, p95 {add_p95:.2} ms");
    println!("  DEL wall: mean {del_mean:.2} ms, p50 {del_p50:.2} ms, p95 {del_p95:.2} ms");
    println!("  delegates alone (2 execs): mean {dg_mean:.2} ms, p50 {dg_p50:.2} ms");
    println!(
        "  multus overhead per ADD excluding delegates: ~{:.2} ms (p50)",
        add_p50 - dg_p50
    );
    println!(
        "  peak RSS of any child process (multus or delegate): {} KiB",
        peak_kib
    );
    std::thread::sleep(Duration::from_millis(200));
    let reports = received.load(std::sync::atomic::Ordering::SeqCst);
    println!("  reports received on the agent's socket: {reports}");
    assert!(
        reports >= 2 * ITERATIONS,
        "every ADD and DEL reports ({reports})"
    );
    report_cost(
        &report_socket,
        &dir.path().join("missing/agent-reports.sock"),
    );
}

/// Binds `path` and counts the datagrams received on it, in a thread.
fn drain_reports(path: &Path) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while socket.recv(&mut buf).is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    count
}

/// What the report costs the plugin: encoding a 2-attachment ADD report
/// and sending it, to a listening socket and to a missing one.
fn report_cost(listening: &Path, missing: &Path) {
    use multus_config::agent_api::report::{
        AttachmentReport, CommandReport, DelegateExec, REPORT_VERSION, ReportCommand,
    };
    let exec = |t: &str| DelegateExec {
        plugin_type: t.into(),
        command: ReportCommand::Add,
        duration_us: 2_345,
        error_code: None,
    };
    let report = CommandReport {
        version: REPORT_VERSION,
        command: ReportCommand::Add,
        namespace: "default".into(),
        pod: "web-5d8f7c9b6-x2x7q".into(),
        container_id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        error_code: None,
        duration_us: 123_456,
        attachments: vec![
            AttachmentReport {
                network: "k8s-pod-network".into(),
                interface: "eth0".into(),
                cluster_network: true,
                execs: vec![exec("calico"), exec("portmap")],
            },
            AttachmentReport {
                network: "default/macvlan-conf".into(),
                interface: "net1".into(),
                cluster_network: false,
                execs: vec![exec("macvlan")],
            },
        ],
        truncated: false,
    };
    const SENDS: u32 = 5_000;
    for (what, path) in [("listening", listening), ("missing", missing)] {
        let start = Instant::now();
        for _ in 0..SENDS {
            let bytes = multus_plugin::report::fit(report.clone());
            let _ = multus_plugin::report::send(path, &bytes);
        }
        let per = start.elapsed() / SENDS;
        println!(
            "  report (encode + send, {} bytes) to a {what} socket: {:.1} us",
            report.encode().len(),
            per.as_secs_f64() * 1e6
        );
    }
}
