//! Kubernetes name rules (DNS-1123), shared by the annotation parsers, the
//! controller's spec validation and anything else that checks an object or
//! namespace name.

/// Longest DNS-1123 label (namespace names, NAD names in annotations).
pub const MAX_DNS1123_LABEL: usize = 63;

/// Longest DNS-1123 subdomain (most object names).
pub const MAX_DNS1123_SUBDOMAIN: usize = 253;

/// Why `s` is not a DNS-1123 label, or `None` when it is one.
pub fn dns1123_label_problem(s: &str) -> Option<&'static str> {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() {
        Some("it is empty")
    } else if bytes.len() > MAX_DNS1123_LABEL {
        Some("it is longer than 63 characters")
    } else if !bytes.iter().all(|b| alnum(b) || *b == b'-') {
        Some("it may contain only lowercase letters, digits and '-'")
    } else if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        Some("it must start and end with a lowercase letter or digit")
    } else {
        None
    }
}

/// Whether `s` is a DNS-1123 label.
pub fn is_dns1123_label(s: &str) -> bool {
    dns1123_label_problem(s).is_none()
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253
/// characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_DNS1123_SUBDOMAIN && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(dns1123_label_problem("kube-system"), None);
        assert_eq!(dns1123_label_problem("a"), None);
        assert_eq!(dns1123_label_problem("0a-9"), None);
        assert_eq!(dns1123_label_problem(""), Some("it is empty"));
        assert_eq!(
            dns1123_label_problem(&"a".repeat(64)),
            Some("it is longer than 63 characters")
        );
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert_eq!(
            dns1123_label_problem("Bad"),
            Some("it may contain only lowercase letters, digits and '-'")
        );
        assert_eq!(
            dns1123_label_problem("a.b"),
            Some("it may contain only lowercase letters, digits and '-'")
        );
        assert_eq!(
            dns1123_label_problem("-a"),
            Some("it must start and end with a lowercase letter or digit")
        );
        assert!(!is_dns1123_label("a-"));
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("multus.dev"));
        assert!(is_dns1123_subdomain("a"));
        assert!(!is_dns1123_subdomain(""));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(".a"));
        assert!(!is_dns1123_subdomain("A.b"));
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(!is_dns1123_subdomain(&long));
        assert!(is_dns1123_subdomain(&long[..253]));
    }
}
