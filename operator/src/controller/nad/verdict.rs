//! The verdict on one NAD: its `spec.config` checked the way the plugin
//! reads it, against the reporting nodes' plugins and Multus conf dirs and
//! the resources they advertise.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kube::ResourceExt;
use multus_config::cni::netconf::NetworkConfig;
use multus_config::cni::version::DEFAULT_NAD_VERSION;
use multus_config::npwg::device_info::nad_resource_name;
use multus_config::npwg::nad::{NetworkAttachmentDefinition, resolve_nad_config};

use super::inventory::Inventory;
use super::reasons::{
    REASON_CONFIG_FILE_MISSING, REASON_INVALID_CONFIG, REASON_PLUGIN_MISSING,
    REASON_RESOURCE_NOT_ADVERTISED,
};
use super::resources::unadvertised;

/// The outcome of validating one NAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Usable on every reporting node.
    Valid {
        /// The plugin binaries it needs.
        plugins: Vec<String>,
        /// How many nodes reported their plugins.
        nodes: usize,
    },
    /// `spec.config` is empty and a config named `network` is in the
    /// Multus conf dir of every reporting node.
    FileReference {
        /// The CNI network name looked up (the NAD's name).
        network: String,
        /// How many nodes reported.
        nodes: usize,
    },
    /// `spec.config` is not a usable CNI config.
    InvalidConfig(String),
    /// Plugins missing on some nodes: plugin → nodes.
    PluginMissing(BTreeMap<String, Arc<[String]>>),
    /// `spec.config` is empty and no config named `network` is in the
    /// Multus conf dir of `nodes`.
    ConfigFileMissing {
        /// The CNI network name looked up (the NAD's name).
        network: String,
        /// The reporting nodes without it.
        nodes: Arc<[String]>,
    },
    /// Otherwise valid, but no node advertises the resource its
    /// `k8s.v1.cni.cncf.io/resourceName` names.
    ResourceNotAdvertised {
        /// The resource name.
        resource: String,
    },
}

impl Verdict {
    /// Whether the verdict counts as invalid.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::InvalidConfig(_)
                | Self::PluginMissing(_)
                | Self::ConfigFileMissing { .. }
                | Self::ResourceNotAdvertised { .. }
        )
    }

    /// The Event reason of an invalid verdict.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::InvalidConfig(_) => Some(REASON_INVALID_CONFIG),
            Self::PluginMissing(_) => Some(REASON_PLUGIN_MISSING),
            Self::ConfigFileMissing { .. } => Some(REASON_CONFIG_FILE_MISSING),
            Self::ResourceNotAdvertised { .. } => Some(REASON_RESOURCE_NOT_ADVERTISED),
            _ => None,
        }
    }

    /// Whether the problem affects any of `nodes` (an invalid config, and
    /// a resource no node advertises, affect every node).
    pub fn affects(&self, nodes: &BTreeSet<String>) -> bool {
        self.affects_memo(nodes, &mut HashMap::new())
    }

    /// [`Verdict::affects`], remembering the answer per shared node list
    /// (NADs missing the same plugin share one list).
    pub(super) fn affects_memo(
        &self,
        nodes: &BTreeSet<String>,
        memo: &mut HashMap<usize, bool>,
    ) -> bool {
        let mut shared = |lacking: &Arc<[String]>| {
            // The list's address identifies it while the verdict holds it.
            let id = Arc::as_ptr(lacking).cast::<String>() as usize;
            *memo
                .entry(id)
                .or_insert_with(|| lacking.iter().any(|n| nodes.contains(n)))
        };
        match self {
            Self::InvalidConfig(_) | Self::ResourceNotAdvertised { .. } => true,
            Self::PluginMissing(missing) => missing.values().any(shared),
            Self::ConfigFileMissing { nodes: lacking, .. } => shared(lacking),
            _ => false,
        }
    }
}

