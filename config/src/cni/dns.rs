//! The DNS block shared by CNI configs, results and the network-status
//! annotation.

use serde::{Deserialize, Serialize};

/// DNS settings as the CNI spec defines them. Every field is optional and an
/// empty block serialises as `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dns_is_an_empty_object() {
        assert_eq!(serde_json::to_string(&Dns::default()).unwrap(), "{}");
        assert!(Dns::default().is_empty());
    }

    #[test]
    fn round_trips_all_fields() {
        let text = r#"{"nameservers":["10.0.0.10"],"domain":"cluster.local","search":["svc"],"options":["ndots:5"]}"#;
        let dns: Dns = serde_json::from_str(text).unwrap();
        assert!(!dns.is_empty());
        assert_eq!(serde_json::to_string(&dns).unwrap(), text);
    }
}
