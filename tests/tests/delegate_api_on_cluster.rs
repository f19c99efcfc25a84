//! End-to-end: upstream's thick-plugin delegate API served by the node
//! agent (`spec.delegateApi`), through the chart, on the real node. A
//! running pod without secondary networks gets `net1` from a client
//! speaking upstream's protocol over the agent's socket (what
//! multus-dynamic-networks-controller sends: the env map, the NAD's
//! config as base64), shows it inside the pod and in its network-status,
//! loses it again through DEL (interface and lease gone), gets it once
//! more, and the pod's deletion then leaves no lease and no cache file.
//! Bad input (garbage, an unknown pod) is refused with a clear error.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs what chart_on_cluster.rs needs (a disposable
//! single-node cluster whose node is this machine, root, `helm`,
//! `kubectl`, the image of `MULTUS_E2E_IMAGE` on the node).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestPod, create_nad, create_namespace, delete_pod,
    install_privileged, ipv4_in_pod, nad_object, remove_release, single_node_without_multus,
    wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{Cmd, E2eSession, remove_link, remove_namespace, remove_path, wait_until};
use serde_json::{Value, json};

const TEST: &str = "delegate_api_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-delegate";
const OP_NS: &str = "multus-e2e-delegate";
const OPERATOR: &str = "multus-e2e-delegate-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-delegate";
const APP_NS: &str = "multus-e2e-hotplug";
const NAD: &str = "e2e-hotplug-br";
const NAD_CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"e2e-hotplug-br","type":"bridge","bridge":"e2ehot0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.253.0.0/24"}]]}}"#;
const BRIDGE: &str = "e2ehot0";
const SUBNET_PREFIX: &str = "10.253.0.";
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks/e2e-hotplug-br";
const CACHE_DIR: &str = "/var/lib/cni/multus";
/// Not upstream's default path: a thick daemon on the node keeps its own.
const SOCKET: &str = "/run/multus/e2e-delegate.sock";
const MINUTE: Duration = Duration::from_secs(60);

fn remove_all() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    remove_link(BRIDGE);
    remove_path(HOST_LOCAL_DIR);
}

/// One request as Go's `http.Client` sends it over the socket (host
/// `dummy`); the status and the body.
fn http(method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = UnixStream::connect(SOCKET).unwrap_or_else(|e| panic!("{SOCKET}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(240)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dummy\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
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

/// The sandbox of pod `name`: its container ID and network namespace,
/// from the Multus cache the runtime's ADD wrote.
fn sandbox_of(name: &str) -> Option<(String, String)> {
    let namespace = format!("K8S_POD_NAMESPACE={APP_NS};");
    let pod = format!("K8S_POD_NAME={name};");
    std::fs::read_dir(CACHE_DIR)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            if !(text.contains(&namespace) && text.contains(&pod)) {
                return None;
            }
            let entries: Vec<Value> = serde_json::from_str(&text).ok()?;
            let netns = entries
                .iter()
                .find_map(|e| e["multusRs"]["netns"].as_str())?
                .to_owned();
            Some((p.file_name()?.to_str()?.to_owned(), netns))
        })
}

/// What multus-dynamic-networks-controller sends.
fn body(command: &str, container: &str, netns: &str, pod: &str, uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "env": {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "net1",
            "CNI_ARGS": format!("K8S_POD_NAMESPACE={APP_NS};K8S_POD_NAME={pod};K8S_POD_UID={uid}")
        },
        "config": base64::engine::general_purpose::STANDARD.encode(NAD_CONFIG),
        "interfaceAttributes": null
    }))
    .unwrap()
}

