//! The `k8s.v1.cni.cncf.io/networks` pod annotation: network selection
//! elements and their parser.
//!
//! Two syntaxes are accepted, as upstream Multus does: a JSON array of
//! selection elements, or the text form `[namespace/]name[@interface]`,
//! comma separated. Parsing is stricter than upstream: empty items, empty
//! namespace/name/interface parts and invalid names are rejected here rather
//! than at the NAD lookup, and the JSON form is validated like the text form.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::NETWORKS_ANNOTATION;
use crate::names::dns1123_label_problem;
use crate::text::{json_type, prefix_on_char_boundary};

/// One requested attachment of the networks annotation.
///
/// JSON keys follow the multi-network spec; optional fields are omitted when
/// absent. On input the legacy key `interfaceRequest` is accepted when
/// `interface` is absent, and empty strings count as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawElement")]
pub struct NetworkSelectionElement {
    /// Name of the NetworkAttachmentDefinition.
    pub name: String,
    /// Namespace of the NAD; after parsing never empty (defaults to the pod's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Requested interface name inside the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Requested IPs, each an address or an address with prefix length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    /// Requested MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Requested InfiniBand GUID.
    #[serde(rename = "infiniband-guid", skip_serializing_if = "Option::is_none")]
    pub infiniband_guid: Option<String>,
    /// Default-route gateways to install through this attachment (`[]` keeps the plugin's).
    #[serde(rename = "default-route", skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<String>>,
    /// Port mappings passed to plugins with the `portMappings` capability.
    #[serde(rename = "portMappings", skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<Value>>,
    /// Bandwidth limits passed to plugins with the `bandwidth` capability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Value>,
    /// Extra keys merged into the delegate config's `args.cni`.
    #[serde(rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<Map<String, Value>>,
    /// Device to use, passed as runtimeConfig `deviceID`.
    #[serde(rename = "deviceID", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Name of an IPAMClaim object holding this attachment's addresses.
    #[serde(
        rename = "ipam-claim-reference",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_claim_reference: Option<String>,
}

impl NetworkSelectionElement {
    /// The NAD reference as `namespace/name`.
    pub fn namespaced_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The `default-route` gateways that parse as IP addresses.
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.default_route
            .iter()
            .flatten()
            .filter_map(|g| g.trim().parse().ok())
            .collect()
    }
}

/// Wire form of a selection element, accepting the legacy key and nulls.
#[derive(Deserialize)]
struct RawElement {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default, rename = "interfaceRequest")]
    interface_request: Option<String>,
    #[serde(default)]
    ips: Option<Vec<String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, rename = "infiniband-guid")]
    infiniband_guid: Option<String>,
    #[serde(default, rename = "default-route")]
    default_route: Option<Vec<String>>,
    #[serde(default, rename = "portMappings")]
    port_mappings: Option<Vec<Value>>,
    #[serde(default)]
    bandwidth: Option<Value>,
    #[serde(default, rename = "cni-args")]
    cni_args: Option<Map<String, Value>>,
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default, rename = "ipam-claim-reference")]
    ipam_claim_reference: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<RawElement> for NetworkSelectionElement {
    fn from(raw: RawElement) -> Self {
        Self {
            name: raw.name.unwrap_or_default(),
            namespace: raw.namespace.unwrap_or_default(),
            interface: non_empty(raw.interface).or_else(|| non_empty(raw.interface_request)),
            ips: raw.ips,
            mac: non_empty(raw.mac),
            infiniband_guid: non_empty(raw.infiniband_guid),
            default_route: raw.default_route,
            port_mappings: raw.port_mappings,
            bandwidth: raw.bandwidth,
            cni_args: raw.cni_args,
            device_id: non_empty(raw.device_id),
            ipam_claim_reference: non_empty(raw.ipam_claim_reference),
        }
    }
}

