//! Upstream's delegate API end to end on one machine (root only): the real
//! `node-agent --delegate-socket` generates the Multus config around a
//! bridge + host-local primary, the real `multus` plugin attaches a
//! "pod" (a network namespace) as a runtime would, then a client speaking
//! upstream's protocol adds `net1` (a second bridge network) through the
//! socket and removes it again; what the kernel shows, the cache and the
//! host-local leases are checked after each step, bad input changes
//! nothing, and the runtime's DEL of the pod releases a hot-plugged
//! network too.
//!
//! Needs the plugin binary beside the agent's (`cargo test --workspace`
//! builds both; alone: `cargo build -p multus-plugin` first).

mod agent_common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agent_common::{Agent, Host, mode_of, wait_for};
use base64::Engine as _;
use serde_json::{Value, json};

const CNI_BIN: &str = "/usr/lib/cni";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace and bridges, removed on drop.
struct Netns {
    name: String,
    bridges: Vec<String>,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("mdel-{tag}-{}", std::process::id() % 100_000);
        sh(&["ip", "netns", "add", &name]);
        Self {
            bridges: vec![
                format!("mdb0{}", std::process::id() % 100_000),
                format!("mdb1{}", std::process::id() % 100_000),
            ],
            name,
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// Global addresses of `ifname` in the namespace; `None` when absent.
    fn addresses(&self, ifname: &str) -> Option<Vec<String>> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j", "addr", "show", "dev", ifname])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(
            v[0]["addr_info"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["scope"] == "global")
                .map(|a| a["local"].as_str().unwrap().to_owned())
                .collect(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        for b in &self.bridges {
            let _ = Command::new("ip")
                .args(["link", "del", b])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The host-local leases (files named by an address) of network `name`.
fn leases(ipam: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(ipam.join(name))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One request as Go's client sends it over the socket; status and body.
fn http(socket: &Path, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dummy\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let start = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    (status, out[start..].to_vec())
}

/// What multus-dynamic-networks-controller sends for `command`.
fn delegate_body(command: &str, container: &str, netns: &Path, config: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "env": {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "net1",
            "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=hotplug;K8S_POD_UID=uid-hotplug"
        },
        "config": base64::engine::general_purpose::STANDARD.encode(config.to_string()),
        "interfaceAttributes": {"cni-args": null}
    }))
    .unwrap()
}

/// The runtime's invocation of `multus` with the generated conflist.
fn runtime(
    plugin: &Path,
    command: &str,
    container: &str,
    netns: &Path,
    conflist: &Value,
) -> (bool, String) {
    let mut conf = conflist["plugins"][0].clone();
    conf["name"] = conflist["name"].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    let mut child = Command::new(plugin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_BIN)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=hotplug;K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID=uid-hotplug"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn msg(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    v["msg"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_client_of_upstreams_delegate_api_adds_and_removes_an_interface() {
    if !multus_e2e::root_or_skip("a_client_of_upstreams_delegate_api_adds_and_removes_an_interface")
    {
        return;
    }
    let plugin = Path::new(env!("CARGO_BIN_EXE_multus-operator")).with_file_name("multus");
    assert!(
        plugin.is_file(),
        "{} is missing: build the plugin (cargo build -p multus-plugin)",
        plugin.display()
    );
    let ns = Netns::new("a");
    let mut host = Host::new();
    host.plugin = plugin.clone();
    let ipam = host.root.path().join("ipam");
    let cache = host.root.path().join("cache");
    let socket = host.root.path().join("run/multus/multus.sock");
    std::fs::write(
        host.conf.join("10-cluster.conflist"),
        json!({"cniVersion":"1.0.0","name":"cluster","plugins":[
            {"type":"bridge","bridge":ns.bridges[0],"ipam":{"type":"host-local","subnet":"10.98.1.0/24","dataDir":ipam}}]})
        .to_string(),
    )
    .unwrap();
    let options = host.root.path().join("agent.yaml");
    std::fs::write(&options, format!("cacheDir: {}\n", cache.display())).unwrap();
    let mut command = host.command();
    command
        .arg("--config")
        .arg(&options)
        .arg("--delegate-socket")
        .arg(&socket)
        .arg("--host-cni-bin-dir")
        .arg(CNI_BIN)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let _agent = Agent::start(command);
    let generated = host.conf.join("00-multus.conflist");
    let conflist: Value = wait_for("the generated config", || {
        serde_json::from_slice(&std::fs::read(&generated).ok()?).ok()
    });
    wait_for("the socket", || socket.exists().then_some(()));
    assert_eq!(mode_of(&socket) & 0o777, 0o600, "root-only socket");
    assert_eq!(http(&socket, "GET", "/healthz", b"").0, 200);

    // The runtime attaches the pod: eth0 on the cluster network.
    let container = format!("hotplug{}", std::process::id());
    let (ok, out) = runtime(&plugin, "ADD", &container, &ns.path(), &conflist);
    assert!(ok, "runtime ADD: {out}");
    assert_eq!(leases(&ipam, "cluster").len(), 1);
    let cache_file = cache.join(&container);
    let cached = |n: usize| {
        let entries: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&cache_file).unwrap()).unwrap();
        assert_eq!(entries.len(), n, "{entries:?}");
    };
    cached(1);

