//! End-to-end: network devices of ResourceClaims (Dynamic Resource
//! Allocation) on a real cluster with the real kubelet and scheduler. The
//! test DRA driver (`test-dra-driver`, this crate's binary, on the host)
//! publishes `e2e-dra.example.com` devices dnic-0 and dnic-1 with the
//! attributes `k8s.cni.cncf.io/resourceName: e2e.example.com/dranic` and
//! `k8s.cni.cncf.io/deviceID: 0000:00:1d.<n>`, and dbare-0 without any; the
//! chart is installed; a NAD annotated `k8s.v1.cni.cncf.io/resourceName:
//! e2e.example.com/dranic` runs a recording wrapper around the bridge
//! plugin (installed on the host for the test):
//!
//! - a pod with a claim from a ResourceClaimTemplate and a second,
//!   standalone claim (which a holder pod also uses, so it outlives the
//!   pod) attaches the NAD twice: each delegate receives the deviceID of
//!   its claim's device, in the pod's claim order; each claim's
//!   `status.devices` shows the interface's name, address and MAC, written
//!   by the plugin's field manager `multus-<sandbox>`;
//! - deleting the pod gives both delegates DEL with their device and
//!   removes the plugin's entry from the standalone claim;
//! - a pod whose claim holds dbare-0 does not start: FailedCreatePodSandBox
//!   names the claim, the device and the resource.
//!
//! Skipped, saying so, when the API server serves no `resource.k8s.io/v1`
//! (Kubernetes before 1.34, e.g. 1.28). Otherwise runs when
//! `MULTUS_E2E_KUBECONFIG` is set (fails without it under `CI=true`); needs
//! a disposable single-node cluster whose node is this machine, root,
//! `helm`, `kubectl` and the image of `MULTUS_E2E_IMAGE` on the node.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use multus_config::npwg::nad::NetworkAttachmentDefinition;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestDraDriver, TestPod, assert_no_multus_configs, create_nad,
    create_namespace, delete_pod, install_privileged, nad_object, remove_release, wait_event,
    wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{
    Cmd, E2eSession, e2e_kubeconfig, host_name, remove_link, remove_namespace, remove_path,
    wait_until,
};
use serde_json::{Value, json};

const TEST: &str = "dra_devices_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-dra";
const OP_NS: &str = "multus-e2e-dra";
const OPERATOR: &str = "multus-e2e-dra-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-dra";
const APP_NS: &str = "multus-e2e-dra-app";
const DRIVER: &str = "e2e-dra.example.com";
const RESOURCE: &str = "e2e.example.com/dranic";
/// The driver's devices with the attributes; the n-th has deviceID
/// `0000:00:1d.<n>`.
const DEVICES: [&str; 2] = ["dnic-0", "dnic-1"];
/// The driver's device without attributes.
const BARE: &str = "dbare-0";
/// ResourceClaimTemplates (and the standalone claim) selecting a device
/// with, or without, the attributes.
const WITH_ATTRIBUTES: &str = "e2e-dranic";
const WITHOUT_ATTRIBUTES: &str = "e2e-dranic-bare";
const SHARED_CLAIM: &str = "e2e-dranic-shared";
const NAD: &str = "e2e-dranic";
const WRAPPER: &str = "/opt/cni/bin/e2e-dra-record-bridge";
const RECORDS: &str = "/var/tmp/multus-e2e-dra";
const BRIDGE: &str = "e2edra0";
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks/e2e-dranic";

const MINUTE: Duration = Duration::from_secs(60);

