//! Results of CNI 0.3.0, 0.3.1 and 0.4.0: interfaces, IPs with a `version`,
//! routes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Interface, Route};
use crate::cni::dns::Dns;
use crate::cni::ip::Cidr;
use crate::cni::version::CniVersion;

/// A 0.3.0/0.3.1/0.4.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Result040 {
    /// `cniVersion`: 0.3.0, 0.3.1 or 0.4.0.
    pub cni_version: CniVersion,
    /// `interfaces` the plugin created or configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// `ips` assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Ip040>,
    /// `routes` installed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// An IP of a 0.3.x/0.4.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip040 {
    /// `version`: `"4"` or `"6"` (kept as written; checked on conversion).
    #[serde(default)]
    pub version: String,
    /// `interface`: index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// `address` with prefix length.
    pub address: Cidr,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl Result040 {
    /// An empty result of `version`.
    pub fn new(version: CniVersion) -> Self {
        Self {
            cni_version: version,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_macvlan_0_3_1_result() {
        let text = r#"{"cniVersion":"0.3.1","interfaces":[{"name":"net1","mac":"0a:58:c0:a8:01:c8","sandbox":"/proc/4242/ns/net"}],"ips":[{"version":"4","interface":0,"address":"192.168.1.200/24","gateway":"192.168.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"192.168.1.1"}],"dns":{}}"#;
        let r: Result040 = serde_json::from_str(text).unwrap();
        assert_eq!(r.cni_version, CniVersion::V0_3_1);
        assert_eq!(r.interfaces[0].name, "net1");
        assert_eq!(
            r.interfaces[0].sandbox.as_deref(),
            Some("/proc/4242/ns/net")
        );
        assert_eq!(r.ips[0].version, "4");
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(r.ips[0].address.to_string(), "192.168.1.200/24");
        assert_eq!(r.routes[0].gw, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }

    #[test]
    fn empty_result_serialises_minimally() {
        assert_eq!(
            serde_json::to_string(&Result040::new(CniVersion::V0_4_0)).unwrap(),
            r#"{"cniVersion":"0.4.0"}"#
        );
    }
}
