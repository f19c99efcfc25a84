//! Conversion between result versions, as the CNI spec defines it.
//!
//! Every conversion between formats goes through the 1.x format (the
//! "hub"), which can hold everything the other formats can.

use super::{
    CniResult, Format, Interface, Ip020, Ip040, IpConfig, Result020, Result040, Result100, Route,
};
use crate::cni::ip::{Cidr, IpFamily};
use crate::cni::version::CniVersion;

/// A result that cannot be expressed in the requested version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// 0.1.0/0.2.0 results need at least one IP address.
    #[error("cannot convert: no valid IP addresses")]
    NoValidIp,
    /// A 0.3.x/0.4.0 IP whose `version` disagrees with its address.
    #[error(
        "cannot convert: ips[{index}] has version {version:?} but its address {address} is {}",
        .address.family()
    )]
    VersionMismatch {
        /// Index of the IP in `ips`.
        index: usize,
        /// The `version` as written.
        version: String,
        /// The address.
        address: Cidr,
    },
    /// A 0.1.0/0.2.0 `ip4` holding an IPv6 address, or `ip6` an IPv4 one.
    #[error("cannot convert: {field} holds the {} address {address}", .address.family())]
    WrongFamily {
        /// `ip4` or `ip6`.
        field: &'static str,
        /// The address.
        address: Cidr,
    },
}

fn strip_routes(routes: &mut [Route]) {
    routes.iter_mut().for_each(Route::strip_v1_1);
}

fn strip_interfaces(interfaces: &mut [Interface]) {
    interfaces.iter_mut().for_each(Interface::strip_v1_1);
}

