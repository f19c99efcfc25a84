//! The `v1.multus-cni.io/default-network` pod annotation, which replaces the
//! cluster network for one pod.

use super::DEFAULT_NETWORK_ANNOTATION;
use super::selection::{AnnotationError, NetworkSelectionElement, parse_selection};

/// Parses the default-network annotation: the networks annotation's syntax
/// and rules, exactly one element, namespace defaulting to `multus_namespace`.
pub fn parse_default_network_annotation(
    annotation: &str,
    multus_namespace: &str,
) -> Result<NetworkSelectionElement, AnnotationError> {
    let key = DEFAULT_NETWORK_ANNOTATION;
    let mut elements = parse_selection(annotation, multus_namespace, key)?;
    match elements.len() {
        0 => Err(AnnotationError::NoDefaultNetwork { key }),
        1 => Ok(elements.remove(0)),
        count => Err(AnnotationError::TooManyDefaultNetworks {
            key,
            count,
            names: elements
                .iter()
                .map(NetworkSelectionElement::namespaced_name)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_defaults_to_the_multus_namespace() {
        let got = parse_default_network_annotation("calico", "kube-system").unwrap();
        assert_eq!(got.name, "calico");
        assert_eq!(got.namespace, "kube-system");
        assert_eq!(got.interface, None);
    }

    #[test]
    fn explicit_namespace_and_interface_are_kept() {
        let got = parse_default_network_annotation(" nets/flannel@eth0 ", "kube-system").unwrap();
        assert_eq!(got.namespaced_name(), "nets/flannel");
        assert_eq!(got.interface.as_deref(), Some("eth0"));
    }

    #[test]
    fn json_form_is_accepted() {
        let got = parse_default_network_annotation(
            r#"[{"name":"cilium","ips":["10.0.0.7/24"]}]"#,
            "multus",
        )
        .unwrap();
        assert_eq!(got.namespaced_name(), "multus/cilium");
        assert_eq!(got.ips, Some(vec!["10.0.0.7/24".to_owned()]));
    }

    #[test]
    fn zero_networks_is_an_error() {
        for annotation in ["", "  ", "[]"] {
            let err = parse_default_network_annotation(annotation, "kube-system").unwrap_err();
            assert_eq!(
                err.to_string(),
                "annotation v1.multus-cni.io/default-network: names no network; exactly one is required",
                "{annotation:?}"
            );
        }
    }

    #[test]
    fn more_than_one_network_is_an_error_listing_them() {
        let err = parse_default_network_annotation("a, other/b", "kube-system").unwrap_err();
        assert_eq!(
            err.to_string(),
            "annotation v1.multus-cni.io/default-network: names 2 networks \
             (kube-system/a, other/b); exactly one is required"
        );
    }

    #[test]
    fn syntax_errors_name_this_annotation() {
        let err = parse_default_network_annotation("Bad", "kube-system").unwrap_err();
        assert_eq!(
            err.to_string(),
            "annotation v1.multus-cni.io/default-network: item \"Bad\": network name \"Bad\" is \
             not a DNS-1123 label: it may contain only lowercase letters, digits and '-'"
        );
        let err = parse_default_network_annotation(r#"{"name":"a"}"#, "kube-system").unwrap_err();
        assert!(matches!(err, AnnotationError::NotAnArray { .. }), "{err}");
        assert!(err.to_string().contains("must be a JSON array"), "{err}");
    }
}
