//! `runtimeConfig`: the dynamic per-attachment arguments a plugin receives
//! for the capabilities it declares (CNI conventions: the key in
//! `runtimeConfig` is the capability's name).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::netconf::{
    Field, KeyOrder, NetConf, entries_to_value, json_type, ordered_entries, serialize_entries,
};

/// Capability `portMappings`.
pub const CAP_PORT_MAPPINGS: &str = "portMappings";
/// Capability `bandwidth`.
pub const CAP_BANDWIDTH: &str = "bandwidth";
/// Capability `ips`.
pub const CAP_IPS: &str = "ips";
/// Capability `mac`.
pub const CAP_MAC: &str = "mac";
/// Capability `infinibandGUID`.
pub const CAP_INFINIBAND_GUID: &str = "infinibandGUID";
/// Capability `deviceID`.
pub const CAP_DEVICE_ID: &str = "deviceID";
/// Capability `CNIDeviceInfoFile`.
pub const CAP_CNI_DEVICE_INFO_FILE: &str = "CNIDeviceInfoFile";

/// One port mapping (`portMappings` capability).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The host address to bind (`hostIP`).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Traffic shaping (`bandwidth` capability); rates in bits per second,
/// bursts in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    /// `ingressRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_rate: Option<u64>,
    /// `ingressBurst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_burst: Option<u64>,
    /// `egressRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_rate: Option<u64>,
    /// `egressBurst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_burst: Option<u64>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `runtimeConfig` object, lossless: known keys typed, the rest in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `portMappings`.
    pub port_mappings: Option<Vec<PortMapping>>,
    /// `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// `ips`: requested addresses, usually with a prefix length.
    pub ips: Option<Vec<String>>,
    /// `mac`: the requested MAC address.
    pub mac: Option<String>,
    /// `infinibandGUID`.
    pub infiniband_guid: Option<String>,
    /// `deviceID`: the PCI address or other ID of the allocated device.
    pub device_id: Option<String>,
    /// `CNIDeviceInfoFile`: where the plugin may write device information.
    pub cni_device_info_file: Option<String>,
    /// Every other key in its original order (plus known keys whose value
    /// was `null`; a typed field that is set wins over them).
    pub extra: Map<String, Value>,
    /// The original key order (serialisation hint; ignored by equality).
    pub key_order: KeyOrder,
}

/// A known `runtimeConfig` key with a value of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtimeConfig: invalid {field:?}: {message}")]
pub struct RuntimeConfigError {
    /// The key.
    pub field: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

fn typed<T: serde::de::DeserializeOwned>(
    field: &'static str,
    value: Value,
) -> Result<T, RuntimeConfigError> {
    serde_json::from_value(value).map_err(|e| RuntimeConfigError {
        field,
        message: e.to_string(),
    })
}

fn owned<T: Serialize>(value: &T) -> Field<'static> {
    // Serialising these plain data types into a Value cannot fail.
    Field::Owned(serde_json::to_value(value).unwrap_or(Value::Null))
}

