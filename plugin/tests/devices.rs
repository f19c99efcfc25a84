//! Device-aware attachments end to end through the `multus` binary, run as
//! a runtime runs it: a fake kubelet (a real PodResources gRPC server on a
//! unix socket in this process), a fake API server, real plugins behind a
//! wrapper that records what each delegate received, in a real network
//! namespace. Root only; everything lives in the sandbox's temp dir and is
//! removed on drop, also when a test fails.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::fake_api::*;
use common::fake_cri::{FakeRuntime, serve_runtime, sync};
use common::*;
use serde_json::{Value, json};

/// The server side of `proto/podresources_v1.proto`.
#[allow(clippy::all, missing_debug_implementations)]
mod kubelet {
    include!(concat!(env!("OUT_DIR"), "/full/v1.rs"));
}

use kubelet::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use kubelet::{
    ContainerDevices, ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse,
    ListPodResourcesRequest, ListPodResourcesResponse, PodResources,
};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const RESOURCE: &str = "example.com/nic";
const DRIVER: &str = "nic.example.com";

/// A kubelet that knows one pod's devices and records the calls.
#[derive(Clone)]
struct FakeKubelet {
    pods: Vec<PodResources>,
    /// Whether `Get` is served (Kubernetes 1.34+); else it fails as 1.28's.
    get_enabled: bool,
    /// How many calls to refuse first, as the kubelet's rate limiter does.
    rate_limited: Arc<Mutex<usize>>,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl FakeKubelet {
    /// Records a call; `Err` while the rate limiter refuses it.
    fn call(&self, name: &'static str) -> Result<(), tonic::Status> {
        self.calls.lock().unwrap().push(name);
        let mut refuse = self.rate_limited.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return Err(tonic::Status::resource_exhausted("rejected by rate limit"));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: tonic::Request<ListPodResourcesRequest>,
    ) -> Result<tonic::Response<ListPodResourcesResponse>, tonic::Status> {
        self.call("List")?;
        Ok(tonic::Response::new(ListPodResourcesResponse {
            pod_resources: self.pods.clone(),
        }))
    }

    async fn get(
        &self,
        request: tonic::Request<GetPodResourcesRequest>,
    ) -> Result<tonic::Response<GetPodResourcesResponse>, tonic::Status> {
        self.call("Get")?;
        if !self.get_enabled {
            // What a 1.28 kubelet answers (the feature gate is off).
            return Err(tonic::Status::unknown(
                "PodResources API Get method disabled",
            ));
        }
        let want = request.into_inner();
        let pod = self
            .pods
            .iter()
            .find(|p| p.name == want.pod_name && p.namespace == want.pod_namespace)
            .cloned()
            .ok_or_else(|| tonic::Status::unknown("pod not found"))?;
        Ok(tonic::Response::new(GetPodResourcesResponse {
            pod_resources: Some(pod),
        }))
    }
}

/// Serves `kubelet` on `socket` from a background thread until the
/// returned sender is dropped (also when the test panics).
fn serve_kubelet(socket: &Path, kubelet: FakeKubelet) -> tokio::sync::oneshot::Sender<()> {
    serve_grpc(
        socket,
        tonic::service::Routes::new(PodResourcesListerServer::new(kubelet)),
    )
}

fn pod_resources(name: &str, containers: &[(&str, &[&str])]) -> PodResources {
    PodResources {
        name: name.into(),
        namespace: "default".into(),
        containers: containers
            .iter()
            .map(|(container, ids)| ContainerResources {
                name: (*container).into(),
                devices: vec![ContainerDevices {
                    resource_name: RESOURCE.into(),
                    device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                }],
                dynamic_resources: Vec::new(),
            })
            .collect(),
    }
}

/// One test's world: sandbox, fake API and kubelet, the recording plugin.
struct World {
    id: String,
    sb: Sandbox,
    api: Shared,
    calls: Arc<Mutex<Vec<&'static str>>>,
    /// Calls the kubelet refuses before answering.
    rate_limited: Arc<Mutex<usize>>,
    conf: Value,
    data: PathBuf,
    _stops: (
        tokio::sync::oneshot::Sender<()>,
        Option<tokio::sync::oneshot::Sender<()>>,
    ),
}

impl World {
    /// Pod `pod-<id>` with the networks annotation `networks`; NADs `nic`
    /// (resource example.com/nic, recording delegate), `other` (resource
    /// example.com/other), `plain` (no resource) and `broken` (its plugin
    /// does not exist); the kubelet lists the
    /// pod with `containers` (None: no kubelet on the socket).
    fn new(
        id: &str,
        networks: &str,
        containers: Option<&[(&str, &[&str])]>,
        get_enabled: bool,
    ) -> Self {
        let mut sb = Sandbox::new();
        let data = sb.path("ipam");
        let (br0, br1, br2) = (sb.bridge(), sb.bridge(), sb.bridge());

        // The recording wrapper: saves its stdin and which device-info
        // files exist, then runs the real bridge plugin (except for CHECK:
        // the bridge's MAC changes as ports join it, failing bridge's own
        // CHECK of a pod with two ports on one bridge).
        let bin = sb.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let rec = sb.path("rec");
        let devinfo = sb.path("devinfo");
        let script = format!(
            "#!/bin/sh\nset -e\nmkdir -p {rec}\nf={rec}/$CNI_COMMAND-$CNI_IFNAME.json\ncat > \"$f\"\nls {devinfo}/cni > {rec}/$CNI_COMMAND-$CNI_IFNAME.devinfo 2>/dev/null || true\n[ \"$CNI_COMMAND\" != CHECK ] || exit 0\nexec {CNI_BIN}/bridge < \"$f\"\n",
            rec = rec.display(),
            devinfo = devinfo.display(),
        );
        let wrapper = bin.join("record-bridge");
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut nic = bridge_conf("nic-net", &br1, "10.97.2.0/24", &data);
        nic["type"] = json!("record-bridge");
        nic["capabilities"] = json!({"deviceID": true, "CNIDeviceInfoFile": true});
        // Its own bridge: bridge's CHECK fails when the bridge's MAC
        // changed as later ports joined it.
        let plain = bridge_conf("plain-net", &br2, "10.97.3.0/24", &data);
        let with_resource = |name: &str, config: &Value, resource: &str| {
            let mut n = nad("default", name, config);
            n["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/resourceName": resource});
            ("default".to_owned(), name.to_owned(), n)
        };
        let api: Shared = Arc::new(Mutex::new(Api {
            pod: json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{id}"), "namespace": "default", "uid": format!("uid-{id}"),
                    "annotations": {NETWORKS: networks}},
                "spec": {"containers": [{"name": "app", "image": "i"}]}
            }),
            nads: vec![
                with_resource("nic", &nic, RESOURCE),
                with_resource("other", &nic, "example.com/other"),
                (
                    "default".into(),
                    "plain".into(),
                    nad("default", "plain", &plain),
                ),
                (
                    "default".into(),
                    "broken".into(),
                    nad(
                        "default",
                        "broken",
                        &json!({"cniVersion": "1.0.0", "type": "no-such-plugin"}),
                    ),
                ),
            ],
            ..Api::default()
        }));
        let (addr, api_stop) = serve(api.clone());

        let socket = sb.path("kubelet.sock");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rate_limited = Arc::new(Mutex::new(0));
        let kubelet_stop = containers.map(|containers| {
            let kubelet = FakeKubelet {
                pods: vec![
                    pod_resources("someone-else", &[("x", &["nic-z"])]),
                    pod_resources(&format!("pod-{id}"), containers),
                ],
                get_enabled,
                rate_limited: rate_limited.clone(),
                calls: calls.clone(),
            };
            serve_kubelet(&socket, kubelet)
        });
        let conf = json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
            "kubeconfig": write_kubeconfig(&sb, addr), "cniDir": sb.path("cache"),
            "confDir": sb.path("none"), "binDir": bin,
            "podResourcesSocket": socket, "deviceInfoDir": devinfo,
            "delegates": [bridge_conf("cluster", &br0, "10.97.1.0/24", &data)]
        });
        Self {
            id: id.to_owned(),
            sb,
            api,
            calls,
            rate_limited,
            conf,
            data,
            _stops: (api_stop, kubelet_stop),
        }
    }

    /// The pod gets the ResourceClaim `pod-<id>-nic` (from a template)
    /// with `allocated` devices of driver nic.example.com on node-a, whose
    /// ResourceSlice lists `devices` (name, resourceName, deviceID).
    fn with_claim(
        self,
        allocated: &[&str],
        devices: &[(&str, Option<&str>, Option<&str>)],
    ) -> Self {
        let claim_name = self.claim_name();
        {
            let mut api = self.api.lock().unwrap();
            api.pod["spec"]["nodeName"] = json!("node-a");
            api.pod["status"] = json!({"resourceClaimStatuses": [
                {"name": "nic", "resourceClaimName": claim_name}]});
            let results: Vec<Value> = allocated
                .iter()
                .map(|d| json!({"request": "nic", "driver": DRIVER, "pool": "node-a", "device": d}))
                .collect();
            api.claims.push(json!({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": claim_name, "namespace": "default", "uid": "claim-uid"},
                "spec": {"devices": {"requests": [{"name": "nic", "exactly": {"deviceClassName": "nic"}}]}},
                "status": {"allocation": {"devices": {"results": results}}}
            }));
            let devices: Vec<Value> = devices
                .iter()
                .map(|(name, resource, id)| {
                    let mut attributes = serde_json::Map::new();
                    if let Some(r) = resource {
                        attributes
                            .insert("k8s.cni.cncf.io/resourceName".into(), json!({"string": r}));
                    }
                    if let Some(i) = id {
                        attributes.insert("k8s.cni.cncf.io/deviceID".into(), json!({"string": i}));
                    }
                    json!({"name": name, "attributes": attributes})
                })
                .collect();
            api.slices.push(json!({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                "metadata": {"name": "node-a-nic"},
                "spec": {"driver": DRIVER, "nodeName": "node-a",
                    "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
                    "devices": devices}
            }));
        }
        self
    }

    fn claim_name(&self) -> String {
        format!("pod-{}-nic", self.id)
    }

    /// The API requests made so far: (method, path, body, query).
    fn requests(&self) -> Vec<(String, String, String, String)> {
        let api = self.api.lock().unwrap();
        api.requests
            .iter()
            .zip(&api.queries)
            .map(|((m, p, b), q)| (m.clone(), p.clone(), b.clone(), q.clone()))
            .collect()
    }

    /// The bodies of the requests of `method` to paths ending in `suffix`.
    fn bodies(&self, method: &str, suffix: &str) -> Vec<Value> {
        request_bodies(&self.api, method, suffix)
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    /// What the recording delegate received for `command` on `ifname`.
    fn received(&self, command: &str, ifname: &str) -> Value {
        let path = self.sb.path(&format!("rec/{command}-{ifname}.json"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{} not recorded: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The device-info files that existed when the delegate ran.
    fn device_info_seen(&self, command: &str, ifname: &str) -> String {
        std::fs::read_to_string(self.sb.path(&format!("rec/{command}-{ifname}.devinfo")))
            .unwrap_or_default()
    }

    fn device_info_file(&self, name: &str) -> PathBuf {
        self.sb.path("devinfo/cni").join(name)
    }

    fn network_status(&self) -> Vec<Value> {
        let requests = self.api.lock().unwrap().requests.clone();
        let patch = requests
            .iter()
            .find(|(m, p, _)| m == "PATCH" && p.ends_with("/status"))
            .expect("a status update");
        let body: Value = serde_json::from_str(&patch.2).unwrap();
        serde_json::from_str(
            body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    fn run(&self, command: &str, id: &str) -> Outcome {
        multus(command, id, Some(&self.sb.netns_path()), &self.conf)
    }
}

fn assert_ok(outcome: &Outcome, what: &str) {
    assert!(
        outcome.success,
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&outcome.stdout),
        outcome.stderr
    );
}

#[test]
fn nads_naming_a_resource_get_the_pods_devices() {
    if !multus_e2e::root_or_skip("nads_naming_a_resource_get_the_pods_devices") {
        return;
    }
    let id = format!("dev{}", unique());
    // Two networks of the resource, a plain one between them; the pod's
    // devices: nic-b and nic-a in one container (sorted: nic-a first).
    let w = World::new(
        &id,
        r#"[{"name":"nic"},{"name":"plain"},{"name":"nic","interface":"data0"}]"#,
        Some(&[("app", &["nic-b", "nic-a"])]),
        false,
    );
    // The device plugin left device information for nic-a only.
    let dp = w.sb.path("devinfo/dp/example.com-nic-nic-a-device.json");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(
        &dp,
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.1"}}"#,
    )
    .unwrap();

    let add = w.run("ADD", &id);
    assert_ok(&add, "ADD");
    assert_eq!(
        *w.calls.lock().unwrap(),
        ["Get", "List"],
        "Get refused as by a 1.28 kubelet, then List"
    );

    let net1 = w.received("ADD", "net1");
    assert_eq!(net1["deviceID"], "nic-a", "{net1}");
    assert_eq!(net1["pciBusID"], "nic-a");
    assert_eq!(net1["runtimeConfig"]["deviceID"], "nic-a");
    let file1 = w.device_info_file(&format!("default-nic-{id}_net1"));
    assert_eq!(
        net1["runtimeConfig"]["CNIDeviceInfoFile"],
        json!(file1.display().to_string())
    );
    assert!(
        w.device_info_seen("ADD", "net1")
            .contains(&format!("default-nic-{id}_net1")),
        "the device-info file is in place before the delegate runs"
    );
    let data0 = w.received("ADD", "data0");
    assert_eq!(data0["deviceID"], "nic-b");
    assert_eq!(data0["runtimeConfig"]["deviceID"], "nic-b");
    assert!(file1.exists());
    assert!(
        !w.device_info_file(&format!("default-nic-{id}_data0"))
            .exists(),
        "no device plugin file for nic-b, nothing to hand over"
    );

    let status = w.network_status();
    let find = |ifname: &str| {
        status
            .iter()
            .find(|s| s["interface"] == ifname)
            .unwrap_or_else(|| panic!("no {ifname} in {status:?}"))
            .clone()
    };
    assert_eq!(
        find("net1")["device-info"],
        json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.1"}})
    );
    assert!(find("data0").get("device-info").is_none());
    assert!(find("net2").get("device-info").is_none());

    // CHECK and DEL use the cached configs: the same devices.
    let check = w.run("CHECK", &id);
    assert_ok(&check, "CHECK");
    assert_eq!(w.received("CHECK", "net1")["deviceID"], "nic-a");
    let del = w.run("DEL", &id);
    assert_ok(&del, "DEL");
    assert_eq!(w.received("DEL", "data0")["deviceID"], "nic-b");
    assert_eq!(
        w.received("DEL", "net1")["runtimeConfig"]["deviceID"],
        "nic-a"
    );
    assert!(!file1.exists(), "DEL removes the device-info file");
    assert_eq!(w.calls.lock().unwrap().len(), 2, "DEL asks no kubelet");
    assert_eq!(w.sb.links(), ["lo"]);
    assert!(allocations(&w.data).is_empty());
}

#[test]
fn get_is_used_when_the_kubelet_serves_it() {
    if !multus_e2e::root_or_skip("get_is_used_when_the_kubelet_serves_it") {
        return;
    }
    let id = format!("dev{}", unique());
    let w = World::new(
        &id,
        "nic",
        Some(&[("init", &["nic-9"]), ("app", &["nic-1"])]),
        true,
    );
    // The kubelet's rate limiter refuses the first two calls.
    *w.rate_limited.lock().unwrap() = 2;
    let add = w.run("ADD", &id);
    assert_ok(&add, "ADD");
    assert_eq!(*w.calls.lock().unwrap(), ["Get", "Get", "Get"]);
    assert_eq!(
        w.received("ADD", "net1")["deviceID"],
        "nic-9",
        "containers in the kubelet's order"
    );
    assert_ok(&w.run("DEL", &id), "DEL");
}

#[test]
fn a_missing_device_fails_add_naming_nad_resource_and_pod() {
    if !multus_e2e::root_or_skip("a_missing_device_fails_add_naming_nad_resource_and_pod") {
        return;
    }
    // A resource the pod does not hold.
    let id = format!("dev{}", unique());
    let w = World::new(&id, "nic,other", Some(&[("app", &["nic-0"])]), false);
    let add = w.run("ADD", &id);
    assert!(!add.success, "{}", add.stderr);
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    for part in [
        "default/other",
        "example.com/other",
        &format!("pod default/pod-{id}"),
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    assert_eq!(err["code"], 7);
    // Nothing ran, nothing is left.
    assert_eq!(w.sb.links(), ["lo"]);
    assert!(!w.sb.path(&format!("cache/{id}")).exists());
    assert!(!w.sb.path("rec").exists(), "no delegate ran");
    assert!(allocations(&w.data).is_empty());

    // More networks than devices: the second names who took the only one.
    let id = format!("dev{}", unique());
    let w = World::new(&id, "nic,nic", Some(&[("app", &["nic-0"])]), false);
    let add = w.run("ADD", &id);
    assert!(!add.success);
    let msg = add.json()["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("holds only 1"), "{msg}");
    assert!(msg.contains("(default/nic)"), "{msg}");
    assert_eq!(w.sb.links(), ["lo"]);
}

#[test]
fn an_absent_kubelet_socket_is_named_and_only_asked_for_devices() {
    if !multus_e2e::root_or_skip("an_absent_kubelet_socket_is_named_and_only_asked_for_devices") {
        return;
    }
    // No kubelet on the socket: a pod without resource NADs never asks.
    let id = format!("dev{}", unique());
    let w = World::new(&id, "plain", None, false);
    let add = w.run("ADD", &id);
    assert_ok(&add, "ADD without resource NADs");
    assert_ok(&w.run("DEL", &id), "DEL");

    let id = format!("dev{}", unique());
    let w = World::new(&id, "plain,nic", None, false);
    let add = w.run("ADD", &id);
    assert!(!add.success);
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    let socket = w.sb.path("kubelet.sock").display().to_string();
    assert!(msg.contains(&socket), "{msg}");
    assert!(msg.contains("default/nic"), "{msg}");
    assert!(msg.contains(RESOURCE), "{msg}");
    assert_eq!(err["code"], 11, "the kubelet may come back: try again");
    assert_eq!(w.sb.links(), ["lo"]);
    assert!(!w.sb.path(&format!("cache/{id}")).exists());
}

#[test]
fn a_failed_add_rolls_back_and_removes_the_device_info_files() {
    if !multus_e2e::root_or_skip("a_failed_add_rolls_back_and_removes_the_device_info_files") {
        return;
    }
    let id = format!("dev{}", unique());
    let w = World::new(&id, "nic,broken", Some(&[("app", &["nic-0"])]), false);
    let dp = w.sb.path("devinfo/dp/example.com-nic-nic-0-device.json");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(&dp, r#"{"type":"pci","version":"1.1.0"}"#).unwrap();
    let add = w.run("ADD", &id);
    assert!(!add.success);
    assert!(
        add.json()["msg"]
            .as_str()
            .unwrap()
            .contains("default/broken"),
        "{}",
        add.stderr
    );
    assert!(
        w.device_info_seen("ADD", "net1")
            .contains(&format!("default-nic-{id}_net1")),
        "the device-info file was handed over"
    );
    assert_eq!(
        w.received("DEL", "net1")["deviceID"],
        "nic-0",
        "rolled back"
    );
    assert!(
        !w.device_info_file(&format!("default-nic-{id}_net1"))
            .exists(),
        "and its device-info file removed"
    );
    assert!(dp.exists(), "the device plugin's own file stays");
    assert_eq!(w.sb.links(), ["lo"]);
    assert!(!w.sb.path(&format!("cache/{id}")).exists());
    assert!(allocations(&w.data).is_empty());
}

/// The MAC of `ifname` in the sandbox.
fn mac(sb: &Sandbox, ifname: &str) -> String {
    let out = sh(&["ip", "-n", &sb.netns, "-j", "link", "show", "dev", ifname]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_owned()
}

#[test]
fn a_claim_device_serves_the_nad_and_its_network_data_goes_to_the_claim() {
    if !multus_e2e::root_or_skip(
        "a_claim_device_serves_the_nad_and_its_network_data_goes_to_the_claim",
    ) {
        return;
    }
    let id = format!("dra{}", unique());
    // The kubelet lists the pod without device-plugin devices; its claim
    // holds nic-0 (with the attributes) and a GPU (without).
    let w = World::new(&id, "plain,nic", Some(&[("app", &[][..])]), true).with_claim(
        &["gpu-0", "nic-0"],
        &[
            ("nic-0", Some(RESOURCE), Some("0000:00:01.0")),
            ("gpu-0", None, None),
        ],
    );
    let claim = w.claim_name();
    let claim_path = format!("/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{claim}");
    // A DRA driver in Multus mode leaves device-plugin-style device info.
    let dp =
        w.sb.path("devinfo/dp/example.com-nic-0000:00:01.0-device.json");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(
        &dp,
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:00:01.0"}}"#,
    )
    .unwrap();

    let add = w.run("ADD", &id);
    assert_ok(&add, "ADD");
    let net2 = w.received("ADD", "net2");
    assert_eq!(net2["deviceID"], "0000:00:01.0", "{net2}");
    assert_eq!(net2["pciBusID"], "0000:00:01.0");
    assert_eq!(net2["runtimeConfig"]["deviceID"], "0000:00:01.0");
    let file = w.device_info_file(&format!("default-nic-{id}_net2"));
    assert_eq!(
        net2["runtimeConfig"]["CNIDeviceInfoFile"],
        json!(file.display().to_string())
    );
    let status = w.network_status();
    let entry = status.iter().find(|s| s["interface"] == "net2").unwrap();
    assert_eq!(entry["device-info"]["pci"]["pci-address"], "0000:00:01.0");

    // The requests: 1 GET of the claim, 1 node-scoped LIST, 1 apply.
    let requests = w.requests();
    let count = |method: &str, path: &str| {
        requests
            .iter()
            .filter(|(m, p, _, _)| m == method && p == path)
            .count()
    };
    assert_eq!(count("GET", &claim_path), 1, "{requests:#?}");
    let lists: Vec<&String> = requests
        .iter()
        .filter(|(m, p, _, _)| m == "GET" && p == "/apis/resource.k8s.io/v1/resourceslices")
        .map(|(_, _, _, q)| q)
        .collect();
    assert_eq!(lists.len(), 1, "{requests:#?}");
    assert!(
        lists[0].contains("fieldSelector=spec.nodeName%3Dnode-a%2Cspec.driver%3Dnic.example.com"),
        "{}",
        lists[0]
    );
    assert_eq!(count("PATCH", &format!("{claim_path}/status")), 1);
    let (_, _, _, apply_query) = requests
        .iter()
        .find(|(m, p, _, _)| m == "PATCH" && p.ends_with(&format!("{claim}/status")))
        .unwrap();
    assert!(
        apply_query.contains(&format!("fieldManager=multus-{id}")),
        "{apply_query}"
    );
    let apply = &w.bodies("PATCH", &format!("{claim}/status"))[0];
    assert_eq!(apply["metadata"]["uid"], "claim-uid");
    let devices = apply["status"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "only the device a network uses: {apply}");
    assert_eq!(
        (
            &devices[0]["driver"],
            &devices[0]["pool"],
            &devices[0]["device"]
        ),
        (&json!(DRIVER), &json!("node-a"), &json!("nic-0"))
    );
    let ip = w.sb.addresses("net2").unwrap()[0].clone();
    assert_eq!(
        devices[0]["networkData"],
        json!({"interfaceName": "net2", "ips": [ip], "hardwareAddress": mac(&w.sb, "net2")})
    );
    assert_eq!(devices[0]["conditions"][0]["type"], "Ready");
    assert!(
        w.bodies("POST", "/events")
            .iter()
            .all(|e| e["type"] == "Normal"),
        "no warning"
    );
    // The cache records the claim device for DEL.
    let cache: Value =
        serde_json::from_slice(&std::fs::read(w.sb.path(&format!("cache/{id}"))).unwrap()).unwrap();
    assert_eq!(cache[2]["multusRs"]["draDevice"]["claimName"], json!(claim));

    // DEL from the cache: the same device, then our entry removed.
    let before = w.requests().len();
    let del = w.run("DEL", &id);
    assert_ok(&del, "DEL");
    assert_eq!(w.received("DEL", "net2")["deviceID"], "0000:00:01.0");
    let after = w.requests();
    let del_requests: Vec<(&str, &str)> = after[before..]
        .iter()
        .map(|(m, p, _, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        del_requests,
        [("PATCH", format!("{claim_path}/status").as_str())]
    );
    let release = w.bodies("PATCH", &format!("{claim}/status")).pop().unwrap();
    assert_eq!(release["status"], json!({"devices": []}));
    assert_eq!(release["metadata"]["uid"], "claim-uid");
    assert!(!file.exists());
    assert_eq!(w.sb.links(), ["lo"]);
}

#[test]
fn a_refused_claim_status_write_attaches_anyway_with_one_warning_event() {
    if !multus_e2e::root_or_skip(
        "a_refused_claim_status_write_attaches_anyway_with_one_warning_event",
    ) {
        return;
    }
    let id = format!("dra{}", unique());
    let w = World::new(&id, "nic", Some(&[("app", &[][..])]), true).with_claim(
        &["nic-0"],
        &[("nic-0", Some(RESOURCE), Some("0000:00:01.0"))],
    );
    w.api.lock().unwrap().claim_status_refused = true;
    let add = w.run("ADD", &id);
    assert_ok(&add, "ADD despite the refused write");
    assert_eq!(w.received("ADD", "net1")["deviceID"], "0000:00:01.0");
    let warnings: Vec<Value> = w
        .bodies("POST", "/events")
        .into_iter()
        .filter(|e| e["type"] == "Warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["reason"], "ClaimStatusNotWritten");
    let message = warnings[0]["message"].as_str().unwrap();
    for part in [
        "net1",
        &format!("default/{}", w.claim_name()),
        "403",
        "resourceclaims/status",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    assert_eq!(
        w.bodies("PATCH", &format!("{}/status", w.claim_name()))
            .len(),
        1,
        "a 403 is not retried"
    );
    // DEL still works (its removal is refused too, and only logged).
    assert_ok(&w.run("DEL", &id), "DEL");
    assert_eq!(w.sb.links(), ["lo"]);
}

#[test]
fn a_claim_device_without_the_attributes_fails_add_naming_claim_device_and_resource() {
    if !multus_e2e::root_or_skip(
        "a_claim_device_without_the_attributes_fails_add_naming_claim_device_and_resource",
    ) {
        return;
    }
    let id = format!("dra{}", unique());
    let w = World::new(&id, "nic", Some(&[("app", &[][..])]), true)
        .with_claim(&["nic-0"], &[("nic-0", None, Some("0000:00:01.0"))]);
    let add = w.run("ADD", &id);
    assert!(!add.success, "{}", add.stderr);
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    for part in [
        "default/nic",
        RESOURCE,
        &format!("pod default/pod-{id}"),
        &format!("ResourceClaim default/{}", w.claim_name()),
        "device nic.example.com/node-a/nic-0",
        "lacks the attribute k8s.cni.cncf.io/resourceName",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    assert_eq!(err["code"], 7);
    assert!(!w.sb.path("rec").exists(), "no delegate ran");
    assert!(
        w.bodies("PATCH", "/status")
            .iter()
            .all(|b| b.get("status").is_none()),
        "no claim write"
    );
    assert_eq!(w.sb.links(), ["lo"]);
}

#[test]
fn device_plugins_serve_first_and_then_no_claim_is_read() {
    if !multus_e2e::root_or_skip("device_plugins_serve_first_and_then_no_claim_is_read") {
        return;
    }
    let id = format!("dra{}", unique());
    let w = World::new(&id, "nic", Some(&[("app", &["nic-a"][..])]), true).with_claim(
        &["nic-0"],
        &[("nic-0", Some(RESOURCE), Some("0000:00:01.0"))],
    );
    assert_ok(&w.run("ADD", &id), "ADD");
    assert_eq!(w.received("ADD", "net1")["deviceID"], "nic-a");
    assert!(
        w.requests()
            .iter()
            .all(|(_, p, _, _)| !p.starts_with("/apis/resource.k8s.io")),
        "the device plugin served the only network: {:#?}",
        w.requests()
    );
    assert_ok(&w.run("DEL", &id), "DEL");
}

#[test]
fn hot_plugged_device_networks_get_a_free_device_of_the_pod() {
    if !multus_e2e::root_or_skip("hot_plugged_device_networks_get_a_free_device_of_the_pod") {
        return;
    }
    let id = format!("hpd{}", unique());
    // The pod holds nic-a and nic-b; ADD gives nic-a to net1.
    let w = World::new(&id, "nic", Some(&[("app", &["nic-b", "nic-a"])]), true);
    w.api.lock().unwrap().pod["status"] = json!({"podIP": "10.97.1.9"});
    assert_ok(&w.run("ADD", &id), "ADD");
    assert_eq!(w.received("ADD", "net1")["deviceID"], "nic-a");
    let cri = w.sb.path("cri.sock");
    let runtime = FakeRuntime::default();
    runtime
        .sandboxes
        .lock()
        .unwrap()
        .insert(format!("uid-{id}"), (id.clone(), Some(w.sb.netns_path())));
    let _stop = serve_runtime(&cri, runtime);
    let annotate = |networks: &str| {
        let mut api = w.api.lock().unwrap();
        api.pod["metadata"]["annotations"][NETWORKS] = json!(networks);
        api.pod.clone()
    };

    // A second network of the resource: the device net1 does not use.
    let outcome = sync(&w.conf, &annotate("nic,nic"), &cri);
    assert_eq!(outcome["state"], "InStep", "{outcome}");
    assert_eq!(
        outcome["attached"],
        json!([{"network": "default/nic", "interface": "net2"}])
    );
    let net2 = w.received("ADD", "net2");
    assert_eq!(net2["deviceID"], "nic-b", "{net2}");
    assert_eq!(net2["runtimeConfig"]["deviceID"], "nic-b");

    // A third: the pod holds no free device; nothing changes.
    let outcome = sync(&w.conf, &annotate("nic,nic,nic"), &cri);
    assert_eq!(outcome["state"], "Failed", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(
        message.contains(RESOURCE) && message.contains(&format!("pod-{id}")),
        "{message}"
    );
    let mut links = w.sb.links();
    links.sort();
    assert_eq!(links, ["eth0", "lo", "net1", "net2"]);

    // net2 removed: its device is free again for the next one.
    let outcome = sync(&w.conf, &annotate("nic"), &cri);
    assert_eq!(
        outcome["detached"],
        json!([{"network": "default/nic", "interface": "net2"}]),
        "{outcome}"
    );
    assert_eq!(w.received("DEL", "net2")["deviceID"], "nic-b");
    let outcome = sync(
        &w.conf,
        &annotate(r#"[{"name":"nic"},{"name":"nic","interface":"fast1"}]"#),
        &cri,
    );
    assert_eq!(outcome["state"], "InStep", "{outcome}");
    assert_eq!(w.received("ADD", "fast1")["deviceID"], "nic-b");

    assert_ok(&w.run("DEL", &id), "DEL");
    assert_eq!(w.received("DEL", "fast1")["deviceID"], "nic-b");
    assert_eq!(w.sb.links(), ["lo"]);
    assert!(allocations(&w.data).is_empty());
}
