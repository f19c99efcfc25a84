//! NPWG multi-network types: NADs, the networks annotation, network-status.
//!
//! Everything here follows the Kubernetes Network Plumbing Working Group's
//! multi-network specification as upstream Multus implements it, with the
//! departures listed in docs/architecture.md (stricter annotation parsing, the
//! `default-route` key in network-status). All functions are pure: callers
//! pass in annotation text, NAD fields and directory listings.

pub mod default_network;
pub mod device_info;
pub mod nad;
pub mod selection;
pub mod status;

pub use default_network::parse_default_network_annotation;
pub use nad::{
    ConfFile, ConfigSource, NadError, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
    ResolvedConfig, resolve_nad_config,
};
pub use selection::{
    AnnotationError, NetworkSelectionElement, interface_name_problem, parse_hardware_addr,
    parse_networks_annotation,
};
pub use status::{
    DeviceInfo, DeviceType, MemifDevice, NetworkStatus, PciDevice, StatusError, VdpaDevice,
    VhostUserDevice, network_status_annotation_value, parse_network_status_annotation,
};

/// Pod annotation listing the extra networks to attach.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// Pod annotation written after ADD, one entry per interface of the pod.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// Pod annotation replacing the cluster network for that pod.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";

/// NAD annotation naming the device-plugin resource an attachment needs.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_keys_match_upstream() {
        assert_eq!(NETWORKS_ANNOTATION, "k8s.v1.cni.cncf.io/networks");
        assert_eq!(
            NETWORK_STATUS_ANNOTATION,
            "k8s.v1.cni.cncf.io/network-status"
        );
        assert_eq!(
            DEFAULT_NETWORK_ANNOTATION,
            "v1.multus-cni.io/default-network"
        );
        assert_eq!(RESOURCE_NAME_ANNOTATION, "k8s.v1.cni.cncf.io/resourceName");
    }
}
