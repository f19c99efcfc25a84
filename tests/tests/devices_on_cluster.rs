//! End-to-end: device-aware attachments (issue 12) on a real cluster with
//! the real kubelet. A test device plugin (`test-device-plugin`, this
//! crate's binary, on the host) advertises `e2e.example.com/nic` (nic-0 to
//! nic-2) and writes device-info files on allocation; the chart is
//! installed; a NAD annotated `k8s.v1.cni.cncf.io/resourceName:
//! e2e.example.com/nic` runs a recording wrapper around the bridge plugin
//! (installed on the host for the test):
//!
//! - a pod requesting two devices and attaching the NAD twice gets both,
//!   sorted, one per network in annotation order: the delegate receives
//!   `deviceID` in its config and runtimeConfig, and `CNIDeviceInfoFile`;
//!   the network-status carries the device plugin's device-info; deleting
//!   the pod removes the per-attachment device-info files;
//! - a pod attaching the NAD without requesting the resource does not start:
//!   FailedCreatePodSandBox names the NAD, the resource and the pod.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs a disposable single-node cluster whose node is this
//! machine, root, `helm`, `kubectl` and the image of `MULTUS_E2E_IMAGE` on
//! the node. It leaves `e2e.example.com/nic` in the node's capacity (the
//! kubelet keeps a stopped device plugin's resource, with 0 allocatable
//! after its grace period, until it restarts).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;
use multus_config::npwg::nad::NetworkAttachmentDefinition;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestPod, assert_no_multus_configs, create_nad, create_namespace,
    delete_pod, install_privileged, nad_object, remove_release, wait_event, wait_mc_ready,
    wait_pod_ready,
};
use multus_e2e::{
    Cmd, E2eSession, host_name, remove_link, remove_namespace, remove_path, wait_until,
};
use serde_json::{Value, json};

const TEST: &str = "devices_from_the_kubelet_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-devices";
const OP_NS: &str = "multus-e2e-devices";
const OPERATOR: &str = "multus-e2e-devices-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-devices";
const APP_NS: &str = "multus-e2e-devices-app";
const RESOURCE: &str = "e2e.example.com/nic";
const DEVICES: [&str; 3] = ["nic-0", "nic-1", "nic-2"];
/// Where device plugins and Multus keep device-info files (the spec's).
const DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";
const NAD: &str = "e2e-nic";
const WRAPPER: &str = "/opt/cni/bin/e2e-record-bridge";
const RECORDS: &str = "/var/tmp/multus-e2e-devices";
const BRIDGE: &str = "e2enic0";
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks/e2e-nic";

const MINUTE: Duration = Duration::from_secs(60);

fn nad_config() -> String {
    json!({
        "cniVersion": "1.0.0", "name": NAD, "type": "e2e-record-bridge", "bridge": BRIDGE,
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.252.0.0/24"}]]}
    })
    .to_string()
}

/// The wrapper delegate: records its stdin per container and interface,
/// then runs the node's bridge plugin.
fn wrapper_script() -> String {
    format!(
        "#!/bin/sh\nset -e\nmkdir -p {RECORDS}\nf={RECORDS}/$CNI_COMMAND-$CNI_CONTAINERID-$CNI_IFNAME.json\ncat > \"$f\"\nexec /opt/cni/bin/bridge < \"$f\"\n"
    )
}

/// Removes what the test creates (blocking; teardown and leftovers): the
/// pods while Multus still DELs their networks, the release, the host files.
fn remove_everything() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    remove_link(BRIDGE);
    for path in [WRAPPER, RECORDS, HOST_LOCAL_DIR] {
        remove_path(path);
    }
}

/// The test device plugin, stopped (SIGTERM, then SIGKILL) when dropped.
struct DevicePlugin(Child);

impl DevicePlugin {
    fn start() -> Self {
        let log = std::fs::File::create(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-test-device-plugin.log"),
        )
        .expect("device plugin log file");
        let child = Command::new(env!("CARGO_BIN_EXE_test-device-plugin"))
            .args(["--resource", RESOURCE, "--devices", &DEVICES.join(",")])
            .args(["--device-info-dir", DEVICE_INFO_DIR])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting test-device-plugin");
        Self(child)
    }
}

impl Drop for DevicePlugin {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..30 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn devices_from_the_kubelet_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    let client = e2e.client.clone();
    e2e.log
        .step("preflight: remove leftovers; no Multus but ours");
    remove_everything();
    assert_no_multus_configs(&client).await;
    e2e.arm_teardown(
        &[OP_NS, APP_NS],
        "remove the pods, the release and the host files",
        remove_everything,
    );
    let log = &mut e2e.log;

    log.step("the test device plugin registers e2e.example.com/nic with the kubelet");
    let plugin = DevicePlugin::start();
    let node = host_name();
    wait_allocatable(&client, &node, "3").await;

    log.step("install the chart and the recording delegate");
    std::fs::write(WRAPPER, wrapper_script()).unwrap();
    Cmd::new("chmod", ["755", WRAPPER]).ok().await;
    install_privileged(&client, RELEASE, OP_NS, OPERATOR, &[]).await;
    wait_mc_ready(&client, "default", 3 * MINUTE).await;
    create_namespace(&client, APP_NS).await;
    create_nad(&client, &nad_for_resource()).await;