fn nad_config() -> String {
    json!({
        "cniVersion": "1.0.0", "name": NAD, "type": "e2e-dra-record-bridge", "bridge": BRIDGE,
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.253.0.0/24"}]]}
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
/// pods and claims while Multus and the driver still release them, the
/// release, the host files. The driver's own objects go when it stops.
fn remove_everything() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    remove_link(BRIDGE);
    for path in [WRAPPER, RECORDS, HOST_LOCAL_DIR] {
        remove_path(path);
    }
}

/// Whether the API server serves ResourceClaims of `resource.k8s.io/v1`
/// (discovery; a 404 for the group/version means no).
async fn serves_resource_claims(client: &kube::Client) -> bool {
    match client.list_api_group_resources("resource.k8s.io/v1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == "resourceclaims"),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(e) => panic!("discovery of resource.k8s.io/v1: {e}"),
    }
}

/// A device request of the driver's class: a device with the Multus
/// attributes, or one without them.
fn device_claim_spec(with_attributes: bool) -> Value {
    let has = r#""resourceName" in device.attributes["k8s.cni.cncf.io"]"#;
    let expression = if with_attributes {
        has.to_owned()
    } else {
        format!("!({has})")
    };
    json!({"devices": {"requests": [{"name": "nic", "exactly": {
        "deviceClassName": DRIVER,
        "selectors": [{"cel": {"expression": expression}}]
    }}]}})
}

async fn create_claim_objects(client: &kube::Client) {
    let templates: Api<ResourceClaimTemplate> = Api::namespaced(client.clone(), APP_NS);
    for (name, with_attributes) in [(WITH_ATTRIBUTES, true), (WITHOUT_ATTRIBUTES, false)] {
        let template: ResourceClaimTemplate = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {"spec": device_claim_spec(with_attributes)}
        }))
        .unwrap();
        templates
            .create(&PostParams::default(), &template)
            .await
            .unwrap_or_else(|e| panic!("creating ResourceClaimTemplate {name}: {e}"));
    }
    let claims: Api<ResourceClaim> = Api::namespaced(client.clone(), APP_NS);
    let claim: ResourceClaim = serde_json::from_value(json!({
        "metadata": {"name": SHARED_CLAIM, "namespace": APP_NS},
        "spec": device_claim_spec(true)
    }))
    .unwrap();
    claims
        .create(&PostParams::default(), &claim)
        .await
        .unwrap_or_else(|e| panic!("creating ResourceClaim {SHARED_CLAIM}: {e}"));
}