/// Validates the NAD `namespace/name` with `spec.config` against the
/// plugins the nodes report; an empty `spec.config` against the networks
/// of their Multus conf dirs.
pub fn validate(
    namespace: &str,
    name: &str,
    config: Option<&str>,
    inventory: &Inventory,
) -> Verdict {
    if config.is_none_or(|c| c.trim().is_empty()) {
        let lacking = inventory.lacking_network(name);
        return if lacking.is_empty() {
            Verdict::FileReference {
                network: name.to_owned(),
                nodes: inventory.len(),
            }
        } else {
            Verdict::ConfigFileMissing {
                network: name.to_owned(),
                nodes: lacking,
            }
        };
    }
    let resolved = match resolve_nad_config(namespace, name, config, &[], DEFAULT_NAD_VERSION) {
        Ok(resolved) => resolved,
        Err(e) => return Verdict::InvalidConfig(e.to_string()),
    };
    let parsed = match NetworkConfig::from_value(resolved.value) {
        Ok(parsed) => parsed,
        Err(e) => return Verdict::InvalidConfig(e.to_string()),
    };
    if let Err(e) = parsed.cni_version() {
        return Verdict::InvalidConfig(format!("cniVersion: {e}"));
    }
    let mut plugins: Vec<String> = Vec::new();
    for plugin in parsed.plugins() {
        for binary in [Some(plugin.plugin_type.as_str()), plugin.ipam_type()]
            .into_iter()
            .flatten()
            .filter(|b| !b.is_empty())
        {
            if !plugins.iter().any(|p| p == binary) {
                plugins.push(binary.to_owned());
            }
        }
    }
    let mut missing: BTreeMap<String, Arc<[String]>> = BTreeMap::new();
    for plugin in &plugins {
        let lacking = inventory.lacking(plugin);
        if !lacking.is_empty() {
            missing.insert(plugin.clone(), lacking);
        }
    }
    if missing.is_empty() {
        Verdict::Valid {
            plugins,
            nodes: inventory.len(),
        }
    } else {
        Verdict::PluginMissing(missing)
    }
}

