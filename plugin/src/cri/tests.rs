use std::sync::{Arc, Mutex};

use super::*;

// ---------------------------------------------------------------------
// Verbose info, as containerd and CRI-O write it (abridged: the fields of
// containerd's SandboxInfo and CRI-O's createSandboxInfo, with the parts
// of the OCI spec and the sandbox config that matter here).

const POD_UID: &str = "0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90";
const CONTAINERD_NETNS: &str = "/var/run/netns/cni-3d2f6a1c-8b8e-2f4e-0c7a-6f1e9b2d4c11";
const CRIO_NETNS: &str = "/var/run/netns/5b7e2c14-91d0-4f3a-a2e6-0d8c3f6b9e27";

/// containerd 2.x, a pod with its own network namespace (1.6 and 1.7 have
/// no `sandboxMetadata`, and a `runtimeHandler`).
const CONTAINERD_POD: &str = r#"{
  "pid": 48211,
  "processStatus": "running",
  "netNamespaceClosed": false,
  "image": "registry.k8s.io/pause:3.10",
  "snapshotKey": "9a41c0b2e7d5f8a3b6c1d4e7f0a3b6c9d2e5f8a1b4c7d0e3f6a9b2c5d8e1f4a7",
  "snapshotter": "overlayfs",
  "runtimeType": "io.containerd.runc.v2",
  "runtimeOptions": {"systemd_cgroup": true},
  "config": {
    "metadata": {"name": "web-0", "uid": "0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90", "namespace": "default"},
    "hostname": "web-0",
    "log_directory": "/var/log/pods/default_web-0_0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90",
    "dns_config": {"servers": ["10.96.0.10"], "searches": ["default.svc.cluster.local"], "options": ["ndots:5"]},
    "labels": {"app": "web", "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": "0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90"},
    "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-conf", "kubernetes.io/config.source": "api"},
    "linux": {"cgroup_parent": "/kubepods/besteffort/pod0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90", "security_context": {"namespace_options": {"pid": 1}}}
  },
  "runtimeSpec": {
    "ociVersion": "1.2.0",
    "process": {"user": {"uid": 65535, "gid": 65535}, "args": ["/pause"], "cwd": "/", "noNewPrivileges": true, "oomScoreAdj": -998},
    "root": {"path": "rootfs", "readonly": true},
    "hostname": "web-0",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}],
    "annotations": {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "a3f9c27e", "io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "default", "io.kubernetes.cri.sandbox-uid": "0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90"},
    "linux": {
      "resources": {"devices": [{"allow": false, "access": "rwm"}], "cpu": {"shares": 2}},
      "cgroupsPath": "/kubepods/besteffort/pod0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90/a3f9c27e",
      "namespaces": [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network", "path": "/var/run/netns/cni-3d2f6a1c-8b8e-2f4e-0c7a-6f1e9b2d4c11"}
      ],
      "maskedPaths": ["/proc/acpi", "/proc/kcore"],
      "readonlyPaths": ["/proc/bus", "/proc/sys"]
    }
  },
  "cniResult": {
    "Interfaces": {
      "eth0": {"IPConfigs": [{"IP": "10.244.0.12", "Gateway": "10.244.0.1"}], "Mac": "a2:5c:19:7e:40:03", "Sandbox": "/var/run/netns/cni-3d2f6a1c-8b8e-2f4e-0c7a-6f1e9b2d4c11"},
      "lo": {"IPConfigs": [{"IP": "127.0.0.1", "Gateway": ""}], "Mac": "00:00:00:00:00:00", "Sandbox": "/var/run/netns/cni-3d2f6a1c-8b8e-2f4e-0c7a-6f1e9b2d4c11"}
    },
    "DNS": [{}, {}],
    "Routes": null
  },
  "sandboxMetadata": {
    "Version": "v1",
    "Metadata": {
      "ID": "a3f9c27e", "Name": "web-0_default_0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90_0",
      "Config": null,
      "NetNSPath": "/var/run/netns/cni-3d2f6a1c-8b8e-2f4e-0c7a-6f1e9b2d4c11",
      "IP": "10.244.0.12", "AdditionalIPs": null, "RuntimeHandler": "", "CNIResult": null, "ProcessLabel": ""
    }
  }
}"#;

