use std::path::Path;

use multus_config::cni::netconf::NetworkConfig;
use multus_config::npwg::DeviceType;
use serde_json::{Map, Value, json};

use super::*;
use crate::attachment::DeviceAttachment;
use crate::podresources::api::{
    CdiDevice, ClaimResource, ContainerDevices, ContainerResources, DynamicResource, PodResources,
};
use std::os::unix::fs::PermissionsExt;

const INFO_DIR: &str = "/run/devinfo";

fn attachment(name: &str, ifname: &str, resource: Option<&str>, config: Value) -> Attachment {
    Attachment {
        name: name.into(),
        config: NetworkConfig::from_value(config).unwrap(),
        ifname: ifname.into(),
        capability_args: Map::new(),
        cni_args: String::new(),
        is_cluster_network: false,
        default_route: None,
        result: None,
        device: DeviceAttachment {
            resource_name: resource.map(str::to_owned),
            ..DeviceAttachment::default()
        },
        origin: Default::default(),
    }
}

fn sriov(name: &str, ifname: &str, resource: &str) -> Attachment {
    attachment(
        name,
        ifname,
        Some(resource),
        json!({"cniVersion":"1.0.0","name":name,"type":"sriov","capabilities":{"deviceID":true}}),
    )
}

fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
    ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn container(name: &str, held: Vec<ContainerDevices>) -> ContainerResources {
    ContainerResources {
        name: name.into(),
        devices: held,
        dynamic_resources: Vec::new(),
    }
}

fn pod(containers: Vec<ContainerResources>) -> PodResources {
    PodResources {
        name: "web".into(),
        namespace: "ns".into(),
        containers,
    }
}

fn identity() -> PodIdentity {
    PodIdentity {
        namespace: "ns".into(),
        name: "web".into(),
        uid: "u1".into(),
    }
}

fn assign(attachments: &mut [Attachment], held: &PodDevices) -> Result<(), DeviceError> {
    assign_devices(attachments, held, &identity(), Path::new(INFO_DIR), "c1")
}

fn ids(attachments: &[Attachment]) -> Vec<Option<&str>> {
    attachments.iter().map(|a| a.device.id.as_deref()).collect()
}

#[test]
fn ids_are_sorted_per_container_and_keep_the_container_order() {
    let held = PodDevices::from_pod_resources(&pod(vec![
        container(
            "first",
            vec![devices(
                "intel.com/sriov",
                &["0000:af:06.3", "0000:af:06.1"],
            )],
        ),
        container(
            "second",
            vec![
                devices("intel.com/sriov", &["0000:af:06.2"]),
                devices("example.com/nic", &["nic-b", "nic-a"]),
                devices("", &["ignored"]),
                devices("example.com/none", &[]),
                // Several entries of one resource (a 1.28 kubelet writes
                // one per device): merged, then sorted.
                devices("intel.com/sriov", &["0000:af:06.0"]),
            ],
        ),
    ]));
    // Never sorted across containers: the first container's devices come
    // first, as the kubelet lists them (upstream since #1539).
    assert_eq!(
        held.ids("intel.com/sriov"),
        [
            "0000:af:06.1",
            "0000:af:06.3",
            "0000:af:06.0",
            "0000:af:06.2"
        ]
    );
    assert_eq!(held.ids("example.com/nic"), ["nic-a", "nic-b"]);
    assert!(held.ids("example.com/none").is_empty());
    assert_eq!(held.resources().count(), 2);
}

#[test]
fn networks_of_one_resource_take_the_next_device_in_annotation_order() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("intel.com/sriov", &["vf2", "vf0", "vf1"])],
    )]));
    let mut a = vec![
        sriov("ns/sriov-a", "net1", "intel.com/sriov"),
        attachment(
            "ns/bridge",
            "net2",
            None,
            json!({"cniVersion":"1.0.0","name":"b","type":"bridge"}),
        ),
        sriov("ns/sriov-b", "net3", "intel.com/sriov"),
        sriov("ns/sriov-a", "net4", "intel.com/sriov"),
    ];
    assign(&mut a, &held).unwrap();
    assert_eq!(ids(&a), [Some("vf0"), None, Some("vf1"), Some("vf2")]);
    assert!(a[1].capability_args.is_empty(), "untouched");
}