    log.step("a pod with two devices and the NAD twice");
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    TestPod::new(APP_NS, "two-nics")
        .networks(&format!("{NAD},{NAD}"))
        .limit(RESOURCE, 2)
        .create(&client)
        .await;
    let pod = wait_pod_ready(&client, APP_NS, "two-nics", 2 * MINUTE).await;
    let held = Cmd::kubectl(["exec", "-n", APP_NS, "two-nics", "--", "sh", "-c"])
        .args(["echo $TEST_DEVICE_E2E_EXAMPLE_COM_NIC"])
        .ok()
        .await;
    let mut held: Vec<String> = held.trim().split(',').map(str::to_owned).collect();
    held.sort();
    assert_eq!(held.len(), 2, "the kubelet allocated {held:?}");
    log.note(&format!("the kubelet allocated {held:?}"));

    let sandbox = sandbox_id();
    for (ifname, device) in [("net1", &held[0]), ("net2", &held[1])] {
        let conf = record(&format!("ADD-{sandbox}-{ifname}"));
        assert_eq!(conf["deviceID"], device.as_str(), "{ifname}: {conf}");
        assert_eq!(conf["pciBusID"], device.as_str(), "{ifname}: {conf}");
        assert_eq!(conf["runtimeConfig"]["deviceID"], device.as_str(), "{conf}");
        let info_file = format!("{DEVICE_INFO_DIR}/cni/{APP_NS}-{NAD}-{sandbox}_{ifname}");
        assert_eq!(
            conf["runtimeConfig"]["CNIDeviceInfoFile"],
            info_file.as_str(),
            "{conf}"
        );
        assert!(Path::new(&info_file).exists(), "{info_file} missing");
    }
    let status = pod
        .annotations()
        .get(NETWORK_STATUS_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| panic!("no network-status: {:?}", pod.annotations()));
    let entries: Vec<Value> = serde_json::from_str(&status).unwrap();
    for (ifname, device) in [("net1", &held[0]), ("net2", &held[1])] {
        let entry = entries
            .iter()
            .find(|e| e["interface"] == ifname)
            .unwrap_or_else(|| panic!("no {ifname} in {status}"));
        let index = DEVICES.iter().position(|d| d == device).unwrap();
        assert_eq!(
            entry["device-info"],
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": format!("0000:ee:00.{index}")}}),
            "{status}"
        );
    }
    log.note("deviceID, CNIDeviceInfoFile and device-info as expected");

    log.step("a pod attaching the NAD without requesting the resource does not start");
    TestPod::new(APP_NS, "no-nic")
        .networks(NAD)
        .create(&client)
        .await;
    let event = wait_event(
        &client,
        APP_NS,
        "no-nic",
        "FailedCreatePodSandBox",
        2 * MINUTE,
    )
    .await;
    let message = event.message.clone().unwrap_or_default();
    for part in [
        format!("{APP_NS}/{NAD}"),
        RESOURCE.to_owned(),
        format!("pod {APP_NS}/no-nic"),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
    delete_pod(&pods, "no-nic").await;

    log.step("deleting the pod removes the device-info files");
    delete_pod(&pods, "two-nics").await;
    for ifname in ["net1", "net2"] {
        let info_file = format!("{DEVICE_INFO_DIR}/cni/{APP_NS}-{NAD}-{sandbox}_{ifname}");
        wait_until(&format!("{info_file} removed"), MINUTE, async || {
            if Path::new(&info_file).exists() {
                Err("still there".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
        let del = record(&format!("DEL-{sandbox}-{ifname}"));
        assert!(del["deviceID"].is_string(), "DEL got the device: {del}");
    }

    e2e.tear_down();
    drop(plugin);
    e2e.finish();
}

/// Waits until the node advertises `count` devices of the resource.
async fn wait_allocatable(client: &kube::Client, node: &str, count: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_until(
        &format!("node {node} allocatable {RESOURCE}={count}"),
        MINUTE,
        async || {
            let n = nodes.get(node).await.map_err(|e| e.to_string())?;
            let allocatable = n.status.and_then(|s| s.allocatable).unwrap_or_default();
            match allocatable.get(RESOURCE) {
                Some(q) if q.0 == count => Ok(()),
                other => Err(format!("{RESOURCE}: {other:?}")),
            }
        },
    )
    .await;
}

/// The NAD of the test network, annotated with the resource it needs.
fn nad_for_resource() -> NetworkAttachmentDefinition {
    let mut nad = nad_object(APP_NS, NAD, &nad_config());
    nad.metadata.annotations = Some(BTreeMap::from([(
        "k8s.v1.cni.cncf.io/resourceName".to_owned(),
        RESOURCE.to_owned(),
    )]));
    nad
}

/// The sandbox (CNI container) ID of the only pod whose delegates ran,
/// from the recordings of its ADD (`ADD-<sandbox>-net1.json`).
fn sandbox_id() -> String {
    let names: Vec<String> = std::fs::read_dir(RECORDS)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let sandboxes: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("ADD-")?.strip_suffix("-net1.json"))
        .collect();
    match sandboxes.as_slice() {
        [one] => (*one).to_owned(),
        _ => panic!("expected the ADD of one pod in {RECORDS}, found {names:?}"),
    }
}

/// A recorded delegate stdin (`<COMMAND>-<sandbox>-<ifname>`).
fn record(name: &str) -> Value {
    let path = Path::new(RECORDS).join(format!("{name}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} not recorded ({e}); recorded: {:?}",
            path.display(),
            std::fs::read_dir(RECORDS)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        )
    });
    serde_json::from_slice(&bytes).unwrap()
}