/// containerd, a hostNetwork pod: no network (nor UTS) namespace in the
/// spec, an empty NetNSPath, no CNI result.
const CONTAINERD_HOST_NETWORK: &str = r#"{
  "pid": 1302,
  "processStatus": "running",
  "netNamespaceClosed": false,
  "image": "registry.k8s.io/pause:3.10",
  "snapshotter": "overlayfs",
  "runtimeType": "io.containerd.runc.v2",
  "config": {
    "metadata": {"name": "multus-agent-x7k2p", "uid": "6d1f0b7c-2a1e-4c8f-b3d9-8e0a5c4f2b61", "namespace": "kube-system"},
    "linux": {"security_context": {"namespace_options": {"network": 2, "pid": 1}}}
  },
  "runtimeSpec": {
    "ociVersion": "1.2.0",
    "process": {"args": ["/pause"], "cwd": "/"},
    "root": {"path": "rootfs", "readonly": true},
    "linux": {
      "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]
    }
  },
  "cniResult": null,
  "sandboxMetadata": {"Version": "v1", "Metadata": {"ID": "c81d", "NetNSPath": "", "IP": ""}}
}"#;

/// CRI-O with its default drop_infra_ctr: a spoofed infra container, only
/// the spec. CRI-O pins every namespace with pinns under /var/run.
const CRIO_POD: &str = r#"{
  "runtimeSpec": {
    "ociVersion": "1.0.2-dev",
    "process": {"user": {"uid": 0, "gid": 0}, "args": ["/pause"], "cwd": "/"},
    "root": {"path": "/var/lib/containers/storage/overlay/8c1e.../merged", "readonly": true},
    "hostname": "web-0",
    "annotations": {
      "io.kubernetes.cri-o.ContainerType": "sandbox",
      "io.kubernetes.cri-o.HostNetwork": "false",
      "io.kubernetes.cri-o.KubeName": "web-0",
      "io.kubernetes.cri-o.Namespace": "default",
      "io.kubernetes.cri-o.SandboxID": "7c0d41a9e2",
      "io.kubernetes.pod.uid": "0f3c6e0a-6a4b-4c5e-9d51-5f2b8c1e7a90"
    },
    "linux": {
      "namespaces": [
        {"type": "pid"},
        {"type": "network", "path": "/var/run/netns/5b7e2c14-91d0-4f3a-a2e6-0d8c3f6b9e27"},
        {"type": "ipc", "path": "/var/run/ipcns/5b7e2c14-91d0-4f3a-a2e6-0d8c3f6b9e27"},
        {"type": "uts", "path": "/var/run/utsns/5b7e2c14-91d0-4f3a-a2e6-0d8c3f6b9e27"},
        {"type": "mount"}
      ],
      "cgroupsPath": "kubepods-besteffort-pod0f3c6e0a_6a4b_4c5e_9d51_5f2b8c1e7a90.slice:crio:7c0d41a9e2"
    }
  }
}"#;

/// CRI-O with an infra container: image and pid beside the spec.
fn crio_with_infra_container() -> String {
    let spec: Value = serde_json::from_str(CRIO_POD).unwrap();
    serde_json::json!({
        "image": "registry.k8s.io/pause:3.10",
        "pid": 52109,
        "runtimeSpec": spec["runtimeSpec"],
    })
    .to_string()
}

/// CRI-O, a hostNetwork pod: pinns pins the node's namespace too, so the
/// spec has a network path; only the annotation tells.
const CRIO_HOST_NETWORK: &str = r#"{
  "runtimeSpec": {
    "ociVersion": "1.0.2-dev",
    "annotations": {"io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.cri-o.HostNetwork": "true"},
    "linux": {
      "namespaces": [
        {"type": "pid"},
        {"type": "network", "path": "/var/run/netns/e41f09d2-3c6b-4a8e-9f17-2b5d0c8a6e43"},
        {"type": "ipc", "path": "/var/run/ipcns/e41f09d2-3c6b-4a8e-9f17-2b5d0c8a6e43"},
        {"type": "uts", "path": "/var/run/utsns/e41f09d2-3c6b-4a8e-9f17-2b5d0c8a6e43"},
        {"type": "mount"}
      ]
    }
  }
}"#;

