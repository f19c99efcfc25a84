//! The `k8s.v1.cni.cncf.io/network-status` pod annotation: one entry per
//! interface of the pod, with the device-info block of the multi-network
//! device-info specification.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::NETWORK_STATUS_ANNOTATION;
use crate::cni::Dns;

/// One entry of the network-status annotation.
///
/// Gateways are written under the multi-network spec's key `default-route`.
/// Upstream Multus (through the NAD client library) writes them under
/// `gateway` instead; that key is accepted on input (when both are present,
/// `default-route` wins) but never written. `dns` is always written, as
/// `{}` when empty, like upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawNetworkStatus")]
pub struct NetworkStatus {
    /// `namespace/nad` for attachments, the CNI network name for the cluster network.
    pub name: String,
    /// Interface name inside the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses of the interface, without prefix length.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address of the interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU of the interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Whether this interface carries the pod's default route.
    #[serde(skip_serializing_if = "is_false")]
    pub default: bool,
    /// DNS settings returned by the plugin.
    pub dns: Dns,
    /// Default-route gateways set through this interface (upstream key: `gateway`).
    #[serde(rename = "default-route", skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<String>,
    /// Device information of the multi-network device-info spec.
    #[serde(rename = "device-info", skip_serializing_if = "Option::is_none")]
    pub device_info: Option<DeviceInfo>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Wire form of a status entry: nulls allowed, both gateway keys accepted.
#[derive(Deserialize)]
struct RawNetworkStatus {
    name: String,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    ips: Option<Vec<String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    default: Option<bool>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default, rename = "default-route")]
    default_route: Option<Vec<String>>,
    #[serde(default)]
    gateway: Option<Vec<String>>,
    #[serde(default, rename = "device-info")]
    device_info: Option<DeviceInfo>,
}

impl From<RawNetworkStatus> for NetworkStatus {
    fn from(raw: RawNetworkStatus) -> Self {
        Self {
            name: raw.name,
            interface: raw.interface.filter(|s| !s.is_empty()),
            ips: raw.ips.unwrap_or_default(),
            mac: raw.mac.filter(|s| !s.is_empty()),
            mtu: raw.mtu,
            default: raw.default.unwrap_or(false),
            dns: raw.dns.unwrap_or_default(),
            default_route: raw.default_route.or(raw.gateway).unwrap_or_default(),
            device_info: raw.device_info,
        }
    }
}

/// Kind of device described by a `device-info` block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// A PCI device (`pci`).
    Pci,
    /// A vDPA device (`vdpa`).
    Vdpa,
    /// A vhost-user socket (`vhost-user`).
    VhostUser,
    /// A memif socket (`memif`).
    Memif,
    /// A type this version does not know, kept verbatim.
    Other(String),
}

impl DeviceType {
    /// The type as written in JSON.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pci => "pci",
            Self::Vdpa => "vdpa",
            Self::VhostUser => "vhost-user",
            Self::Memif => "memif",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for DeviceType {
    fn from(s: &str) -> Self {
        match s {
            "pci" => Self::Pci,
            "vdpa" => Self::Vdpa,
            "vhost-user" => Self::VhostUser,
            "memif" => Self::Memif,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl Serialize for DeviceType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::from(text.as_str()))
    }
}

/// The `device-info` block of a status entry (multi-network device-info spec).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Which per-type block is meaningful.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<DeviceType>,
    /// Version of the device-info spec, e.g. `1.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// PCI device details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    /// vDPA device details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDevice>,
    /// vhost-user socket details.
    #[serde(
        rename = "vhost-user",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vhost_user: Option<VhostUserDevice>,
    /// memif socket details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifDevice>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// PCI details of a `device-info` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    /// PCI address of the device, e.g. `0000:18:02.5`.
    #[serde(
        rename = "pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_address: Option<String>,
    /// vhost-net device path for the device.
    #[serde(rename = "vhost-net", default, skip_serializing_if = "Option::is_none")]
    pub vhost_net: Option<String>,
    /// RDMA device name.
    #[serde(
        rename = "rdma-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rdma_device: Option<String>,
    /// PCI address of the physical function.
    #[serde(
        rename = "pf-pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pf_pci_address: Option<String>,
    /// Name of the representor netdev on the host.
    #[serde(
        rename = "representor-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representor_device: Option<String>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// vDPA details of a `device-info` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VdpaDevice {
    /// vDPA parent (management) device.
    #[serde(
        rename = "parent-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_device: Option<String>,
    /// vDPA bus driver (`vhost` or `virtio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Device path, e.g. `/dev/vhost-vdpa-0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// PCI address of the device.
    #[serde(
        rename = "pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_address: Option<String>,
    /// PCI address of the physical function.
    #[serde(
        rename = "pf-pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pf_pci_address: Option<String>,
    /// Name of the representor netdev on the host.
    #[serde(
        rename = "representor-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representor_device: Option<String>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// vhost-user details of a `device-info` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostUserDevice {
    /// `client` or `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// memif details of a `device-info` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemifDevice {
    /// `master` or `slave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `ethernet`, `ip` or `inject-punt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a network-status annotation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The annotation is not a JSON list of status entries.
    #[error("annotation {key}: not a JSON list of network status entries: {error}")]
    InvalidJson {
        /// Annotation key.
        key: &'static str,
        /// The parser's error, with line and column.
        #[source]
        error: serde_json::Error,
    },
}

