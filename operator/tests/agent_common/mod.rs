//! Helpers of the node-agent integration tests: temporary host layouts, the
//! real `multus-operator node-agent` process, a tiny HTTP client, polling
//! with deadlines.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multus_operator::agent;
use multus_operator::agent::credential::CredentialSettings;
use serde_json::Value;

/// Generous deadline for anything the agent should do "at once": the tests
/// must not be flaky on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const CALICO_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/net.d-calico"
);

pub fn calico() -> String {
    std::fs::read_to_string(Path::new(CALICO_DIR).join("10-calico.conflist")).unwrap()
}

pub fn calico_expected() -> Value {
    let text =
        std::fs::read_to_string(Path::new(CALICO_DIR).join("expected-00-multus.conf")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A conf whose network name and mtu identify it.
pub fn bridge_conf(name: &str, mtu: u32) -> String {
    format!(
        r#"{{"cniVersion":"0.3.1","name":"{name}","type":"bridge","bridge":"br0","mtu":{mtu},"ipam":{{}}}}"#
    )
}

/// Writes through a temporary file and a rename (how careful tools write).
pub fn write_renamed(path: &Path, text: &str) {
    let temp = path.with_extension("writing");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// A host layout in a temporary directory: CNI conf and bin dirs, a
/// service-account dir laid out like a projected volume (`..data` symlink),
/// and a fake plugin binary.
pub struct Host {
    pub root: tempfile::TempDir,
    pub conf: PathBuf,
    pub bin: PathBuf,
    /// The Multus conf dir (configs of NADs without `spec.config`).
    pub multus_conf: PathBuf,
    pub sa: PathBuf,
    pub plugin: PathBuf,
    generation: u32,
}

/// Answers `--version`, and `upkeep sandboxes` with no sandbox (no pod
/// attached through Multus on this fake host).
pub const FAKE_PLUGIN: &str = "#!/bin/sh\nif [ \"$1\" = upkeep ]; then cat >/dev/null; echo '[]'; exit 0; fi\necho 'multus 0.0.0-test'\n";

impl Host {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let conf = root.path().join("host/etc/cni/net.d");
        let bin = root.path().join("host/opt/cni/bin");
        let multus_conf = root.path().join("host/etc/cni/multus/net.d");
        let sa = root.path().join("serviceaccount");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&multus_conf).unwrap();
        std::fs::create_dir_all(&sa).unwrap();
        let plugin = root.path().join("image/multus");
        std::fs::create_dir_all(plugin.parent().unwrap()).unwrap();
        std::fs::write(&plugin, FAKE_PLUGIN).unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut host = Self {
            root,
            conf,
            bin,
            multus_conf,
            sa,
            plugin,
            generation: 0,
        };
        host.project_service_account("token-1", "CA-1");
        symlink("..data/token", host.sa.join("token")).unwrap();
        symlink("..data/ca.crt", host.sa.join("ca.crt")).unwrap();
        host
    }

    /// Publishes a new token and CA the way the kubelet updates a projected
    /// volume: a new timestamped directory, a `..data_tmp` symlink to it
    /// renamed over `..data`, the old directory removed.
    pub fn project_service_account(&mut self, token: &str, ca: &str) {
        self.generation += 1;
        let name = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation,
            std::process::id()
        );
        let dir = self.sa.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("token"), token).unwrap();
        std::fs::write(
            dir.join("ca.crt"),
            format!("-----BEGIN CERTIFICATE-----\n{ca}\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let old = std::fs::read_link(self.sa.join("..data")).ok();
        symlink(&name, self.sa.join("..data_tmp")).unwrap();
        std::fs::rename(self.sa.join("..data_tmp"), self.sa.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.sa.join(old)).unwrap();
        }
    }

    pub fn copy_calico_fixture(&self) {
        for entry in std::fs::read_dir(CALICO_DIR).unwrap() {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            std::fs::write(self.conf.join(entry.file_name()), bytes).unwrap();
        }
    }

    pub fn output(&self) -> PathBuf {
        self.conf.join("00-multus.conf")
    }

    pub fn multus_d(&self) -> PathBuf {
        self.conf.join("multus.d")
    }

    /// `node-agent --no-kube` on this layout, JSON logs, metrics on an
    /// ephemeral port.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_multus-operator"));
        command
            .arg("node-agent")
            .arg("--no-kube")
            .arg("--log-format=json")
            .arg("--metrics-address=127.0.0.1:0")
            .arg("--cni-conf-dir")
            .arg(&self.conf)
            .arg("--cni-bin-dir")
            .arg(&self.bin)
            .arg("--multus-conf-dir")
            .arg(&self.multus_conf)
            .arg("--service-account-dir")
            .arg(&self.sa)
            .arg("--plugin-binary")
            .arg(&self.plugin)
            .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
            .env("KUBERNETES_SERVICE_PORT", "443")
            .env("RUST_LOG", "info")
            .env_remove("NODE_NAME")
            .env_remove("MULTUS_CONFIG_NAME");
        command
    }
}