fn info(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn path(p: &str) -> Netns {
    Netns::Path(PathBuf::from(p))
}

#[test]
fn containerd_info_names_the_cni_namespace() {
    assert_eq!(
        netns_from_info(&info(&[("info", CONTAINERD_POD)])),
        Ok(path(CONTAINERD_NETNS))
    );
}

#[test]
fn containerd_host_network_has_no_namespace() {
    assert_eq!(
        netns_from_info(&info(&[("info", CONTAINERD_HOST_NETWORK)])),
        Ok(Netns::Node)
    );
}

#[test]
fn containerd_closed_namespace_is_told() {
    let closed = CONTAINERD_POD.replace(
        r#""netNamespaceClosed": false"#,
        r#""netNamespaceClosed": true"#,
    );
    assert_eq!(
        netns_from_info(&info(&[("info", &closed)])),
        Ok(Netns::Closed)
    );
}

#[test]
fn containerd_without_a_spec_falls_back_to_its_metadata() {
    // containerd: "RuntimeSpec may not be populated if the sandbox has not
    // been fully created".
    let mut value: Value = serde_json::from_str(CONTAINERD_POD).unwrap();
    value["runtimeSpec"] = Value::Null;
    let text = value.to_string();
    assert_eq!(
        netns_from_info(&info(&[("info", &text)])),
        Ok(path(CONTAINERD_NETNS))
    );
    let mut value: Value = serde_json::from_str(CONTAINERD_HOST_NETWORK).unwrap();
    value.as_object_mut().unwrap().remove("runtimeSpec");
    let text = value.to_string();
    assert_eq!(netns_from_info(&info(&[("info", &text)])), Ok(Netns::Node));
}

#[test]
fn crio_info_names_the_pinned_namespace() {
    assert_eq!(
        netns_from_info(&info(&[("info", CRIO_POD)])),
        Ok(path(CRIO_NETNS))
    );
    let with_infra = crio_with_infra_container();
    assert_eq!(
        netns_from_info(&info(&[("info", &with_infra)])),
        Ok(path(CRIO_NETNS))
    );
}

#[test]
fn crio_host_network_is_told_by_its_annotation() {
    assert_eq!(
        netns_from_info(&info(&[("info", CRIO_HOST_NETWORK)])),
        Ok(Netns::Node)
    );
}

#[test]
fn a_spec_under_another_key_is_found() {
    let found = netns_from_info(&info(&[
        ("config", "not json at all"),
        ("sandbox", "[1, 2]"),
        ("spec-info", CRIO_POD),
    ]));
    assert_eq!(found, Ok(path(CRIO_NETNS)));
    // "info" first, and a spec elsewhere when "info" has none.
    let found = netns_from_info(&info(&[
        ("info", r#"{"pid": 12, "processStatus": "running"}"#),
        ("other", CONTAINERD_POD),
    ]));
    assert_eq!(found, Ok(path(CONTAINERD_NETNS)));
}

#[test]
fn garbage_info_is_an_error() {
    let err = netns_from_info(&info(&[("info", "{\"runtimeSpec\": ")])).unwrap_err();
    assert!(err.contains("\"info\" is not JSON"), "{err}");
    let err = netns_from_info(&info(&[])).unwrap_err();
    assert!(err.contains("no verbose info"), "{err}");
    let err =
        netns_from_info(&info(&[("info", r#"{"pid": 12}"#), ("extra", "garbage")])).unwrap_err();
    assert!(err.contains("no runtimeSpec"), "{err}");
    assert!(err.contains(r#"["extra", "info"]"#), "{err}");
}

// ---------------------------------------------------------------------
// A fake runtime: the server side of `proto/cri_runtime_v1.proto` on a
// unix socket in a temp dir.

/// The server side of `proto/cri_runtime_v1.proto`.
#[allow(clippy::all, missing_debug_implementations)]
mod fake {
    include!(concat!(env!("OUT_DIR"), "/full/runtime.v1.rs"));
}

use fake::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// A runtime that knows some sandboxes and records the requests.
#[derive(Clone, Default)]
struct FakeRuntime {
    sandboxes: Vec<fake::PodSandbox>,
    statuses: HashMap<String, fake::PodSandboxStatusResponse>,
    /// Lists every sandbox whatever the filter (a runtime not to trust).
    ignore_filter: bool,
    /// What ListPodSandbox fails with.
    list_error: Option<tonic::Status>,
    lists: Arc<Mutex<Vec<fake::ListPodSandboxRequest>>>,
    status_requests: Arc<Mutex<Vec<fake::PodSandboxStatusRequest>>>,
}

#[tonic::async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(
        &self,
        request: tonic::Request<fake::VersionRequest>,
    ) -> Result<tonic::Response<fake::VersionResponse>, tonic::Status> {
        assert_eq!(request.into_inner().version, "v1");
        Ok(tonic::Response::new(fake::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "containerd".into(),
            runtime_version: "v2.1.4".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn pod_sandbox_status(
        &self,
        request: tonic::Request<fake::PodSandboxStatusRequest>,
    ) -> Result<tonic::Response<fake::PodSandboxStatusResponse>, tonic::Status> {
        let request = request.into_inner();
        self.status_requests.lock().unwrap().push(request.clone());
        self.statuses
            .get(&request.pod_sandbox_id)
            .cloned()
            .map(tonic::Response::new)
            .ok_or_else(|| {
                tonic::Status::not_found(format!(
                    "an error occurred when try to find sandbox: not found: {}",
                    request.pod_sandbox_id
                ))
            })
    }

    async fn list_pod_sandbox(
        &self,
        request: tonic::Request<fake::ListPodSandboxRequest>,
    ) -> Result<tonic::Response<fake::ListPodSandboxResponse>, tonic::Status> {
        let request = request.into_inner();
        self.lists.lock().unwrap().push(request.clone());
        if let Some(status) = &self.list_error {
            return Err(status.clone());
        }
        let filter = request.filter.unwrap_or_default();
        let items = self
            .sandboxes
            .iter()
            .filter(|s| {
                self.ignore_filter
                    || ((filter.id.is_empty() || s.id == filter.id)
                        && filter.state.as_ref().is_none_or(|v| v.state == s.state)
                        && filter
                            .label_selector
                            .iter()
                            .all(|(k, v)| s.labels.get(k) == Some(v)))
            })
            .cloned()
            .collect();
        Ok(tonic::Response::new(fake::ListPodSandboxResponse { items }))
    }
}

/// A temp dir with the fake runtime serving on `cri.sock` in it, until the
/// test's runtime ends.
struct Served {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

fn serve(runtime: FakeRuntime) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(runtime))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    Served { _dir: dir, socket }
}

const READY: i32 = fake::PodSandboxState::SandboxReady as i32;
const NOT_READY: i32 = fake::PodSandboxState::SandboxNotready as i32;

fn listed(id: &str, uid: &str, state: i32, created_at: i64) -> fake::PodSandbox {
    fake::PodSandbox {
        id: id.into(),
        metadata: Some(fake::PodSandboxMetadata {
            name: "web-0".into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        state,
        created_at,
        labels: HashMap::from([
            (POD_UID_LABEL.to_owned(), uid.to_owned()),
            ("io.kubernetes.pod.name".to_owned(), "web-0".to_owned()),
        ]),
        annotations: HashMap::new(),
        runtime_handler: String::new(),
    }
}

fn status(
    id: &str,
    state: i32,
    network: fake::NamespaceMode,
    info: &str,
) -> fake::PodSandboxStatusResponse {
    fake::PodSandboxStatusResponse {
        status: Some(fake::PodSandboxStatus {
            id: id.into(),
            metadata: None,
            state,
            created_at: 1,
            network: Some(fake::PodSandboxNetworkStatus {
                ip: if network == fake::NamespaceMode::Node {
                    String::new()
                } else {
                    "10.244.0.12".into()
                },
            }),
            linux: Some(fake::LinuxPodSandboxStatus {
                namespaces: Some(fake::Namespace {
                    options: Some(fake::NamespaceOption {
                        network: network as i32,
                    }),
                }),
            }),
        }),
        info: HashMap::from([("info".to_owned(), info.to_owned())]),
    }
}

/// A runtime with one READY sandbox `sb-1` of `POD_UID` (containerd info).
fn one_pod() -> FakeRuntime {
    FakeRuntime {
        sandboxes: vec![
            listed("sb-other", "another-uid", READY, 5),
            listed("sb-1", POD_UID, READY, 10),
        ],
        statuses: HashMap::from([(
            "sb-1".to_owned(),
            status("sb-1", READY, fake::NamespaceMode::Pod, CONTAINERD_POD),
        )]),
        ..FakeRuntime::default()
    }
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_ready_sandbox_and_its_namespace_are_found() {
    let runtime = one_pod();
    let served = serve(runtime.clone());
    let found = find_sandbox(&served.socket, POD_UID, T).await.unwrap();
    assert_eq!(
        found,
        Some(Sandbox {
            id: "sb-1".into(),
            netns: Some(PathBuf::from(CONTAINERD_NETNS)),
            runtime: "containerd".into(),
        })
    );
    // One filtered list, one verbose status.
    let lists = runtime.lists.lock().unwrap().clone();
    assert_eq!(lists.len(), 1);
    let filter = lists[0].filter.clone().unwrap();
    assert_eq!(
        filter.state,
        Some(fake::PodSandboxStateValue { state: READY })
    );
    assert_eq!(
        filter.label_selector,
        HashMap::from([(POD_UID_LABEL.to_owned(), POD_UID.to_owned())])
    );
    let statuses = runtime.status_requests.lock().unwrap().clone();
    assert_eq!(
        statuses,
        vec![fake::PodSandboxStatusRequest {
            pod_sandbox_id: "sb-1".into(),
            verbose: true,
        }]
    );
}

#[tokio::test]
async fn an_unknown_pod_has_no_sandbox() {
    let served = serve(one_pod());
    let found = find_sandbox(&served.socket, "no-such-uid", T)
        .await
        .unwrap();
    assert_eq!(found, None);
}

#[tokio::test]
async fn a_pod_with_only_not_ready_sandboxes_has_none() {
    for ignore_filter in [false, true] {
        let runtime = FakeRuntime {
            sandboxes: vec![
                listed("sb-old", POD_UID, NOT_READY, 10),
                listed("sb-older", POD_UID, NOT_READY, 5),
            ],
            ignore_filter,
            ..FakeRuntime::default()
        };
        let served = serve(runtime.clone());
        let found = find_sandbox(&served.socket, POD_UID, T).await.unwrap();
        assert_eq!(found, None, "ignore_filter: {ignore_filter}");
        assert!(runtime.status_requests.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn of_two_ready_sandboxes_the_newest_wins() {
    for ignore_filter in [false, true] {
        let runtime = FakeRuntime {
            sandboxes: vec![
                listed("sb-mid", POD_UID, READY, 20),
                listed("sb-new", POD_UID, READY, 30),
                listed("sb-newest-but-stopped", POD_UID, NOT_READY, 40),
                listed("sb-other", "another-uid", READY, 50),
                listed("sb-old", POD_UID, READY, 10),
            ],
            statuses: ["sb-mid", "sb-new", "sb-old"]
                .into_iter()
                .map(|id| {
                    let info = CRIO_POD.replace(CRIO_NETNS, &format!("/var/run/netns/{id}"));
                    let status = status(id, READY, fake::NamespaceMode::Pod, &info);
                    (id.to_owned(), status)
                })
                .collect(),
            ignore_filter,
            ..FakeRuntime::default()
        };
        let served = serve(runtime);
        let found = find_sandbox(&served.socket, POD_UID, T)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, "sb-new");
        assert_eq!(found.netns, Some(PathBuf::from("/var/run/netns/sb-new")));
    }
}

#[tokio::test]
async fn a_host_network_sandbox_has_no_namespace_of_its_own() {
    // Told by the status, whatever the spec says (CRI-O pins the node's
    // namespace and names it in the spec).
    let mut spec: Value = serde_json::from_str(CRIO_HOST_NETWORK).unwrap();
    spec["runtimeSpec"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("io.kubernetes.cri-o.HostNetwork");
    let info = spec.to_string();
    assert!(matches!(
        netns_from_info(&self::info(&[("info", &info)])),
        Ok(Netns::Path(_))
    ));
    let mut runtime = one_pod();
    runtime.statuses.insert(
        "sb-1".into(),
        status("sb-1", READY, fake::NamespaceMode::Node, &info),
    );
    let served = serve(runtime);
    let found = find_sandbox(&served.socket, POD_UID, T)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.netns, None);
    // containerd's way: no network namespace in the spec.
    let mut runtime = one_pod();
    runtime.statuses.insert(
        "sb-1".into(),
        status(
            "sb-1",
            READY,
            fake::NamespaceMode::Node,
            CONTAINERD_HOST_NETWORK,
        ),
    );
    let served = serve(runtime);
    let found = find_sandbox(&served.socket, POD_UID, T)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.netns, None);
}

#[tokio::test]
async fn a_sandbox_that_stopped_or_went_away_after_the_list_is_none() {
    let mut runtime = one_pod();
    runtime.statuses.insert(
        "sb-1".into(),
        status("sb-1", NOT_READY, fake::NamespaceMode::Pod, CONTAINERD_POD),
    );
    let served = serve(runtime);
    assert_eq!(
        find_sandbox(&served.socket, POD_UID, T).await.unwrap(),
        None
    );

    let mut runtime = one_pod();
    runtime.statuses.clear();
    let served = serve(runtime);
    assert_eq!(
        find_sandbox(&served.socket, POD_UID, T).await.unwrap(),
        None
    );

    let mut runtime = one_pod();
    let closed = CONTAINERD_POD.replace(
        r#""netNamespaceClosed": false"#,
        r#""netNamespaceClosed": true"#,
    );
    runtime.statuses.insert(
        "sb-1".into(),
        status("sb-1", READY, fake::NamespaceMode::Pod, &closed),
    );
    let served = serve(runtime);
    assert_eq!(
        find_sandbox(&served.socket, POD_UID, T).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn unusable_info_names_the_sandbox() {
    let mut runtime = one_pod();
    runtime.statuses.insert(
        "sb-1".into(),
        status("sb-1", READY, fake::NamespaceMode::Pod, "<html>"),
    );
    let served = serve(runtime);
    let err = find_sandbox(&served.socket, POD_UID, T).await.unwrap_err();
    assert!(matches!(err, CriError::BadInfo { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("status of sandbox sb-1"), "{text}");
    assert!(text.contains("not JSON"), "{text}");

    // Its own namespace per the status, none in the spec.
    let mut runtime = one_pod();
    runtime.statuses.insert(
        "sb-1".into(),
        status(
            "sb-1",
            READY,
            fake::NamespaceMode::Pod,
            CONTAINERD_HOST_NETWORK,
        ),
    );
    let served = serve(runtime);
    let err = find_sandbox(&served.socket, POD_UID, T).await.unwrap_err();
    assert!(
        err.to_string().contains("names no network namespace path"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_call_is_named() {
    let runtime = FakeRuntime {
        list_error: Some(tonic::Status::unavailable("server is not initialized yet")),
        ..one_pod()
    };
    let served = serve(runtime);
    let err = find_sandbox(&served.socket, POD_UID, T).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            CriError::Call {
                call: "ListPodSandbox",
                code: Code::Unavailable,
                ..
            }
        ),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "the container runtime's CRI API at {} failed ListPodSandbox: Unavailable: server is not initialized yet",
            served.socket.display()
        )
    );
}

#[tokio::test]
async fn a_missing_socket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("containerd.sock");
    let err = find_sandbox(&socket, POD_UID, T).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CriError::Connect { .. }), "{text}");
    assert!(
        text.starts_with(&format!(
            "cannot reach the container runtime's CRI API at {}: ",
            socket.display()
        )),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
}

#[tokio::test]
async fn a_socket_that_is_not_grpc_is_a_connect_error() {
    // Accepts, writes garbage and closes: the HTTP/2 handshake fails.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let err = find_sandbox(&socket, POD_UID, T).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CriError::Connect { .. }), "{text}");
    assert!(
        text.starts_with(&format!(
            "cannot reach the container runtime's CRI API at {}: the connection failed: ",
            socket.display()
        )),
        "{text}"
    );
    eprintln!("{text}");
}

#[tokio::test]
async fn a_silent_socket_times_out() {
    // A listener that accepts and never answers HTTP/2.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let err = find_sandbox(&socket, POD_UID, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, CriError::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "the container runtime's CRI API at {} did not answer within 300ms",
            socket.display()
        )
    );
    hold.abort();
}

// ---------------------------------------------------------------------
// The real runtime of this node.

/// Every sandbox the runtime at `socket` lists (no filter).
async fn list_all(socket: &Path) -> Result<Vec<PodSandbox>, CriError> {
    let mut runtime = Runtime::connect(socket).await?;
    runtime.list(None).await
}

/// Asks the node's runtime (`CRI_SOCKET`, else containerd's socket) for
/// one READY sandbox, then finds it again by its pod's UID: its network
/// namespace must exist; so must those of every other READY sandbox.
/// Run as root on a node (skips, saying so, without a socket or a READY
/// sandbox):
/// `cargo test -p multus-plugin --lib cri -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "needs a container runtime with a running pod on this machine, as root"]
async fn the_real_runtime_finds_a_running_pod() {
    let socket = PathBuf::from(
        std::env::var("CRI_SOCKET").unwrap_or_else(|_| DEFAULT_CRI_SOCKET.to_owned()),
    );
    if !socket.exists() {
        eprintln!("SKIPPED: no CRI socket at {}", socket.display());
        return;
    }
    let all = list_all(&socket).await.unwrap();
    eprintln!("{} sandboxes at {}", all.len(), socket.display());
    let ready: Vec<&PodSandbox> = all.iter().filter(|s| s.state == READY).collect();
    let Some(sandbox) = ready.first() else {
        eprintln!("SKIPPED: no READY sandbox at {}", socket.display());
        return;
    };
    let uid = sandbox.labels.get(POD_UID_LABEL).expect("no pod UID label");
    let found = find_sandbox(&socket, uid, CRI_TIMEOUT)
        .await
        .unwrap()
        .expect("listed READY, then not found");
    eprintln!("pod {uid}: {found:?}");
    // Another READY sandbox of the same pod may be newer; never older.
    let newest = ready
        .iter()
        .filter(|s| s.labels.get(POD_UID_LABEL) == Some(uid))
        .max_by_key(|s| s.created_at)
        .unwrap();
    assert_eq!(found.id, newest.id);
    if let Some(netns) = &found.netns {
        assert!(netns.exists(), "{} does not exist", netns.display());
    }
    // Every READY sandbox, for the report.
    for s in &ready {
        let uid = &s.labels[POD_UID_LABEL];
        let found = find_sandbox(&socket, uid, CRI_TIMEOUT).await.unwrap();
        let name = s
            .metadata
            .as_ref()
            .map(|m| format!("{}/{}", m.namespace, m.name));
        eprintln!("{name:?}: {found:?}");
        if let Some(netns) = found.and_then(|f| f.netns) {
            assert!(netns.exists(), "{} does not exist", netns.display());
        }
    }
}
