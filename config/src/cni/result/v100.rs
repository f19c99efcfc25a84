//! Results of CNI 1.0.0 and 1.1.0 (IPs without `version`; 1.1.0 adds
//! interface and route attributes, which live on [`Interface`] and
//! [`Route`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Interface, Route};
use crate::cni::dns::Dns;
use crate::cni::ip::{Cidr, IpFamily};
use crate::cni::version::CniVersion;

/// A 1.0.0/1.1.0 result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Result100 {
    /// `cniVersion`: 1.0.0 or 1.1.0.
    pub cni_version: CniVersion,
    /// `interfaces` the plugin created or configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// `ips` assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// `routes` installed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// An IP of a 1.x result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `interface`: index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// `address` with prefix length.
    pub address: Cidr,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    /// The address family.
    pub fn family(&self) -> IpFamily {
        self.address.family()
    }
}

impl Result100 {
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

    /// The interfaces inside a sandbox (non-empty `sandbox`), with their index.
    pub fn interfaces_in_sandbox(&self) -> Vec<(usize, &Interface)> {
        self.interfaces
            .iter()
            .enumerate()
            .filter(|(_, i)| i.is_in_sandbox())
            .collect()
    }

    /// The IPs whose `interface` is `index`.
    pub fn ips_of_interface(&self, index: usize) -> Vec<&IpConfig> {
        self.ips
            .iter()
            .filter(|ip| ip.interface == Some(index))
            .collect()
    }

    /// The routes whose destination has prefix length 0, in either family.
    pub fn default_routes(&self) -> Vec<&Route> {
        self.routes
            .iter()
            .filter(|r| r.dst.is_default_route_dst())
            .collect()
    }

    /// Removes the default routes of `family`; returns how many were removed.
    pub fn remove_default_routes(&mut self, family: IpFamily) -> usize {
        let before = self.routes.len();
        self.routes
            .retain(|r| !(r.dst.is_default_route_dst() && r.dst.family() == family));
        before - self.routes.len()
    }

    /// Adds a default route via `gw` (`0.0.0.0/0` or `::/0` by the gateway's
    /// family) unless an identical one is already there. Returns whether it
    /// was added.
    pub fn add_default_route(&mut self, gw: IpAddr) -> bool {
        let route = Route::new(IpFamily::of(&gw).default_route_dst(), Some(gw));
        if self.routes.contains(&route) {
            return false;
        }
        self.routes.push(route);
        true
    }

    /// The gateways of the IPs of family `family`, in order, deduplicated.
    pub fn gateways(&self, family: IpFamily) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for gw in self
            .ips
            .iter()
            .filter(|ip| ip.family() == family)
            .filter_map(|ip| ip.gateway)
        {
            if !out.contains(&gw) {
                out.push(gw);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge + host-local ADD result as the bridge plugin prints it.
    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"36:e4:54:95:0c:f4"},{"name":"vethd6f8a8e3","mac":"4e:5b:5f:06:a3:b5"},{"name":"eth0","mac":"c2:b1:90:4d:d7:0a","sandbox":"/var/run/netns/cni-3f5a1c1e-7c3b-2d0e-7b4a-93a2fb1d8e49"}],"ips":[{"interface":2,"address":"10.88.0.7/16","gateway":"10.88.0.1"},{"interface":2,"address":"fd00:88::7/64","gateway":"fd00:88::1"}],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00:88::1"},{"dst":"10.96.0.0/12","gw":"10.88.0.1"}],"dns":{}}"#;

    fn bridge() -> Result100 {
        serde_json::from_str(BRIDGE).unwrap()
    }

    #[test]
    fn parses_a_real_bridge_result_losslessly() {
        let r = bridge();
        assert_eq!(r.cni_version, CniVersion::V1_0_0);
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.ips[0].address.to_string(), "10.88.0.7/16");
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(serde_json::to_string(&r).unwrap(), BRIDGE);
    }

    #[test]
    fn finds_interfaces_in_the_sandbox() {
        let r = bridge();
        let inside = r.interfaces_in_sandbox();
        assert_eq!(inside.len(), 1);
        assert_eq!(inside[0].0, 2);
        assert_eq!(inside[0].1.name, "eth0");
    }

    #[test]
    fn finds_ips_of_an_interface() {
        let r = bridge();
        let ips: Vec<String> = r
            .ips_of_interface(2)
            .iter()
            .map(|ip| ip.address.to_string())
            .collect();
        assert_eq!(ips, ["10.88.0.7/16", "fd00:88::7/64"]);
        assert!(r.ips_of_interface(0).is_empty());
        assert!(r.ips_of_interface(7).is_empty());
    }

    #[test]
    fn default_routes_are_prefix_zero_in_both_families() {
        let r = bridge();
        let dsts: Vec<String> = r
            .default_routes()
            .iter()
            .map(|r| r.dst.to_string())
            .collect();
        assert_eq!(dsts, ["0.0.0.0/0", "::/0"]);
    }

    #[test]
    fn removes_default_routes_by_family() {
        let mut r = bridge();
        assert_eq!(r.remove_default_routes(IpFamily::V4), 1);
        assert_eq!(r.remove_default_routes(IpFamily::V4), 0);
        let dsts: Vec<String> = r.routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["::/0", "10.96.0.0/12"]);
        assert_eq!(r.remove_default_routes(IpFamily::V6), 1);
        assert!(r.default_routes().is_empty());
        assert_eq!(r.routes.len(), 1);
    }

    #[test]
    fn adds_a_default_route_once() {
        let mut r = bridge();
        r.remove_default_routes(IpFamily::V4);
        assert!(r.add_default_route("10.88.0.1".parse().unwrap()));
        assert!(!r.add_default_route("10.88.0.1".parse().unwrap()));
        let last = r.routes.last().unwrap();
        assert_eq!(last.dst.to_string(), "0.0.0.0/0");
        assert_eq!(last.gw, Some("10.88.0.1".parse().unwrap()));
        assert!(r.add_default_route("fd00:88::2".parse().unwrap()));
        assert_eq!(r.routes.last().unwrap().dst.to_string(), "::/0");
        assert_eq!(
            serde_json::to_value(&r).unwrap()["routes"],
            serde_json::json!([
                {"dst":"::/0","gw":"fd00:88::1"},
                {"dst":"10.96.0.0/12","gw":"10.88.0.1"},
                {"dst":"0.0.0.0/0","gw":"10.88.0.1"},
                {"dst":"::/0","gw":"fd00:88::2"}
            ])
        );
    }

    #[test]
    fn gateways_by_family() {
        let r = bridge();
        assert_eq!(
            r.gateways(IpFamily::V4),
            ["10.88.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            r.gateways(IpFamily::V6),
            ["fd00:88::1".parse::<IpAddr>().unwrap()]
        );
        assert!(
            Result100::new(CniVersion::V1_1_0)
                .gateways(IpFamily::V4)
                .is_empty()
        );
    }

    #[test]
    fn tolerates_a_version_key_in_ips() {
        let r: Result100 = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","ips":[{"version":"4","address":"10.0.0.2/8"}]}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8"}]}"#
        );
    }
}
