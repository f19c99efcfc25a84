//! `CNI_ARGS`: `K=V;K2=V2`, as the runtime passes it and as Multus builds it
//! for delegates.

use std::fmt;
use std::str::FromStr;

/// `IgnoreUnknown`: tells plugins not to fail on keys they do not know.
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";
/// `K8S_POD_NAMESPACE`.
pub const K8S_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
/// `K8S_POD_NAME`.
pub const K8S_POD_NAME: &str = "K8S_POD_NAME";
/// `K8S_POD_INFRA_CONTAINER_ID`.
pub const K8S_POD_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";
/// `K8S_POD_UID`.
pub const K8S_POD_UID: &str = "K8S_POD_UID";

/// The keys Multus sets itself for delegates, in the order it writes them.
pub const DELEGATE_KEYS: [&str; 5] = [
    IGNORE_UNKNOWN,
    K8S_POD_NAMESPACE,
    K8S_POD_NAME,
    K8S_POD_INFRA_CONTAINER_ID,
    K8S_POD_UID,
];

/// Ordered `CNI_ARGS` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// A `CNI_ARGS` element that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An element has no `=`.
    #[error("invalid CNI_ARGS element {element:?}: expected KEY=VALUE")]
    MissingEquals {
        /// The malformed element.
        element: String,
    },
    /// An element has an empty key.
    #[error("invalid CNI_ARGS element {element:?}: empty key")]
    EmptyKey {
        /// The malformed element.
        element: String,
    },
}

/// The pod identity Multus passes to every delegate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodArgs<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub name: &'a str,
    /// The sandbox (infra) container ID.
    pub infra_container_id: &'a str,
    /// The pod's UID.
    pub uid: &'a str,
}

