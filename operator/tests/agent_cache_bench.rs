//! Benchmark: the node agent's memory with the caches it serves the plugin
//! (250 pods on its node, 10,000 NADs in the cluster) and the time of the
//! plugin's lookups per ADD (1 pod + 2 NADs over the unix socket). The real
//! `multus-operator node-agent` runs against a fake API server in this
//! process, which serves realistic objects (managed fields, `kubectl`'s
//! last-applied copy, full container specs and status) in pages and keeps
//! the watches open. Not a pass/fail test beyond "it served every lookup";
//! run it with
//! `cargo test -p multus-operator --release --test agent_cache_bench -- --ignored --nocapture`
//! (figures in docs/performance.md).

mod agent_common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_common::*;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const PODS: usize = 250;
const NADS: usize = 10_000;
const NODE: &str = "node-1";

fn pod(i: usize) -> Value {
    let status = json!([
        {"name": "cluster", "interface": "eth0", "ips": [format!("10.244.{}.{}", i / 250, i % 250)], "mac": "aa:bb:cc:dd:ee:01", "default": true, "dns": {}},
        {"name": format!("ns-{}/nad-{}", i % 40, i % 10_000), "interface": "net1", "ips": [format!("10.10.{}.{}", i / 250, i % 250)], "mac": "aa:bb:cc:dd:ee:02", "dns": {}},
        {"name": format!("ns-{}/nad-{}", i % 40, (i + 1) % 10_000), "interface": "net2", "ips": [format!("10.11.{}.{}", i / 250, i % 250)], "mac": "aa:bb:cc:dd:ee:03", "dns": {}}
    ]);
    let container = |name: &str| {
        json!({
            "name": name, "image": "registry.example.com/team/app:1.2.3",
            "command": ["/app", "--listen=:8080", "--log-level=info"],
            "env": (0..12).map(|e| json!({"name": format!("ENV_{e}"), "value": "some-value-of-moderate-length"})).collect::<Vec<_>>(),
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}]
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("app-{i}"), "namespace": format!("ns-{}", i % 40),
            "uid": format!("00000000-0000-0000-0000-{i:012}"), "resourceVersion": format!("{}", 1000 + i),
            "labels": {"app": "app", "pod-template-hash": "5d8f7c9b6d", "team": "network"},
            "annotations": {
                "k8s.v1.cni.cncf.io/networks": format!("nad-{},nad-{}", i % 10_000, (i + 1) % 10_000),
                "k8s.v1.cni.cncf.io/network-status": status.to_string(),
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-5d8f7c9b6d", "uid": "11111111-2222-3333-4444-555555555555", "controller": true}],
            "managedFields": (0..3).map(|m| json!({"manager": format!("manager-{m}"), "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:k8s.v1.cni.cncf.io/networks": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:env": {}}}}}})).collect::<Vec<_>>()
        },
        "spec": {"nodeName": NODE, "containers": [container("app"), container("sidecar")], "volumes": [{"name": "data", "emptyDir": {}}], "serviceAccountName": "default", "restartPolicy": "Always"},
        "status": {"phase": "Running", "podIP": "10.244.0.1", "hostIP": "192.168.0.10",
            "conditions": (["Initialized", "Ready", "ContainersReady", "PodScheduled"].iter().map(|t| json!({"type": t, "status": "True", "lastTransitionTime": "2026-12-01T10:00:00Z"})).collect::<Vec<_>>()),
            "containerStatuses": (["app", "sidecar"].iter().map(|n| json!({"name": n, "ready": true, "restartCount": 0, "image": "registry.example.com/team/app:1.2.3", "imageID": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "containerID": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "started": true, "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}})).collect::<Vec<_>>())}
    })
}

fn nad(i: usize) -> Value {
    let config = json!({
        "cniVersion": "1.0.0", "name": format!("nad-{i}"), "type": "macvlan", "master": "eth1", "mode": "bridge", "mtu": 9000,
        "ipam": {"type": "whereabouts", "range": format!("10.{}.{}.0/24", 100 + i / 256 % 100, i % 256),
                 "exclude": ["10.0.0.1/32", "10.0.0.2/32"], "routes": [{"dst": "192.168.0.0/16"}]}
    })
    .to_string();
    let applied = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": format!("nad-{i}"), "namespace": format!("ns-{}", i % 40)}, "spec": {"config": config}});
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": format!("nad-{i}"), "namespace": format!("ns-{}", i % 40),
            "uid": format!("10000000-0000-0000-0000-{i:012}"), "resourceVersion": format!("{}", 5000 + i), "generation": 1,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "k8s.cni.cncf.io/v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}, "f:spec": {".": {}, "f:config": {}}}}]
        },
        "spec": {"config": config}
    })
}

#[derive(Clone)]
struct Fake;

/// One page of a list of `total` objects made by `make`, or a watch that
/// stays open.
fn list_or_watch(
    query: &std::collections::HashMap<String, String>,
    total: usize,
    make: fn(usize) -> Value,
    kind: &str,
) -> Response {
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        // An open watch with nothing to say.
        let stream = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(total);
    let start: usize = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + limit).min(total);
    let items: Vec<Value> = (start..end).map(make).collect();
    let mut metadata = json!({"resourceVersion": "20000"});
    if end < total {
        metadata["continue"] = json!(end.to_string());
    }
    let body = json!({"apiVersion": "v1", "kind": kind, "metadata": metadata, "items": items});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn api(
    State(_): State<Fake>,
    uri: Uri,
    method: axum::http::Method,
    body: axum::body::Bytes,
) -> Response {
    let query: std::collections::HashMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let path = uri.path();
    if method == axum::http::Method::GET && path == "/api/v1/pods" {
        return list_or_watch(&query, PODS, pod, "PodList");
    }
    if method == axum::http::Method::GET
        && path == "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"
    {
        return list_or_watch(&query, NADS, nad, "NetworkAttachmentDefinitionList");
    }
    if method == axum::http::Method::PATCH {
        // The node state report: echo what was applied.
        let mut object: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
        object["metadata"]["resourceVersion"] = json!("1");
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            object.to_string(),
        )
            .into_response();
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{method} {path} not served by the fake")});
    (
        StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        status.to_string(),
    )
        .into_response()
}

fn fake_api() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let router = Router::new().fallback(api).with_state(Fake);
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A GET on the socket over `stream` (keep-alive): status and body.
fn get(stream: &mut UnixStream, path: &str) -> (u16, Vec<u8>) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, body)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn agent_memory_with_250_pods_and_10000_nads() {
    let address = fake_api();
    let host = Host::new();
    host.copy_calico_fixture();
    let socket = host.root.path().join("run/agent.sock");
    let options = host.root.path().join("agent.yaml");
    std::fs::write(&options, format!("nodeAgentSocket: {}\n", socket.display())).unwrap();
    let kubeconfig = host.root.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{address}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake\n"
        ),
    )
    .unwrap();
    let command = host.command();
    let args: Vec<_> = command
        .get_args()
        .filter(|a| *a != "--no-kube")
        .map(|a| a.to_owned())
        .collect();
    let mut command = std::process::Command::new(command.get_program());
    command
        .args(args)
        .arg("--config")
        .arg(&options)
        .env("KUBECONFIG", &kubeconfig)
        .env("NODE_NAME", NODE)
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let agent = Agent::start(command);
    let pid = agent.child.id();
    let baseline = status_kib(pid, "VmRSS:");

    // Served once both caches hold everything.
    let started = Instant::now();
    let last_nad = format!("/v1/nads/ns-{}/nad-{}", (NADS - 1) % 40, NADS - 1);
    let last_pod = format!(
        "/v1/pods/ns-{}/app-{}?uid=00000000-0000-0000-0000-{:012}",
        (PODS - 1) % 40,
        PODS - 1,
        PODS - 1
    );
    loop {
        if let Ok(mut stream) = UnixStream::connect(&socket)
            && get(&mut stream, &last_nad).0 == 200
            && get(&mut stream, &last_pod).0 == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the caches were not served within 5 minutes:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let synced = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");

    // The plugin's lookups of one ADD: connect, 1 pod, 2 NADs.
    let mut latencies = Vec::new();
    for i in 0..2_000 {
        let p = i % PODS;
        let start = Instant::now();
        let mut stream = UnixStream::connect(&socket).unwrap();
        let (s1, body) = get(
            &mut stream,
            &format!(
                "/v1/pods/ns-{}/app-{p}?uid=00000000-0000-0000-0000-{p:012}",
                p % 40
            ),
        );
        let (s2, _) = get(
            &mut stream,
            &format!("/v1/nads/ns-{}/nad-{}", p % 40, p % NADS),
        );
        let (s3, _) = get(
            &mut stream,
            &format!("/v1/nads/ns-{}/nad-{}", (p + 1) % 40, (p + 1) % NADS),
        );
        latencies.push(start.elapsed());
        assert_eq!((s1, s2, s3), (200, 200, 200), "lookup {i}");
        assert!(
            body.len() < 2048,
            "a served pod is trimmed: {} bytes",
            body.len()
        );
    }
    latencies.sort();
    let after = status_kib(pid, "VmRSS:");
    eprintln!(
        "agent with {PODS} pods and {NADS} NADs cached: listed in {:.1} s; RSS {:.1} MiB (before the lists {:.1} MiB, peak {:.1} MiB, after 2,000 lookups {:.1} MiB)",
        synced.as_secs_f64(),
        rss as f64 / 1024.0,
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0,
    );
    eprintln!(
        "lookups of one ADD (connect + pod + 2 NADs): median {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies[latencies.len() - 1].as_secs_f64() * 1e6,
    );
    assert!(Path::new(&socket).exists());
}
