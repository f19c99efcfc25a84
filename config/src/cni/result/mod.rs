//! CNI results of every spec version, and conversion between them.
//!
//! Three formats cover the seven versions: [`Result020`] (0.1.0, 0.2.0),
//! [`Result040`] (0.3.0, 0.3.1, 0.4.0) and [`Result100`] (1.0.0, 1.1.0).

mod convert;
pub mod v020;
pub mod v040;
pub mod v100;

use std::net::IpAddr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

pub use convert::ConvertError;
pub use v020::{Ip020, Result020};
pub use v040::{Ip040, Result040};
pub use v100::{IpConfig, Result100};

use super::ip::Cidr;
use super::netconf::json_type;
use super::version::{CniVersion, UnknownVersion};

/// An interface of a 0.3.0+ result. `mtu`, `socketPath` and `pciID` are
/// 1.1.0 attributes and are dropped when converting to an older version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// `name` of the interface.
    pub name: String,
    /// `mac` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `mtu` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `sandbox`: the network namespace path; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// `socketPath` of a userspace interface (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// `pciID` of the device (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

impl Interface {
    /// An interface with a name and nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Whether the interface is inside a sandbox (non-empty `sandbox`).
    pub fn is_in_sandbox(&self) -> bool {
        self.sandbox.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// Drops the 1.1.0-only attributes.
    pub fn strip_v1_1(&mut self) {
        self.mtu = None;
        self.socket_path = None;
        self.pci_id = None;
    }
}

/// A route. `mtu`, `advmss`, `priority`, `table` and `scope` are 1.1.0
/// attributes and are dropped when converting to an older version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `dst`: the destination prefix.
    pub dst: Cidr,
    /// `gw`: the next hop; absent means the interface's default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// `mtu` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `advmss` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// `priority` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// `table` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// `scope` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw`.
    pub fn new(dst: Cidr, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    /// Drops the 1.1.0-only attributes.
    pub fn strip_v1_1(&mut self) {
        *self = Self::new(self.dst, self.gw);
    }
}

/// A result of any supported version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniResult {
    /// 0.1.0 or 0.2.0.
    V020(Result020),
    /// 0.3.0, 0.3.1 or 0.4.0.
    V040(Result040),
    /// 1.0.0 or 1.1.0.
    V100(Result100),
}

/// Plugin output that is not a valid result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The bytes are not JSON.
    #[error("CNI result is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("CNI result must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// No `cniVersion` in the result and none expected.
    #[error("CNI result has no \"cniVersion\" and no version was expected")]
    MissingVersion,
    /// `cniVersion` is not a string.
    #[error("CNI result: \"cniVersion\" must be a string, found {found}")]
    VersionNotString {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// `cniVersion` is not a version we know.
    #[error("CNI result: {0}")]
    UnknownVersion(#[from] UnknownVersion),
    /// The content does not match the version's format.
    #[error("invalid CNI {version} result: {message}")]
    Invalid {
        /// The version the result was read as.
        version: CniVersion,
        /// serde's message.
        message: String,
    },
}

/// The result format of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    V020,
    V040,
    V100,
}

impl Format {
    pub(crate) fn of(version: CniVersion) -> Self {
        match version {
            CniVersion::V0_1_0 | CniVersion::V0_2_0 => Self::V020,
            CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => Self::V040,
            CniVersion::V1_0_0 | CniVersion::V1_1_0 => Self::V100,
        }
    }
}

