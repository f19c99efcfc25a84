//! Our entries of a ResourceClaim's `status.devices` (KEP-4817): for each
//! DRA device an attachment uses, the interface's name, IPs and MAC
//! (`networkData`) and a `Ready` condition. Pure.
//!
//! Entries are written by server-side apply with a field manager per pod
//! sandbox ([`field_manager`]): `status.devices` is a map keyed by driver,
//! pool and device, so each sandbox owns exactly its entries; another
//! writer's entries (the DRA driver's, another pod's sharing the claim)
//! are untouched, and applying an empty list releases ours.

use k8s_openapi::api::resource::v1::{AllocatedDeviceStatus, NetworkDeviceData};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::DraDevice;
use crate::attachment::Attachment;
use crate::network_status::result100;

/// Prefix of our field managers.
pub const FIELD_MANAGER_PREFIX: &str = "multus-";
/// Longest field manager the API server accepts.
const FIELD_MANAGER_MAX: usize = 128;
/// Most IPs an entry may list.
const IPS_MAX: usize = 16;
/// The `Ready` condition's reason.
pub const READY_REASON: &str = "NetworkAttached";

/// The field manager of the sandbox `container_id`: `multus-<containerID>`
/// (cut to the API's 128 characters).
pub fn field_manager(container_id: &str) -> String {
    let mut manager = format!("{FIELD_MANAGER_PREFIX}{container_id}");
    manager.truncate(FIELD_MANAGER_MAX);
    manager
}

/// A claim our attachments use devices of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID (a precondition of every write).
    pub uid: String,
}

impl ClaimRef {
    fn of(device: &DraDevice) -> Self {
        Self {
            namespace: device.claim_namespace.clone(),
            name: device.claim_name.clone(),
            uid: device.claim_uid.clone(),
        }
    }
}

/// The claims of the attachments' DRA devices, in attachment order, each
/// with its attachments.
pub fn by_claim(attachments: &[Attachment]) -> Vec<(ClaimRef, Vec<&Attachment>)> {
    let mut out: Vec<(ClaimRef, Vec<&Attachment>)> = Vec::new();
    for attachment in attachments {
        let Some(device) = &attachment.device.dra else {
            continue;
        };
        let claim = ClaimRef::of(device);
        match out.iter_mut().find(|(c, _)| *c == claim) {
            Some((_, list)) => list.push(attachment),
            None => out.push((claim, vec![attachment])),
        }
    }
    out
}

/// The network data of an attachment from its result: the sandbox
/// interface named like the attachment (else its first sandbox
/// interface), that interface's addresses in CIDR form and its MAC. A
/// result without interfaces gives the attachment's interface name and
/// all its addresses.
pub fn network_data(attachment: &Attachment) -> NetworkDeviceData {
    let mut data = NetworkDeviceData {
        interface_name: Some(attachment.ifname.clone()),
        ..NetworkDeviceData::default()
    };
    let Some(result) = result100(attachment) else {
        return data;
    };
    let sandbox = result.interfaces_in_sandbox();
    let chosen = sandbox
        .iter()
        .find(|(_, i)| i.name == attachment.ifname)
        .or_else(|| sandbox.first());
    let ips: Vec<String> = match chosen {
        Some((index, interface)) => {
            data.interface_name = Some(interface.name.clone());
            data.hardware_address = interface.mac.clone().filter(|m| !m.is_empty());
            result
                .ips_of_interface(*index)
                .iter()
                .map(|ip| ip.address.to_string())
                .collect()
        }
        None => result.ips.iter().map(|ip| ip.address.to_string()).collect(),
    };
    let mut unique: Vec<String> = Vec::new();
    for ip in ips {
        if !unique.contains(&ip) && unique.len() < IPS_MAX {
            unique.push(ip);
        }
    }
    data.ips = (!unique.is_empty()).then_some(unique);
    data
}

/// The `status.devices` entry of `attachment`'s DRA device `device`,
/// `Ready` as of `now`.
pub fn device_status(
    attachment: &Attachment,
    device: &DraDevice,
    now: Timestamp,
) -> AllocatedDeviceStatus {
    let data = network_data(attachment);
    let interface = data.interface_name.clone().unwrap_or_default();
    AllocatedDeviceStatus {
        driver: device.driver.clone(),
        pool: device.pool.clone(),
        device: device.device.clone(),
        share_id: device.share_id.clone(),
        conditions: Some(vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: READY_REASON.into(),
            message: format!("Multus attached {interface} of network {}", attachment.name),
            last_transition_time: Time(now),
            observed_generation: None,
        }]),
        network_data: Some(data),
        data: None,
    }
}

/// The server-side apply body setting our entries of the claim's
/// `status.devices` to `devices` (empty: release them), with the claim's
/// UID as a precondition.
pub fn apply_body(claim: &ClaimRef, devices: &[AllocatedDeviceStatus]) -> Value {
    let mut metadata = json!({"name": claim.name, "namespace": claim.namespace});
    if !claim.uid.is_empty() {
        metadata["uid"] = Value::from(claim.uid.clone());
    }
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": metadata,
        "status": {"devices": devices},
    })
}

