//! Network devices of the pod's ResourceClaims (Dynamic Resource
//! Allocation, `resource.k8s.io/v1`, Kubernetes 1.34+).
//!
//! A device a DRA driver publishes in a ResourceSlice with the attributes
//! `k8s.cni.cncf.io/resourceName` and `k8s.cni.cncf.io/deviceID` (the names
//! upstream Multus and the SR-IOV DRA driver's Multus mode use) can serve a
//! NAD whose `k8s.v1.cni.cncf.io/resourceName` is that resource; its
//! `deviceID` goes to the delegate as a device plugin's would.
//!
//! - [`slices`]: the attributes of the node's devices (pure);
//! - [`claims`]: the pod's claims and which of their devices can serve
//!   which resource, and why the others cannot (pure);
//! - [`lookup`]: reads the claims and the node's ResourceSlices;
//! - [`network_data`]: the claim status entries of our attachments
//!   (KEP-4817 `networkData`, pure);
//! - [`claim_status`]: writes them after ADD and removes them after DEL.

pub mod claim_status;
pub mod claims;
pub mod lookup;
pub mod network_data;
pub mod slices;

use serde::{Deserialize, Serialize};

pub use claim_status::{publish_network_data, withdraw_network_data, withdraw_with_conf};
pub use claims::{ClaimDevices, ClaimProblem, ClaimedDevice, match_claims, pod_claim_names};
pub use lookup::read_claim_devices;
pub use slices::{DeviceAttributes, SliceIndex};

/// Device attribute naming the resource a device serves (equal to a NAD's
/// `k8s.v1.cni.cncf.io/resourceName`).
pub const RESOURCE_NAME_ATTRIBUTE: &str = "k8s.cni.cncf.io/resourceName";

/// Device attribute holding the ID handed to the delegate as `deviceID`.
pub const DEVICE_ID_ATTRIBUTE: &str = "k8s.cni.cncf.io/deviceID";

/// A device allocated to one of the pod's ResourceClaims, as the cache
/// records it (so that DEL can remove the claim's status entry without
/// asking which device it was).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraDevice {
    /// The claim's namespace (the pod's).
    pub claim_namespace: String,
    /// The claim's name (`resourceClaimName` of the pod's status).
    pub claim_name: String,
    /// The claim's UID: a claim recreated under the same name is left
    /// alone.
    pub claim_uid: String,
    /// The DRA driver.
    pub driver: String,
    /// The driver's pool.
    pub pool: String,
    /// The device's name in the pool.
    pub device: String,
    /// The allocation's share of a device allocated several times
    /// (consumable capacity), part of the status entry's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_id: Option<String>,
}

impl DraDevice {
    /// `namespace/name` of the claim.
    pub fn claim(&self) -> String {
        format!("{}/{}", self.claim_namespace, self.claim_name)
    }

    /// `driver/pool/device`, as Kubernetes names an allocated device.
    pub fn device_path(&self) -> String {
        format!("{}/{}/{}", self.driver, self.pool, self.device)
    }
}

/// Objects of the DRA API for tests, as the API server sends them.
#[cfg(test)]
pub(crate) mod fixtures {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
    use serde_json::{Value, json};

    /// Driver of the fixtures' devices.
    pub const DRIVER: &str = "nic.example.com";
    /// Pool (and node) of the fixtures' devices.
    pub const NODE: &str = "node-a";

    /// Claim `name` (UID `uid-<name>`) in `ns` with `devices` allocated
    /// (request `nic`, driver [`DRIVER`], pool [`NODE`]).
    pub fn claim(name: &str, devices: &[&str]) -> ResourceClaim {
        let results: Vec<Value> = devices
            .iter()
            .map(|d| json!({"request": "nic", "driver": DRIVER, "pool": NODE, "device": d}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"devices": {"requests": [{"name": "nic", "exactly": {"deviceClassName": "nic"}}]}},
            "status": {"allocation": {"devices": {"results": results}}}
        }))
        .unwrap()
    }

    /// The node's slice of [`DRIVER`]: each device with its
    /// (resourceName, deviceID) attributes, `None` for an absent one.
    pub fn slice(devices: &[(&str, Option<&str>, Option<&str>)]) -> ResourceSlice {
        let devices: Vec<Value> = devices
            .iter()
            .map(|(name, resource, id)| {
                let mut attributes = serde_json::Map::new();
                if let Some(r) = resource {
                    attributes.insert(super::RESOURCE_NAME_ATTRIBUTE.into(), json!({"string": r}));
                }
                if let Some(i) = id {
                    attributes.insert(super::DEVICE_ID_ATTRIBUTE.into(), json!({"string": i}));
                }
                json!({"name": name, "attributes": attributes})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": format!("{NODE}-{DRIVER}")},
            "spec": {"driver": DRIVER, "nodeName": NODE,
                "pool": {"name": NODE, "generation": 1, "resourceSliceCount": 1},
                "devices": devices}
        }))
        .unwrap()
    }

    /// Pod `ns/web` on [`NODE`] whose status names `claims`
    /// (pod-local name, resourceClaimName) and, if given, an extended
    /// resource claim.
    pub fn pod(claims: &[(&str, &str)], extended: Option<&str>) -> Pod {
        let statuses: Vec<Value> = claims
            .iter()
            .map(|(name, claim)| json!({"name": name, "resourceClaimName": claim}))
            .collect();
        let mut status = json!({"resourceClaimStatuses": statuses});
        if let Some(claim) = extended {
            status["extendedResourceClaimStatus"] = json!({
                "resourceClaimName": claim,
                "requestMappings": [{"containerName": "app", "resourceName": "example.com/nic", "requestName": "container-0-request-0"}]
            });
        }
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "i"}]},
            "status": status
        }))
        .unwrap()
    }
}
