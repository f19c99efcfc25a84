//! `multus sync-networks` (network hot-plug) as the node agent runs it,
//! against a fake Kubernetes API server and a fake container runtime (CRI
//! gRPC on a unix socket, both in this test process), with real plugins in
//! a real network namespace: a pod set up by ADD with one network gets a
//! second one when its annotation says so, loses the first (address
//! released), keeps its networks when a NAD is missing or a plugin fails,
//! gets the freed name back for a re-added network, and its DEL then
//! releases everything, hot-plugged networks included. Root only.

mod common;

use common::fake_api::*;
use common::fake_cri::*;
use common::*;
use serde_json::{Value, json};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

fn annotate(api: &Shared, networks: &str) -> Value {
    let mut api = api.lock().unwrap();
    api.pod["metadata"]["annotations"][NETWORKS] = json!(networks);
    api.requests.clear();
    api.pod.clone()
}

/// The network-status the last status patch wrote: (name, interface).
fn last_status(api: &Shared) -> Vec<(String, String)> {
    let patch = request_bodies(api, "PATCH", "/status")
        .pop()
        .expect("a network-status patch");
    let body: Value = serde_json::from_str(&patch).unwrap();
    let status: Vec<Value> = serde_json::from_str(
        body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    status
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["interface"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The reasons and messages of the Events posted.
fn events(api: &Shared) -> Vec<(String, String)> {
    request_bodies(api, "POST", "/events")
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            (
                v["reason"].as_str().unwrap_or_default().to_owned(),
                v["note"]
                    .as_str()
                    .or(v["message"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn links(sb: &Sandbox) -> Vec<String> {
    let mut links = sb.links();
    links.sort();
    links
}

/// A pod `pod-<id>` (networks annotation `net-a`, UID `uid-<id>`) served
/// by a fake API server with the NADs `net-a` and `net-b` (bridges on
/// 10.97.<base+1>.0/24 and 10.97.<base+2>.0/24) and `extra`; its cluster
/// network on 10.97.<base>.0/24; a fake runtime on `cri.sock`.
struct World {
    id: String,
    sb: Sandbox,
    data: std::path::PathBuf,
    api: Shared,
    conf: Value,
    netns: std::path::PathBuf,
    cri: std::path::PathBuf,
    runtime: FakeRuntime,
    net_b: Value,
    _stops: (
        tokio::sync::oneshot::Sender<()>,
        tokio::sync::oneshot::Sender<()>,
    ),
}

impl World {
    fn new(id: &str, base: u8, extra: &[(&str, Value)]) -> Self {
        let mut sb = Sandbox::new();
        let data = sb.path("ipam");
        let (br0, br1, br2) = (sb.bridge(), sb.bridge(), sb.bridge());
        let subnet = |k: u8| format!("10.97.{}.0/24", base + k);
        let cluster = bridge_conf("cluster", &br0, &subnet(0), &data);
        let net_a = bridge_conf("net-a", &br1, &subnet(1), &data);
        let net_b = bridge_conf("net-b", &br2, &subnet(2), &data);
        let mut nads = vec![("default", "net-a", &net_a), ("default", "net-b", &net_b)];
        nads.extend(
            extra
                .iter()
                .map(|(name, config)| ("default", *name, config)),
        );
        let api = api_with(
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{id}"), "namespace": "default",
                    "uid": format!("uid-{id}"), "annotations": {NETWORKS: "net-a"}},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
                "status": {"podIP": format!("10.97.{base}.2")}
            }),
            &nads,
        );
        let (addr, stop_api) = serve(api.clone());
        let conf = json!({
            "cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
            "kubeconfig": write_kubeconfig(&sb, addr), "cniDir": sb.path("cache"),
            "confDir": sb.path("none"), "delegates": [cluster]
        });
        let netns = sb.netns_path();
        let cri = sb.path("cri.sock");
        let runtime = FakeRuntime::default();
        let stop_cri = serve_runtime(&cri, runtime.clone());
        Self {
            id: id.to_owned(),
            sb,
            data,
            api,
            conf,
            netns,
            cri,
            runtime,
            net_b,
            _stops: (stop_api, stop_cri),
        }
    }

    /// The runtime's ADD of the pod; then the runtime lists its sandbox.
    fn add(&self) {
        multus("ADD", &self.id, Some(&self.netns), &self.conf).assert_success("ADD");
        self.runtime.sandboxes.lock().unwrap().insert(
            format!("uid-{}", self.id),
            (self.id.clone(), Some(self.netns.clone())),
        );
    }

    /// Sets the pod's networks annotation and runs a sync; its outcome.
    fn sync(&self, networks: &str) -> Value {
        let pod = annotate(&self.api, networks);
        sync(&self.conf, &pod, &self.cri)
    }

    fn del(&self) {
        multus("DEL", &self.id, Some(&self.netns), &self.conf).assert_success("DEL");
    }
}

#[test]
fn annotation_edits_attach_and_detach_networks_of_a_running_pod() {
    if !multus_e2e::root_or_skip("annotation_edits_attach_and_detach_networks_of_a_running_pod") {
        return;
    }
    let bad = json!({"cniVersion": "1.0.0", "name": "bad", "type": "e2e-no-such-plugin"});
    let w = World::new("c1", 0, &[("bad", bad)]);
    let cache_dir = w.sb.path("cache");

    // Not created yet: nothing to do.
    let outcome = w.sync("net-a");
    assert_eq!(outcome["state"], "NoSandbox", "{outcome}");

    w.add();
    assert_eq!(links(&w.sb), ["eth0", "lo", "net1"]);
    let first_a = w.sb.addresses("net1").unwrap();

    // In step: nothing changes, nothing is written.
    let outcome = w.sync("net-a");
    assert_eq!(outcome["state"], "InStep", "{outcome}");
    assert!(outcome.get("attached").is_none(), "{outcome}");
    assert!(events(&w.api).is_empty(), "{:?}", events(&w.api));

    // Added: net2, the name ADD would have given it.
    let outcome = w.sync("net-a,net-b");
    assert_eq!(outcome["state"], "InStep", "{outcome}");
    assert_eq!(
        outcome["attached"],
        json!([{"network": "default/net-b", "interface": "net2"}])
    );
    assert_eq!(links(&w.sb), ["eth0", "lo", "net1", "net2"]);
    let b_addrs = w.sb.addresses("net2").unwrap();
    assert!(
        b_addrs.iter().any(|a| a.starts_with("10.97.2.")),
        "{b_addrs:?}"
    );
    assert_eq!(
        last_status(&w.api),
        [
            ("cluster".to_owned(), "eth0".to_owned()),
            ("default/net-a".to_owned(), "net1".to_owned()),
            ("default/net-b".to_owned(), "net2".to_owned())
        ]
    );
    let added = events(&w.api);
    assert!(
        added
            .iter()
            .any(|(r, m)| r == "AddedInterface" && m.contains("net2")),
        "{added:?}"
    );

    // Removed: net1 goes, its address is released.
    let leases_before = allocations(&w.data);
    let outcome = w.sync("net-b");
    assert_eq!(
        outcome["detached"],
        json!([{"network": "default/net-a", "interface": "net1"}]),
        "{outcome}"
    );
    assert_eq!(links(&w.sb), ["eth0", "lo", "net2"]);
    let leases = allocations(&w.data);
    assert_eq!(leases.len(), leases_before.len() - 1, "{leases:?}");
    let a_ip = first_a[0].split('/').next().unwrap().to_owned();
    assert!(!leases.contains(&a_ip), "{a_ip} still leased: {leases:?}");
    assert!(
        events(&w.api)
            .iter()
            .any(|(r, m)| r == "RemovedInterface" && m.contains("net1")),
        "{:?}",
        events(&w.api)
    );

    // A missing NAD: nothing changes, the Event names it.
    let outcome = w.sync("net-b,missing");
    assert_eq!(outcome["state"], "Failed", "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("default/missing"),
        "{outcome}"
    );
    assert_eq!(links(&w.sb), ["eth0", "lo", "net2"]);
    assert!(
        events(&w.api)
            .iter()
            .any(|(r, m)| r == "NetworkHotplugFailed" && m.contains("missing")),
        "{:?}",
        events(&w.api)
    );

    // A plugin that fails: rolled back, nothing leaked.
    let leases_before = allocations(&w.data);
    let outcome = w.sync("net-a,net-b,bad");
    assert_eq!(outcome["state"], "Failed", "{outcome}");
    assert!(
        outcome["message"].as_str().unwrap().contains("default/bad"),
        "{outcome}"
    );
    assert_eq!(
        links(&w.sb),
        ["eth0", "lo", "net2"],
        "net-a rolled back too"
    );
    assert_eq!(allocations(&w.data), leases_before);

    // net-a again: position 1 → net1 is free again.
    let outcome = w.sync("net-a,net-b");
    assert_eq!(
        outcome["attached"],
        json!([{"network": "default/net-a", "interface": "net1"}]),
        "{outcome}"
    );
    // And a requested name.
    let outcome =
        w.sync(r#"[{"name":"net-a"},{"name":"net-b"},{"name":"net-a","interface":"hp0"}]"#);
    assert_eq!(
        outcome["attached"],
        json!([{"network": "default/net-a", "interface": "hp0"}]),
        "{outcome}"
    );
    assert_eq!(links(&w.sb), ["eth0", "hp0", "lo", "net1", "net2"]);

    // The pod's DEL releases everything, hot-plugged networks included.
    w.del();
    assert_eq!(allocations(&w.data), Vec::<String>::new());
    assert!(!cache_dir.join("c1").exists());
    assert!(!cache_dir.join("locks").join("c1").exists());
    // After DEL: no cache, the sandbox still listed: refused, quietly not.
    let outcome =
        w.sync(r#"[{"name":"net-a"},{"name":"net-b"},{"name":"net-a","interface":"hp0"}]"#);
    assert_eq!(outcome["state"], "Refused", "{outcome}");
}

#[test]
fn host_network_pods_and_unreachable_runtimes_are_refused_with_an_event() {
    if !multus_e2e::root_or_skip(
        "host_network_pods_and_unreachable_runtimes_are_refused_with_an_event",
    ) {
        return;
    }
    let sb = Sandbox::new();
    let api = api_with(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-h", "namespace": "default", "uid": "uid-h",
                "annotations": {NETWORKS: "net-a"}},
            "spec": {"nodeName": "node-1", "hostNetwork": true, "containers": [{"name": "c", "image": "i"}]},
            "status": {"podIP": "192.168.1.10"}
        }),
        &[],
    );
    let (addr, _stop_api) = serve(api.clone());
    let kubeconfig = write_kubeconfig(&sb, addr);
    let conf = json!({
        "cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": kubeconfig, "cniDir": sb.path("cache"), "confDir": sb.path("none"),
        "delegates": [{"cniVersion": "0.3.1", "name": "c", "type": "bridge"}]
    });
    let cri = sb.path("cri.sock");
    let pod = api.lock().unwrap().pod.clone();
    let outcome = sync(&conf, &pod, &cri);
    assert_eq!(outcome["state"], "Refused", "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("host's network"),
        "{outcome}"
    );
    assert!(
        events(&api)
            .iter()
            .any(|(r, _)| r == "NetworkHotplugRefused"),
        "{:?}",
        events(&api)
    );

    // Not host network, no runtime on the socket: the Event names it.
    let pod = {
        let mut api = api.lock().unwrap();
        api.pod["spec"]["hostNetwork"] = json!(false);
        api.requests.clear();
        api.pod.clone()
    };
    let outcome = sync(&conf, &pod, &cri);
    assert_eq!(outcome["state"], "Failed", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(message.contains(&cri.display().to_string()), "{message}");
    assert!(
        events(&api)
            .iter()
            .any(|(r, m)| r == "NetworkHotplugRefused" && m.contains("cri.sock")),
        "{:?}",
        events(&api)
    );
}

/// What a sync costs when nothing changes (the agent's first look at a
/// pod whose network-status does not tell): a `multus sync-networks`
/// child, a CRI lookup, the lock and a cache read. Prints its figures;
/// `cargo test --release -p multus-plugin --test sync_networks -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run on demand"]
fn bench_no_op_sync() {
    if !multus_e2e::root_or_skip("bench_no_op_sync") {
        return;
    }
    let w = World::new("b1", 5, &[]);
    w.add();
    // The pod as the agent sees it after ADD: with its network-status.
    let (patch, _) = network_status_patch(&w.api);
    let pod = {
        let mut api = w.api.lock().unwrap();
        api.pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] =
            patch["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"].clone();
        api.requests.clear();
        api.pod.clone()
    };
    let mut times = Vec::new();
    for _ in 0..50 {
        let start = std::time::Instant::now();
        let outcome = sync(&w.conf, &pod, &w.cri);
        times.push(start.elapsed());
        assert_eq!(outcome["state"], "InStep", "{outcome}");
    }
    times.sort();
    let requests = w.api.lock().unwrap().requests.len();
    assert_eq!(requests, 0, "a no-op sync asks the API server nothing");
    eprintln!(
        "no-op sync-networks, 50 runs: median {:.1} ms, p90 {:.1} ms, max {:.1} ms; API requests: {requests}",
        times[25].as_secs_f64() * 1e3,
        times[45].as_secs_f64() * 1e3,
        times[49].as_secs_f64() * 1e3
    );
    w.del();
}

/// Runs `multus delegate` (upstream's delegate API) as the agent does.
fn delegate(input: &Value) -> Value {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_multus"))
        .arg("delegate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_PATH", CNI_BIN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "delegate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn networks_added_through_the_delegate_api_are_left_alone() {
    if !multus_e2e::root_or_skip("networks_added_through_the_delegate_api_are_left_alone") {
        return;
    }
    let w = World::new("d1", 8, &[]);
    w.add();

    // A client of upstream's delegate API adds net-b on dyn0.
    delegate(&json!({
        "multusConfig": w.conf,
        "request": {
            "command": "ADD", "containerID": "d1", "netns": w.netns, "ifname": "dyn0",
            "cniArgs": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-d1;K8S_POD_UID=uid-d1",
            "podNamespace": "default", "podName": "pod-d1", "podUid": "uid-d1",
            "config": w.net_b, "network": "default/net-b"
        }
    }));
    assert_eq!(links(&w.sb), ["dyn0", "eth0", "lo", "net1"]);

    // The annotation did not change: in step, dyn0 kept.
    let outcome = w.sync("net-a");
    assert_eq!(outcome["state"], "InStep", "{outcome}");
    assert!(outcome.get("detached").is_none(), "{outcome}");
    // An edit of the annotation detaches only the annotation's networks.
    let outcome = w.sync("");
    assert_eq!(
        outcome["detached"],
        json!([{"network": "default/net-a", "interface": "net1"}]),
        "{outcome}"
    );
    assert_eq!(links(&w.sb), ["dyn0", "eth0", "lo"]);

    w.del();
    assert_eq!(allocations(&w.data), Vec::<String>::new());
}