/// Parses a network-status annotation; a blank annotation has no entries.
pub fn parse_network_status_annotation(
    annotation: &str,
) -> Result<Vec<NetworkStatus>, StatusError> {
    if annotation.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(annotation).map_err(|error| StatusError::InvalidJson {
        key: NETWORK_STATUS_ANNOTATION,
        error,
    })
}

/// The annotation value for `statuses`: a JSON list indented by four spaces
/// (as upstream writes it), fields in a fixed order.
pub fn network_status_annotation_value(statuses: &[NetworkStatus]) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buf, formatter);
    // Serialising into memory cannot fail: every map key is a string.
    if statuses.serialize(&mut serializer).is_err() {
        return "[]".to_owned();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXPECTED: &str =
        include_str!("../../../tests/fixtures/pods/expected-network-status.json");

    #[test]
    fn fixture_parses_and_round_trips() {
        let statuses = parse_network_status_annotation(EXPECTED).unwrap();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].name, "cbr0");
        assert_eq!(statuses[0].interface, None);
        assert_eq!(statuses[0].ips, vec!["10.244.1.73".to_owned()]);
        assert!(statuses[0].default);
        assert!(statuses[0].dns.is_empty());
        assert_eq!(statuses[1].name, "macvlan-conf");
        assert_eq!(statuses[1].interface.as_deref(), Some("net1"));
        assert_eq!(statuses[1].mac.as_deref(), Some("86:1d:96:ff:55:0d"));
        assert!(!statuses[1].default);
        let written = network_status_annotation_value(&statuses);
        let expected: Value = serde_json::from_str(EXPECTED).unwrap();
        let actual: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(actual, expected);
    }

    #[test]
    fn output_is_indented_and_deterministic() {
        let status = NetworkStatus {
            name: "ns/net".to_owned(),
            interface: Some("net1".to_owned()),
            ips: vec!["10.0.0.2".to_owned()],
            mtu: Some(1500),
            ..NetworkStatus::default()
        };
        let written = network_status_annotation_value(std::slice::from_ref(&status));
        assert_eq!(
            written,
            "[\n    {\n        \"name\": \"ns/net\",\n        \"interface\": \"net1\",\n        \
             \"ips\": [\n            \"10.0.0.2\"\n        ],\n        \"mtu\": 1500,\n        \
             \"dns\": {}\n    }\n]"
        );
        assert_eq!(network_status_annotation_value(&[status]), written);
        assert_eq!(network_status_annotation_value(&[]), "[]");
    }

    #[test]
    fn dns_is_always_written_and_empty_fields_are_omitted() {
        let status = NetworkStatus {
            name: "cbr0".to_owned(),
            ..NetworkStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"name": "cbr0", "dns": {}})
        );
    }

    #[test]
    fn default_route_is_written_under_the_spec_key() {
        let status = NetworkStatus {
            name: "ns/a".to_owned(),
            default: true,
            default_route: vec!["10.0.0.1".to_owned()],
            ..NetworkStatus::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["default-route"], json!(["10.0.0.1"]));
        assert_eq!(json["default"], true);
        assert!(json.get("gateway").is_none());
    }

    #[test]
    fn upstream_gateway_key_is_accepted_on_input() {
        let got = parse_network_status_annotation(
            r#"[{"name":"ns/a","interface":"net1","gateway":["10.0.0.1","fd00::1"],"dns":{}}]"#,
        )
        .unwrap();
        assert_eq!(got[0].default_route, vec!["10.0.0.1", "fd00::1"]);
        let both = parse_network_status_annotation(
            r#"[{"name":"a","gateway":["10.0.0.9"],"default-route":["10.0.0.1"]}]"#,
        )
        .unwrap();
        assert_eq!(both[0].default_route, vec!["10.0.0.1"]);
    }

    #[test]
    fn nulls_and_missing_dns_are_tolerated() {
        let got = parse_network_status_annotation(
            r#"[{"name":"a","ips":null,"dns":null,"mac":"","default":null}]"#,
        )
        .unwrap();
        assert_eq!(
            got[0],
            NetworkStatus {
                name: "a".to_owned(),
                ..NetworkStatus::default()
            }
        );
    }

    #[test]
    fn dns_with_values_round_trips() {
        let text =
            r#"[{"name":"a","dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}}]"#;
        let got = parse_network_status_annotation(text).unwrap();
        assert_eq!(got[0].dns.nameservers, vec!["10.96.0.10"]);
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn pci_device_info_round_trips_with_unknown_fields() {
        let input = json!([{
            "name": "ns/sriov",
            "interface": "net1",
            "ips": ["10.56.217.171"],
            "mac": "92:79:27:01:7c:cf",
            "dns": {},
            "device-info": {
                "type": "pci",
                "version": "1.1.0",
                "pci": {
                    "pci-address": "0000:18:02.5",
                    "vhost-net": "/dev/vhost-net",
                    "rdma-device": "mlx5_9",
                    "pf-pci-address": "0000:18:00.0",
                    "representor-device": "eth5",
                    "numa-node": 0
                },
                "vendor-extension": {"x": 1}
            }
        }]);
        let got: Vec<NetworkStatus> = serde_json::from_value(input.clone()).unwrap();
        let info = got[0].device_info.as_ref().unwrap();
        assert_eq!(info.device_type, Some(DeviceType::Pci));
        assert_eq!(info.version.as_deref(), Some("1.1.0"));
        let pci = info.pci.as_ref().unwrap();
        assert_eq!(pci.pci_address.as_deref(), Some("0000:18:02.5"));
        assert_eq!(pci.vhost_net.as_deref(), Some("/dev/vhost-net"));
        assert_eq!(pci.rdma_device.as_deref(), Some("mlx5_9"));
        assert_eq!(pci.pf_pci_address.as_deref(), Some("0000:18:00.0"));
        assert_eq!(pci.representor_device.as_deref(), Some("eth5"));
        assert_eq!(pci.extra["numa-node"], 0);
        assert_eq!(info.extra["vendor-extension"], json!({"x": 1}));
        assert_eq!(serde_json::to_value(&got).unwrap(), input);
    }

    #[test]
    fn other_device_types_round_trip() {
        let cases = [
            json!({"type": "vdpa", "version": "1.1.0", "vdpa": {
                "parent-device": "vdpa:0000:65:00.3", "driver": "vhost",
                "path": "/dev/vhost-vdpa-0", "pci-address": "0000:65:00.3",
                "pf-pci-address": "0000:65:00.0", "representor-device": "eth3"}}),
            json!({"type": "vhost-user", "version": "1.0.0",
                   "vhost-user": {"mode": "server", "path": "/var/run/vhost.sock"}}),
            json!({"type": "memif", "version": "1.0.0",
                   "memif": {"role": "master", "mode": "ethernet", "path": "/run/memif.sock"}}),
            json!({"type": "future-kind", "future-kind": {"a": "b"}}),
        ];
        for case in cases {
            let info: DeviceInfo = serde_json::from_value(case.clone()).unwrap();
            assert_eq!(serde_json::to_value(&info).unwrap(), case);
        }
        let vdpa: DeviceInfo =
            serde_json::from_value(json!({"type":"vdpa","vdpa":{"driver":"virtio"}})).unwrap();
        assert_eq!(vdpa.device_type, Some(DeviceType::Vdpa));
        assert_eq!(vdpa.vdpa.unwrap().driver.as_deref(), Some("virtio"));
        let vu: DeviceInfo =
            serde_json::from_value(json!({"type":"vhost-user","vhost-user":{"mode":"client"}}))
                .unwrap();
        assert_eq!(vu.device_type, Some(DeviceType::VhostUser));
        assert_eq!(vu.vhost_user.unwrap().mode.as_deref(), Some("client"));
        let memif: DeviceInfo =
            serde_json::from_value(json!({"type":"memif","memif":{"role":"slave"}})).unwrap();
        assert_eq!(memif.device_type, Some(DeviceType::Memif));
        assert_eq!(memif.memif.unwrap().role.as_deref(), Some("slave"));
        let other: DeviceInfo = serde_json::from_value(json!({"type":"future-kind"})).unwrap();
        assert_eq!(
            other.device_type,
            Some(DeviceType::Other("future-kind".to_owned()))
        );
        assert_eq!(DeviceType::VhostUser.to_string(), "vhost-user");
    }

    #[test]
    fn blank_annotation_has_no_entries() {
        assert_eq!(parse_network_status_annotation("").unwrap(), vec![]);
        assert_eq!(parse_network_status_annotation(" \n").unwrap(), vec![]);
    }

    #[test]
    fn invalid_annotations_are_rejected_with_position() {
        let err = parse_network_status_annotation("[{\"name\":\"a\",}]").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("annotation k8s.v1.cni.cncf.io/network-status: not a JSON list"),
            "{msg}"
        );
        assert!(msg.contains("line 1 column 14"), "{msg}");
        let msg = parse_network_status_annotation(r#"{"name":"a"}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("expected a sequence"), "{msg}");
        let msg = parse_network_status_annotation(r#"[{"interface":"a"}]"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing field `name`"), "{msg}");
        let msg = parse_network_status_annotation(r#"[{"name":"a","mtu":-1}]"#)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid value: integer `-1`"), "{msg}");
    }
}