impl CniResult {
    /// Parses a plugin's result. The result's own `cniVersion` decides the
    /// format; `expected` (the config's version) is used only when the
    /// result has none. Convert with [`CniResult::convert_to`] afterwards.
    pub fn parse(bytes: &[u8], expected: Option<CniVersion>) -> Result<Self, ResultError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ResultError::NotJson(e.to_string()))?;
        Self::from_value(value, expected)
    }

    /// Builds a result from JSON (same rules as [`CniResult::parse`]), e.g.
    /// from a config's `prevResult`.
    pub fn from_value(value: Value, expected: Option<CniVersion>) -> Result<Self, ResultError> {
        let Value::Object(mut map) = value else {
            return Err(ResultError::NotAnObject {
                found: json_type(&value),
            });
        };
        let version = match map.get("cniVersion") {
            Some(Value::String(s)) => s.parse::<CniVersion>()?,
            Some(Value::Null) | None => {
                let version = expected.ok_or(ResultError::MissingVersion)?;
                map.insert("cniVersion".into(), Value::from(version.as_str()));
                version
            }
            Some(other) => {
                return Err(ResultError::VersionNotString {
                    found: json_type(other),
                });
            }
        };
        let value = Value::Object(map);
        let invalid = |e: serde_json::Error| ResultError::Invalid {
            version,
            message: e.to_string(),
        };
        Ok(match Format::of(version) {
            Format::V020 => Self::V020(serde_json::from_value(value).map_err(invalid)?),
            Format::V040 => Self::V040(serde_json::from_value(value).map_err(invalid)?),
            Format::V100 => Self::V100(serde_json::from_value(value).map_err(invalid)?),
        })
    }

    /// The result's `cniVersion`.
    pub fn version(&self) -> CniVersion {
        match self {
            Self::V020(r) => r.cni_version,
            Self::V040(r) => r.cni_version,
            Self::V100(r) => r.cni_version,
        }
    }

    /// The result as JSON.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The result as the JSON bytes a plugin prints on stdout.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The result in the 1.x format: itself if it is one, else converted to
    /// 1.0.0.
    pub fn into_result100(self) -> Result<Result100, ConvertError> {
        match self {
            Self::V100(r) => Ok(r),
            other => Ok(convert::as_100(
                convert::to_hub(&other)?,
                CniVersion::V1_0_0,
            )),
        }
    }
}

impl Serialize for CniResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::V020(r) => r.serialize(serializer),
            Self::V040(r) => r.serialize(serializer),
            Self::V100(r) => r.serialize(serializer),
        }
    }
}

impl From<Result020> for CniResult {
    fn from(r: Result020) -> Self {
        Self::V020(r)
    }
}

impl From<Result040> for CniResult {
    fn from(r: Result040) -> Self {
        Self::V040(r)
    }
}

