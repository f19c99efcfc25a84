//! Benchmark: time from a change in the conf dir to the new Multus config
//! being in place, over 1,000 changes. Not a pass/fail test (timing depends
//! on the machine); run it with
//! `cargo test -p multus-operator --release --test agent_bench -- --ignored --nocapture`.

mod agent_common;

use std::time::{Duration, Instant};

use agent_common::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

fn measure(host: &Host, changes: u32, in_place: bool) -> Vec<Duration> {
    let primary = host.conf.join("10-bridge.conf");
    let mut latencies = Vec::with_capacity(changes as usize);
    let base = if in_place { 20_000 } else { 10_000 };
    for i in 1..=changes {
        let mtu = base + i;
        let text = bridge_conf("bridge-net", mtu);
        let start = if in_place {
            let start = Instant::now();
            std::fs::write(&primary, &text).unwrap();
            start
        } else {
            let temp = primary.with_extension("writing");
            std::fs::write(&temp, &text).unwrap();
            let start = Instant::now();
            std::fs::rename(&temp, &primary).unwrap();
            start
        };
        loop {
            if let Ok(bytes) = std::fs::read(host.output())
                && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
                && value["delegates"][0]["mtu"] == mtu
            {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "change {i} never arrived");
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    latencies
}

fn report(what: &str, latencies: &[Duration]) {
    eprintln!(
        "{what}: {} changes, median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(latencies, 0.5).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn regeneration_latency_over_1000_changes() {
    let host = Host::new();
    std::fs::write(
        host.conf.join("10-bridge.conf"),
        bridge_conf("bridge-net", 1),
    )
    .unwrap();
    let agent = Agent::start(host.command());
    agent.wait_ready(true);
    let renamed = measure(&host, 1000, false);
    report("write temp + rename", &renamed);
    let in_place = measure(&host, 1000, true);
    report("in-place write", &in_place);
    eprintln!(
        "regenerations: {}, reconciles: {}",
        agent.regenerations(),
        agent.reconciles()
    );
}
