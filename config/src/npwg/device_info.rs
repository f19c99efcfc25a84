//! Where device information lives on a node, per the multi-network
//! device-info specification: a device plugin leaves a file per allocated
//! device, the meta-plugin copies it to a file per attachment and tells the
//! CNI plugin its path (capability `CNIDeviceInfoFile`), and the content ends
//! up in the `device-info` field of the network-status annotation.
//!
//! Only names are computed here; the plugin does the I/O.

use super::NetworkAttachmentDefinition;
use super::RESOURCE_NAME_ANNOTATION;
use super::status::DeviceInfo;

/// The base directory of device-info files.
pub const DEFAULT_DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";
/// Sub-directory of the files device plugins write.
pub const DEVICE_PLUGIN_SUBDIR: &str = "dp";
/// Sub-directory of the per-attachment files handed to CNI plugins.
pub const CNI_SUBDIR: &str = "cni";

/// The file name a device plugin gives the information of one device:
/// `<resource>-<deviceID>-device.json`, each `/` replaced by `-` (the name
/// is fixed by convention, both sides compute it).
pub fn device_plugin_file_name(resource_name: &str, device_id: &str) -> String {
    format!(
        "{}-{}-device.json",
        resource_name.replace('/', "-"),
        device_id.replace('/', "-")
    )
}

/// The file name of an attachment's device information for its CNI plugin:
/// `<network>-<containerID>_<ifname>`, each `/` replaced by `-` (so
/// `ns/nad` becomes `ns-nad`), as Multus has always named it.
pub fn cni_file_name(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}-{container_id}_{ifname}").replace('/', "-")
}

/// Parses a device-info file.
pub fn parse_device_info(bytes: &[u8]) -> Result<DeviceInfo, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The device-plugin resource a NAD's attachments need (its
/// `k8s.v1.cni.cncf.io/resourceName` annotation), trimmed; `None` when
/// absent or blank.
pub fn nad_resource_name(nad: &NetworkAttachmentDefinition) -> Option<&str> {
    nad.metadata
        .annotations
        .as_ref()?
        .get(RESOURCE_NAME_ANNOTATION)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npwg::{DeviceType, NetworkAttachmentDefinitionSpec};

    #[test]
    fn device_plugin_names_replace_slashes() {
        assert_eq!(
            device_plugin_file_name("intel.com/sriov_netdevice", "0000:af:06.0"),
            "intel.com-sriov_netdevice-0000:af:06.0-device.json"
        );
        assert_eq!(
            device_plugin_file_name("example.com/nic", "a/b"),
            "example.com-nic-a-b-device.json"
        );
    }

    #[test]
    fn cni_names_flatten_the_namespace() {
        assert_eq!(
            cni_file_name("default/sriov-net", "0123abcd", "net1"),
            "default-sriov-net-0123abcd_net1"
        );
        assert!(!cni_file_name("../../etc", "x", "y").contains('/'));
    }

    #[test]
    fn reads_a_device_info_file_of_the_spec() {
        let info = parse_device_info(
            br#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:18:02.5","rdma-device":"mlx5_3"}}"#,
        )
        .unwrap();
        assert_eq!(info.device_type, Some(DeviceType::Pci));
        let pci = info.pci.unwrap();
        assert_eq!(pci.pci_address.as_deref(), Some("0000:18:02.5"));
        assert_eq!(pci.rdma_device.as_deref(), Some("mlx5_3"));
        assert!(parse_device_info(b"not json").is_err());
    }

    #[test]
    fn resource_name_comes_from_the_nad_annotation() {
        let mut nad = NetworkAttachmentDefinition::new(
            "sriov",
            NetworkAttachmentDefinitionSpec { config: None },
        );
        assert_eq!(nad_resource_name(&nad), None);
        nad.metadata.annotations = Some(
            [(
                RESOURCE_NAME_ANNOTATION.to_owned(),
                " intel.com/sriov ".to_owned(),
            )]
            .into(),
        );
        assert_eq!(nad_resource_name(&nad), Some("intel.com/sriov"));
        nad.metadata.annotations =
            Some([(RESOURCE_NAME_ANNOTATION.to_owned(), "  ".to_owned())].into());
        assert_eq!(nad_resource_name(&nad), None);
    }
}