#[test]
fn networks_of_different_resources_each_take_their_own() {
    let held = PodDevices::from_pod_resources(&pod(vec![
        container("a", vec![devices("intel.com/sriov", &["vf0"])]),
        container("b", vec![devices("mellanox.com/rdma", &["mlx0", "mlx1"])]),
    ]));
    let mut a = vec![
        sriov("ns/rdma", "net1", "mellanox.com/rdma"),
        sriov("ns/sriov", "net2", "intel.com/sriov"),
        sriov("ns/rdma", "net3", "mellanox.com/rdma"),
    ];
    assign(&mut a, &held).unwrap();
    assert_eq!(ids(&a), [Some("mlx0"), Some("vf0"), Some("mlx1")]);
}

#[test]
fn init_and_sidecar_containers_count_in_the_kubelets_order() {
    // The kubelet lists the containers that hold devices, a restartable
    // init container (sidecar) before the app containers; their devices
    // are taken in that order like any other container's.
    let held = PodDevices::from_pod_resources(&pod(vec![
        container("sidecar", vec![devices("example.com/nic", &["nic-9"])]),
        container("app", vec![devices("example.com/nic", &["nic-1"])]),
    ]));
    let mut a = vec![
        sriov("ns/n1", "net1", "example.com/nic"),
        sriov("ns/n2", "net2", "example.com/nic"),
    ];
    assign(&mut a, &held).unwrap();
    assert_eq!(ids(&a), [Some("nic-9"), Some("nic-1")]);
}

#[test]
fn a_missing_resource_names_the_nad_the_resource_and_the_pod() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("example.com/other", &["x"])],
    )]));
    let mut a = vec![sriov("ns/sriov-net", "net1", "intel.com/sriov")];
    let err = assign(&mut a, &held).unwrap_err().to_string();
    for part in [
        "ns/sriov-net",
        "intel.com/sriov",
        "pod ns/web",
        "holds none",
        "example.com/other",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let code = crate::error::PluginError::from(assign(&mut a, &held).unwrap_err())
        .to_cni_error()
        .code;
    assert_eq!(code, 7);
}

#[test]
fn more_networks_than_devices_fail_naming_who_took_them() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("example.com/nic", &["nic-0"])],
    )]));
    let mut a = vec![
        sriov("ns/a", "net1", "example.com/nic"),
        sriov("ns/b", "net2", "example.com/nic"),
    ];
    let err = assign(&mut a, &held).unwrap_err().to_string();
    assert!(err.starts_with("ns/b:"), "{err}");
    assert!(err.contains("holds only 1"), "{err}");
    assert!(err.contains("(ns/a)"), "{err}");
}

#[test]
fn a_pod_the_kubelet_does_not_list_holds_nothing() {
    let mut a = vec![sriov("ns/a", "net1", "example.com/nic")];
    let err = assign(&mut a, &PodDevices::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds none"), "{err}");
    assert!(err.contains("the kubelet does not list the pod"), "{err}");
}

#[test]
fn the_device_goes_into_config_runtime_config_and_device_info_path() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices(
            "example.com/nic",
            &["0000:af:06.0", "0000:af:06.1"],
        )],
    )]));
    let list = json!({"cniVersion":"1.0.0","name":"chain","plugins":[
        {"type":"sriov","capabilities":{"deviceID":true,"CNIDeviceInfoFile":true}},
        {"type":"tuning"}
    ]});
    let mut a = vec![
        sriov("ns/single", "net1", "example.com/nic"),
        attachment("ns/chain", "net2", Some("example.com/nic"), list),
    ];
    assign(&mut a, &held).unwrap();

    let single = a[0].config.to_value();
    assert_eq!(single["deviceID"], "0000:af:06.0");
    assert_eq!(single["pciBusID"], "0000:af:06.0");
    let chain = a[1].config.to_value();
    for plugin in chain["plugins"].as_array().unwrap() {
        // Every plugin of the list, as upstream does.
        assert_eq!(plugin["deviceID"], "0000:af:06.1");
        assert_eq!(plugin["pciBusID"], "0000:af:06.1");
    }
    assert!(chain.get("deviceID").is_none());

    let file = "/run/devinfo/cni/ns-chain-c1_net2";
    assert_eq!(a[1].capability_args["deviceID"], "0000:af:06.1");
    assert_eq!(a[1].capability_args["CNIDeviceInfoFile"], file);
    assert_eq!(a[1].device.info_file.as_deref(), Some(Path::new(file)));
}