impl RuntimeConfig {
    /// Builds a runtime config from a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, RuntimeConfigError> {
        let mut rc = Self {
            key_order: KeyOrder::new(map.keys().cloned()),
            ..Self::default()
        };
        for (key, value) in map {
            if value.is_null() {
                rc.extra.insert(key, value);
                continue;
            }
            match key.as_str() {
                CAP_PORT_MAPPINGS => rc.port_mappings = Some(typed(CAP_PORT_MAPPINGS, value)?),
                CAP_BANDWIDTH => rc.bandwidth = Some(typed(CAP_BANDWIDTH, value)?),
                CAP_IPS => rc.ips = Some(typed(CAP_IPS, value)?),
                CAP_MAC => rc.mac = Some(typed(CAP_MAC, value)?),
                CAP_INFINIBAND_GUID => {
                    rc.infiniband_guid = Some(typed(CAP_INFINIBAND_GUID, value)?);
                }
                CAP_DEVICE_ID => rc.device_id = Some(typed(CAP_DEVICE_ID, value)?),
                CAP_CNI_DEVICE_INFO_FILE => {
                    rc.cni_device_info_file = Some(typed(CAP_CNI_DEVICE_INFO_FILE, value)?);
                }
                _ => {
                    rc.extra.insert(key, value);
                }
            }
        }
        Ok(rc)
    }

    /// Builds a runtime config from JSON, which must be an object.
    pub fn from_value(value: Value) -> Result<Self, RuntimeConfigError> {
        match value {
            Value::Object(map) => Self::from_map(map),
            other => Err(RuntimeConfigError {
                field: "runtimeConfig",
                message: format!("expected an object, found {}", json_type(&other)),
            }),
        }
    }

    fn entries(&self) -> Vec<(&str, Field<'_>)> {
        let known = vec![
            (CAP_PORT_MAPPINGS, self.port_mappings.as_ref().map(owned)),
            (CAP_BANDWIDTH, self.bandwidth.as_ref().map(owned)),
            (CAP_IPS, self.ips.as_ref().map(owned)),
            (CAP_MAC, self.mac.as_deref().map(Field::Str)),
            (
                CAP_INFINIBAND_GUID,
                self.infiniband_guid.as_deref().map(Field::Str),
            ),
            (CAP_DEVICE_ID, self.device_id.as_deref().map(Field::Str)),
            (
                CAP_CNI_DEVICE_INFO_FILE,
                self.cni_device_info_file.as_deref().map(Field::Str),
            ),
        ];
        ordered_entries(&self.key_order, known, &self.extra)
    }

    /// The runtime config as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        match entries_to_value(self.entries()) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The runtime config as JSON.
    pub fn to_value(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// The keys that carry a value (not `null`), in output order.
    pub fn requested_keys(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|(_, f)| !matches!(f, Field::Json(Value::Null)))
            .map(|(k, _)| k.to_owned())
            .collect()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// The entries of this config a plugin with `capabilities` receives.
    pub fn for_capabilities(&self, capabilities: &BTreeMap<String, bool>) -> Map<String, Value> {
        filter_for_capabilities(&self.to_map(), capabilities)
    }
}

impl Serialize for RuntimeConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_entries(serializer, self.entries())
    }
}

impl<'de> Deserialize<'de> for RuntimeConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(deserializer)?;
        Self::from_map(map).map_err(serde::de::Error::custom)
    }
}

/// The entries of `runtime_config` whose key is a capability declared `true`
/// in `capabilities`, in their original order.
pub fn filter_for_capabilities(
    runtime_config: &Map<String, Value>,
    capabilities: &BTreeMap<String, bool>,
) -> Map<String, Value> {
    runtime_config
        .iter()
        .filter(|(k, _)| capabilities.get(k.as_str()).copied().unwrap_or(false))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The requested keys (deduplicated, in request order) that no plugin
/// declares: `capabilities` is the union over every plugin of the attachment
/// (see `NetworkConfig::capabilities`).
pub fn undeclared_requested<I, S>(
    requested: I,
    capabilities: &BTreeMap<String, bool>,
) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = HashSet::new();
    requested
        .into_iter()
        .filter_map(|key| {
            let key = key.as_ref();
            let declared = capabilities.get(key).copied().unwrap_or(false);
            (!declared && seen.insert(key.to_owned())).then(|| key.to_owned())
        })
        .collect()
}