impl From<Result100> for CniResult {
    fn from(r: Result100) -> Self {
        Self::V100(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE_100: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"36:e4:54:95:0c:f4"},{"name":"veth1","mac":"4e:5b:5f:06:a3:b5"},{"name":"eth0","mac":"c2:b1:90:4d:d7:0a","sandbox":"/var/run/netns/cni-1234"}],"ips":[{"interface":2,"address":"10.88.0.7/16","gateway":"10.88.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
    const MACVLAN_031: &str = r#"{"cniVersion":"0.3.1","interfaces":[{"name":"net1","mac":"0a:58:c0:a8:01:c8","sandbox":"/proc/4242/ns/net"}],"ips":[{"version":"4","interface":0,"address":"192.168.1.200/24","gateway":"192.168.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"192.168.1.1"}],"dns":{}}"#;
    const OLD_020: &str = r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.10.0.5/24","gateway":"10.10.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{}}"#;
    const IFACES_110: &str = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"net1","mac":"aa:bb:cc:dd:ee:ff","mtu":9000,"sandbox":"/var/run/netns/x","socketPath":"/run/vhost.sock","pciID":"0000:af:06.0"}],"ips":[{"interface":0,"address":"192.168.5.3/24"}],"routes":[{"dst":"0.0.0.0/0","gw":"192.168.5.1","mtu":1400,"advmss":1360,"priority":100,"table":200,"scope":0}]}"#;

    #[test]
    fn parses_real_results_of_each_format_losslessly() {
        for (text, version) in [
            (BRIDGE_100, CniVersion::V1_0_0),
            (MACVLAN_031, CniVersion::V0_3_1),
            (OLD_020, CniVersion::V0_2_0),
            (IFACES_110, CniVersion::V1_1_0),
        ] {
            let r = CniResult::parse(text.as_bytes(), None).unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(String::from_utf8(r.to_json_bytes().unwrap()).unwrap(), text);
        }
    }

    #[test]
    fn parse_picks_the_format_by_version() {
        let r = CniResult::parse(BRIDGE_100.as_bytes(), Some(CniVersion::V0_3_1)).unwrap();
        let CniResult::V100(r) = r else {
            panic!("1.0.0 result parsed as {r:?}");
        };
        assert_eq!(r.interfaces_in_sandbox()[0].1.name, "eth0");
        assert!(matches!(
            CniResult::parse(MACVLAN_031.as_bytes(), None).unwrap(),
            CniResult::V040(_)
        ));
        let CniResult::V020(r) = CniResult::parse(OLD_020.as_bytes(), None).unwrap() else {
            panic!("0.2.0 result");
        };
        assert_eq!(r.ip4.unwrap().ip.to_string(), "10.10.0.5/24");
        let CniResult::V100(r) = CniResult::parse(IFACES_110.as_bytes(), None).unwrap() else {
            panic!("1.1.0 result");
        };
        assert_eq!(r.interfaces[0].mtu, Some(9000));
        assert_eq!(r.interfaces[0].pci_id.as_deref(), Some("0000:af:06.0"));
        assert_eq!(r.routes[0].table, Some(200));
        assert_eq!(r.routes[0].scope, Some(0));
    }

    #[test]
    fn missing_version_uses_the_expected_one() {
        let text = br#"{"ips":[{"address":"10.0.0.2/24"}]}"#;
        let r = CniResult::parse(text, Some(CniVersion::V1_1_0)).unwrap();
        assert_eq!(r.version(), CniVersion::V1_1_0);
        assert_eq!(
            String::from_utf8(r.to_json_bytes().unwrap()).unwrap(),
            r#"{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24"}]}"#
        );
        assert_eq!(
            CniResult::parse(text, None),
            Err(ResultError::MissingVersion)
        );
        let r = CniResult::parse(
            br#"{"cniVersion":null,"ip4":{"ip":"10.0.0.2/8"}}"#,
            Some(CniVersion::V0_1_0),
        )
        .unwrap();
        assert_eq!(r.version(), CniVersion::V0_1_0);
    }

    #[test]
    fn parse_errors_are_precise() {
        assert!(matches!(
            CniResult::parse(b"not json", None),
            Err(ResultError::NotJson(_))
        ));
        assert_eq!(
            CniResult::parse(b"[]", None).unwrap_err().to_string(),
            "CNI result must be a JSON object, found an array"
        );
        assert_eq!(
            CniResult::parse(br#"{"cniVersion":1}"#, None)
                .unwrap_err()
                .to_string(),
            "CNI result: \"cniVersion\" must be a string, found a number"
        );
        let err = CniResult::parse(br#"{"cniVersion":"0.9.0"}"#, None).unwrap_err();
        assert!(matches!(err, ResultError::UnknownVersion(_)));
        assert!(err.to_string().contains("\"0.9.0\""), "{err}");
        let err = CniResult::parse(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
            None,
        )
        .unwrap_err();
        let ResultError::Invalid { version, message } = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(*version, CniVersion::V1_0_0);
        assert!(message.contains("10.0.0.300"), "{message}");
        assert!(
            err.to_string().starts_with("invalid CNI 1.0.0 result: "),
            "{err}"
        );
        // A 0.4.0 IP needs an address.
        assert!(
            CniResult::parse(br#"{"cniVersion":"0.4.0","ips":[{"version":"4"}]}"#, None).is_err()
        );
    }

    #[test]
    fn from_prev_result_value() {
        let v: Value = serde_json::from_str(MACVLAN_031).unwrap();
        let r = CniResult::from_value(v.clone(), None).unwrap();
        assert_eq!(r.to_value().unwrap(), v);
        assert_eq!(
            CniResult::from_value(Value::Null, None),
            Err(ResultError::NotAnObject { found: "null" })
        );
    }

    #[test]
    fn into_result100_normalises() {
        let r = CniResult::parse(MACVLAN_031.as_bytes(), None)
            .unwrap()
            .into_result100()
            .unwrap();
        assert_eq!(r.cni_version, CniVersion::V1_0_0);
        assert_eq!(
            r.ips_of_interface(0)[0].address.to_string(),
            "192.168.1.200/24"
        );
        let r = CniResult::parse(IFACES_110.as_bytes(), None)
            .unwrap()
            .into_result100()
            .unwrap();
        assert_eq!(r.cni_version, CniVersion::V1_1_0);
        assert_eq!(
            r.interfaces[0].socket_path.as_deref(),
            Some("/run/vhost.sock")
        );
    }

    #[test]
    fn strip_helpers_drop_only_1_1_fields() {
        let mut i = Interface {
            name: "net1".into(),
            mac: Some("m".into()),
            mtu: Some(1),
            sandbox: Some("/ns".into()),
            socket_path: Some("/s".into()),
            pci_id: Some("p".into()),
        };
        i.strip_v1_1();
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"name":"net1","mac":"m","sandbox":"/ns"}"#
        );
        assert!(i.is_in_sandbox());
        assert!(!Interface::new("cni0").is_in_sandbox());
        let mut r = Route {
            mtu: Some(1),
            advmss: Some(2),
            priority: Some(3),
            table: Some(4),
            scope: Some(5),
            ..Route::new(
                "10.0.0.0/8".parse().unwrap(),
                Some("10.0.0.1".parse().unwrap()),
            )
        };
        r.strip_v1_1();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"dst":"10.0.0.0/8","gw":"10.0.0.1"}"#
        );
    }
}