#[tokio::test]
async fn delegate_api_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    e2e.log
        .step("preflight: a single node on this machine, no Multus");
    remove_all();
    let _node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &[OP_NS.to_owned(), APP_NS.to_owned()],
        "remove the test's objects",
        remove_all,
    );
    let client = e2e.client.clone();
    let log = &mut e2e.log;

    log.step("install with spec.delegateApi enabled");
    install_privileged(
        &client,
        RELEASE,
        OP_NS,
        OPERATOR,
        &[
            "multusConfig.spec.delegateApi.enabled=true",
            &format!("multusConfig.spec.delegateApi.socketPath={SOCKET}"),
        ],
    )
    .await;
    wait_mc_ready(&client, "default", 3 * MINUTE).await;
    wait_until("the delegate socket", MINUTE, async || {
        if Path::new(SOCKET).exists() {
            Ok(())
        } else {
            Err(format!("{SOCKET} missing"))
        }
    })
    .await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(SOCKET).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "root-only socket");
    assert_eq!(http("GET", "/healthz", b"").0, 200);
    create_namespace(&client, APP_NS).await;
    create_nad(&client, &nad_object(APP_NS, NAD, NAD_CONFIG)).await;

    log.step("a running pod without secondary networks");
    TestPod::new(APP_NS, "p1").create(&client).await;
    wait_pod_ready(&client, APP_NS, "p1", 2 * MINUTE).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    let uid = pods.get("p1").await.unwrap().uid().unwrap();
    let (container, netns) = sandbox_of("p1").expect("the Multus cache of p1");
    log.note(&format!("sandbox {container}, netns {netns}"));

    log.step("bad input is refused and changes nothing");
    let (status, answer) = http("POST", "/delegate", b"{garbage");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    let (status, answer) = http(
        "POST",
        "/delegate",
        &body("ADD", &container, &netns, "nobody", "u-0"),
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("does not exist"));
    assert!(!links_of("p1").await.contains("net1"));

    log.step("POST /delegate ADD: p1 gets net1");
    let (status, answer) = http(
        "POST",
        "/delegate",
        &body("ADD", &container, &netns, "p1", &uid),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let address = ipv4_in_pod(APP_NS, "p1", "net1", MINUTE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ip = address.split('/').next().unwrap().to_owned();
    assert!(ip.starts_with(SUBNET_PREFIX), "net1: {address}");
    assert!(
        answer["Result"]["ips"][0]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with(&ip)),
        "{answer}"
    );
    assert!(Path::new(HOST_LOCAL_DIR).join(&ip).exists(), "lease {ip}");
    let status_entries = network_status(&pods, "p1").await;
    assert!(
        status_entries
            .iter()
            .any(|e| e["interface"] == "net1" && e["name"] == format!("{APP_NS}/{NAD}")),
        "network-status: {status_entries:?}"
    );
    log.note(&format!("net1 {ip}"));

    log.step("POST /delegate DEL: net1 and its lease go");
    let (status, answer) = http(
        "POST",
        "/delegate",
        &body("DEL", &container, &netns, "p1", &uid),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(!links_of("p1").await.contains("net1"));
    assert!(
        !Path::new(HOST_LOCAL_DIR).join(&ip).exists(),
        "lease {ip} left"
    );
    let status_entries = network_status(&pods, "p1").await;
    assert!(
        !status_entries.is_empty() && status_entries.iter().all(|e| e["interface"] != "net1"),
        "network-status: {status_entries:?}"
    );

    log.step("added again, then the pod is deleted: no lease, no cache left");
    let (status, answer) = http(
        "POST",
        "/delegate",
        &body("ADD", &container, &netns, "p1", &uid),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let address = ipv4_in_pod(APP_NS, "p1", "net1", MINUTE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ip = address.split('/').next().unwrap().to_owned();
    delete_pod(&pods, "p1").await;
    let lease = Path::new(HOST_LOCAL_DIR).join(&ip);
    wait_until(&format!("lease {ip} released"), MINUTE, async || {
        if lease.exists() {
            Err(format!("{lease:?} exists"))
        } else {
            Ok(())
        }
    })
    .await;
    // The plugin removes the cache file after every delegate's DEL, so
    // after the lease (seen on 1.35: checked at once, it was still there).
    let cache = PathBuf::from(CACHE_DIR).join(&container);
    wait_until(
        &format!("cache file {} removed", cache.display()),
        2 * MINUTE,
        async || {
            if cache.exists() {
                Err(format!("{} left", cache.display()))
            } else {
                Ok(())
            }
        },
    )
    .await;
    log.note("the pod's DEL released the hot-plugged net1");

    // The documented order (MultusConfig first, so the agents remove
    // Multus from the node while the operator runs; then the chart), via
    // the teardown: a bare `helm uninstall` would strand the MultusConfig
    // and leave 00-multus.conflist with a dead token for the next test.
    e2e.finish();
}

async fn links_of(pod: &str) -> String {
    Cmd::kubectl(["exec", "-n", APP_NS, pod, "--", "ip", "-o", "link"])
        .ok()
        .await
}

async fn network_status(pods: &Api<Pod>, name: &str) -> Vec<Value> {
    let pod = pods.get(name).await.unwrap();
    let text = pod
        .annotations()
        .get(NETWORK_STATUS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}