/// Gives `conf` the capability arguments it declares, as a runtime does:
/// the entries of `capability_args` whose capability `conf` declares `true`
/// are merged into its `runtimeConfig` (replacing keys of the same name,
/// keeping the others). Returns the keys that were injected.
pub fn inject_capability_args(
    conf: &mut NetConf,
    capability_args: &Map<String, Value>,
) -> Vec<String> {
    let Some(capabilities) = &conf.capabilities else {
        return Vec::new();
    };
    let selected = filter_for_capabilities(capability_args, capabilities);
    if selected.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = selected.keys().cloned().collect();
    let mut target = match conf.runtime_config.take() {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (k, v) in selected {
        target.insert(k, v);
    }
    conf.runtime_config = Some(Value::Object(target));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    const FULL: &str = r#"{
        "portMappings": [
            { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" },
            { "hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "10.0.0.1" }
        ],
        "bandwidth": { "ingressRate": 1000000, "ingressBurst": 2000000, "egressRate": 3000000, "egressBurst": 4000000 },
        "ips": [ "10.1.1.5/24", "fd00::5/64" ],
        "mac": "c2:11:22:33:44:55",
        "infinibandGUID": "c2:11:22:33:44:55:66:77",
        "deviceID": "0000:af:06.0",
        "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/abc-net1.json",
        "io.kubernetes.cri.pod-annotations": { "a": "b" },
        "aliases": null
    }"#;

    #[test]
    fn parses_every_known_key() {
        let rc: RuntimeConfig = serde_json::from_str(FULL).unwrap();
        let pm = rc.port_mappings.as_ref().unwrap();
        assert_eq!(pm.len(), 2);
        assert_eq!(pm[0].host_port, 8080);
        assert_eq!(pm[0].container_port, 80);
        assert_eq!(pm[0].protocol.as_deref(), Some("tcp"));
        assert_eq!(pm[0].host_ip, None);
        assert_eq!(pm[1].host_ip.as_deref(), Some("10.0.0.1"));
        let bw = rc.bandwidth.as_ref().unwrap();
        assert_eq!(
            (
                bw.ingress_rate,
                bw.ingress_burst,
                bw.egress_rate,
                bw.egress_burst
            ),
            (
                Some(1_000_000),
                Some(2_000_000),
                Some(3_000_000),
                Some(4_000_000)
            )
        );
        assert_eq!(
            rc.ips.as_deref(),
            Some(&["10.1.1.5/24".to_owned(), "fd00::5/64".to_owned()][..])
        );
        assert_eq!(rc.mac.as_deref(), Some("c2:11:22:33:44:55"));
        assert_eq!(
            rc.infiniband_guid.as_deref(),
            Some("c2:11:22:33:44:55:66:77")
        );
        assert_eq!(rc.device_id.as_deref(), Some("0000:af:06.0"));
        assert_eq!(
            rc.cni_device_info_file.as_deref(),
            Some("/var/run/k8s.cni.cncf.io/devinfo/cni/abc-net1.json")
        );
        assert_eq!(
            rc.extra.keys().collect::<Vec<_>>(),
            ["io.kubernetes.cri.pod-annotations", "aliases"]
        );
    }

    #[test]
    fn is_lossless_including_order_and_nulls() {
        let original: Value = serde_json::from_str(FULL).unwrap();
        let rc = RuntimeConfig::from_value(original.clone()).unwrap();
        assert_eq!(rc.to_value(), original);
        assert_eq!(
            serde_json::to_string(&rc).unwrap(),
            serde_json::to_string(&original).unwrap()
        );
        for text in [
            "{}",
            r#"{"mac":null,"ips":[]}"#,
            r#"{"portMappings":[{"hostPort":1,"containerPort":2,"podIP":"x"}]}"#,
            r#"{"bandwidth":{}}"#,
            r#"{"bandwidth":{"ingressRate":5,"unit":"bps"}}"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let rc: RuntimeConfig = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&rc).unwrap(), v, "{text}");
            assert_eq!(serde_json::to_string(&rc).unwrap(), v.to_string(), "{text}");
        }
    }

    #[test]
    fn built_config_serialises_known_keys_in_canonical_order() {
        let rc = RuntimeConfig {
            mac: Some("aa:bb:cc:dd:ee:ff".into()),
            ips: Some(vec!["10.0.0.9/24".into()]),
            bandwidth: Some(Bandwidth {
                ingress_rate: Some(100),
                ..Bandwidth::default()
            }),
            ..RuntimeConfig::default()
        };
        assert_eq!(
            serde_json::to_string(&rc).unwrap(),
            r#"{"bandwidth":{"ingressRate":100},"ips":["10.0.0.9/24"],"mac":"aa:bb:cc:dd:ee:ff"}"#
        );
        assert_eq!(rc.requested_keys(), ["bandwidth", "ips", "mac"]);
        assert!(!rc.is_empty());
        assert!(RuntimeConfig::default().is_empty());
    }

    #[test]
    fn null_known_keys_are_not_requests() {
        let rc: RuntimeConfig =
            serde_json::from_str(r#"{"portMappings":null,"mac":"x","other":1}"#).unwrap();
        assert_eq!(rc.port_mappings, None);
        assert_eq!(rc.requested_keys(), ["mac", "other"]);
    }

    #[test]
    fn rejects_badly_shaped_known_keys() {
        let err = RuntimeConfig::from_value(
            json!({"portMappings": [{"hostPort": 70000, "containerPort": 1}]}),
        )
        .unwrap_err();
        assert_eq!(err.field, "portMappings");
        assert!(
            err.to_string()
                .starts_with("runtimeConfig: invalid \"portMappings\": "),
            "{err}"
        );
        let err = RuntimeConfig::from_value(json!({"ips": "10.0.0.1/24"})).unwrap_err();
        assert_eq!(err.field, "ips");
        let err = RuntimeConfig::from_value(json!({"mac": 5})).unwrap_err();
        assert_eq!(err.field, "mac");
        let err = RuntimeConfig::from_value(json!([1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runtimeConfig: invalid \"runtimeConfig\": expected an object, found an array"
        );
        let err = serde_json::from_str::<RuntimeConfig>(r#"{"bandwidth":{"ingressRate":-1}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("\"bandwidth\""), "{err}");
    }

    #[test]
    fn filters_by_declared_capabilities() {
        let rc: RuntimeConfig = serde_json::from_str(FULL).unwrap();
        let map = rc.to_map();
        let declared = caps(&[("portMappings", true), ("mac", true), ("ips", false)]);
        let filtered = filter_for_capabilities(&map, &declared);
        assert_eq!(filtered.keys().collect::<Vec<_>>(), ["portMappings", "mac"]);
        assert_eq!(filtered["mac"], json!("c2:11:22:33:44:55"));
        assert_eq!(rc.for_capabilities(&declared), filtered);
        assert!(filter_for_capabilities(&map, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn reports_requests_no_plugin_declares() {
        let declared = caps(&[("ips", true), ("mac", false), ("portMappings", true)]);
        assert_eq!(
            undeclared_requested(["ips", "mac", "bandwidth", "mac"], &declared),
            ["mac", "bandwidth"]
        );
        assert!(undeclared_requested(["ips", "portMappings"], &declared).is_empty());
        let requested = vec!["infinibandGUID".to_owned()];
        assert_eq!(
            undeclared_requested(&requested, &BTreeMap::new()),
            ["infinibandGUID"]
        );
    }

    #[test]
    fn injects_only_declared_capability_args() {
        let mut conf = NetConf::new("macvlan");
        conf.capabilities = Some(caps(&[("ips", true), ("mac", true), ("bandwidth", false)]));
        conf.runtime_config = Some(json!({"static": 1, "mac": "old"}));
        let args = RuntimeConfig {
            ips: Some(vec!["10.0.0.5/24".into()]),
            mac: Some("aa:aa:aa:aa:aa:aa".into()),
            bandwidth: Some(Bandwidth::default()),
            ..RuntimeConfig::default()
        };
        let injected = inject_capability_args(&mut conf, &args.to_map());
        assert_eq!(injected, ["ips", "mac"]);
        assert_eq!(
            conf.runtime_config,
            Some(json!({"static": 1, "mac": "aa:aa:aa:aa:aa:aa", "ips": ["10.0.0.5/24"]}))
        );

        // No capabilities: nothing changes.
        let mut plain = NetConf::new("bridge");
        assert!(inject_capability_args(&mut plain, &args.to_map()).is_empty());
        assert_eq!(plain.runtime_config, None);

        // Declared but not requested: runtimeConfig stays absent.
        let mut pm = NetConf::new("portmap");
        pm.capabilities = Some(caps(&[("portMappings", true)]));
        assert!(inject_capability_args(&mut pm, &args.to_map()).is_empty());
        assert_eq!(pm.runtime_config, None);
    }
}
