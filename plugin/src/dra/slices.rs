//! The attributes of the devices in the node's ResourceSlices.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::resource::v1::ResourceSlice;

use super::{DEVICE_ID_ATTRIBUTE, RESOURCE_NAME_ATTRIBUTE};

/// The two attributes Multus reads from a device (string values only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceAttributes {
    /// `k8s.cni.cncf.io/resourceName`.
    pub resource_name: Option<String>,
    /// `k8s.cni.cncf.io/deviceID`.
    pub device_id: Option<String>,
}

/// The devices of a set of ResourceSlices by driver, pool and device name.
/// Of a pool published in several generations (a driver replacing its
/// slices), only the newest counts, as for the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceIndex {
    devices: HashMap<(String, String, String), DeviceAttributes>,
}

impl SliceIndex {
    /// Indexes `slices`.
    pub fn from_slices(slices: &[ResourceSlice]) -> Self {
        let mut newest: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for slice in slices {
            let key = (slice.spec.driver.as_str(), slice.spec.pool.name.as_str());
            let generation = slice.spec.pool.generation;
            newest
                .entry(key)
                .and_modify(|g| *g = (*g).max(generation))
                .or_insert(generation);
        }
        let mut devices = HashMap::new();
        for slice in slices {
            let (driver, pool) = (&slice.spec.driver, &slice.spec.pool.name);
            if newest.get(&(driver.as_str(), pool.as_str())) != Some(&slice.spec.pool.generation) {
                continue;
            }
            for device in slice.spec.devices.iter().flatten() {
                let attribute = |name: &str| {
                    device
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get(name))
                        .and_then(|a| a.string.clone())
                        .filter(|s| !s.is_empty())
                };
                devices.insert(
                    (driver.clone(), pool.clone(), device.name.clone()),
                    DeviceAttributes {
                        resource_name: attribute(RESOURCE_NAME_ATTRIBUTE),
                        device_id: attribute(DEVICE_ID_ATTRIBUTE),
                    },
                );
            }
        }
        Self { devices }
    }

    /// The attributes of a device, `None` when no slice lists it.
    pub fn get(&self, driver: &str, pool: &str, device: &str) -> Option<&DeviceAttributes> {
        self.devices
            .get(&(driver.to_owned(), pool.to_owned(), device.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn slice(pool: &str, generation: i64, devices: serde_json::Value) -> ResourceSlice {
        serde_json::from_value(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": format!("node-a-{pool}-{generation}")},
            "spec": {"driver": "nic.example.com", "nodeName": "node-a",
                "pool": {"name": pool, "generation": generation, "resourceSliceCount": 1},
                "devices": devices}
        }))
        .unwrap()
    }

    #[test]
    fn reads_string_attributes_of_the_newest_generation() {
        let index = SliceIndex::from_slices(&[
            slice(
                "p",
                1,
                json!([{"name": "old", "attributes": {"k8s.cni.cncf.io/deviceID": {"string": "x"}}}]),
            ),
            slice(
                "p",
                2,
                json!([
                    {"name": "nic-0", "attributes": {
                        "k8s.cni.cncf.io/resourceName": {"string": "example.com/nic"},
                        "k8s.cni.cncf.io/deviceID": {"string": "0000:00:01.0"}}},
                    {"name": "nic-1", "attributes": {"k8s.cni.cncf.io/deviceID": {"int": 7}}},
                    {"name": "nic-2"}
                ]),
            ),
        ]);
        assert_eq!(
            index.get("nic.example.com", "p", "nic-0"),
            Some(&DeviceAttributes {
                resource_name: Some("example.com/nic".into()),
                device_id: Some("0000:00:01.0".into()),
            })
        );
        assert_eq!(
            index.get("nic.example.com", "p", "nic-1"),
            Some(&DeviceAttributes::default()),
            "only string values count"
        );
        assert_eq!(
            index.get("nic.example.com", "p", "nic-2"),
            Some(&DeviceAttributes::default())
        );
        assert_eq!(
            index.get("nic.example.com", "p", "old"),
            None,
            "an older generation of the pool is ignored"
        );
        assert_eq!(index.get("other.example.com", "p", "nic-0"), None);
    }
}
