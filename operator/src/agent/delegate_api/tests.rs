use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use multus_config::delegate_api::DelegateInput;

use super::*;

/// A stand-in `multus`: records its arguments and stdin, then runs
/// `answer`.
fn fake_plugin(dir: &Path, answer: &str) -> PathBuf {
    let path = dir.join("multus");
    let log = dir.join("calls");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\nSTDIN={stdin}\ncat > $STDIN\n{answer}\n",
            log = log.display(),
            stdin = dir.join("stdin").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
}

struct Server {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn server(answer: &str, with_config: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    if with_config {
        std::fs::write(
            conf_dir.join("00-multus.conflist"),
            r#"{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus"}]}"#,
        )
        .unwrap();
    }
    let delegator = Delegator {
        binary: fake_plugin(dir.path(), answer),
        mount_ns: Some("/proc/7/ns/mnt".into()),
        cgroup_of: Some(7),
        cni_path: "/opt/cni/bin".into(),
        conf_dir,
        timeout: Duration::from_secs(20),
    };
    let placement = |node: &str| PodPlacement {
        node: Some(node.into()),
        uid: Some("uid-1".into()),
    };
    let pods = PodCheck::Fixed {
        pods: HashMap::from([
            ("ns1/here".to_owned(), placement("node-a")),
            ("ns1/there".to_owned(), placement("node-b")),
        ]),
        node: "node-a".into(),
    };
    let socket = dir.path().join("run/multus.sock");
    let listener = bind(&socket).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = Arc::new(DelegateApi::new(delegator, pods));
    tokio::spawn(serve(listener, socket.clone(), api, async move {
        let _ = stopped.await;
    }));
    Server {
        dir,
        socket,
        stop: Some(stop),
    }
}

/// One HTTP/1.1 request over the socket, as Go's client sends it (host
/// `dummy`); the status and the body.
async fn http(socket: &Path, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dummy\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading everything.
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    (status, out[split..].to_vec())
}

fn body(pod: &str, command: &str) -> Vec<u8> {
    let config = br#"{"cniVersion":"0.3.1","name":"br1","type":"bridge"}"#;
    serde_json::to_vec(&json!({
        "env": {
            "CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "net1",
            "CNI_ARGS": format!("K8S_POD_NAMESPACE=ns1;K8S_POD_NAME={pod};K8S_POD_UID=uid-1")
        },
        "config": base64::engine::general_purpose::STANDARD.encode(config),
        "interfaceAttributes": {"ips": ["10.1.1.5/24"]}
    }))
    .unwrap()
}

fn msg(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert!(v["code"].as_u64().is_some(), "{v}");
    v["msg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_request_runs_the_plugin_with_the_config_and_the_request() {
    let s = server(
        r#"if grep -q '"command":"DEL"' $STDIN; then echo '{}'; else echo '{"Result":{"cniVersion":"1.0.0"}}'; fi"#,
        true,
    )
    .await;
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root-only socket");

    let (status, answer) = http(&s.socket, "POST", "/delegate", &body("here", "ADD")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["Result"]["cniVersion"], "1.0.0");
    assert_eq!(
        calls(s.dir.path()).trim(),
        "delegate --mount-ns=/proc/7/ns/mnt --cgroup-of=7"
    );
    let input: DelegateInput =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("stdin")).unwrap()).unwrap();
    assert_eq!(input.multus_config["name"], "multus-cni-network");
    assert_eq!(input.request.pod(), "ns1/here");
    assert_eq!(input.request.ifname, "net1");
    assert_eq!(input.request.ips, ["10.1.1.5/24"]);
    assert_eq!(input.request.config["type"], "bridge");

    // DEL answers with an empty body, as upstream
    let (status, answer) = http(&s.socket, "POST", "/delegate", &body("here", "DEL")).await;
    assert_eq!(status, 200);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    for method in ["GET", "POST"] {
        assert_eq!(http(&s.socket, method, "/healthz", b"").await.0, 200);
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_runs_nothing() {
    let s = server("echo '{}'", true).await;
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/delegate",
            b"garbage".to_vec(),
            400,
            "not a delegate request",
        ),
        ("POST", "/delegate", huge, 413, "larger than"),
        (
            "POST",
            "/delegate",
            body("here", "CHECK"),
            400,
            "\"CHECK\" is not supported",
        ),
        (
            "POST",
            "/delegate",
            body("there", "ADD"),
            403,
            "runs on node node-b, not on this node (node-a)",
        ),
        (
            "POST",
            "/delegate",
            body("gone", "ADD"),
            404,
            "pod ns1/gone (env.CNI_ARGS) does not exist",
        ),
        ("GET", "/delegate", Vec::new(), 405, "method not allowed"),
        ("DELETE", "/healthz", Vec::new(), 405, "method not allowed"),
        ("POST", "/cni", b"{}".to_vec(), 404, "no endpoint /cni"),
        (
            "GET",
            "/v2/delegate",
            Vec::new(),
            404,
            "no endpoint /v2/delegate",
        ),
    ];
    for (method, path, request, expected, text) in cases {
        let (status, answer) = http(&s.socket, method, path, &request).await;
        assert_eq!(
            status,
            expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer)
        );
        let m = msg(&answer);
        assert!(m.contains(text), "{method} {path}: {m}");
    }
    assert_eq!(calls(s.dir.path()), "", "the plugin never ran");
}

#[tokio::test]
async fn the_plugins_error_keeps_its_code_and_picks_the_status() {
    let s = server(
        r#"echo '{"cniVersion":"1.1.0","code":3,"msg":"container c1 has no Multus cache on this node"}'; exit 1"#,
        true,
    )
    .await;
    let (status, answer) = http(&s.socket, "POST", "/delegate", &body("here", "ADD")).await;
    assert_eq!(status, 404);
    assert!(msg(&answer).contains("no Multus cache"));

    let s = server("echo oops >&2; exit 2", true).await;
    let (status, answer) = http(&s.socket, "POST", "/delegate", &body("here", "ADD")).await;
    assert_eq!(status, 500);
    assert!(msg(&answer).contains("oops"), "{}", msg(&answer));

    let s = server("echo '{}'", false).await;
    let (status, answer) = http(&s.socket, "POST", "/delegate", &body("here", "ADD")).await;
    assert_eq!(status, 503);
    assert!(msg(&answer).contains("no Multus config"));
    assert_eq!(calls(s.dir.path()), "");
}

#[tokio::test]
async fn a_slow_plugin_is_killed_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("00-multus.conf"), r#"{"type":"multus"}"#).unwrap();
    let delegator = Delegator {
        binary: fake_plugin(dir.path(), "sleep 30"),
        mount_ns: None,
        cgroup_of: None,
        cni_path: "/opt/cni/bin".into(),
        conf_dir,
        timeout: Duration::from_millis(300),
    };
    let request = parse_request(&body("here", "ADD")).unwrap();
    let started = std::time::Instant::now();
    let err = delegator.run(&request).await.unwrap_err();
    assert_eq!(err.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        calls(dir.path()).trim(),
        "delegate",
        "no namespace to enter"
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced_a_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multus.sock");
    let live = bind(&path).await.unwrap();
    let err = bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("another server answers"), "{err}");
    drop(live);
    bind(&path).await.expect("a stale socket file is replaced");
    let file = dir.path().join("plain");
    std::fs::write(&file, "").unwrap();
    assert!(bind(&file).await.is_err(), "a regular file is left alone");
}
