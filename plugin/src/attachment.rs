//! One attachment of a pod: a network (cluster network or NAD) on one
//! interface, with everything needed to ADD, CHECK and DEL it again.

use std::net::IpAddr;
use std::path::PathBuf;

use multus_config::cni::netconf::NetworkConfig;
use multus_config::npwg::DeviceInfo;
use serde_json::{Map, Value};

use crate::dra::DraDevice;

/// A network attached to the pod on one interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// `namespace/name` of the NAD, or the cluster network's CNI name.
    pub name: String,
    /// The delegate's config (conf or conflist).
    pub config: NetworkConfig,
    /// Interface name inside the pod.
    pub ifname: String,
    /// Capability arguments offered to the delegate's plugins (each plugin
    /// gets the ones it declares).
    pub capability_args: Map<String, Value>,
    /// `CNI_ARGS` of the delegate.
    pub cni_args: String,
    /// Whether this is the cluster (default) network.
    pub is_cluster_network: bool,
    /// Requested default-route gateways (`Some(vec![])`: keep this
    /// interface's own default routes).
    pub default_route: Option<Vec<IpAddr>>,
    /// The ADD result, in the delegate's version, once known.
    pub result: Option<Value>,
    /// The device it uses (SR-IOV VF, ...), if any.
    pub device: DeviceAttachment,
    /// Why the pod has it (recorded in the cache).
    pub origin: Origin,
}

/// Why a pod has an attachment: network hot-plug only ever detaches the
/// networks of the annotation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// Not recorded (a cache of upstream Multus or of an older version).
    #[default]
    Unrecorded,
    /// Every pod gets it: the cluster network, the other inline
    /// delegates, `defaultNetworks`.
    Static,
    /// An element of the pod's networks annotation (at ADD or hot-plugged
    /// by `multus sync-networks`).
    Annotation,
    /// Added through upstream's delegate API (`multus delegate`).
    DelegateApi,
}

/// What an attachment knows about the device it uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceAttachment {
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`: a device of it is
    /// asked from the kubelet, else from the pod's ResourceClaims.
    pub resource_name: Option<String>,
    /// The device's ID: the kubelet's or the claim device's for
    /// `resource_name`, else the annotation's `deviceID`.
    pub id: Option<String>,
    /// The ResourceClaim device it is, when it came from a claim (DRA).
    pub dra: Option<DraDevice>,
    /// The attachment's device-info file, passed as `CNIDeviceInfoFile`.
    pub info_file: Option<PathBuf>,
    /// The device information found in `info_file` after ADD (for the
    /// network-status).
    pub info: Option<DeviceInfo>,
}

impl Attachment {
    /// The CNI network name of the delegate config.
    pub fn network_name(&self) -> &str {
        self.config.name().unwrap_or(&self.name)
    }
}