/// The result in the 1.x format, labelled with its current version.
pub(super) fn to_hub(result: &CniResult) -> Result<Result100, ConvertError> {
    match result {
        CniResult::V100(r) => Ok(r.clone()),
        CniResult::V040(r) => {
            let ips = r
                .ips
                .iter()
                .enumerate()
                .map(|(index, ip)| {
                    let family = ip.address.family();
                    if !ip.version.is_empty() && ip.version != family.version_str() {
                        return Err(ConvertError::VersionMismatch {
                            index,
                            version: ip.version.clone(),
                            address: ip.address,
                        });
                    }
                    Ok(IpConfig {
                        interface: ip.interface,
                        address: ip.address,
                        gateway: ip.gateway,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Result100 {
                cni_version: r.cni_version,
                interfaces: r.interfaces.clone(),
                ips,
                routes: r.routes.clone(),
                dns: r.dns.clone(),
            })
        }
        CniResult::V020(r) => {
            let mut hub = Result100::new(r.cni_version);
            hub.dns = r.dns.clone();
            for (field, family, slot) in
                [("ip4", IpFamily::V4, &r.ip4), ("ip6", IpFamily::V6, &r.ip6)]
            {
                let Some(ip) = slot else { continue };
                if ip.ip.family() != family {
                    return Err(ConvertError::WrongFamily {
                        field,
                        address: ip.ip,
                    });
                }
                hub.ips.push(IpConfig {
                    interface: None,
                    address: ip.ip,
                    gateway: ip.gateway,
                });
                hub.routes.extend(ip.routes.iter().cloned());
            }
            Ok(hub)
        }
    }
}

/// A 1.x result relabelled as `target` (1.0.0 or 1.1.0).
pub(super) fn as_100(mut hub: Result100, target: CniVersion) -> Result100 {
    hub.cni_version = target;
    if target < CniVersion::V1_1_0 {
        strip_interfaces(&mut hub.interfaces);
        strip_routes(&mut hub.routes);
    }
    hub
}

/// A 1.x result as 0.3.x/0.4.0: `version` derived from each address.
fn as_040(hub: Result100, target: CniVersion) -> Result040 {
    let hub = as_100(hub, target);
    Result040 {
        cni_version: target,
        interfaces: hub.interfaces,
        ips: hub
            .ips
            .into_iter()
            .map(|ip| Ip040 {
                version: ip.address.family().version_str().to_owned(),
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: hub.routes,
        dns: hub.dns,
    }
}

/// A 1.x result as 0.1.0/0.2.0: the first IP of each family, the routes of
/// a family under that family's IP (routes of a family without an IP are
/// dropped), interfaces dropped.
fn as_020(hub: Result100, target: CniVersion) -> Result<Result020, ConvertError> {
    let hub = as_100(hub, target);
    let first = |family: IpFamily| {
        hub.ips
            .iter()
            .find(|ip| ip.family() == family)
            .map(|ip| Ip020 {
                ip: ip.address,
                gateway: ip.gateway,
                routes: hub
                    .routes
                    .iter()
                    .filter(|r| r.dst.family() == family)
                    .cloned()
                    .collect(),
            })
    };
    let ip4 = first(IpFamily::V4);
    let ip6 = first(IpFamily::V6);
    if ip4.is_none() && ip6.is_none() {
        return Err(ConvertError::NoValidIp);
    }
    Ok(Result020 {
        cni_version: target,
        ip4,
        ip6,
        dns: hub.dns,
    })
}

/// Relabels a result whose format already matches `target`.
fn relabel(result: &CniResult, target: CniVersion) -> CniResult {
    match result.clone() {
        CniResult::V100(r) => CniResult::V100(as_100(r, target)),
        CniResult::V040(mut r) => {
            r.cni_version = target;
            if target < CniVersion::V1_1_0 {
                strip_interfaces(&mut r.interfaces);
                strip_routes(&mut r.routes);
            }
            CniResult::V040(r)
        }
        CniResult::V020(mut r) => {
            r.cni_version = target;
            for ip in [&mut r.ip4, &mut r.ip6].into_iter().flatten() {
                strip_routes(&mut ip.routes);
            }
            CniResult::V020(r)
        }
    }
}

impl CniResult {
    /// The result as `target` version, following the CNI spec: 0.2 -> 0.3+
    /// turns `ip4`/`ip6` into `ips` (routes become top-level, no
    /// interfaces); 0.3+ -> 0.2 keeps the first IP of each family and splits
    /// routes by family; 0.4 <-> 1.x adds or drops `version`; converting to
    /// anything older than 1.1.0 drops the 1.1.0 attributes; versions of the
    /// same format are just relabelled.
    pub fn convert_to(&self, target: CniVersion) -> Result<CniResult, ConvertError> {
        let source = match self {
            CniResult::V020(_) => Format::V020,
            CniResult::V040(_) => Format::V040,
            CniResult::V100(_) => Format::V100,
        };
        let wanted = Format::of(target);
        if source == wanted {
            return Ok(relabel(self, target));
        }
        let hub = to_hub(self)?;
        Ok(match wanted {
            Format::V100 => CniResult::V100(as_100(hub, target)),
            Format::V040 => CniResult::V040(as_040(hub, target)),
            Format::V020 => CniResult::V020(as_020(hub, target)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::version::ALL_VERSIONS;
    use serde_json::{Value, json};

    const DNS: &str = r#"{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}"#;

    fn dns() -> Value {
        serde_json::from_str(DNS).unwrap()
    }

    /// The same attachment in the 0.1.0/0.2.0 format.
    fn fixture_020(v: CniVersion) -> Value {
        json!({
            "cniVersion": v.as_str(),
            "ip4": {
                "ip": "10.1.0.5/16",
                "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "10.96.0.0/12"}]
            },
            "ip6": {
                "ip": "fd00:10:1::5/64",
                "gateway": "fd00:10:1::1",
                "routes": [{"dst": "::/0", "gw": "fd00:10:1::1"}]
            },
            "dns": dns()
        })
    }

    /// The same attachment in the 0.3.x/0.4.0 format, with a host interface
    /// and a second IPv4 address that 0.2.0 cannot carry.
    fn fixture_040(v: CniVersion) -> Value {
        json!({
            "cniVersion": v.as_str(),
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:01:00:01"},
                {"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/var/run/netns/pod"}
            ],
            "ips": [
                {"version": "4", "interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"},
                {"version": "6", "interface": 1, "address": "fd00:10:1::5/64", "gateway": "fd00:10:1::1"},
                {"version": "4", "interface": 1, "address": "10.2.0.5/16"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                {"dst": "10.96.0.0/12"},
                {"dst": "::/0", "gw": "fd00:10:1::1"}
            ],
            "dns": dns()
        })
    }

    /// The 0.4.0 fixture in the 1.x format (no 1.1.0 attributes).
    fn fixture_100(v: CniVersion) -> Value {
        json!({
            "cniVersion": v.as_str(),
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:01:00:01"},
                {"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/var/run/netns/pod"}
            ],
            "ips": [
                {"interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"},
                {"interface": 1, "address": "fd00:10:1::5/64", "gateway": "fd00:10:1::1"},
                {"interface": 1, "address": "10.2.0.5/16"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                {"dst": "10.96.0.0/12"},
                {"dst": "::/0", "gw": "fd00:10:1::1"}
            ],
            "dns": dns()
        })
    }

    /// The 1.x fixture with every 1.1.0 attribute set.
    fn fixture_110() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:01:00:01", "mtu": 1500},
                {"name": "eth0", "mac": "0a:58:0a:01:00:05", "mtu": 1450,
                 "sandbox": "/var/run/netns/pod", "socketPath": "/run/vhu.sock", "pciID": "0000:af:06.0"}
            ],
            "ips": [
                {"interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"},
                {"interface": 1, "address": "fd00:10:1::5/64", "gateway": "fd00:10:1::1"},
                {"interface": 1, "address": "10.2.0.5/16"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360,
                 "priority": 10, "table": 100, "scope": 0},
                {"dst": "10.96.0.0/12"},
                {"dst": "::/0", "gw": "fd00:10:1::1", "priority": 20}
            ],
            "dns": dns()
        })
    }

    /// What a 0.2.0 result becomes in the 0.3.x/0.4.0 (`with_version`) or
    /// 1.x format: IPs without interfaces, ip4 routes then ip6 routes.
    fn from_020(v: CniVersion, with_version: bool) -> Value {
        let mut ips = vec![
            json!({"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1"}),
            json!({"version": "6", "address": "fd00:10:1::5/64", "gateway": "fd00:10:1::1"}),
        ];
        if !with_version {
            for ip in &mut ips {
                ip.as_object_mut().unwrap().remove("version");
            }
        }
        json!({
            "cniVersion": v.as_str(),
            "ips": ips,
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                {"dst": "10.96.0.0/12"},
                {"dst": "::/0", "gw": "fd00:10:1::1"}
            ],
            "dns": dns()
        })
    }

    /// The source result of each version.
    fn source(v: CniVersion) -> Value {
        match v {
            CniVersion::V0_1_0 | CniVersion::V0_2_0 => fixture_020(v),
            CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => fixture_040(v),
            CniVersion::V1_0_0 => fixture_100(v),
            CniVersion::V1_1_0 => fixture_110(),
        }
    }

    /// The expected JSON of converting `source(from)` to `to`, spelled out
    /// per pair of formats.
    fn expected(from: CniVersion, to: CniVersion) -> Value {
        use CniVersion::*;
        match (from, to) {
            // To 0.1.0/0.2.0: always the first IP of each family with its
            // family's routes; interfaces, the second IPv4 address and the
            // 1.1.0 attributes are gone.
            (_, V0_1_0 | V0_2_0) => fixture_020(to),
            // From 0.1.0/0.2.0 upwards.
            (V0_1_0 | V0_2_0, V0_3_0 | V0_3_1 | V0_4_0) => from_020(to, true),
            (V0_1_0 | V0_2_0, V1_0_0 | V1_1_0) => from_020(to, false),
            // Among 0.3.x/0.4.0/1.x: `version` present below 1.0.0.
            (_, V0_3_0 | V0_3_1 | V0_4_0) => fixture_040(to),
            // 1.1.0 keeps its attributes only when staying 1.1.0.
            (V1_1_0, V1_1_0) => fixture_110(),
            (_, V1_0_0 | V1_1_0) => fixture_100(to),
        }
    }

    /// Whether converting `from` -> `to` -> `from` gives the source back.
    fn lossless(from: CniVersion, to: CniVersion) -> bool {
        use CniVersion::*;
        match (from, to) {
            // 0.2.0 content fits every format.
            (V0_1_0 | V0_2_0, _) => true,
            // Interfaces and the second address do not fit 0.2.0.
            (_, V0_1_0 | V0_2_0) => false,
            // 1.1.0 attributes do not fit older versions.
            (V1_1_0, to) => to == V1_1_0,
            _ => true,
        }
    }

    fn parse(v: &Value) -> CniResult {
        CniResult::from_value(v.clone(), None).unwrap()
    }

    #[test]
    fn fixtures_parse_losslessly() {
        for v in ALL_VERSIONS {
            let src = source(v);
            assert_eq!(parse(&src).to_value().unwrap(), src, "{v}");
            assert_eq!(parse(&src).version(), v);
        }
    }

    #[test]
    fn converts_between_every_pair_of_versions() {
        let mut checked = 0;
        for from in ALL_VERSIONS {
            for to in ALL_VERSIONS {
                let converted = parse(&source(from))
                    .convert_to(to)
                    .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                assert_eq!(converted.version(), to, "{from} -> {to}");
                assert_eq!(
                    converted.to_value().unwrap(),
                    expected(from, to),
                    "{from} -> {to}"
                );
                // The converted result parses back as the target version.
                let reparsed = CniResult::parse(&converted.to_json_bytes().unwrap(), None).unwrap();
                assert_eq!(reparsed, converted, "{from} -> {to} reparsed");
                let back = converted
                    .convert_to(from)
                    .unwrap_or_else(|e| panic!("{from} -> {to} -> {from}: {e}"));
                if lossless(from, to) {
                    assert_eq!(
                        back.to_value().unwrap(),
                        source(from),
                        "{from} -> {to} -> {from}"
                    );
                } else {
                    assert_ne!(
                        back.to_value().unwrap(),
                        source(from),
                        "{from} -> {to} is lossy"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn down_conversion_keeps_the_first_ip_of_each_family() {
        let converted = parse(&source(CniVersion::V0_4_0))
            .convert_to(CniVersion::V0_2_0)
            .unwrap();
        let CniResult::V020(r) = converted else {
            panic!("0.2.0 format");
        };
        assert_eq!(r.ip4.unwrap().ip.to_string(), "10.1.0.5/16");
        assert_eq!(r.ip6.unwrap().ip.to_string(), "fd00:10:1::5/64");
    }

    #[test]
    fn down_conversion_drops_routes_of_a_family_without_ip() {
        let r = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "fd00::5/64"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "::/0"}]
        });
        let converted = parse(&r).convert_to(CniVersion::V0_2_0).unwrap();
        assert_eq!(
            converted.to_value().unwrap(),
            json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::5/64", "routes": [{"dst": "::/0"}]}})
        );
    }

    #[test]
    fn no_ip_cannot_become_0_2_0() {
        for (text, to) in [
            (
                json!({"cniVersion": "0.4.0", "interfaces": [{"name": "eth0"}]}),
                CniVersion::V0_2_0,
            ),
            (
                json!({"cniVersion": "1.0.0", "ips": []}),
                CniVersion::V0_1_0,
            ),
            (
                json!({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0"}]}),
                CniVersion::V0_2_0,
            ),
        ] {
            let err = parse(&text).convert_to(to).unwrap_err();
            assert_eq!(err, ConvertError::NoValidIp);
            assert_eq!(err.to_string(), "cannot convert: no valid IP addresses");
        }
        // An empty 0.2.0 result can still be relabelled within its format.
        let empty = json!({"cniVersion": "0.2.0"});
        assert_eq!(
            parse(&empty)
                .convert_to(CniVersion::V0_1_0)
                .unwrap()
                .to_value()
                .unwrap(),
            json!({"cniVersion": "0.1.0"})
        );
    }

    #[test]
    fn a_version_that_disagrees_with_the_address_is_an_error() {
        let r = json!({
            "cniVersion": "0.4.0",
            "ips": [
                {"version": "4", "address": "10.0.0.5/24"},
                {"version": "4", "address": "fd00::5/64"}
            ]
        });
        for to in [CniVersion::V1_0_0, CniVersion::V1_1_0, CniVersion::V0_2_0] {
            let err = parse(&r).convert_to(to).unwrap_err();
            assert_eq!(
                err.to_string(),
                "cannot convert: ips[1] has version \"4\" but its address fd00::5/64 is IPv6"
            );
        }
        let r = json!({"cniVersion": "0.3.1", "ips": [{"version": "5", "address": "10.0.0.5/24"}]});
        let err = parse(&r).convert_to(CniVersion::V1_0_0).unwrap_err();
        assert_eq!(
            err,
            ConvertError::VersionMismatch {
                index: 0,
                version: "5".into(),
                address: "10.0.0.5/24".parse().unwrap()
            }
        );
        // Relabelling within the format does not look at it.
        let relabelled = parse(&r).convert_to(CniVersion::V0_4_0).unwrap();
        assert_eq!(
            relabelled.to_value().unwrap()["ips"][0]["version"],
            json!("5")
        );
    }

    #[test]
    fn a_missing_version_is_derived_from_the_address() {
        let r = json!({"cniVersion": "0.4.0", "ips": [{"address": "fd00::5/64"}]});
        let CniResult::V040(parsed) = parse(&r) else {
            panic!("0.4.0 format");
        };
        assert_eq!(parsed.ips[0].version, "");
        let up = CniResult::V040(parsed)
            .convert_to(CniVersion::V1_0_0)
            .unwrap();
        assert_eq!(
            up.to_value().unwrap(),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"}]})
        );
        let down = up.convert_to(CniVersion::V0_4_0).unwrap();
        assert_eq!(down.to_value().unwrap()["ips"][0]["version"], json!("6"));
    }

    #[test]
    fn a_0_2_0_slot_of_the_wrong_family_is_an_error() {
        let r = json!({"cniVersion": "0.2.0", "ip4": {"ip": "fd00::5/64"}});
        let err = parse(&r).convert_to(CniVersion::V0_4_0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot convert: ip4 holds the IPv6 address fd00::5/64"
        );
        let r = json!({"cniVersion": "0.1.0", "ip6": {"ip": "10.0.0.5/8"}});
        let err = parse(&r).convert_to(CniVersion::V1_1_0).unwrap_err();
        assert_eq!(
            err,
            ConvertError::WrongFamily {
                field: "ip6",
                address: "10.0.0.5/8".parse().unwrap()
            }
        );
    }

    #[test]
    fn same_format_conversion_strips_1_1_attributes_below_1_1() {
        let r = parse(&fixture_110());
        let as_100 = r.convert_to(CniVersion::V1_0_0).unwrap();
        assert_eq!(as_100.to_value().unwrap(), fixture_100(CniVersion::V1_0_0));
        // Attributes parsed leniently from an older result are dropped too.
        let old = json!({"cniVersion": "0.4.0", "interfaces": [{"name": "a", "mtu": 9000}],
                         "ips": [{"version": "4", "address": "10.0.0.1/8"}],
                         "routes": [{"dst": "0.0.0.0/0", "table": 5}]});
        assert_eq!(
            parse(&old)
                .convert_to(CniVersion::V0_3_1)
                .unwrap()
                .to_value()
                .unwrap(),
            json!({"cniVersion": "0.3.1", "interfaces": [{"name": "a"}],
                   "ips": [{"version": "4", "address": "10.0.0.1/8"}],
                   "routes": [{"dst": "0.0.0.0/0"}]})
        );
    }
}