/// Why a networks (or default-network) annotation was rejected; each
/// message names the annotation, quotes the offending item and the rule.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// The annotation looks like JSON but does not parse.
    #[error("annotation {key}: invalid JSON: {error}")]
    InvalidJson {
        /// Annotation key.
        key: &'static str,
        /// The parser's error, with line and column.
        #[source]
        error: serde_json::Error,
    },
    /// The annotation is JSON but not an array.
    #[error(
        "annotation {key}: must be a JSON array of network selection elements, found {found}: {value}"
    )]
    NotAnArray {
        /// Annotation key.
        key: &'static str,
        /// JSON kind found instead.
        found: &'static str,
        /// The value found, quoted as JSON.
        value: String,
    },
    /// An element of the JSON array is not an object.
    #[error("annotation {key}: element {index} must be a JSON object, found {found}: {element}")]
    ElementNotAnObject {
        /// Annotation key.
        key: &'static str,
        /// Position in the array, from 0.
        index: usize,
        /// JSON kind found instead.
        found: &'static str,
        /// The element, quoted as JSON.
        element: String,
    },
    /// An element of the JSON array has a field of the wrong type.
    #[error("annotation {key}: element {index} {element}: {error}")]
    InvalidElement {
        /// Annotation key.
        key: &'static str,
        /// Position in the array, from 0.
        index: usize,
        /// The element, quoted as JSON.
        element: String,
        /// What serde found wrong.
        #[source]
        error: serde_json::Error,
    },
    /// A comma-separated item is empty (`a,,b`, trailing comma).
    #[error(
        "annotation {key}: item {position} of {annotation:?} is empty (expected [namespace/]name[@interface])"
    )]
    EmptyItem {
        /// Annotation key.
        key: &'static str,
        /// Position of the item, from 1.
        position: usize,
        /// The whole annotation.
        annotation: String,
    },
    /// A text item has more than one `/`.
    #[error(
        "annotation {key}: item {item:?} has more than one '/' (expected [namespace/]name[@interface])"
    )]
    TooManySlashes {
        /// Annotation key.
        key: &'static str,
        /// The offending item.
        item: String,
    },
    /// A text item has more than one `@`.
    #[error(
        "annotation {key}: item {item:?} has more than one '@' (expected [namespace/]name[@interface])"
    )]
    TooManyAts {
        /// Annotation key.
        key: &'static str,
        /// The offending item.
        item: String,
    },
    /// A text item has an empty namespace, name or interface part.
    #[error(
        "annotation {key}: item {item:?} has an empty {part} (expected [namespace/]name[@interface])"
    )]
    EmptyPart {
        /// Annotation key.
        key: &'static str,
        /// The offending item.
        item: String,
        /// Which part is empty.
        part: &'static str,
    },
    /// A JSON element has no `name`.
    #[error("annotation {key}: {item} has no network name")]
    MissingName {
        /// Annotation key.
        key: &'static str,
        /// The offending element, quoted.
        item: String,
    },
    /// A network name is not a DNS-1123 label.
    #[error("annotation {key}: {item}: network name {name:?} is not a DNS-1123 label: {reason}")]
    InvalidName {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A namespace is not a DNS-1123 label.
    #[error("annotation {key}: {item}: namespace {namespace:?} is not a DNS-1123 label: {reason}")]
    InvalidNamespace {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// The namespace.
        namespace: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An interface name would be refused by the kernel.
    #[error("annotation {key}: {item}: interface name {interface:?} is invalid: {reason}")]
    InvalidInterface {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// The interface name.
        interface: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// `mac` or `infiniband-guid` is not a hardware address.
    #[error(
        "annotation {key}: {item}: {field} {value:?} is not a hardware address \
         (6, 8 or 20 hex octets separated by ':' or '-', or dot-separated groups of 4 hex digits)"
    )]
    InvalidHardwareAddr {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// `mac` or `infiniband-guid`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// An `ips` entry is neither an IP address nor a CIDR.
    #[error("annotation {key}: {item}: ips entry {value:?} is not an IP address or CIDR: {reason}")]
    InvalidIp {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// The entry.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A `default-route` entry is not an IP address.
    #[error("annotation {key}: {item}: default-route entry {value:?} is not an IP address")]
    InvalidGateway {
        /// Annotation key.
        key: &'static str,
        /// The offending item, quoted.
        item: String,
        /// The entry.
        value: String,
    },
    /// More than one default-route gateway of one IP family.
    #[error(
        "annotation {key}: {item}: default-route {second} is a second {family} gateway \
         (the first is {first} of {first_item}): multus does not support ECMP for default-route"
    )]
    EcmpDefaultRoute {
        /// Annotation key.
        key: &'static str,
        /// The item carrying the second gateway, quoted.
        item: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The first gateway of that family.
        first: IpAddr,
        /// The item carrying the first gateway, quoted.
        first_item: String,
        /// The second gateway of that family.
        second: IpAddr,
    },
    /// The default-network annotation names no network.
    #[error("annotation {key}: names no network; exactly one is required")]
    NoDefaultNetwork {
        /// Annotation key.
        key: &'static str,
    },
    /// The default-network annotation names more than one network.
    #[error("annotation {key}: names {count} networks ({names}); exactly one is required")]
    TooManyDefaultNetworks {
        /// Annotation key.
        key: &'static str,
        /// How many networks it names.
        count: usize,
        /// Their `namespace/name`, comma separated.
        names: String,
    },
}

/// Parses the `k8s.v1.cni.cncf.io/networks` annotation of a pod in
/// `pod_namespace`; a blank annotation means no extra networks.
pub fn parse_networks_annotation(
    annotation: &str,
    pod_namespace: &str,
) -> Result<Vec<NetworkSelectionElement>, AnnotationError> {
    parse_selection(annotation, pod_namespace, NETWORKS_ANNOTATION)
}