#[test]
fn the_kubelets_device_replaces_the_annotations() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("example.com/nic", &["kubelet-id"])],
    )]));
    let mut a = vec![sriov("ns/a", "net1", "example.com/nic")];
    set_device(&mut a[0], "annotation-id", false, Path::new(INFO_DIR), "c1");
    assert_eq!(a[0].capability_args["deviceID"], "annotation-id");
    assert!(a[0].config.to_value().get("deviceID").is_none());
    assign(&mut a, &held).unwrap();
    assert_eq!(a[0].capability_args["deviceID"], "kubelet-id");
    assert_eq!(a[0].config.to_value()["deviceID"], "kubelet-id");
}

#[test]
fn classic_dra_claims_count_as_their_class() {
    // Kubelets 1.27-1.30: DynamicResource with class_name, CDI device
    // names vendor/class=ID (upstream v4.1's mapping).
    let mut app = container("app", vec![devices("example.com/nic", &["nic-0"])]);
    app.dynamic_resources = vec![DynamicResource {
        class_name: "sriov.example.com".into(),
        claim_name: "vf-claim".into(),
        claim_namespace: "ns".into(),
        claim_resources: vec![ClaimResource {
            cdi_devices: vec![
                CdiDevice {
                    name: "example.com/vf=0000:03:00.5".into(),
                },
                CdiDevice {
                    name: "not-a-cdi-name".into(),
                },
                CdiDevice {
                    name: "example.com/vf=0000:03:00.4".into(),
                },
            ],
            ..ClaimResource::default()
        }],
    }];
    let held = PodDevices::from_pod_resources(&pod(vec![app]));
    assert_eq!(
        held.ids("sriov.example.com"),
        ["0000:03:00.5", "0000:03:00.4"],
        "claim order, invalid names skipped"
    );
    assert_eq!(held.ids("example.com/nic"), ["nic-0"]);
    let mut a = vec![sriov("ns/dra", "net1", "sriov.example.com")];
    assign(&mut a, &held).unwrap();
    assert_eq!(ids(&a), [Some("0000:03:00.5")]);
}

#[test]
fn structured_dra_claims_of_the_kubelet_are_left_to_the_api() {
    // Kubelets 1.31+: no class name, driver/pool/device instead. Their
    // devices are matched through the API server's ResourceSlices
    // (crate::dra), not from the kubelet's answer.
    let mut app = container("app", Vec::new());
    app.dynamic_resources = vec![DynamicResource {
        class_name: String::new(),
        claim_name: "vf-claim".into(),
        claim_namespace: "ns".into(),
        claim_resources: vec![ClaimResource {
            cdi_devices: vec![CdiDevice {
                name: "sriov.example.com/vf=vf-0".into(),
            }],
            driver_name: "sriov.example.com".into(),
            pool_name: "node-1".into(),
            device_name: "vf-0".into(),
        }],
    }];
    let held = PodDevices::from_pod_resources(&pod(vec![app]));
    assert_eq!(held.resources().count(), 0);
    assert_eq!(held.count("sriov.example.com"), 0);
}

/// The claim devices of `claims` (name, devices) on the fixtures' node,
/// whose slice has nic-0..nic-2 of example.com/nic, a GPU without the
/// attributes and a device without a deviceID.
fn claimed(claims: &[(&str, &[&str])]) -> crate::dra::ClaimDevices {
    use crate::dra::fixtures::{NODE, claim, slice};
    let index = crate::dra::SliceIndex::from_slices(&[slice(&[
        ("nic-0", Some("example.com/nic"), Some("dra-0")),
        ("nic-1", Some("example.com/nic"), Some("dra-1")),
        ("nic-2", Some("example.com/nic"), Some("dra-2")),
        ("gpu-0", None, None),
        ("no-id", Some("example.com/nic"), None),
    ])]);
    let claims: Vec<_> = claims
        .iter()
        .map(|(name, devices)| ((*name).to_owned(), Some(claim(name, devices))))
        .collect();
    crate::dra::match_claims("ns", NODE, &claims, &index)
}