/// Validates `nad` ([`validate`]); a NAD valid so far whose resource no
/// node advertises ([`unadvertised`]) is `ResourceNotAdvertised`.
pub fn validate_nad(nad: &NetworkAttachmentDefinition, inventory: &Inventory) -> Verdict {
    let verdict = validate(
        nad.namespace().as_deref().unwrap_or_default(),
        &nad.name_any(),
        nad.spec.config.as_deref(),
        inventory,
    );
    if verdict.is_invalid() {
        return verdict;
    }
    match unadvertised(
        nad_resource_name(nad),
        inventory.advertised().map(AsRef::as_ref),
    ) {
        Some(resource) => Verdict::ResourceNotAdvertised {
            resource: resource.to_owned(),
        },
        None => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::nad::events::event_for;
    use crate::controller::nad::resources::advertised_by;
    use crate::controller::nad::resources::tests::node_with;
    use k8s_openapi::api::core::v1::Node;

    fn inv(nodes: &[(&str, &[&str])]) -> Inventory {
        Inventory::from(
            nodes
                .iter()
                .map(|(n, ps)| {
                    (
                        (*n).to_owned(),
                        ps.iter().map(|p| (*p).to_owned()).collect(),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn check_config(config: &str, inventory: &Inventory) -> Verdict {
        validate("ns1", "net", Some(config), inventory)
    }

    #[test]
    fn config_problems_are_invalid_config() {
        let none = Inventory::new();
        let cases = [
            ("{not json", "is not valid JSON"),
            ("[1]", "must be a JSON object"),
            (r#"{"name":"x"}"#, "neither a `type` nor a `plugins` list"),
            (
                r#"{"plugins":[{"type":"a"},{}]}"#,
                "`plugins[1]` has no `type`",
            ),
            (r#"{"cniVersion":"9.9.9","type":"bridge"}"#, "cniVersion: "),
        ];
        for (config, expect) in cases {
            match check_config(config, &none) {
                Verdict::InvalidConfig(why) => assert!(why.contains(expect), "{config}: {why}"),
                other => panic!("{config}: {other:?}"),
            }
        }
    }

    fn networks(nodes: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        nodes
            .iter()
            .map(|(n, ns)| {
                (
                    (*n).to_owned(),
                    ns.iter().map(|x| (*x).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn empty_config_is_looked_up_in_the_reported_multus_conf_dirs() {
        // No node reports yet: nothing to compare against, no false warning.
        let file_ref = |nodes| Verdict::FileReference {
            network: "n".into(),
            nodes,
        };
        assert_eq!(validate("ns", "n", None, &Inventory::new()), file_ref(0));
        assert_eq!(
            validate("ns", "n", Some("  "), &Inventory::new()),
            file_ref(0)
        );
        assert!(!file_ref(0).is_invalid());

        // n1 and n2 report plugins (n3 has not reported: not counted);
        // only n1 has the config named "n".
        let inventory = inv(&[("n1", &["bridge"]), ("n2", &["bridge"])])
            .with_conf_networks(networks(&[("n1", &["n", "other"]), ("n3", &["x"])]));
        let missing = validate("ns", "n", None, &inventory);
        match &missing {
            Verdict::ConfigFileMissing { network, nodes } => {
                assert_eq!(network, "n");
                assert_eq!(nodes[..], ["n2"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(missing.is_invalid());
        assert_eq!(missing.reason(), Some("ConfigFileMissing"));
        assert!(missing.affects(&["n2".to_owned()].into()));
        assert!(!missing.affects(&["n1".to_owned()].into()));
        // Present everywhere that reports: valid.
        let everywhere = inv(&[("n1", &["bridge"]), ("n2", &["bridge"])])
            .with_conf_networks(networks(&[("n1", &["n"]), ("n2", &["n"])]));
        assert_eq!(validate("ns", "n", None, &everywhere), file_ref(2));
        assert_eq!(everywhere.clone(), everywhere);
        assert_ne!(everywhere, inventory);

        let e = event_for(None, &missing).unwrap();
        assert!(e.warning);
        assert_eq!(e.reason, "ConfigFileMissing");
        assert!(e.note.contains("no CNI config named \"n\""), "{}", e.note);
        assert!(e.note.contains("multusConfDir) of n2."), "{}", e.note);
        let fixed = event_for(Some(&missing), &file_ref(2)).unwrap();
        assert!(!fixed.warning);
        assert_eq!(fixed.reason, "ConfigValid");
        assert!(
            fixed.note.contains("all 2 reporting nodes"),
            "{}",
            fixed.note
        );
        assert_eq!(event_for(None, &file_ref(2)), None);
    }

    #[test]
    fn plugins_and_ipam_are_looked_up_on_every_reporting_node() {
        let inventory = inv(&[
            ("n1", &["macvlan", "host-local", "tuning"]),
            ("n2", &["macvlan"]),
            ("n3", &["bridge"]),
        ]);
        let conflist = r#"{"cniVersion":"1.0.0","plugins":[
            {"type":"macvlan","ipam":{"type":"host-local"}},{"type":"tuning"}]}"#;
        match check_config(conflist, &inventory) {
            Verdict::PluginMissing(missing) => {
                assert_eq!(missing["macvlan"][..], ["n3"]);
                assert_eq!(missing["host-local"][..], ["n2", "n3"]);
                assert_eq!(missing["tuning"][..], ["n2", "n3"]);
            }
            other => panic!("{other:?}"),
        }
        let ok = check_config(r#"{"type":"macvlan"}"#, &inv(&[("n1", &["macvlan"])]));
        assert_eq!(
            ok,
            Verdict::Valid {
                plugins: vec!["macvlan".into()],
                nodes: 1
            }
        );
        // No node reports plugins yet: nothing to compare against.
        assert!(matches!(
            check_config(conflist, &Inventory::new()),
            Verdict::Valid { nodes: 0, .. }
        ));
    }

    fn nad_with(resource: Option<&str>) -> NetworkAttachmentDefinition {
        let mut nad = NetworkAttachmentDefinition::new(
            "sriov",
            multus_config::npwg::NetworkAttachmentDefinitionSpec {
                config: Some(r#"{"cniVersion":"1.0.0","type":"sriov"}"#.to_owned()),
            },
        );
        nad.metadata.namespace = Some("ns".to_owned());
        if let Some(r) = resource {
            nad.metadata.annotations = Some(BTreeMap::from([(
                "k8s.v1.cni.cncf.io/resourceName".to_owned(),
                r.to_owned(),
            )]));
        }
        nad
    }

    #[test]
    fn resource_not_advertised_only_when_no_node_allocates_it() {
        const R: &str = "intel.com/sriov";
        let advertised = |nodes: &[Node]| -> Arc<BTreeSet<String>> {
            Arc::new(nodes.iter().flat_map(advertised_by).collect())
        };
        let on_one = advertised(&[
            node_with("n1", &[(R, "4")], &[(R, "4")]),
            node_with("n2", &[], &[("cpu", "2")]),
        ]);
        // Capacity only: the device plugin stopped, allocatable went to 0.
        let capacity_only = advertised(&[node_with("n1", &[(R, "4")], &[(R, "0")])]);
        let none = Arc::new(BTreeSet::new());
        let cases = [
            (Some(R), Some(&on_one), None::<&str>),
            (Some(R), Some(&capacity_only), Some(R)),
            (Some(R), Some(&none), Some(R)),
            // Nodes not listed yet: no false warning.
            (Some(R), None, None),
            (None, Some(&none), None),
            (None, None, None),
        ];
        for (resource, adv, expect) in cases {
            assert_eq!(
                unadvertised(resource, adv.map(AsRef::as_ref)),
                expect,
                "{resource:?} {adv:?}"
            );
        }

        let plugins = inv(&[("n1", &["sriov"])]);
        let verdict = validate_nad(
            &nad_with(Some(R)),
            &plugins.clone().with_advertised(Some(capacity_only)),
        );
        assert_eq!(
            verdict,
            Verdict::ResourceNotAdvertised {
                resource: R.to_owned()
            }
        );
        assert!(verdict.is_invalid());
        assert_eq!(verdict.reason(), Some("ResourceNotAdvertised"));
        assert!(verdict.affects(&["n1".to_owned()].into()));
        let e = event_for(None, &verdict).unwrap();
        assert!(e.warning);
        assert_eq!(e.reason, "ResourceNotAdvertised");
        assert!(
            e.note.starts_with(
                "no node advertises intel.com/sriov in its allocatable resources: pods \
                 attaching this network fail ADD until its device plugin runs"
            ),
            "{}",
            e.note
        );
        let ok = validate_nad(
            &nad_with(Some(R)),
            &plugins.clone().with_advertised(Some(on_one)),
        );
        assert!(matches!(ok, Verdict::Valid { .. }), "{ok:?}");
        assert_eq!(
            event_for(Some(&verdict), &ok).unwrap().reason,
            "ConfigValid"
        );
        assert!(matches!(
            validate_nad(
                &nad_with(None),
                &plugins.clone().with_advertised(Some(none.clone()))
            ),
            Verdict::Valid { .. }
        ));
        assert!(matches!(
            validate_nad(&nad_with(Some(R)), &plugins),
            Verdict::Valid { .. }
        ));
        // A config problem comes first.
        assert!(matches!(
            validate_nad(
                &nad_with(Some(R)),
                &inv(&[("n1", &["bridge"])]).with_advertised(Some(none))
            ),
            Verdict::PluginMissing(_)
        ));
    }
}
