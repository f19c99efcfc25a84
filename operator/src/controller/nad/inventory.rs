//! The plugin binaries and Multus conf dir networks the node agents report
//! in their MultusNodeStates, and which nodes lack each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use multus_config::crd::MultusNodeState;

/// Plugin binaries per node, from the nodes that report any, and the CNI
/// networks of those nodes' Multus conf dirs, with caches of which nodes
/// lack a plugin or a network: those lists are shared by every NAD that
/// uses the plugin (or network) instead of being copied into each verdict
/// (10,000 NADs over 1,000 nodes would otherwise hold millions of node
/// names).
#[derive(Debug, Default)]
pub struct Inventory {
    nodes: BTreeMap<String, BTreeSet<String>>,
    conf_networks: BTreeMap<String, BTreeSet<String>>,
    lacking: Mutex<HashMap<String, Arc<[String]>>>,
    lacking_networks: Mutex<HashMap<String, Arc<[String]>>>,
    /// The resources some node advertises with an allocatable quantity
    /// above 0; `None` until the node watch has listed every node.
    advertised: Option<Arc<BTreeSet<String>>>,
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
            && self.conf_networks == other.conf_networks
            && self.advertised == other.advertised
    }
}

impl Eq for Inventory {}

impl Clone for Inventory {
    fn clone(&self) -> Self {
        Self::from(self.nodes.clone())
            .with_conf_networks(self.conf_networks.clone())
            .with_advertised(self.advertised.clone())
    }
}

impl From<BTreeMap<String, BTreeSet<String>>> for Inventory {
    /// The inventory of nodes reporting these plugins and an empty Multus
    /// conf dir.
    fn from(nodes: BTreeMap<String, BTreeSet<String>>) -> Self {
        Self {
            nodes,
            conf_networks: BTreeMap::new(),
            lacking: Mutex::new(HashMap::new()),
            lacking_networks: Mutex::new(HashMap::new()),
            advertised: None,
        }
    }
}

/// The sorted nodes of `nodes` whose set in `have` lacks `item`, cached.
fn lacking_cached(
    cache: &Mutex<HashMap<String, Arc<[String]>>>,
    nodes: &BTreeMap<String, BTreeSet<String>>,
    have: &BTreeMap<String, BTreeSet<String>>,
    item: &str,
) -> Arc<[String]> {
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = cache.get(item) {
        return found.clone();
    }
    let list: Arc<[String]> = nodes
        .keys()
        .filter(|node| !have.get(*node).is_some_and(|set| set.contains(item)))
        .cloned()
        .collect();
    cache.insert(item.to_owned(), list.clone());
    list
}

impl Inventory {
    /// An inventory with no reporting node.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many nodes report their plugins.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node reports its plugins.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The plugins of each reporting node.
    pub fn nodes(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.nodes
    }

    /// The reporting nodes without `plugin`, sorted.
    pub fn lacking(&self, plugin: &str) -> Arc<[String]> {
        lacking_cached(&self.lacking, &self.nodes, &self.nodes, plugin)
    }

    /// Sets the CNI networks of each node's Multus conf dir (only those of
    /// reporting nodes count).
    pub fn with_conf_networks(mut self, networks: BTreeMap<String, BTreeSet<String>>) -> Self {
        self.conf_networks = networks;
        self.lacking_networks = Mutex::new(HashMap::new());
        self
    }

    /// The CNI networks of the Multus conf dir of each node that reports any.
    pub fn conf_networks(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.conf_networks
    }

    /// The reporting nodes without a config named `network` in their
    /// Multus conf dir, sorted.
    pub fn lacking_network(&self, network: &str) -> Arc<[String]> {
        lacking_cached(
            &self.lacking_networks,
            &self.nodes,
            &self.conf_networks,
            network,
        )
    }

    /// Sets the resources some node advertises (`None`: the nodes are not
    /// listed yet, so no resource is checked).
    pub fn with_advertised(mut self, advertised: Option<Arc<BTreeSet<String>>>) -> Self {
        self.advertised = advertised;
        self
    }

    /// The resources some node advertises with an allocatable quantity
    /// above 0, once every node is listed.
    pub fn advertised(&self) -> Option<&Arc<BTreeSet<String>>> {
        self.advertised.as_ref()
    }
}

/// The plugin and Multus conf dir inventory of the reporting nodes (those
/// whose agent reported its plugins: a node that has not reported yet is
/// not compared against).
pub fn inventory<'a>(states: impl IntoIterator<Item = &'a MultusNodeState>) -> Inventory {
    let mut plugins = BTreeMap::new();
    let mut networks = BTreeMap::new();
    for s in states {
        let Some(status) = s.status.as_ref() else {
            continue;
        };
        if status.cni_plugins.is_empty() {
            continue;
        }
        let node = s
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| s.spec.node_name.clone());
        if !status.multus_conf_networks.is_empty() {
            networks.insert(
                node.clone(),
                status.multus_conf_networks.iter().cloned().collect(),
            );
        }
        plugins.insert(node, status.cni_plugins.iter().cloned().collect());
    }
    Inventory::from(plugins).with_conf_networks(networks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::crd::{MultusNodeStateSpec, MultusNodeStateStatus};

    #[test]
    fn inventory_skips_nodes_that_report_nothing() {
        let mut a = MultusNodeState::new(
            "n1",
            MultusNodeStateSpec {
                node_name: "n1".into(),
                multus_config: None,
            },
        );
        let b = MultusNodeState::new(
            "n2",
            MultusNodeStateSpec {
                node_name: "n2".into(),
                multus_config: None,
            },
        );
        let mut c = MultusNodeState::new(
            "n3",
            MultusNodeStateSpec {
                node_name: "n3".into(),
                multus_config: None,
            },
        );
        // Networks without plugins: not a reporting node.
        c.status = Some(MultusNodeStateStatus {
            multus_conf_networks: vec!["x".into()],
            ..MultusNodeStateStatus::default()
        });
        a.status = Some(MultusNodeStateStatus {
            cni_plugins: vec!["bridge".into()],
            multus_conf_networks: vec!["macvlan-conf".into()],
            ..MultusNodeStateStatus::default()
        });
        let i = inventory([&a, &b, &c]);
        assert_eq!(i.len(), 1);
        assert!(i.nodes()["n1"].contains("bridge"));
        assert_eq!(i.conf_networks().len(), 1);
        assert!(i.conf_networks()["n1"].contains("macvlan-conf"));
        assert!(i.lacking_network("macvlan-conf").is_empty());
        assert_eq!(i.lacking_network("x")[..], ["n1"]);
    }
}
