//! Which MultusConfig specs cannot be applied, and why. The CRD schema
//! already rejects bad enums, ranges and relative paths; this catches what
//! a schema cannot express (conflicting fields, malformed image references,
//! host paths that would clash inside the agent pod, names that are not
//! valid Kubernetes names). A spec with any problem is not applied at all.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multus_config::crd::{MultusConfig, MultusConfigSpec};

use super::render::{
    RESERVED_CONTAINER_PATHS, RUN_MULTUS_DIR, delegate_socket_mount_dir, indicator_mount_dir,
    is_within,
};

/// One reason a spec cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The field, as a path from the object (`spec.image.tag`).
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

struct Problems(Vec<SpecProblem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecProblem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Every problem of `config` (empty when it can be applied).
pub fn validate(config: &MultusConfig) -> Vec<SpecProblem> {
    let mut p = Problems(Vec::new());
    if let Some(name) = config.metadata.name.as_deref()
        && name.len() > 63
    {
        p.push(
            "metadata.name",
            format!(
                "{} characters; a MultusConfig name is used as a label value and may have at most 63",
                name.len()
            ),
        );
    }
    let spec = &config.spec;
    check_image(spec, &mut p);
    check_names(spec, &mut p);
    check_update_strategy(spec, &mut p);
    check_paths(spec, &mut p);
    check_networks(spec, &mut p);
    p.0
}

fn check_image(spec: &MultusConfigSpec, p: &mut Problems) {
    let Some(image) = spec.image.as_ref() else {
        return;
    };
    if let Some(repository) = image.repository.as_deref()
        && let Err(why) = check_repository(repository)
    {
        p.push("spec.image.repository", why);
    }
    if let Some(tag) = image.tag.as_deref()
        && !is_tag(tag)
        && !is_digest(tag.strip_prefix('@').unwrap_or(tag))
    {
        p.push(
            "spec.image.tag",
            format!(
                "{tag:?} is neither a tag (letters, digits, `_`, `.`, `-`, at most 128, not \
                 starting with `.` or `-`) nor a digest (`sha256:` and 64 hex digits)"
            ),
        );
    }
    for (i, secret) in image.pull_secrets.iter().flatten().enumerate() {
        if !is_dns_subdomain(secret) {
            p.push(
                format!("spec.image.pullSecrets[{i}]"),
                format!("{secret:?} is not a valid Secret name (lowercase DNS subdomain)"),
            );
        }
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    if repository.chars().any(char::is_whitespace) {
        return Err(format!("{repository:?} contains whitespace"));
    }
    if repository.contains('@') {
        return Err(format!(
            "{repository:?} contains a digest; put it in spec.image.tag"
        ));
    }
    let parts: Vec<&str> = repository.split('/').collect();
    let has_domain = parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
    let (domain, path) = if has_domain {
        (Some(parts[0]), &parts[1..])
    } else {
        (None, &parts[..])
    };
    if let Some(domain) = domain {
        let (host, port) = domain.split_once(':').unwrap_or((domain, ""));
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let port_ok = domain.split_once(':').is_none()
            || (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Err(format!("{domain:?} is not a valid registry host[:port]"));
        }
    }
    if let Some(last) = path.last()
        && last.contains(':')
    {
        return Err(format!(
            "{repository:?} contains a tag; put it in spec.image.tag"
        ));
    }
    for part in path {
        if !is_path_component(part) {
            return Err(format!(
                "path component {part:?} of {repository:?} must be lowercase letters and digits \
                 separated by `.`, `_`, `__` or dashes"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(part: &str) -> bool {
    let mut run = 0usize;
    let mut separator = String::new();
    for c in part.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if run == 0 && !separator.is_empty() {
                let dashes = separator.chars().all(|s| s == '-');
                if !(dashes || separator == "." || separator == "_" || separator == "__") {
                    return false;
                }
            }
            separator.clear();
            run += 1;
        } else if matches!(c, '.' | '_' | '-') {
            if run == 0 && separator.is_empty() {
                return false;
            }
            run = 0;
            separator.push(c);
        } else {
            return false;
        }
    }
    run > 0
}

fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_digest(text: &str) -> bool {
    match text.split_once(':') {
        Some((algorithm, hex)) => {
            !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && hex.len() >= 32
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        }
        None => false,
    }
}

/// Whether `s` is a DNS-1123 label (namespace names).
pub use multus_config::names::is_dns1123_label as is_dns_label;
/// Whether `s` is a DNS-1123 subdomain (most object names).
pub use multus_config::names::is_dns1123_subdomain as is_dns_subdomain;

/// Whether `s` is a valid label value (may be empty).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Whether `s` is a valid label key (`[prefix/]name`).
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

fn check_names(spec: &MultusConfigSpec, p: &mut Problems) {
    if let Some(class) = spec.priority_class_name.as_deref()
        && !is_dns_subdomain(class)
    {
        p.push(
            "spec.priorityClassName",
            format!("{class:?} is not a valid PriorityClass name (lowercase DNS subdomain)"),
        );
    }
    if let Some(selector) = spec
        .placement
        .as_ref()
        .and_then(|p| p.node_selector.as_ref())
    {
        for (key, value) in selector {
            if !is_label_key(key) {
                p.push(
                    format!("spec.placement.nodeSelector[{key:?}]"),
                    "is not a valid label key ([prefix/]name, name at most 63 characters)",
                );
            }
            if !is_label_value(value) {
                p.push(
                    format!("spec.placement.nodeSelector[{key:?}]"),
                    format!("{value:?} is not a valid label value (at most 63 letters, digits, `-`, `_`, `.`)"),
                );
            }
        }
    }
    let namespace_lists = [
        ("spec.globalNamespaces", spec.global_namespaces.as_ref()),
        ("spec.systemNamespaces", spec.system_namespaces.as_ref()),
    ];
    for (field, list) in namespace_lists {
        for (i, ns) in list.into_iter().flatten().enumerate() {
            if !is_dns_label(ns) {
                p.push(
                    format!("{field}[{i}]"),
                    format!("{ns:?} is not a valid namespace name (lowercase DNS label)"),
                );
            }
        }
    }
    if let Some(ns) = spec.multus_namespace.as_deref()
        && !is_dns_label(ns)
    {
        p.push(
            "spec.multusNamespace",
            format!("{ns:?} is not a valid namespace name (lowercase DNS label)"),
        );
    }
}

fn check_update_strategy(spec: &MultusConfigSpec, p: &mut Problems) {
    const FIELD: &str = "spec.updateStrategy.maxUnavailable";
    match spec.max_unavailable() {
        IntOrString::Int(n) if n < 1 => p.push(
            FIELD,
            format!("{n} would never let the DaemonSet replace a pod; use at least 1 (or 1%)"),
        ),
        IntOrString::Int(_) => {}
        IntOrString::String(s) => match s.strip_suffix('%').map(str::parse::<u32>) {
            Some(Ok(n)) if (1..=100).contains(&n) => {}
            Some(Ok(n)) => p.push(FIELD, format!("{n}% is outside 1%..100%")),
            _ => p.push(
                FIELD,
                format!("{s:?} is neither a node count nor a percentage such as \"10%\""),
            ),
        },
    }
}

/// Whether `path` is absolute with no `.`/`..` components or empty
/// segments.
fn is_clean_absolute(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn check_paths(spec: &MultusConfigSpec, p: &mut Problems) {
    let dirs = [
        ("spec.cniConfDir", spec.cni_conf_dir.as_deref()),
        ("spec.cniBinDir", spec.cni_bin_dir.as_deref()),
        ("spec.multusConfDir", spec.multus_conf_dir.as_deref()),
        ("spec.cacheDir", spec.cache_dir.as_deref()),
        ("spec.additionalBinDir", spec.additional_bin_dir.as_deref()),
    ];
    let files = [
        ("spec.logFile", spec.log_file.as_deref()),
        (
            "spec.readinessIndicatorFile",
            spec.readiness_indicator_file.as_deref(),
        ),
        (
            "spec.podResourcesSocket",
            spec.pod_resources_socket.as_deref(),
        ),
    ];
    let mut bad = BTreeSet::new();
    for (field, value) in dirs.iter().chain(files.iter()) {
        if let Some(path) = value
            && !is_clean_absolute(path)
        {
            p.push(
                *field,
                format!("{path:?} must be an absolute path without `.`, `..` or empty segments"),
            );
            bad.insert(*field);
        }
    }
    for (field, value) in dirs {
        if value == Some("/") && !bad.contains(field) {
            p.push(field, "the host's root directory cannot be used");
            bad.insert(field);
        }
    }
    for (field, value) in files {
        if let Some(path) = value
            && !bad.contains(field)
            && (path.ends_with('/') || Path::new(path).parent() == Some(Path::new("/")))
        {
            p.push(
                field,
                format!("{path:?} must name a file inside a directory other than `/`"),
            );
            bad.insert(field);
        }
    }
    if !bad.is_empty() {
        return;
    }
    // Directories that must differ: each holds files the others must not
    // see (the conf dir's election would pick up cache files, etc.).
    let distinct = [
        ("spec.cniConfDir", spec.cni_conf_dir()),
        ("spec.cniBinDir", spec.cni_bin_dir()),
        ("spec.cacheDir", spec.cache_dir()),
        ("spec.multusConfDir", spec.multus_conf_dir()),
    ];
    for (i, (a_field, a)) in distinct.iter().enumerate() {
        for (b_field, b) in &distinct[i + 1..] {
            if a.trim_end_matches('/') == b.trim_end_matches('/') {
                p.push(
                    *b_field,
                    format!("{b:?} is also {a_field}; the two directories must differ"),
                );
            }
        }
    }
    // Host paths mounted into the agent at their own path must not clash
    // with the pod's own mounts.
    let mut same_path = vec![("spec.cacheDir", spec.cache_dir().to_owned())];
    if let Some(dir) = indicator_mount_dir(spec) {
        same_path.push(("spec.readinessIndicatorFile", dir));
    }
    if let Some(dir) = delegate_socket_mount_dir(spec) {
        same_path.push(("spec.delegateApi.socketPath", dir));
    }
    for (field, dir) in same_path {
        for reserved in RESERVED_CONTAINER_PATHS {
            if is_within(&dir, reserved) || is_within(reserved, &dir) {
                p.push(
                    field,
                    format!(
                        "{dir:?} would be mounted into the agent over its own {reserved}; \
                         choose another directory"
                    ),
                );
            }
        }
        if field == "spec.cacheDir" && dir.trim_end_matches('/') == RUN_MULTUS_DIR {
            p.push(
                field,
                format!("{dir:?} is reserved for the plugin's runtime files"),
            );
        }
    }
}

fn check_networks(spec: &MultusConfigSpec, p: &mut Problems) {
    if let (Some(file), Some(network)) = (
        spec.pinned_primary_config_file(),
        spec.cluster_network.as_deref(),
    ) {
        p.push(
            "spec.clusterNetwork",
            format!(
                "both clusterNetwork ({network:?}) and primaryConfigFile ({file:?}) choose the \
                 cluster network; set only one (primaryConfigFile: auto with clusterNetwork)"
            ),
        );
    }
    if spec
        .cluster_network
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        p.push(
            "spec.clusterNetwork",
            "must not be empty; leave it out instead",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, network) in spec.default_networks.iter().flatten().enumerate() {
        let field = format!("spec.defaultNetworks[{i}]");
        if network.trim().is_empty() {
            p.push(field, "must not be empty");
        } else if !seen.insert(network.as_str()) {
            p.push(field, format!("{network:?} is listed twice"));
        } else if spec.cluster_network.as_deref() == Some(network.as_str()) {
            p.push(
                field,
                format!("{network:?} is the clusterNetwork; pods would get it twice"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::crd::multus_config::{ImageSpec, Placement, UpdateStrategy};
    use std::collections::BTreeMap;

    fn problems(spec: MultusConfigSpec) -> Vec<String> {
        validate(&MultusConfig::new("default", spec))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn image(repository: Option<&str>, tag: Option<&str>) -> MultusConfigSpec {
        MultusConfigSpec {
            image: Some(ImageSpec {
                repository: repository.map(Into::into),
                tag: tag.map(Into::into),
                ..ImageSpec::default()
            }),
            ..MultusConfigSpec::default()
        }
    }

    #[test]
    fn the_default_spec_and_the_documented_example_are_valid() {
        assert_eq!(problems(MultusConfigSpec::default()), Vec::<String>::new());
        let example: MultusConfig =
            serde_yaml::from_str(include_str!("../../../docs/examples/multusconfig.yaml")).unwrap();
        assert_eq!(validate(&example), vec![]);
    }

    #[test]
    fn image_references_are_checked() {
        for (repo, tag) in [
            (Some("ghcr.io/multus-rs/multus"), Some("v0.1.0")),
            (Some("localhost:5000/multus"), Some("latest")),
            (Some("multus"), None),
            (Some("registry.example.com/a__b/c-d.e"), None),
            (None, Some(&*format!("sha256:{}", "a".repeat(64)))),
            (None, Some(&*format!("@sha256:{}", "0".repeat(64)))),
        ] {
            assert_eq!(
                problems(image(repo, tag)),
                Vec::<String>::new(),
                "{repo:?} {tag:?}"
            );
        }
        for (repo, tag, expect) in [
            (
                Some("ghcr.io/Multus"),
                None,
                "spec.image.repository: path component \"Multus\"",
            ),
            (
                Some("ghcr.io/multus:v1"),
                None,
                "contains a tag; put it in spec.image.tag",
            ),
            (Some("a b"), None, "contains whitespace"),
            (Some("r@sha256:00"), None, "contains a digest"),
            (
                None,
                Some("-bad"),
                "spec.image.tag: \"-bad\" is neither a tag",
            ),
            (None, Some("sha256:xyz"), "is neither a tag"),
        ] {
            let found = problems(image(repo, tag));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].contains(expect), "{found:?} lacks {expect}");
        }
        let secrets = MultusConfigSpec {
            image: Some(ImageSpec {
                pull_secrets: Some(vec!["ok".into(), "Not_OK".into()]),
                ..ImageSpec::default()
            }),
            ..MultusConfigSpec::default()
        };
        assert_eq!(
            problems(secrets),
            [
                "spec.image.pullSecrets[1]: \"Not_OK\" is not a valid Secret name (lowercase DNS subdomain)"
            ]
        );
    }

    #[test]
    fn max_unavailable_must_let_the_rollout_move() {
        let with = |v: IntOrString| MultusConfigSpec {
            update_strategy: Some(UpdateStrategy {
                max_unavailable: Some(v),
            }),
            ..MultusConfigSpec::default()
        };
        assert!(problems(with(IntOrString::Int(1))).is_empty());
        assert!(problems(with(IntOrString::String("100%".into()))).is_empty());
        for (v, expect) in [
            (
                IntOrString::Int(0),
                "0 would never let the DaemonSet replace a pod",
            ),
            (IntOrString::String("0%".into()), "0% is outside 1%..100%"),
            (IntOrString::String("150%".into()), "150% is outside"),
            (
                IntOrString::String("ten".into()),
                "\"ten\" is neither a node count",
            ),
        ] {
            let found = problems(with(v));
            assert_eq!(found.len(), 1);
            assert!(found[0].starts_with("spec.updateStrategy.maxUnavailable: "));
            assert!(found[0].contains(expect), "{found:?}");
        }
    }

    #[test]
    fn host_paths_must_be_clean_distinct_and_clear_of_the_pods_mounts() {
        let cases: Vec<(MultusConfigSpec, &str)> = vec![
            (
                MultusConfigSpec {
                    cni_conf_dir: Some("/etc/cni/../x".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.cniConfDir: \"/etc/cni/../x\" must be an absolute path",
            ),
            (
                MultusConfigSpec {
                    cni_bin_dir: Some("/".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.cniBinDir: the host's root directory cannot be used",
            ),
            (
                MultusConfigSpec {
                    cache_dir: Some("/etc/cni/net.d".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.cacheDir: \"/etc/cni/net.d\" is also spec.cniConfDir",
            ),
            (
                MultusConfigSpec {
                    cache_dir: Some("/var".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.cacheDir: \"/var\" would be mounted into the agent over its own /var/run/secrets",
            ),
            (
                MultusConfigSpec {
                    readiness_indicator_file: Some("/etc/multus/ready".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.readinessIndicatorFile: \"/etc/multus\" would be mounted",
            ),
            (
                MultusConfigSpec {
                    readiness_indicator_file: Some("/ready".into()),
                    ..MultusConfigSpec::default()
                },
                "must name a file inside a directory other than `/`",
            ),
            (
                MultusConfigSpec {
                    log_file: Some("/var/log/".into()),
                    ..MultusConfigSpec::default()
                },
                "spec.logFile: \"/var/log/\" must name a file",
            ),
            (
                MultusConfigSpec {
                    cache_dir: Some("/run/multus".into()),
                    ..MultusConfigSpec::default()
                },
                "reserved for the plugin's runtime files",
            ),
        ];
        for (spec, expect) in cases {
            let found = problems(spec);
            assert!(
                found.iter().any(|f| f.contains(expect)),
                "{found:?} lacks {expect}"
            );
        }
    }

    #[test]
    fn conflicting_network_fields_are_named() {
        let spec = MultusConfigSpec {
            primary_config_file: Some("10-calico.conflist".into()),
            cluster_network: Some("k8s-pod-network".into()),
            default_networks: Some(vec![
                "a".into(),
                "a".into(),
                "k8s-pod-network".into(),
                " ".into(),
            ]),
            ..MultusConfigSpec::default()
        };
        let found = problems(spec);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("spec.clusterNetwork: both clusterNetwork"));
        assert_eq!(found[1], "spec.defaultNetworks[1]: \"a\" is listed twice");
        assert!(found[2].contains("is the clusterNetwork"));
        assert_eq!(found[3], "spec.defaultNetworks[3]: must not be empty");
        // `auto` does not pin anything, so it goes with clusterNetwork.
        let ok = MultusConfigSpec {
            primary_config_file: Some("auto".into()),
            cluster_network: Some("k8s-pod-network".into()),
            ..MultusConfigSpec::default()
        };
        assert!(problems(ok).is_empty());
    }

    #[test]
    fn names_and_labels_are_kubernetes_names() {
        let spec = MultusConfigSpec {
            priority_class_name: Some("Not Valid".into()),
            placement: Some(Placement {
                node_selector: Some(BTreeMap::from([
                    ("example.com/pool".into(), "a".into()),
                    ("bad key!".into(), "ok".into()),
                    ("ok".into(), "bad value!".into()),
                ])),
                ..Placement::default()
            }),
            global_namespaces: Some(vec!["default".into(), "Bad".into()]),
            multus_namespace: Some("kube_system".into()),
            ..MultusConfigSpec::default()
        };
        let found = problems(spec);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("spec.priorityClassName"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("spec.placement.nodeSelector[\"bad key!\"]"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("\"bad value!\" is not a valid label value"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("spec.globalNamespaces[1]"))
        );
        assert!(found.iter().any(|f| f.starts_with("spec.multusNamespace")));
        let long = MultusConfig::new(&"a".repeat(64), MultusConfigSpec::default());
        assert_eq!(validate(&long).len(), 1);
        assert!(is_label_key("kubernetes.io/os") && !is_label_key("/x"));
        assert!(is_dns_subdomain("a.b-c") && !is_dns_subdomain("a..b"));
    }
}