#[test]
fn claim_devices_come_after_the_device_plugins_and_are_recorded() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("example.com/nic", &["dp-0"])],
    )]))
    .with_claims(claimed(&[("web-nic", &["nic-1", "nic-0"])]));
    assert_eq!(held.count("example.com/nic"), 3);
    let mut a = vec![
        sriov("ns/a", "net1", "example.com/nic"),
        sriov("ns/b", "net2", "example.com/nic"),
        sriov("ns/c", "net3", "example.com/nic"),
    ];
    assert_eq!(first_unserved(&a, &held), None);
    assign(&mut a, &held).unwrap();
    assert_eq!(
        ids(&a),
        [Some("dp-0"), Some("dra-1"), Some("dra-0")],
        "device plugins first, then the claim's allocation order"
    );
    assert_eq!(a[0].device.dra, None);
    let dra = a[1].device.dra.as_ref().unwrap();
    assert_eq!(
        (
            dra.claim().as_str(),
            dra.device_path().as_str(),
            dra.claim_uid.as_str()
        ),
        ("ns/web-nic", "nic.example.com/node-a/nic-1", "uid-web-nic")
    );
    // Handed over exactly as a device plugin's device.
    assert_eq!(a[1].config.to_value()["deviceID"], "dra-1");
    assert_eq!(a[1].config.to_value()["pciBusID"], "dra-1");
    assert_eq!(a[1].capability_args["deviceID"], "dra-1");
    assert_eq!(
        a[1].capability_args["CNIDeviceInfoFile"],
        "/run/devinfo/cni/ns-b-c1_net2"
    );
}

#[test]
fn the_first_unserved_attachment_counts_earlier_takers() {
    let held = PodDevices::from_pod_resources(&pod(vec![container(
        "app",
        vec![devices("example.com/nic", &["dp-0"])],
    )]));
    let a = vec![
        sriov("ns/a", "net1", "example.com/nic"),
        sriov("ns/b", "net2", "example.com/nic"),
    ];
    assert_eq!(
        first_unserved(&a, &held),
        Some(("ns/b".to_owned(), "example.com/nic".to_owned()))
    );
    assert_eq!(first_unserved(&a[..1], &held), None);
    let plain = attachment(
        "ns/p",
        "net1",
        None,
        json!({"cniVersion":"1.0.0","type":"bridge"}),
    );
    assert_eq!(first_unserved(&[plain], &PodDevices::default()), None);
}

#[test]
fn claim_devices_without_the_attributes_are_named_in_the_error() {
    let held = PodDevices::from_pod_resources(&pod(vec![container("app", Vec::new())]))
        .with_claims(claimed(&[("web-gpu", &["gpu-0", "no-id"])]));
    let mut a = vec![sriov("ns/nic-net", "net1", "example.com/nic")];
    let err = assign(&mut a, &held).unwrap_err().to_string();
    assert_eq!(
        err,
        "ns/nic-net: the NetworkAttachmentDefinition needs a device of resource example.com/nic (k8s.v1.cni.cncf.io/resourceName) but pod ns/web holds none: request example.com/nic in the resources of one of its containers, or a device with the attribute k8s.cni.cncf.io/resourceName=example.com/nic in a ResourceClaim; \
         ResourceClaim ns/web-gpu: device nic.example.com/node-a/gpu-0 lacks the attributes k8s.cni.cncf.io/resourceName and k8s.cni.cncf.io/deviceID; \
         ResourceClaim ns/web-gpu: device nic.example.com/node-a/no-id lacks the attribute k8s.cni.cncf.io/deviceID"
    );
}

#[test]
fn too_few_claim_devices_name_who_took_them_and_what_else_is_held() {
    let held = PodDevices::default().with_claims(claimed(&[("web-nic", &["nic-0"])]));
    let mut a = vec![
        sriov("ns/a", "net1", "example.com/nic"),
        sriov("ns/b", "net2", "example.com/nic"),
    ];
    let err = assign(&mut a, &held).unwrap_err().to_string();
    assert!(err.starts_with("ns/b:"), "{err}");
    assert!(err.contains("holds only 1"), "{err}");
    assert!(err.contains("(ns/a)"), "{err}");
    // Another resource: the claim's resource is named as what it holds.
    let mut other = vec![sriov("ns/o", "net1", "example.com/other")];
    let err = assign(&mut other, &held).unwrap_err().to_string();
    assert!(err.contains("; it holds example.com/nic"), "{err}");
}

