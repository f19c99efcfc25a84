//! Results of CNI 0.1.0 and 0.2.0: at most one IPv4 and one IPv6 address.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Route;
use crate::cni::dns::Dns;
use crate::cni::ip::Cidr;
use crate::cni::version::CniVersion;

/// A 0.1.0/0.2.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Result020 {
    /// `cniVersion`: 0.1.0 or 0.2.0.
    pub cni_version: CniVersion,
    /// `ip4`: the IPv4 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip4: Option<Ip020>,
    /// `ip6`: the IPv6 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ip020>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// The `ip4`/`ip6` block of a 0.1.0/0.2.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip020 {
    /// `ip`: the address with its prefix length.
    pub ip: Cidr,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `routes` of this family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

impl Result020 {
    /// An empty result of `version`.
    pub fn new(version: CniVersion) -> Self {
        Self {
            cni_version: version,
            ip4: None,
            ip6: None,
            dns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_0_2_0_result() {
        let text = r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.10.0.5/24","gateway":"10.10.0.1","routes":[{"dst":"0.0.0.0/0"},{"dst":"10.96.0.0/12","gw":"10.10.0.254"}]},"dns":{}}"#;
        let r: Result020 = serde_json::from_str(text).unwrap();
        assert_eq!(r.cni_version, CniVersion::V0_2_0);
        let ip4 = r.ip4.as_ref().unwrap();
        assert_eq!(ip4.ip.to_string(), "10.10.0.5/24");
        assert_eq!(ip4.gateway, Some("10.10.0.1".parse().unwrap()));
        assert_eq!(ip4.routes.len(), 2);
        assert!(ip4.routes[0].dst.is_default_route_dst());
        assert_eq!(ip4.routes[1].gw, Some("10.10.0.254".parse().unwrap()));
        assert!(r.ip6.is_none());
        assert_eq!(r.dns, Some(Dns::default()));
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }

    #[test]
    fn empty_result_serialises_minimally() {
        assert_eq!(
            serde_json::to_string(&Result020::new(CniVersion::V0_1_0)).unwrap(),
            r#"{"cniVersion":"0.1.0"}"#
        );
    }
}
