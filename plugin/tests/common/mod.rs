//! Harness for running the `multus` binary exactly as a container runtime
//! does, against real CNI plugins in a real network namespace that the test
//! creates and always removes.

#![allow(dead_code)]

pub mod fake_api;
pub mod fake_cri;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Where Debian installs the reference CNI plugins.
pub const CNI_BIN: &str = "/usr/lib/cni";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique short suffix for names (interface names are at most 15 bytes).
pub fn unique() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{}{n}", std::process::id() % 100_000)
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod sandbox: a named netns plus scratch dirs; removes everything it
/// (and the plugins) created on drop, also when the test panics.
pub struct Sandbox {
    pub netns: String,
    pub dir: tempfile::TempDir,
    pub bridges: Vec<String>,
}

impl Sandbox {
    pub fn new() -> Self {
        let netns = format!("multus-test-{}", unique());
        sh(&["ip", "netns", "add", &netns]);
        Self {
            netns,
            dir: tempfile::tempdir().unwrap(),
            bridges: Vec::new(),
        }
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.netns)
    }

    /// A new bridge name that will be deleted on drop.
    pub fn bridge(&mut self) -> String {
        let name = format!("mtb{}", unique());
        self.bridges.push(name.clone());
        name
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `ip -j addr` of an interface in the sandbox; `None` when absent.
    pub fn addresses(&self, ifname: &str) -> Option<Vec<String>> {
        let out = Command::new("ip")
            .args(["-n", &self.netns, "-j", "addr", "show", "dev", ifname])
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
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
                .collect(),
        )
    }

    /// Interface names in the sandbox.
    pub fn links(&self) -> Vec<String> {
        let out = sh(&["ip", "-n", &self.netns, "-j", "link", "show"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        for b in &self.bridges {
            let _ = Command::new("ip")
                .args(["link", "del", b])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A bridge network config with host-local IPAM keeping its state in `dir`.
pub fn bridge_conf(name: &str, bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": bridge,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir}
    })
}

/// The outcome of one plugin run.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Outcome {
    /// Asserts that the run succeeded; else shows its stdout and stderr.
    #[track_caller]
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.success,
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        })
    }
}

/// Starts `multus` with a CNI command, as a runtime: CNI_* env, config on
/// stdin (written and closed), no Kubernetes environment. The caller waits.
pub fn spawn_multus(
    command: &str,
    container_id: &str,
    netns: Option<&Path>,
    config: &Value,
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multus"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_BIN)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{container_id};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID=uid-{container_id}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(netns) = netns {
        cmd.env("CNI_NETNS", netns);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes())
        .unwrap();
    child
}

/// Runs `multus` with a CNI command, as a runtime: CNI_* env, config on
/// stdin, no Kubernetes environment.
pub fn multus(command: &str, container_id: &str, netns: Option<&Path>, config: &Value) -> Outcome {
    let out = spawn_multus(command, container_id, netns, config)
        .wait_with_output()
        .unwrap();
    Outcome {
        success: out.status.success(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Files host-local has allocated in its data dir (one per IP).
pub fn allocations(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(networks) = std::fs::read_dir(data_dir) else {
        return out;
    };
    for net in networks.flatten() {
        if let Ok(files) = std::fs::read_dir(net.path()) {
            for f in files.flatten() {
                let name = f.file_name().into_string().unwrap();
                if name.parse::<std::net::IpAddr>().is_ok() {
                    out.push(name);
                }
            }
        }
    }
    out.sort();
    out
}

/// Serves the gRPC `routes` on the unix socket `socket` from a background
/// thread until the returned sender is dropped (also when the test
/// panics).
pub fn serve_grpc(
    socket: &Path,
    routes: tonic::service::Routes,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            ready_tx.send(()).unwrap();
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::UnixListenerStream::new(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .unwrap();
        });
    });
    ready_rx.recv().unwrap();
    stop_tx
}