impl CniArgs {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the wire form. An empty string means no arguments; empty
    /// elements (`A=1;;B=2`, a trailing `;`) are skipped; a value may
    /// contain `=` (only the first one separates key and value).
    pub fn parse(s: &str) -> Result<Self, ArgsError> {
        let mut pairs = Vec::new();
        for element in s.split(';') {
            if element.is_empty() {
                continue;
            }
            let Some((key, value)) = element.split_once('=') else {
                return Err(ArgsError::MissingEquals {
                    element: element.to_owned(),
                });
            };
            if key.is_empty() {
                return Err(ArgsError::EmptyKey {
                    element: element.to_owned(),
                });
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of the first `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value of `key` in place (dropping later duplicates), or
    /// appends it.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        if let Some(pos) = self.pairs.iter().position(|(k, _)| *k == key) {
            self.pairs[pos].1 = value;
            let mut index = 0;
            self.pairs.retain(|(k, _)| {
                let keep = index <= pos || *k != key;
                index += 1;
                keep
            });
        } else {
            self.pairs.push((key, value));
        }
    }

    /// Removes every `key`, returning the first value it had.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let first = self.get(key).map(str::to_owned);
        self.pairs.retain(|(k, _)| k != key);
        first
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The args Multus gives a delegate: `IgnoreUnknown=true`, the pod's
    /// namespace, name, infra container ID and UID, in that order, then every
    /// other key of the runtime's own `CNI_ARGS` in its order.
    pub fn for_delegate(pod: PodArgs<'_>, runtime: &CniArgs) -> Self {
        let mut pairs: Vec<(String, String)> = [
            (IGNORE_UNKNOWN, "true"),
            (K8S_POD_NAMESPACE, pod.namespace),
            (K8S_POD_NAME, pod.name),
            (K8S_POD_INFRA_CONTAINER_ID, pod.infra_container_id),
            (K8S_POD_UID, pod.uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        pairs.extend(
            runtime
                .pairs
                .iter()
                .filter(|(k, _)| !DELEGATE_KEYS.contains(&k.as_str()))
                .cloned(),
        );
        Self { pairs }
    }
}

impl fmt::Display for CniArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl FromStr for CniArgs {
    type Err = ArgsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for CniArgs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            pairs: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
        K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1;FOO=bar=baz;EMPTY=";

    #[test]
    fn parses_in_order_with_equals_in_values() {
        let args = CniArgs::parse(RUNTIME).unwrap();
        assert_eq!(args.len(), 7);
        assert_eq!(args.get("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(args.get("FOO"), Some("bar=baz"));
        assert_eq!(args.get("EMPTY"), Some(""));
        assert_eq!(args.get("MISSING"), None);
        assert_eq!(
            args.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            [
                "IgnoreUnknown",
                "K8S_POD_NAMESPACE",
                "K8S_POD_NAME",
                "K8S_POD_INFRA_CONTAINER_ID",
                "K8S_POD_UID",
                "FOO",
                "EMPTY"
            ]
        );
        assert_eq!(args.to_string(), RUNTIME);
    }

    #[test]
    fn empty_string_means_no_args() {
        let args = CniArgs::parse("").unwrap();
        assert!(args.is_empty());
        assert_eq!(args.to_string(), "");
        assert_eq!(CniArgs::new(), args);
    }

    #[test]
    fn empty_elements_are_skipped() {
        let args: CniArgs = "A=1;;B=2;".parse().unwrap();
        assert_eq!(args.to_string(), "A=1;B=2");
    }

    #[test]
    fn malformed_elements_are_named() {
        let err = CniArgs::parse("A=1;BROKEN;C=3").unwrap_err();
        assert_eq!(
            err,
            ArgsError::MissingEquals {
                element: "BROKEN".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid CNI_ARGS element \"BROKEN\": expected KEY=VALUE"
        );
        let err = CniArgs::parse("=v").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CNI_ARGS element \"=v\": empty key"
        );
    }

    #[test]
    fn set_replaces_or_appends() {
        let mut args = CniArgs::parse("A=1;B=2;A=3").unwrap();
        args.set("A", "9");
        assert_eq!(args.to_string(), "A=9;B=2");
        args.set("C", "x=y");
        assert_eq!(args.to_string(), "A=9;B=2;C=x=y");
        args.set("B", "");
        assert_eq!(args.to_string(), "A=9;B=;C=x=y");
        assert_eq!(args.remove("A"), Some("9".into()));
        assert_eq!(args.remove("A"), None);
        assert_eq!(args.to_string(), "B=;C=x=y");
    }

    #[test]
    fn display_round_trips() {
        for wire in ["A=1", "A=1;B=2", "K=a=b=c;L=", ""] {
            assert_eq!(CniArgs::parse(wire).unwrap().to_string(), wire);
        }
    }

    #[test]
    fn delegate_args_put_pod_identity_first() {
        let runtime = CniArgs::parse(RUNTIME).unwrap();
        let pod = PodArgs {
            namespace: "default",
            name: "web-0",
            infra_container_id: "abc123",
            uid: "uid-1",
        };
        let args = CniArgs::for_delegate(pod, &runtime);
        assert_eq!(
            args.to_string(),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1;FOO=bar=baz;EMPTY="
        );
    }

    #[test]
    fn delegate_args_without_runtime_args() {
        let pod = PodArgs {
            namespace: "ns",
            name: "p",
            infra_container_id: "c",
            uid: "",
        };
        let args = CniArgs::for_delegate(pod, &CniArgs::new());
        assert_eq!(
            args.to_string(),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;\
             K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID="
        );
        // Our values win over the runtime's for the five keys.
        let runtime = CniArgs::parse("MAC=x;K8S_POD_NAME=other;IgnoreUnknown=false").unwrap();
        let args = CniArgs::for_delegate(pod, &runtime);
        assert_eq!(args.get(K8S_POD_NAME), Some("p"));
        assert_eq!(args.get(IGNORE_UNKNOWN), Some("true"));
        assert_eq!(args.iter().last(), Some(("MAC", "x")));
        assert_eq!(args.len(), 6);
    }

    #[test]
    fn collects_from_pairs() {
        let args: CniArgs = [("A", "1"), ("B", "2")].into_iter().collect();
        assert_eq!(args.to_string(), "A=1;B=2");
    }
}