/// Parses and validates a selection annotation (either syntax) stored under
/// `key`, defaulting namespaces to `default_namespace`.
pub(crate) fn parse_selection(
    annotation: &str,
    default_namespace: &str,
    key: &'static str,
) -> Result<Vec<NetworkSelectionElement>, AnnotationError> {
    let trimmed = annotation.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let items = if trimmed.contains(['[', '{', '"']) {
        parse_json_form(trimmed, key)?
    } else {
        parse_text_form(trimmed, key)?
    };
    let mut first_v4: Option<(IpAddr, String)> = None;
    let mut first_v6: Option<(IpAddr, String)> = None;
    let mut elements = Vec::with_capacity(items.len());
    for (item, mut element) in items {
        validate_element(&element, &item, key)?;
        for gateway in element.gateways() {
            let (slot, family) = if gateway.is_ipv4() {
                (&mut first_v4, "IPv4")
            } else {
                (&mut first_v6, "IPv6")
            };
            match slot {
                Some((first, first_item)) => {
                    return Err(AnnotationError::EcmpDefaultRoute {
                        key,
                        item,
                        family,
                        first: *first,
                        first_item: first_item.clone(),
                        second: gateway,
                    });
                }
                None => *slot = Some((gateway, item.clone())),
            }
        }
        if element.namespace.is_empty() {
            default_namespace.clone_into(&mut element.namespace);
        }
        elements.push(element);
    }
    Ok(elements)
}

/// Longest JSON quote put into an error message.
const MAX_QUOTE: usize = 200;

/// Compact JSON of `value`, cut to [`MAX_QUOTE`] bytes on a char boundary
/// (then marked with "...").
fn quote_json(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_QUOTE {
        return text;
    }
    format!("{}...", prefix_on_char_boundary(&text, MAX_QUOTE))
}

/// Parses the JSON form into (quoted item, element) pairs.
fn parse_json_form(
    text: &str,
    key: &'static str,
) -> Result<Vec<(String, NetworkSelectionElement)>, AnnotationError> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| AnnotationError::InvalidJson { key, error })?;
    let Value::Array(array) = value else {
        return Err(AnnotationError::NotAnArray {
            key,
            found: json_type(&value),
            value: quote_json(&value),
        });
    };
    let mut items = Vec::with_capacity(array.len());
    for (index, element) in array.into_iter().enumerate() {
        let quoted = quote_json(&element);
        if !element.is_object() {
            return Err(AnnotationError::ElementNotAnObject {
                key,
                index,
                found: json_type(&element),
                element: quoted,
            });
        }
        let parsed: NetworkSelectionElement =
            serde_json::from_value(element).map_err(|error| AnnotationError::InvalidElement {
                key,
                index,
                element: quoted.clone(),
                error,
            })?;
        items.push((format!("element {index} {quoted}"), parsed));
    }
    Ok(items)
}

/// Parses the text form `[namespace/]name[@interface],...`.
fn parse_text_form(
    text: &str,
    key: &'static str,
) -> Result<Vec<(String, NetworkSelectionElement)>, AnnotationError> {
    let mut items = Vec::new();
    for (index, raw) in text.split(',').enumerate() {
        let item = raw.trim();
        if item.is_empty() {
            return Err(AnnotationError::EmptyItem {
                key,
                position: index + 1,
                annotation: text.to_owned(),
            });
        }
        let empty_part = |part| AnnotationError::EmptyPart {
            key,
            item: item.to_owned(),
            part,
        };
        let (namespace, rest) = match item.split('/').collect::<Vec<_>>().as_slice() {
            [rest] => ("", rest.trim()),
            [namespace, rest] => {
                let namespace = namespace.trim();
                if namespace.is_empty() {
                    return Err(empty_part("namespace"));
                }
                (namespace, rest.trim())
            }
            _ => {
                return Err(AnnotationError::TooManySlashes {
                    key,
                    item: item.to_owned(),
                });
            }
        };
        let (name, interface) = match rest.split('@').collect::<Vec<_>>().as_slice() {
            [name] => (name.trim(), None),
            [name, interface] => {
                let interface = interface.trim();
                if interface.is_empty() {
                    return Err(empty_part("interface name"));
                }
                (name.trim(), Some(interface.to_owned()))
            }
            _ => {
                return Err(AnnotationError::TooManyAts {
                    key,
                    item: item.to_owned(),
                });
            }
        };
        if name.is_empty() {
            return Err(empty_part("network name"));
        }
        let element = NetworkSelectionElement {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            interface,
            ..NetworkSelectionElement::default()
        };
        items.push((format!("item {item:?}"), element));
    }
    Ok(items)
}