#[test]
fn a_recorded_kubelet_1_28_answer() {
    // `cargo run -p multus-plugin --example pod_resources` against the
    // Kubernetes 1.28.7 kubelet of the test machine, the test device
    // plugin serving example.com/nic: container `first` was allocated
    // nic-1, `second` nic-0 and nic-2 (one entry per device).
    use base64::Engine;
    use prost::Message;
    const RECORDED: &str = "CgpuaWMtaG9sZGVyEg1kZXYxMi1kZXZpY2VzGiEKBWZpcnN0EhgKD2V4YW1wbGUuY29tL25pYxIFbmljLTEaPAoGc2Vjb25kEhgKD2V4YW1wbGUuY29tL25pYxIFbmljLTASGAoPZXhhbXBsZS5jb20vbmljEgVuaWMtMg==";
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(RECORDED)
        .unwrap();
    let pod = PodResources::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        (pod.namespace.as_str(), pod.name.as_str()),
        ("dev12-devices", "nic-holder")
    );
    assert_eq!(pod.containers[1].devices.len(), 2, "one entry per device");
    let held = PodDevices::from_pod_resources(&pod);
    assert_eq!(held.ids("example.com/nic"), ["nic-1", "nic-0", "nic-2"]);
    let mut a = vec![
        sriov("ns/a", "net1", "example.com/nic"),
        sriov("ns/b", "net2", "example.com/nic"),
    ];
    assign(&mut a, &held).unwrap();
    assert_eq!(ids(&a), [Some("nic-1"), Some("nic-0")]);
}

#[test]
fn dra_from_an_encoded_list_answer() {
    // A List answer encoded as the kubelet sends it (protobuf), with a
    // device-plugin device and a classic DRA claim in one container.
    use prost::Message;
    let answer = crate::podresources::api::ListPodResourcesResponse {
        pod_resources: vec![PodResources {
            name: "web".into(),
            namespace: "ns".into(),
            containers: vec![ContainerResources {
                name: "app".into(),
                devices: vec![devices("example.com/nic", &["nic-1", "nic-0"])],
                dynamic_resources: vec![DynamicResource {
                    class_name: "gpu.example.com".into(),
                    claim_name: "gpu".into(),
                    claim_namespace: "ns".into(),
                    claim_resources: vec![ClaimResource {
                        cdi_devices: vec![CdiDevice {
                            name: "gpu.example.com/gpu=gpu-7".into(),
                        }],
                        ..ClaimResource::default()
                    }],
                }],
            }],
        }],
    };
    let bytes = answer.encode_to_vec();
    let decoded =
        crate::podresources::api::ListPodResourcesResponse::decode(bytes.as_slice()).unwrap();
    let held = PodDevices::from_pod_resources(&decoded.pod_resources[0]);
    assert_eq!(held.ids("example.com/nic"), ["nic-0", "nic-1"]);
    assert_eq!(held.ids("gpu.example.com"), ["gpu-7"]);
}

#[test]
fn needs_the_kubelet_only_for_a_resource() {
    let plain = attachment(
        "ns/b",
        "net1",
        None,
        json!({"cniVersion":"1.0.0","name":"b","type":"bridge"}),
    );
    assert!(!needs_kubelet(std::slice::from_ref(&plain)));
    assert!(needs_kubelet(&[
        plain,
        sriov("ns/s", "net2", "example.com/nic")
    ]));
}

#[test]
fn device_info_is_copied_read_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = sriov("ns/s", "net1", "example.com/nic");
    set_device(&mut a, "0000:af:06.0", true, dir.path(), "c9");
    let target = dir.path().join("cni/ns-s-c9_net1");
    assert_eq!(a.device.info_file.as_deref(), Some(target.as_path()));

    // No device plugin file: nothing copied, nothing read.
    copy_device_plugin_info(&a, dir.path());
    assert!(!target.exists());
    assert_eq!(read_device_info(&a), None);

    let dp = dir
        .path()
        .join("dp/example.com-nic-0000:af:06.0-device.json");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(
        &dp,
        br#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.0"}}"#,
    )
    .unwrap();
    copy_device_plugin_info(&a, dir.path());
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
    let info = read_device_info(&a).unwrap();
    assert_eq!(info.device_type, Some(DeviceType::Pci));
    assert_eq!(
        info.pci.unwrap().pci_address.as_deref(),
        Some("0000:af:06.0")
    );
    // A retried ADD overwrites it.
    copy_device_plugin_info(&a, dir.path());

    remove_device_info(&a);
    assert!(!target.exists());
    remove_device_info(&a);
}

#[test]
fn an_invalid_device_plugin_file_is_not_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = sriov("ns/s", "net1", "example.com/nic");
    set_device(&mut a, "d0", true, dir.path(), "c9");
    let dp = dir.path().join("dp/example.com-nic-d0-device.json");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(&dp, b"{not json").unwrap();
    copy_device_plugin_info(&a, dir.path());
    assert!(!a.device.info_file.as_ref().unwrap().exists());
}