#[tokio::test]
async fn dra_devices_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    let client = e2e.client.clone();
    if !serves_resource_claims(&client).await {
        eprintln!(
            "SKIPPED {TEST}: the API server does not serve resource.k8s.io/v1 ResourceClaims \
             (Dynamic Resource Allocation, Kubernetes 1.34 and later)"
        );
        return;
    }
    e2e.log
        .step("preflight: remove leftovers; no Multus but ours");
    remove_everything();
    assert_no_multus_configs(&client).await;
    // Reverse order at the end: pods and claims first (the driver must
    // still answer the kubelet's unprepare calls), then the driver.
    let driver_slot: Rc<RefCell<Option<TestDraDriver>>> = Rc::new(RefCell::new(None));
    let slot = driver_slot.clone();
    e2e.arm_teardown(
        &[OP_NS, APP_NS],
        "stop the test DRA driver (it removes its slice and class)",
        move || drop(slot.borrow_mut().take()),
    );
    e2e.arm_teardown(
        &[OP_NS, APP_NS],
        "remove the pods and claims, the release and the host files",
        remove_everything,
    );
    let log = &mut e2e.log;

    log.step("the test DRA driver publishes its devices and registers with the kubelet");
    let kubeconfig = e2e_kubeconfig().expect("MULTUS_E2E_KUBECONFIG");
    let driver_log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-test-dra-driver.log");
    let driver = TestDraDriver::start(
        env!("CARGO_BIN_EXE_test-dra-driver"),
        &driver_log,
        &[
            "--driver",
            DRIVER,
            "--resource",
            RESOURCE,
            "--devices",
            &DEVICES.join(","),
            "--bare-devices",
            BARE,
        ],
        Some(&kubeconfig),
    );
    driver.wait_registered(MINUTE).await;
    *driver_slot.borrow_mut() = Some(driver);
    let node = host_name();

    log.step("install the chart and the recording delegate");
    std::fs::write(WRAPPER, wrapper_script()).unwrap();
    Cmd::new("chmod", ["755", WRAPPER]).ok().await;
    install_privileged(&client, RELEASE, OP_NS, OPERATOR, &[]).await;
    wait_mc_ready(&client, "default", 3 * MINUTE).await;
    create_namespace(&client, APP_NS).await;
    create_nad(&client, &nad_for_resource()).await;
    create_claim_objects(&client).await;

    log.step("a holder pod keeps the standalone claim in use");
    TestPod::new(APP_NS, "dra-holder")
        .claim("shared", SHARED_CLAIM)
        .create(&client)
        .await;
    wait_pod_ready(&client, APP_NS, "dra-holder", 2 * MINUTE).await;

    log.step("a pod with a template claim and the shared claim attaches the NAD twice");
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    TestPod::new(APP_NS, "dra-nic")
        .networks(&format!("{NAD},{NAD}"))
        .claim_from_template("nic", WITH_ATTRIBUTES)
        .claim("shared", SHARED_CLAIM)
        .create(&client)
        .await;
    let pod = wait_pod_ready(&client, APP_NS, "dra-nic", 2 * MINUTE).await;
    let claims: Api<ResourceClaim> = Api::namespaced(client.clone(), APP_NS);
    // The pod's claims in its status order, each with its device: net1
    // gets the first claim's, net2 the second's.
    let mut held = Vec::new();
    for name in pod_claim_names(&pod) {
        let claim = claims.get(&name).await.unwrap();
        held.push((name, allocated_device(&claim)));
    }
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(
        held[1].0, SHARED_CLAIM,
        "spec order: template claim, then shared"
    );
    log.note(&format!("the scheduler allocated {held:?}"));

    let sandbox = sandbox_id();
    let status = network_status(&pod);
    for ((claim, device), ifname) in held.iter().zip(["net1", "net2"]) {
        let id = device_id(device);
        let conf = record(&format!("ADD-{sandbox}-{ifname}"));
        assert_eq!(conf["deviceID"], id.as_str(), "{ifname}: {conf}");
        assert_eq!(conf["pciBusID"], id.as_str(), "{ifname}: {conf}");
        assert_eq!(conf["runtimeConfig"]["deviceID"], id.as_str(), "{conf}");
        let entry = status
            .iter()
            .find(|e| e["interface"] == ifname)
            .unwrap_or_else(|| panic!("no {ifname} in {status:?}"));
        let ips: Vec<String> = entry["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ip| format!("{}/24", ip.as_str().unwrap()))
            .collect();
        let want = json!({"interfaceName": ifname, "ips": ips, "hardwareAddress": entry["mac"]});
        let written = wait_claim_entry(&claims, claim, device, &node, Some(&want)).await;
        assert_eq!(written["conditions"][0]["type"], "Ready", "{written}");
        assert_eq!(written["conditions"][0]["status"], "True", "{written}");
        let managers = claim_managers(&claims.get(claim).await.unwrap());
        assert!(
            managers.contains(&format!("multus-{sandbox}")),
            "{claim}: managers {managers:?}"
        );
    }
    log.note("deviceIDs in claim order; both claims show net1/net2 with IPs and MAC");

    log.step("a pod whose claim's device lacks the attributes does not start");
    TestPod::new(APP_NS, "dra-bare")
        .networks(NAD)
        .claim_from_template("nic", WITHOUT_ATTRIBUTES)
        .create(&client)
        .await;
    let event = wait_event(
        &client,
        APP_NS,
        "dra-bare",
        "FailedCreatePodSandBox",
        2 * MINUTE,
    )
    .await;
    let message = event.message.clone().unwrap_or_default();
    let bare_pod = pods.get("dra-bare").await.unwrap();
    let bare_claim = pod_claim_names(&bare_pod)
        .pop()
        .expect("the bare pod's claim");
    for part in [
        format!("{APP_NS}/{NAD}"),
        RESOURCE.to_owned(),
        format!("pod {APP_NS}/dra-bare"),
        format!("ResourceClaim {APP_NS}/{bare_claim}"),
        format!("device {DRIVER}/{node}/{BARE}"),
        "lacks the attributes k8s.cni.cncf.io/resourceName and k8s.cni.cncf.io/deviceID".to_owned(),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
    delete_pod(&pods, "dra-bare").await;

    log.step("deleting the pod: DEL gets the devices, the shared claim loses our entry");
    delete_pod(&pods, "dra-nic").await;
    for ((_, device), ifname) in held.iter().zip(["net1", "net2"]) {
        let name = format!("DEL-{sandbox}-{ifname}");
        wait_until(&format!("{name} recorded"), MINUTE, async || {
            if Path::new(RECORDS).join(format!("{name}.json")).exists() {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        })
        .await;
        let del = record(&name);
        assert_eq!(del["deviceID"], device_id(device).as_str(), "{del}");
    }
    let (_, shared_device) = &held[1];
    wait_claim_entry(&claims, SHARED_CLAIM, shared_device, &node, None).await;
    let shared = claims.get(SHARED_CLAIM).await.unwrap();
    assert_eq!(
        allocated_device(&shared),
        *shared_device,
        "still allocated for the holder pod"
    );
    let managers = claim_managers(&shared);
    assert!(
        !managers.iter().any(|m| m.starts_with("multus-")),
        "managers {managers:?}"
    );

    e2e.tear_down();
    e2e.finish();
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

/// `resourceClaimName` of each of the pod's claims, in status order.
fn pod_claim_names(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.resource_claim_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.resource_claim_name)
        .collect()
}

/// The one device of the driver allocated to the claim.
fn allocated_device(claim: &ResourceClaim) -> String {
    let results = claim
        .status
        .as_ref()
        .and_then(|s| s.allocation.as_ref())
        .and_then(|a| a.devices.as_ref())
        .and_then(|d| d.results.clone())
        .unwrap_or_default();
    match results.as_slice() {
        [one] if one.driver == DRIVER => one.device.clone(),
        other => panic!("claim {}: allocation {other:?}", claim.name_any()),
    }
}

/// The deviceID the driver publishes for `device` (`0000:00:1d.<n>`).
fn device_id(device: &str) -> String {
    let index = DEVICES
        .iter()
        .position(|d| *d == device)
        .unwrap_or_else(|| panic!("{device} is not one of {DEVICES:?}"));
    format!("0000:00:1d.{index}")
}

/// The field managers of the claim's status.
fn claim_managers(claim: &ResourceClaim) -> Vec<String> {
    claim
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// Waits until claim `name`'s `status.devices` entry of `device` (pool =
/// node) has the network data `want`, or, with `None`, until there is no
/// such entry; returns the entry (or `Null`).
async fn wait_claim_entry(
    claims: &Api<ResourceClaim>,
    name: &str,
    device: &str,
    node: &str,
    want: Option<&Value>,
) -> Value {
    let what = match want {
        Some(data) => format!("ResourceClaim {name}: {device}'s networkData {data}"),
        None => format!("ResourceClaim {name}: no status entry of {device}"),
    };
    wait_until(&what, MINUTE, async || {
        let claim = claims.get(name).await.map_err(|e| e.to_string())?;
        let status = serde_json::to_value(claim.status.unwrap_or_default()).unwrap();
        let entry = status["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["driver"] == DRIVER && d["pool"] == node && d["device"] == device)
            .cloned();
        match (want, entry) {
            (Some(data), Some(entry)) if entry["networkData"] == *data => Ok(entry),
            (None, None) => Ok(Value::Null),
            (_, entry) => Err(format!(
                "entry of {device}: {}; status.devices: {}",
                entry.map_or_else(|| "none".to_owned(), |e| e.to_string()),
                status["devices"]
            )),
        }
    })
    .await
}

/// The pod's network-status entries.
fn network_status(pod: &Pod) -> Vec<Value> {
    let status = pod
        .annotations()
        .get(NETWORK_STATUS_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| panic!("no network-status: {:?}", pod.annotations()));
    serde_json::from_str(&status).unwrap()
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