/// Applies the per-element rules common to both syntaxes.
fn validate_element(
    element: &NetworkSelectionElement,
    item: &str,
    key: &'static str,
) -> Result<(), AnnotationError> {
    if element.name.is_empty() {
        return Err(AnnotationError::MissingName {
            key,
            item: item.to_owned(),
        });
    }
    if let Some(reason) = dns1123_label_problem(&element.name) {
        return Err(AnnotationError::InvalidName {
            key,
            item: item.to_owned(),
            name: element.name.clone(),
            reason,
        });
    }
    if !element.namespace.is_empty()
        && let Some(reason) = dns1123_label_problem(&element.namespace)
    {
        return Err(AnnotationError::InvalidNamespace {
            key,
            item: item.to_owned(),
            namespace: element.namespace.clone(),
            reason,
        });
    }
    if let Some(interface) = &element.interface
        && let Some(reason) = interface_name_problem(interface)
    {
        return Err(AnnotationError::InvalidInterface {
            key,
            item: item.to_owned(),
            interface: interface.clone(),
            reason,
        });
    }
    for (field, value) in [
        ("mac", &element.mac),
        ("infiniband-guid", &element.infiniband_guid),
    ] {
        if let Some(value) = value
            && parse_hardware_addr(value).is_none()
        {
            return Err(AnnotationError::InvalidHardwareAddr {
                key,
                item: item.to_owned(),
                field,
                value: value.clone(),
            });
        }
    }
    for ip in element.ips.iter().flatten() {
        if let Some(reason) = ip_or_cidr_problem(ip) {
            return Err(AnnotationError::InvalidIp {
                key,
                item: item.to_owned(),
                value: ip.clone(),
                reason,
            });
        }
    }
    for gateway in element.default_route.iter().flatten() {
        if gateway.trim().parse::<IpAddr>().is_err() {
            return Err(AnnotationError::InvalidGateway {
                key,
                item: item.to_owned(),
                value: gateway.clone(),
            });
        }
    }
    Ok(())
}

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Why the kernel would refuse `name` as an interface name, or `None`.
pub fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.len() > MAX_IFNAME {
        Some(format!(
            "it is {} bytes long, the limit is {MAX_IFNAME} bytes",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not allowed".to_owned())
    } else if name.contains('/') {
        Some("it contains '/'".to_owned())
    } else if name.contains(':') {
        Some("it contains ':'".to_owned())
    } else if name.contains(char::is_whitespace) {
        Some("it contains whitespace".to_owned())
    } else if name.contains('\0') {
        Some("it contains a NUL byte".to_owned())
    } else {
        None
    }
}

/// Why `s` is neither an IP address nor `address/prefix`, or `None`.
pub fn ip_or_cidr_problem(s: &str) -> Option<String> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return match s.parse::<IpAddr>() {
            Ok(_) => None,
            Err(_) => Some("it does not parse as an IPv4 or IPv6 address".to_owned()),
        };
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Some(format!(
            "{addr:?} does not parse as an IPv4 or IPv6 address"
        ));
    };
    let canonical = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && (prefix == "0" || !prefix.starts_with('0'));
    let (family, max) = if addr.is_ipv4() {
        ("IPv4", 32)
    } else {
        ("IPv6", 128)
    };
    match prefix.parse::<u16>() {
        Ok(len) if canonical && len <= max => None,
        Ok(len) if canonical => Some(format!(
            "prefix length {len} is out of range for {family} (0-{max})"
        )),
        _ => Some(format!(
            "prefix length {prefix:?} is not a decimal number in 0-{max}"
        )),
    }
}