    // ADD net1 through the socket, as the dynamic networks controller does.
    let extra = json!({"cniVersion":"0.3.1","name":"extra","type":"bridge","bridge":ns.bridges[1],
        "ipam":{"type":"host-local","subnet":"10.98.2.0/24","dataDir":ipam}});
    let (status, body) = http(
        &socket,
        "POST",
        "/delegate",
        &delegate_body("ADD", &container, &ns.path(), &extra),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["Result"]["cniVersion"], "1.0.0", "{answer}");
    let ip = answer["Result"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ip.starts_with("10.98.2."), "{answer}");
    assert_eq!(answer["networkStatus"]["name"], "default/extra");
    assert_eq!(answer["networkStatus"]["interface"], "net1");
    let net1 = ns.addresses("net1").expect("net1 in the pod");
    assert_eq!(net1, [ip.split('/').next().unwrap()]);
    assert_eq!(leases(&ipam, "extra").len(), 1);
    cached(2);

    // Bad input changes nothing.
    let mut other_pod: Value =
        serde_json::from_slice(&delegate_body("ADD", &container, &ns.path(), &extra)).unwrap();
    other_pod["env"]["CNI_ARGS"] = json!("K8S_POD_NAMESPACE=default;K8S_POD_NAME=someone-else");
    other_pod["env"]["CNI_IFNAME"] = json!("net2");
    let cases: Vec<(Vec<u8>, u16, String)> = vec![
        (b"{garbage".to_vec(), 400, "not a delegate request".into()),
        (vec![b'x'; 2 * 1024 * 1024], 413, "larger than".into()),
        (
            delegate_body("ADD", &container, &ns.path(), &extra),
            400,
            "interface net1 of pod default/hotplug is already in use".into(),
        ),
        (
            delegate_body("ADD", "unknown-ctr", &ns.path(), &extra),
            404,
            "container unknown-ctr has no Multus cache".into(),
        ),
        (
            delegate_body("ADD", &container, Path::new("/var/run/netns/nope"), &extra),
            400,
            "is not the network namespace of container".into(),
        ),
        (
            serde_json::to_vec(&other_pod).unwrap(),
            404,
            "is a sandbox of pod default/hotplug (uid uid-hotplug), not of default/someone-else"
                .into(),
        ),
    ];
    for (request, expected, text) in cases {
        let (status, body) = http(&socket, "POST", "/delegate", &request);
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
        let m = msg(&body);
        assert!(m.contains(&text), "{m} / {text}");
    }
    assert_eq!(http(&socket, "POST", "/cni", b"{}").0, 404);
    cached(2);
    assert_eq!(leases(&ipam, "extra").len(), 1);
    assert!(ns.addresses("net2").is_none());

    // DEL through the socket: the interface, its lease and its record go.
    let (status, body) = http(
        &socket,
        "POST",
        "/delegate",
        &delegate_body("DEL", &container, &ns.path(), &extra),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.is_empty());
    assert!(ns.addresses("net1").is_none(), "net1 is gone");
    assert!(leases(&ipam, "extra").is_empty(), "the lease is released");
    cached(1);
    assert!(ns.addresses("eth0").is_some(), "the cluster network stays");

    // Added again, then the runtime deletes the pod: everything is released.
    let (status, body) = http(
        &socket,
        "POST",
        "/delegate",
        &delegate_body("ADD", &container, &ns.path(), &extra),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(leases(&ipam, "extra").len(), 1);
    let (ok, out) = runtime(&plugin, "DEL", &container, &ns.path(), &conflist);
    assert!(ok, "runtime DEL: {out}");
    assert!(
        leases(&ipam, "extra").is_empty(),
        "the pod's DEL released net1's lease"
    );
    assert!(leases(&ipam, "cluster").is_empty());
    assert!(!cache_file.exists());
}