/// The settings of an in-process agent on `host` that talks to the API
/// server (node `node-1`, MultusConfig `default`); `plugin_credential` is
/// the one thing the tests vary.
pub fn agent_settings(
    host: &Host,
    plugin_credential: Option<CredentialSettings>,
) -> agent::Settings {
    agent::Settings {
        cni_conf_dir: host.conf.clone(),
        host_cni_conf_dir: "/etc/cni/net.d".into(),
        cni_bin_dir: host.bin.clone(),
        multus_conf_dir: host.multus_conf.clone(),
        plugin_binary: Some(host.plugin.clone()),
        service_account_dir: host.sa.clone(),
        config_file: None,
        api_server: Some("https://10.96.0.1:443".into()),
        node_name: Some("node-1".into()),
        multus_config_name: Some("default".into()),
        kube: true,
        metrics_address: "127.0.0.1:0".parse().unwrap(),
        plugin_credential,
        network_hotplug: None,
    }
}

pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Polls `f` every 10 ms until it returns `Some`, or panics after `DEADLINE`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `node-agent`; killed on drop.
pub struct Agent {
    pub child: Child,
    pub address: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts `command` and waits until it serves HTTP.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = value["fields"]["address"].as_str()
                    && let Ok(address) = address.parse::<SocketAddr>()
                {
                    let _ = tx.send(address);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let address = match rx.recv_timeout(DEADLINE) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the agent did not start serving:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            address,
            logs,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `GET path` → (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect_timeout(&self.address, DEADLINE).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad response {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (code, body)
    }

    /// The value of a metric (first sample named exactly `name`).
    pub fn metric(&self, name: &str) -> f64 {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200);
        body.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in\n{body}"))
    }

    pub fn regenerations(&self) -> f64 {
        self.metric("multus_node_agent_regenerations_total")
    }

    pub fn reconciles(&self) -> f64 {
        self.metric("multus_node_agent_reconciles_total")
    }

    /// Waits until exactly `n` regenerations are counted and the agent is
    /// idle (a counter read right after seeing the file could be early).
    pub fn assert_regenerations(&self, n: f64) {
        wait_for("the regeneration count", || {
            (self.regenerations() >= n).then_some(())
        });
        self.wait_idle(Duration::from_millis(300));
        assert_eq!(self.regenerations(), n, "logs:\n{}", self.logs());
    }

    /// Waits for `/readyz` to answer `ready`.
    pub fn wait_ready(&self, ready: bool) -> String {
        let logs = Arc::clone(&self.logs);
        let start = Instant::now();
        loop {
            let (code, body) = self.get("/readyz");
            if (code == 200) == ready {
                return body;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "/readyz stayed {code} {body:?}; logs:\n{}",
                logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the reconcile count stays the same for `quiet`.
    pub fn wait_idle(&self, quiet: Duration) -> f64 {
        let start = Instant::now();
        let mut last = self.reconciles();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.reconciles();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return now;
            }
            assert!(start.elapsed() < DEADLINE, "the agent never went idle");
        }
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the agent did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("agent logs:\n{}", self.logs());
        }
    }
}

/// Runs `command` to completion → (success, stderr).
pub fn run(mut command: Command) -> (bool, String) {
    let output = command.stdout(Stdio::null()).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every regular file under `dir` with its contents, for "nothing else was
/// touched" comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// base64url without padding (the JWT encoding).
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An (unsigned) service-account JWT for `namespace/name`, issued at `iat`
/// and expiring at `exp` (Unix seconds).
pub fn service_account_jwt(namespace: &str, name: &str, iat: i64, exp: i64) -> String {
    jwt_of(&serde_json::json!({
        "iss": "https://kubernetes.default.svc",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "iat": iat,
        "exp": exp,
    }))
}

/// A token of ServiceAccount `namespace/name` bound to the Node `node`.
pub fn node_bound_jwt(namespace: &str, name: &str, node: &str, iat: i64, exp: i64) -> String {
    jwt_of(&serde_json::json!({
        "iss": "https://kubernetes.default.svc",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "iat": iat,
        "exp": exp,
        "kubernetes.io": {"namespace": namespace, "node": {"name": node, "uid": "node-uid-1"}},
    }))
}

/// An unsigned JWT with `payload` (the agent decodes, never verifies).
pub fn jwt_of(payload: &serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url(br#"{"alg":"RS256","kid":"test"}"#),
        base64url(payload.to_string().as_bytes())
    )
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}