/// Parses a hardware address the way Go's `net.ParseMAC` does: 6, 8 or 20
/// octets written as two hex digits separated by `:` or `-` (one separator
/// throughout), or as dot-separated groups of four hex digits.
pub fn parse_hardware_addr(s: &str) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    fn octet(hi: u8, lo: u8) -> Option<u8> {
        Some(hex(hi)? << 4 | hex(lo)?)
    }
    let b = s.as_bytes();
    if b.len() < 14 {
        return None;
    }
    let valid_count = |n: usize| matches!(n, 6 | 8 | 20);
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2];
        if !(b.len() + 1).is_multiple_of(3) || !valid_count((b.len() + 1) / 3) {
            return None;
        }
        b.chunks(3)
            .map(|group| match group {
                [hi, lo] => octet(*hi, *lo),
                [hi, lo, s] if *s == sep => octet(*hi, *lo),
                _ => None,
            })
            .collect()
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) || !valid_count(2 * (b.len() + 1) / 5) {
            return None;
        }
        let mut out = Vec::with_capacity(2 * (b.len() + 1) / 5);
        for group in b.chunks(5) {
            match group {
                [h1, l1, h2, l2] | [h1, l1, h2, l2, b'.'] => {
                    out.push(octet(*h1, *l1)?);
                    out.push(octet(*h2, *l2)?);
                }
                _ => return None,
            }
        }
        Some(out)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Vec<NetworkSelectionElement>, AnnotationError> {
        parse_networks_annotation(text, "podns")
    }

    fn refs(elements: &[NetworkSelectionElement]) -> Vec<(String, Option<&str>)> {
        elements
            .iter()
            .map(|e| (e.namespaced_name(), e.interface.as_deref()))
            .collect()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn blank_annotation_means_no_networks() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("  \n\t").unwrap(), vec![]);
    }

    #[test]
    fn text_form_with_namespace_and_interface() {
        let got = parse("macvlan-conf, other/sriov@net5 ,bridge@eth9").unwrap();
        assert_eq!(
            refs(&got),
            vec![
                ("podns/macvlan-conf".to_owned(), None),
                ("other/sriov".to_owned(), Some("net5")),
                ("podns/bridge".to_owned(), Some("eth9")),
            ]
        );
        assert_eq!(got[1].namespace, "other");
        assert_eq!(got[1].name, "sriov");
        assert_eq!(got[0].ips, None);
    }

    #[test]
    fn text_form_trims_spaces_around_items_and_parts() {
        let got = parse("  a ,\tns / b @ eth1  ").unwrap();
        assert_eq!(
            refs(&got),
            vec![
                ("podns/a".to_owned(), None),
                ("ns/b".to_owned(), Some("eth1")),
            ]
        );
    }

    #[test]
    fn duplicates_are_kept() {
        let got = parse("macvlan-conf,macvlan-conf").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], got[1]);
        assert_eq!(got[0].namespaced_name(), "podns/macvlan-conf");
    }

    #[test]
    fn samplepod_fixture_annotation_parses_to_two_attachments() {
        let pod = include_str!("../../../tests/fixtures/pods/samplepod-two-macvlan.yaml");
        let pod: serde_yaml::Value = serde_yaml::from_str(pod).unwrap();
        let annotation = pod["metadata"]["annotations"][NETWORKS_ANNOTATION]
            .as_str()
            .unwrap();
        let got = parse_networks_annotation(annotation, "default").unwrap();
        assert_eq!(
            refs(&got),
            vec![
                ("default/macvlan-conf".to_owned(), None),
                ("default/macvlan-conf".to_owned(), None),
            ]
        );
    }

    #[test]
    fn interface_of_15_bytes_passes_and_16_fails() {
        let got = parse("a@abcdefghijklmno").unwrap();
        assert_eq!(got[0].interface.as_deref(), Some("abcdefghijklmno"));
        let msg = err("a@abcdefghijklmnop");
        assert_eq!(
            msg,
            "annotation k8s.v1.cni.cncf.io/networks: item \"a@abcdefghijklmnop\": interface name \
             \"abcdefghijklmnop\" is invalid: it is 16 bytes long, the limit is 15 bytes"
        );
        // Bytes, not characters: 8 two-byte characters are 16 bytes.
        assert!(err("a@éééééééé").contains("16 bytes long"));
    }

    #[test]
    fn interface_rules_follow_the_kernel() {
        assert!(err("a@.").contains("'.' and '..' are not allowed"));
        assert!(err("a@..").contains("'.' and '..' are not allowed"));
        assert!(err("a@eth:1").contains("contains ':'"));
        let msg = err(r#"[{"name":"a","interface":"eth 1"}]"#);
        assert!(msg.contains("contains whitespace"), "{msg}");
        assert!(msg.contains(r#""eth 1""#), "{msg}");
        let msg = err(r#"[{"name":"a","interface":"x/y"}]"#);
        assert!(msg.contains("contains '/'"), "{msg}");
        assert!(err(r#"[{"name":"a","interface":"e\u0000"}]"#).contains("NUL"));
        // Underscores, dots and dashes are fine.
        let got = parse("a@my_if.1-x").unwrap();
        assert_eq!(got[0].interface.as_deref(), Some("my_if.1-x"));
    }

    #[test]
    fn three_slash_parts_are_rejected() {
        assert_eq!(
            err("a/b/c"),
            "annotation k8s.v1.cni.cncf.io/networks: item \"a/b/c\" has more than one '/' \
             (expected [namespace/]name[@interface])"
        );
    }

    #[test]
    fn two_ats_are_rejected() {
        assert_eq!(
            err("ok, ns/a@b@c"),
            "annotation k8s.v1.cni.cncf.io/networks: item \"ns/a@b@c\" has more than one '@' \
             (expected [namespace/]name[@interface])"
        );
    }

    #[test]
    fn empty_items_are_rejected() {
        assert_eq!(
            err("a,,b"),
            "annotation k8s.v1.cni.cncf.io/networks: item 2 of \"a,,b\" is empty \
             (expected [namespace/]name[@interface])"
        );
        assert!(err("a,").contains("item 2 of \"a,\" is empty"));
        assert!(err(",a").contains("item 1 of \",a\" is empty"));
        assert!(err("a, ,b").contains("item 2 of \"a, ,b\" is empty"));
    }

    #[test]
    fn empty_parts_are_rejected() {
        assert!(err("/a").contains("item \"/a\" has an empty namespace"));
        assert!(err("ns/").contains("item \"ns/\" has an empty network name"));
        assert!(err("ns/@eth1").contains("has an empty network name"));
        assert!(err("a@").contains("item \"a@\" has an empty interface name"));
    }

    #[test]
    fn uppercase_and_bad_names_are_rejected() {
        assert_eq!(
            err("Macvlan"),
            "annotation k8s.v1.cni.cncf.io/networks: item \"Macvlan\": network name \"Macvlan\" \
             is not a DNS-1123 label: it may contain only lowercase letters, digits and '-'"
        );
        assert!(err("NS/a").contains("namespace \"NS\" is not a DNS-1123 label"));
        assert!(err("-a").contains("must start and end with a lowercase letter or digit"));
        assert!(err("a-").contains("must start and end"));
        assert!(err("a_b").contains("only lowercase letters, digits and '-'"));
        assert!(err("a.b").contains("only lowercase letters, digits and '-'"));
        let long = "a".repeat(64);
        assert!(err(&long).contains("longer than 63 characters"));
        assert_eq!(parse(&"a".repeat(63)).unwrap()[0].name.len(), 63);
        assert_eq!(parse("0-9").unwrap()[0].name, "0-9");
    }

    #[test]
    fn json_names_are_validated_too() {
        let msg = err(r#"[{"name":"Bad"}]"#);
        assert_eq!(
            msg,
            "annotation k8s.v1.cni.cncf.io/networks: element 0 {\"name\":\"Bad\"}: network name \
             \"Bad\" is not a DNS-1123 label: it may contain only lowercase letters, digits and '-'"
        );
        assert!(err(r#"[{"name":"a","namespace":"x_y"}]"#).contains("namespace \"x_y\""));
        assert_eq!(
            err(r#"[{"namespace":"x"}]"#),
            "annotation k8s.v1.cni.cncf.io/networks: element 0 {\"namespace\":\"x\"} has no \
             network name"
        );
    }

    #[test]
    fn bad_json_quotes_the_position() {
        let msg = err(r#"[{"name":"a",}]"#);
        assert!(
            msg.starts_with("annotation k8s.v1.cni.cncf.io/networks: invalid JSON: "),
            "{msg}"
        );
        assert!(msg.contains("line 1 column 14"), "{msg}");
        assert!(matches!(
            parse("[").unwrap_err(),
            AnnotationError::InvalidJson { .. }
        ));
    }

    #[test]
    fn bare_json_object_is_rejected() {
        assert_eq!(
            err(r#"{"name":"a"}"#),
            "annotation k8s.v1.cni.cncf.io/networks: must be a JSON array of network selection \
             elements, found an object: {\"name\":\"a\"}"
        );
        assert!(err(r#""a""#).contains("must be a JSON array"));
    }

    #[test]
    fn json_array_of_non_objects_is_rejected() {
        assert_eq!(
            err(r#"[{"name":"a"}, "b"]"#),
            "annotation k8s.v1.cni.cncf.io/networks: element 1 must be a JSON object, found a \
             string: \"b\""
        );
        assert!(err("[null]").contains("element 0 must be a JSON object, found null"));
    }

    #[test]
    fn json_fields_of_the_wrong_type_are_rejected() {
        let msg = err(r#"[{"name":"a","ips":"10.0.0.1"}]"#);
        assert!(
            msg.contains("element 0 {\"name\":\"a\",\"ips\":\"10.0.0.1\"}"),
            "{msg}"
        );
        assert!(msg.contains("invalid type: string"), "{msg}");
        assert!(err(r#"[{"name":"a","cni-args":[1]}]"#).contains("invalid type: sequence"));
    }

    #[test]
    fn json_with_every_field_round_trips() {
        let input = json!([{
            "name": "sriov",
            "namespace": "nets",
            "interface": "net7",
            "ips": ["10.1.1.5/24", "fd00::5"],
            "mac": "02:00:00:00:00:05",
            "infiniband-guid": "00:00:00:00:00:00:00:01",
            "default-route": ["10.1.1.1", "fd00::1"],
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1000, "egressRate": 2000},
            "cni-args": {"foo": "bar", "n": 1},
            "deviceID": "0000:03:00.1",
            "ipam-claim-reference": "claim-1"
        }]);
        let got = parse(&input.to_string()).unwrap();
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!(e.name, "sriov");
        assert_eq!(e.namespace, "nets");
        assert_eq!(e.interface.as_deref(), Some("net7"));
        assert_eq!(
            e.ips,
            Some(vec!["10.1.1.5/24".to_owned(), "fd00::5".to_owned()])
        );
        assert_eq!(e.mac.as_deref(), Some("02:00:00:00:00:05"));
        assert_eq!(
            e.infiniband_guid.as_deref(),
            Some("00:00:00:00:00:00:00:01")
        );
        assert_eq!(
            e.gateways(),
            vec![
                "10.1.1.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert_eq!(e.port_mappings.as_ref().unwrap()[0]["hostPort"], 8080);
        assert_eq!(e.bandwidth.as_ref().unwrap()["egressRate"], 2000);
        assert_eq!(e.cni_args.as_ref().unwrap()["foo"], "bar");
        assert_eq!(e.device_id.as_deref(), Some("0000:03:00.1"));
        assert_eq!(e.ipam_claim_reference.as_deref(), Some("claim-1"));
        assert_eq!(serde_json::to_value(&got).unwrap(), input);
    }

    #[test]
    fn minimal_element_serialises_without_optional_keys() {
        let got = parse("a").unwrap();
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"[{"name":"a","namespace":"podns"}]"#
        );
    }

    #[test]
    fn empty_default_route_list_is_kept_distinct_from_absent() {
        let got = parse(r#"[{"name":"a","default-route":[]},{"name":"b"}]"#).unwrap();
        assert_eq!(got[0].default_route, Some(vec![]));
        assert_eq!(got[1].default_route, None);
        assert!(got[0].gateways().is_empty());
    }

    #[test]
    fn legacy_interface_request_is_accepted() {
        let got = parse(r#"[{"name":"a","interfaceRequest":"legacy0"}]"#).unwrap();
        assert_eq!(got[0].interface.as_deref(), Some("legacy0"));
        // `interface` wins when both are present; an empty one does not count.
        let got = parse(
            r#"[{"name":"a","interface":"new0","interfaceRequest":"old0"},
                {"name":"b","interface":"","interfaceRequest":"old1"}]"#,
        )
        .unwrap();
        assert_eq!(got[0].interface.as_deref(), Some("new0"));
        assert_eq!(got[1].interface.as_deref(), Some("old1"));
        // Written back under the spec's key only.
        let json = serde_json::to_value(&got[1]).unwrap();
        assert_eq!(json["interface"], "old1");
        assert!(json.get("interfaceRequest").is_none());
        // The legacy name is validated like the new one.
        assert!(
            err(r#"[{"name":"a","interfaceRequest":"abcdefghijklmnopq"}]"#)
                .contains("is 17 bytes long")
        );
    }

    #[test]
    fn json_namespace_defaults_to_the_pods_and_empty_strings_are_absent() {
        let got = parse(
            r#"[{"name":"a","namespace":"","mac":"","interface":"","deviceID":""},
                {"name":"b","namespace":"other","unknown-key":1}]"#,
        )
        .unwrap();
        assert_eq!(got[0].namespace, "podns");
        assert_eq!(got[0].mac, None);
        assert_eq!(got[0].interface, None);
        assert_eq!(got[0].device_id, None);
        assert_eq!(got[1].namespace, "other");
    }

    #[test]
    fn bad_mac_is_rejected() {
        let msg = err(r#"[{"name":"a","mac":"02:00:00:00:00"}]"#);
        assert!(
            msg.contains(r#"mac "02:00:00:00:00" is not a hardware address"#),
            "{msg}"
        );
        assert!(msg.contains("element 0"), "{msg}");
        let msg = err(r#"[{"name":"a","infiniband-guid":"zz:00:00:00:00:00:00:00"}]"#);
        assert!(
            msg.contains(r#"infiniband-guid "zz:00:00:00:00:00:00:00""#),
            "{msg}"
        );
    }

    #[test]
    fn hardware_addresses_parse_like_go() {
        assert_eq!(
            parse_hardware_addr("00:00:5e:00:53:01"),
            Some(vec![0x00, 0x00, 0x5e, 0x00, 0x53, 0x01])
        );
        assert_eq!(
            parse_hardware_addr("02-00-5E-10-00-00-00-01"),
            Some(vec![0x02, 0x00, 0x5e, 0x10, 0x00, 0x00, 0x00, 0x01])
        );
        assert_eq!(
            parse_hardware_addr("0000.5e00.5301"),
            Some(vec![0x00, 0x00, 0x5e, 0x00, 0x53, 0x01])
        );
        assert_eq!(
            parse_hardware_addr("0200.5e10.0000.0001").map(|v| v.len()),
            Some(8)
        );
        let ib = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01";
        assert_eq!(parse_hardware_addr(ib).map(|v| v.len()), Some(20));
        let ib_dotted = "0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001";
        assert_eq!(parse_hardware_addr(ib_dotted).map(|v| v.len()), Some(20));
        for bad in [
            "",
            "00:00:5e:00:53",
            "00:00:5e:00:53:01:02",
            "00:00:5e-00:53:01",
            "00:00:5e:00:53:0g",
            "0:00:5e:00:53:01:",
            "00.00.5e.00.53.01",
            "0000.5e00.530",
            "0000:5e00:5301",
            "00:00:5e:00:53:01 ",
            "00:00:5e:00:53:é",
        ] {
            assert_eq!(parse_hardware_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_ip_is_rejected() {
        let msg = err(r#"[{"name":"a","ips":["10.0.0.1","10.0.0.256"]}]"#);
        assert!(
            msg.ends_with(
                r#"ips entry "10.0.0.256" is not an IP address or CIDR: it does not parse as an IPv4 or IPv6 address"#
            ),
            "{msg}"
        );
        let msg = err(r#"[{"name":"a","ips":["x/24"]}]"#);
        assert!(
            msg.contains(r#""x" does not parse as an IPv4 or IPv6 address"#),
            "{msg}"
        );
    }

    #[test]
    fn bad_cidr_prefix_is_rejected() {
        let msg = err(r#"[{"name":"a","ips":["10.0.0.1/33"]}]"#);
        assert!(
            msg.ends_with(
                r#"ips entry "10.0.0.1/33" is not an IP address or CIDR: prefix length 33 is out of range for IPv4 (0-32)"#
            ),
            "{msg}"
        );
        assert!(
            err(r#"[{"name":"a","ips":["fd00::1/129"]}]"#)
                .contains("prefix length 129 is out of range for IPv6 (0-128)")
        );
        for bad in [
            "10.0.0.1/",
            "10.0.0.1/-1",
            "10.0.0.1/+8",
            "10.0.0.1/08",
            "10.0.0.1/1a",
        ] {
            assert!(ip_or_cidr_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "10.0.0.1/0",
            "10.0.0.1/32",
            "fd00::1/128",
            "fd00::1",
            "10.1.2.3",
        ] {
            assert_eq!(ip_or_cidr_problem(good), None, "{good}");
        }
        let got = parse(r#"[{"name":"a","ips":["fd00::1/64","10.0.0.5/24"]}]"#).unwrap();
        assert_eq!(got[0].ips.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn bad_default_route_is_rejected() {
        let msg = err(r#"[{"name":"a","default-route":["10.0.0.1/24"]}]"#);
        assert!(
            msg.ends_with(r#"default-route entry "10.0.0.1/24" is not an IP address"#),
            "{msg}"
        );
    }

    #[test]
    fn two_ipv4_default_routes_are_rejected() {
        let msg = err(
            r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.0.1.1"]}]"#,
        );
        assert_eq!(
            msg,
            "annotation k8s.v1.cni.cncf.io/networks: element 1 \
             {\"name\":\"b\",\"default-route\":[\"10.0.1.1\"]}: default-route 10.0.1.1 is a second \
             IPv4 gateway (the first is 10.0.0.1 of element 0 \
             {\"name\":\"a\",\"default-route\":[\"10.0.0.1\"]}): multus does not support ECMP for \
             default-route"
        );
        // Also within a single element, and for IPv6.
        assert!(
            err(r#"[{"name":"a","default-route":["fd00::1","fd00::2"]}]"#)
                .contains("default-route fd00::2 is a second IPv6 gateway")
        );
    }

    #[test]
    fn one_ipv4_and_one_ipv6_default_route_are_accepted() {
        let got = parse(
            r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["fd00::1"]}]"#,
        )
        .unwrap();
        assert_eq!(
            got[0].gateways(),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            got[1].gateways(),
            vec!["fd00::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn long_json_is_cut_in_messages() {
        let long = format!(
            r#"[{{"name":"A","cni-args":{{"k":"{}"}}}}]"#,
            "é".repeat(300)
        );
        let msg = err(&long);
        assert!(msg.contains("..."), "{msg}");
        assert!(msg.len() < 500, "{}", msg.len());
    }

    #[test]
    fn label_and_interface_helpers_accept_valid_values() {
        assert_eq!(dns1123_label_problem("kube-system"), None);
        assert_eq!(interface_name_problem("eth0"), None);
        assert_eq!(interface_name_problem("").as_deref(), Some("it is empty"));
    }
}