/// The apply body of the ADD of `attachments` sharing `claim`.
pub fn publish_body(claim: &ClaimRef, attachments: &[&Attachment], now: Timestamp) -> Value {
    let devices: Vec<AllocatedDeviceStatus> = attachments
        .iter()
        .filter_map(|a| a.device.dra.as_ref().map(|d| device_status(a, d, now)))
        .collect();
    apply_body(claim, &devices)
}

#[cfg(test)]
mod tests {
    use multus_config::cni::netconf::NetworkConfig;
    use serde_json::Map;

    use super::*;
    use crate::attachment::DeviceAttachment;

    fn dra(claim: &str, device: &str) -> DraDevice {
        DraDevice {
            claim_namespace: "ns".into(),
            claim_name: claim.into(),
            claim_uid: format!("uid-{claim}"),
            driver: "nic.example.com".into(),
            pool: "node-a".into(),
            device: device.into(),
            share_id: None,
        }
    }

    fn attachment(
        name: &str,
        ifname: &str,
        device: Option<DraDevice>,
        result: Value,
    ) -> Attachment {
        Attachment {
            name: name.into(),
            config: NetworkConfig::from_value(
                json!({"cniVersion":"1.0.0","name":"n","type":"sriov"}),
            )
            .unwrap(),
            ifname: ifname.into(),
            capability_args: Map::new(),
            cni_args: String::new(),
            is_cluster_network: false,
            default_route: None,
            result: Some(result),
            device: DeviceAttachment {
                dra: device,
                ..DeviceAttachment::default()
            },
            origin: Default::default(),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn the_sandbox_interface_its_cidrs_and_mac() {
        let a = attachment(
            "ns/nic-net",
            "net1",
            Some(dra("c", "nic-0")),
            json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"br0","mac":"aa:aa:aa:aa:aa:aa"},
                    {"name":"net1","mac":"02:00:00:00:00:01","sandbox":"/var/run/netns/x"}],
                "ips":[{"interface":1,"address":"10.1.1.5/24"},{"interface":1,"address":"fd00::5/64"},
                    {"interface":0,"address":"10.1.1.1/24"}]}),
        );
        let entry =
            serde_json::to_value(device_status(&a, a.device.dra.as_ref().unwrap(), now())).unwrap();
        assert_eq!(
            entry,
            json!({
                "driver": "nic.example.com", "pool": "node-a", "device": "nic-0",
                "conditions": [{"type": "Ready", "status": "True", "reason": "NetworkAttached",
                    "message": "Multus attached net1 of network ns/nic-net",
                    "lastTransitionTime": "2023-11-14T22:13:20Z"}],
                "networkData": {"interfaceName": "net1", "ips": ["10.1.1.5/24", "fd00::5/64"],
                    "hardwareAddress": "02:00:00:00:00:01"}
            })
        );
    }

    #[test]
    fn results_without_interfaces_give_the_attachments_name_and_all_ips() {
        let a = attachment(
            "ns/old",
            "net2",
            None,
            json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.1.5/24"}}),
        );
        let data = network_data(&a);
        assert_eq!(data.interface_name.as_deref(), Some("net2"));
        assert_eq!(data.ips, Some(vec!["10.1.1.5/24".to_owned()]));
        assert_eq!(data.hardware_address, None);
    }

    #[test]
    fn claims_group_their_attachments_and_the_body_carries_the_uid() {
        let result = json!({"cniVersion":"1.0.0"});
        let attachments = [
            attachment("ns/a", "net1", Some(dra("c1", "nic-0")), result.clone()),
            attachment("ns/plain", "net2", None, result.clone()),
            attachment("ns/b", "net3", Some(dra("c2", "nic-1")), result.clone()),
            attachment("ns/a", "net4", Some(dra("c1", "nic-2")), result),
        ];
        let grouped = by_claim(&attachments);
        let summary: Vec<(&str, Vec<&str>)> = grouped
            .iter()
            .map(|(c, a)| {
                (
                    c.name.as_str(),
                    a.iter().map(|a| a.ifname.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("c1", vec!["net1", "net4"]), ("c2", vec!["net3"])]
        );
        let body = publish_body(&grouped[0].0, &grouped[0].1, now());
        assert_eq!(body["apiVersion"], "resource.k8s.io/v1");
        assert_eq!(body["kind"], "ResourceClaim");
        assert_eq!(
            body["metadata"],
            json!({"name": "c1", "namespace": "ns", "uid": "uid-c1"})
        );
        let devices: Vec<&str> = body["status"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device"].as_str().unwrap())
            .collect();
        assert_eq!(devices, ["nic-0", "nic-2"]);
        // Releasing: an empty list.
        assert_eq!(
            apply_body(&grouped[1].0, &[])["status"],
            json!({"devices": []})
        );
    }

    #[test]
    fn field_managers_are_per_sandbox_and_within_the_apis_limit() {
        assert_eq!(field_manager("c1"), "multus-c1");
        let long = "a".repeat(200);
        assert_eq!(field_manager(&long).len(), 128);
    }
}
