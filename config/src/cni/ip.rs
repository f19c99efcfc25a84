//! IP prefixes as CNI writes them: an address with a prefix length, where the
//! address keeps its host bits (`10.1.2.3/24` is an address in a /24, not the
//! network `10.1.2.0/24`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The `version` string CNI results 0.3.x/0.4.0 use: `"4"` or `"6"`.
    pub const fn version_str(self) -> &'static str {
        match self {
            Self::V4 => "4",
            Self::V6 => "6",
        }
    }

    /// The longest prefix length of the family (32 or 128).
    pub const fn max_prefix(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// The default-route destination of the family (`0.0.0.0/0` or `::/0`).
    pub const fn default_route_dst(self) -> Cidr {
        match self {
            Self::V4 => Cidr {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                prefix: 0,
            },
            Self::V6 => Cidr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            },
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// An address with a prefix length, e.g. `10.1.2.3/24` or `fd00::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address, host bits kept.
    pub addr: IpAddr,
    /// The prefix length, at most 32 for IPv4 and 128 for IPv6.
    pub prefix: u8,
}

/// A string that is not an address with a valid prefix length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {input:?}: {reason}")]
pub struct CidrError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CidrError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

impl Cidr {
    /// A prefix from an address and a length, checking the length fits the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = IpFamily::of(&addr).max_prefix();
        if prefix > max {
            return Err(CidrError::new(
                &format!("{addr}/{prefix}"),
                format!("prefix length {prefix} is longer than {max}"),
            ));
        }
        Ok(Self { addr, prefix })
    }

    /// A single address as a host prefix (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: IpFamily::of(&addr).max_prefix(),
        }
    }

    /// The address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.addr)
    }

    /// Whether the address is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether this is a default-route destination: prefix length 0 in either
    /// family (`0.0.0.0/0`, `::/0`, and also `10.0.0.0/0`).
    pub fn is_default_route_dst(&self) -> bool {
        self.prefix == 0
    }

    /// The network: the address with its host bits cleared.
    pub fn network(&self) -> Self {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Self {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside this prefix (same family, same network bits).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        IpFamily::of(ip) == self.family()
            && Self {
                addr: *ip,
                prefix: self.prefix,
            }
            .network()
                == self.network()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((addr_text, prefix_text)) = s.split_once('/') else {
            return Err(CidrError::new(s, "missing \"/<prefix length>\""));
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::new(s, format!("{addr_text:?} is not an IP address")))?;
        if prefix_text.is_empty() || !prefix_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::new(
                s,
                format!("prefix length {prefix_text:?} is not a number"),
            ));
        }
        let prefix: u8 = prefix_text.parse().map_err(|_| {
            CidrError::new(s, format!("prefix length {prefix_text} is out of range"))
        })?;
        let max = IpFamily::of(&addr).max_prefix();
        if prefix > max {
            return Err(CidrError::new(
                s,
                format!("prefix length {prefix} is longer than {max}"),
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `"10.1.2.3/24"` as a prefix and a bare `"10.1.2.3"` as a host
/// prefix (`/32`, or `/128` for IPv6).
pub fn parse_ip_or_cidr(s: &str) -> Result<Cidr, CidrError> {
    if s.contains('/') {
        s.parse()
    } else {
        s.parse::<IpAddr>()
            .map(Cidr::host)
            .map_err(|_| CidrError::new(s, "not an IP address or CIDR"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ipv4_keeping_host_bits() {
        let c = cidr("10.1.2.3/24");
        assert_eq!(c.addr, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(c.prefix, 24);
        assert!(c.is_ipv4());
        assert_eq!(c.family(), IpFamily::V4);
        assert_eq!(c.to_string(), "10.1.2.3/24");
    }

    #[test]
    fn parses_ipv6() {
        let c = cidr("fd00::1/64");
        assert_eq!(c.addr, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.prefix, 64);
        assert!(!c.is_ipv4());
        assert_eq!(c.family(), IpFamily::V6);
        assert_eq!(c.to_string(), "fd00::1/64");
    }

    #[test]
    fn ipv6_is_printed_canonically() {
        assert_eq!(cidr("FD00:0:0::0001/128").to_string(), "fd00::1/128");
        assert_eq!(cidr("::0/0").to_string(), "::/0");
    }

    #[test]
    fn rejects_long_prefixes_naming_the_input() {
        let err = "10.0.0.1/33".parse::<Cidr>().unwrap_err();
        assert_eq!(err.input, "10.0.0.1/33");
        assert_eq!(
            err.to_string(),
            "invalid CIDR \"10.0.0.1/33\": prefix length 33 is longer than 32"
        );
        let err = "fd00::1/129".parse::<Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CIDR \"fd00::1/129\": prefix length 129 is longer than 128"
        );
        assert!("fd00::1/128".parse::<Cidr>().is_ok());
        assert!("10.0.0.1/32".parse::<Cidr>().is_ok());
    }

    #[test]
    fn rejects_malformed_input() {
        let cases = [
            ("10.0.0.1", "missing \"/<prefix length>\""),
            ("10.0.0/8", "\"10.0.0\" is not an IP address"),
            ("10.0.0.1/", "prefix length \"\" is not a number"),
            ("10.0.0.1/+8", "prefix length \"+8\" is not a number"),
            ("10.0.0.1/ 8", "prefix length \" 8\" is not a number"),
            ("10.0.0.1/8/8", "prefix length \"8/8\" is not a number"),
            ("10.0.0.1/1000", "prefix length 1000 is out of range"),
            ("10.0.0.1/300", "prefix length 300 is out of range"),
            ("fe80::1%eth0/64", "\"fe80::1%eth0\" is not an IP address"),
            ("", "missing \"/<prefix length>\""),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Cidr>().unwrap_err();
            assert_eq!(err.input, input);
            assert_eq!(err.reason, reason, "for {input:?}");
        }
    }

    #[test]
    fn default_route_destinations_have_prefix_zero() {
        for dst in ["0.0.0.0/0", "::/0", "::0/0", "10.0.0.0/0"] {
            assert!(cidr(dst).is_default_route_dst(), "{dst}");
        }
        for dst in ["0.0.0.0/1", "::/1", "10.0.0.0/8", "fd00::/64"] {
            assert!(!cidr(dst).is_default_route_dst(), "{dst}");
        }
        assert_eq!(IpFamily::V4.default_route_dst(), cidr("0.0.0.0/0"));
        assert_eq!(IpFamily::V6.default_route_dst(), cidr("::/0"));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let c = cidr("192.168.1.200/24");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"192.168.1.200/24\"");
        let back: Cidr = serde_json::from_str("\"192.168.1.200/24\"").unwrap();
        assert_eq!(back, c);
        let err = serde_json::from_str::<Cidr>("\"192.168.1.200\"").unwrap_err();
        assert!(err.to_string().contains("\"192.168.1.200\""), "{err}");
        assert!(serde_json::from_str::<Cidr>("24").is_err());
    }

    #[test]
    fn parse_ip_or_cidr_makes_host_prefixes() {
        assert_eq!(parse_ip_or_cidr("10.1.1.1").unwrap(), cidr("10.1.1.1/32"));
        assert_eq!(parse_ip_or_cidr("fd00::5").unwrap(), cidr("fd00::5/128"));
        assert_eq!(
            parse_ip_or_cidr("10.1.1.1/16").unwrap(),
            cidr("10.1.1.1/16")
        );
        let err = parse_ip_or_cidr("not-an-ip").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CIDR \"not-an-ip\": not an IP address or CIDR"
        );
        assert!(parse_ip_or_cidr("10.1.1.1/40").is_err());
    }

    #[test]
    fn network_and_contains() {
        assert_eq!(cidr("10.1.2.3/24").network(), cidr("10.1.2.0/24"));
        assert_eq!(cidr("10.1.2.3/0").network(), cidr("0.0.0.0/0"));
        assert_eq!(cidr("10.1.2.3/32").network(), cidr("10.1.2.3/32"));
        assert_eq!(cidr("fd00::1:2/112").network(), cidr("fd00::1:0/112"));
        assert_eq!(cidr("fd00::1/0").network(), cidr("::/0"));
        let net = cidr("10.1.2.3/24");
        assert!(net.contains(&"10.1.2.200".parse().unwrap()));
        assert!(!net.contains(&"10.1.3.1".parse().unwrap()));
        assert!(!net.contains(&"::1".parse().unwrap()));
        assert!(cidr("::/0").contains(&"fd00::9".parse().unwrap()));
        // A hand-built over-long prefix does not panic.
        let odd = Cidr {
            addr: "10.1.2.3".parse().unwrap(),
            prefix: 200,
        };
        assert_eq!(odd.network().addr, odd.addr);
    }

    #[test]
    fn new_and_host_constructors() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(Cidr::new(v4, 8).unwrap(), cidr("10.0.0.1/8"));
        assert_eq!(
            Cidr::new(v4, 40).unwrap_err().to_string(),
            "invalid CIDR \"10.0.0.1/40\": prefix length 40 is longer than 32"
        );
        assert_eq!(Cidr::host(v4).prefix, 32);
        assert_eq!(IpFamily::V6.version_str(), "6");
        assert_eq!(IpFamily::V4.to_string(), "IPv4");
    }
}
