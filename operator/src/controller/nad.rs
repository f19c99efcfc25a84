//! NetworkAttachmentDefinition validation.
//!
//! Each NAD's `spec.config` is checked the way the plugin will read it
//! (the NAD resolver of `multus-config`, then the CNI config parser): JSON,
//! an object, `type` present (or a `plugins` list whose plugins are all
//! typed), a known `cniVersion`. Then every plugin binary it needs (each
//! plugin's `type` and `ipam.type`) is looked up in what the node agents
//! report in `MultusNodeState.status.cniPlugins`. A NAD with an empty
//! `spec.config` refers to the config file in the nodes' Multus conf dir
//! whose CNI `name` is the NAD's name: it is looked up in what the same
//! nodes report in `MultusNodeState.status.multusConfNetworks`. Problems
//! become Warning Events on the NAD (`InvalidConfig`, `PluginMissing` and
//! `ConfigFileMissing` naming the nodes); a NAD that turns valid again gets
//! a Normal `ConfigValid` event. Nodes that have not reported yet (no
//! `cniPlugins`) are not compared against. A NAD otherwise valid whose
//! `k8s.v1.cni.cncf.io/resourceName` no node advertises in
//! `status.allocatable` (quantity above 0) gets `ResourceNotAdvertised`,
//! once the node watch has listed every node.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use multus_config::cni::netconf::NetworkConfig;
use multus_config::cni::version::DEFAULT_NAD_VERSION;
use multus_config::crd::MultusNodeState;
use multus_config::npwg::device_info::nad_resource_name;
use multus_config::npwg::nad::{NetworkAttachmentDefinition, resolve_nad_config};
use multus_config::text::truncate_with_marker;
use tokio::sync::{mpsc, watch};

use super::conditions::{InvalidNad, NAMES_SHOWN, name_list};
use super::metrics::Metrics;

/// Warning: `spec.config` is not a usable CNI config.
pub const REASON_INVALID_CONFIG: &str = "InvalidConfig";
/// Warning: a plugin binary is missing on some nodes.
pub const REASON_PLUGIN_MISSING: &str = "PluginMissing";
/// Warning: `spec.config` is empty and the config file it refers to is
/// missing on some nodes.
pub const REASON_CONFIG_FILE_MISSING: &str = "ConfigFileMissing";
/// Warning: the NAD's `resourceName` is in no node's allocatable resources.
pub const REASON_RESOURCE_NOT_ADVERTISED: &str = "ResourceNotAdvertised";
/// Normal: the NAD is valid again.
pub const REASON_CONFIG_VALID: &str = "ConfigValid";

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

/// Whether a quantity (`"1"`, `"2k"`, `"500m"`, `"1e3"`) is above 0; an
/// unparsable one is not.
pub fn quantity_above_zero(quantity: &Quantity) -> bool {
    let q = quantity.0.trim();
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(q.len());
    q[..end].parse::<f64>().is_ok_and(|n| n > 0.0)
}

/// The resources `node` advertises in `status.allocatable` with a quantity
/// above 0 (not `capacity`: a stopped device plugin leaves its capacity
/// with 0 allocatable).
pub fn advertised_by(node: &Node) -> BTreeSet<String> {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(|alloc| {
            alloc
                .iter()
                .filter(|(_, q)| quantity_above_zero(q))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The resource a NAD names that no node advertises: none without a
/// resource, and none while the nodes are not listed (`advertised` is
/// `None`), so an unfilled cache gives no false warning.
pub fn unadvertised<'a>(
    resource: Option<&'a str>,
    advertised: Option<&BTreeSet<String>>,
) -> Option<&'a str> {
    let resource = resource?;
    (!advertised?.contains(resource)).then_some(resource)
}

/// Follows a Node watch and publishes the union of the resources the nodes
/// advertise ([`advertised_by`]): first when the initial list is complete,
/// then whenever it changes. Only each node's resource names are kept.
pub async fn follow_advertised<S>(stream: S, publish: impl Fn(Arc<BTreeSet<String>>))
where
    S: Stream<Item = Result<watcher::Event<Node>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut nodes: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut relist: Option<HashMap<String, BTreeSet<String>>> = None;
    let mut listed = false;
    let mut last: Option<Arc<BTreeSet<String>>> = None;
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                relist = Some(HashMap::new());
                false
            }
            Ok(watcher::Event::InitApply(node)) => {
                if let Some(r) = relist.as_mut() {
                    r.insert(node.name_any(), advertised_by(&node));
                }
                false
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = relist.take() {
                    nodes = r;
                }
                listed = true;
                true
            }
            Ok(watcher::Event::Apply(node)) => {
                let now = advertised_by(&node);
                nodes.insert(node.name_any(), now.clone()).as_ref() != Some(&now)
            }
            Ok(watcher::Event::Delete(node)) => nodes.remove(&node.name_any()).is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "node watch (allocatable resources) failed; retrying");
                false
            }
        };
        if changed && listed {
            let union: BTreeSet<String> = nodes.values().flatten().cloned().collect();
            if last.as_deref() != Some(&union) {
                let union = Arc::new(union);
                last = Some(union.clone());
                publish(union);
            }
        }
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
    fn affects_memo(&self, nodes: &BTreeSet<String>, memo: &mut HashMap<usize, bool>) -> bool {
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

/// An Event for a NAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NadEvent {
    /// Warning for problems, Normal when valid again.
    pub warning: bool,
    /// Reason.
    pub reason: &'static str,
    /// Human message.
    pub note: String,
}

/// The Event for a NAD whose verdict went from `previous` to `next`:
/// none when nothing changed, and none for a NAD that was never seen
/// invalid.
pub fn event_for(previous: Option<&Verdict>, next: &Verdict) -> Option<NadEvent> {
    if previous == Some(next) {
        return None;
    }
    match next {
        Verdict::InvalidConfig(why) => Some(NadEvent {
            warning: true,
            reason: REASON_INVALID_CONFIG,
            note: format!("{why}. Pods that request this network fail to start; fix spec.config."),
        }),
        Verdict::PluginMissing(missing) => {
            let parts: Vec<String> = missing
                .iter()
                .map(|(plugin, nodes)| {
                    format!("{plugin:?} is missing on {}", name_list(nodes, NAMES_SHOWN))
                })
                .collect();
            Some(NadEvent {
                warning: true,
                reason: REASON_PLUGIN_MISSING,
                note: format!(
                    "CNI plugin {}. Pods on those nodes that request this network fail to start; \
                     install the plugin into the CNI bin dir of those nodes (a plugin kept only \
                     in additionalBinDir is not seen by this check).",
                    parts.join("; ")
                ),
            })
        }
        Verdict::ConfigFileMissing { network, nodes } => Some(NadEvent {
            warning: true,
            reason: REASON_CONFIG_FILE_MISSING,
            note: format!(
                "spec.config is empty, and no CNI config named {network:?} is in the Multus conf \
                 dir (multusConfDir) of {}. Pods on those nodes that request this network fail \
                 to start; add a *.conf, *.conflist or *.json file with \"name\": {network:?} \
                 to the Multus conf dir of those nodes, or set spec.config.",
                name_list(nodes, NAMES_SHOWN)
            ),
        }),
        Verdict::ResourceNotAdvertised { resource } => Some(NadEvent {
            warning: true,
            reason: REASON_RESOURCE_NOT_ADVERTISED,
            note: format!(
                "no node advertises {resource} in its allocatable resources: pods attaching this \
                 network fail ADD until its device plugin runs (see docs/devices.md)."
            ),
        }),
        Verdict::FileReference { network, nodes } if previous.is_some_and(Verdict::is_invalid) => {
            Some(NadEvent {
                warning: false,
                reason: REASON_CONFIG_VALID,
                note: format!(
                    "spec.config is empty and a CNI config named {network:?} is in the Multus \
                     conf dir of all {nodes} reporting nodes."
                ),
            })
        }
        Verdict::Valid { plugins, nodes } if previous.is_some_and(Verdict::is_invalid) => {
            Some(NadEvent {
                warning: false,
                reason: REASON_CONFIG_VALID,
                note: format!(
                    "spec.config is valid and its plugins ({}) are present on all {nodes} \
                     reporting nodes.",
                    plugins.join(", ")
                ),
            })
        }
        _ => None,
    }
}

/// The latest verdict of every NAD (`namespace/name`).
#[derive(Debug, Default)]
pub struct NadRegistry {
    verdicts: Mutex<BTreeMap<String, Verdict>>,
}

impl NadRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Verdict>> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a verdict; returns the previous one.
    pub fn set(&self, key: &str, verdict: Verdict) -> Option<Verdict> {
        self.lock().insert(key.to_owned(), verdict)
    }

    /// Forgets a deleted NAD; returns its last verdict.
    pub fn remove(&self, key: &str) -> Option<Verdict> {
        self.lock().remove(key)
    }

    /// Forgets every NAD not in `keep`; returns whether any was invalid.
    pub fn retain(&self, keep: &HashSet<String>) -> bool {
        let mut verdicts = self.lock();
        let mut dropped_invalid = false;
        verdicts.retain(|k, v| {
            let kept = keep.contains(k);
            dropped_invalid |= !kept && v.is_invalid();
            kept
        });
        dropped_invalid
    }

    /// How many NADs are invalid in total.
    pub fn invalid_count(&self) -> usize {
        self.lock().values().filter(|v| v.is_invalid()).count()
    }

    /// The invalid NADs whose problem affects any of `nodes`.
    pub fn invalid_for(&self, nodes: &BTreeSet<String>) -> Vec<InvalidNad> {
        let mut memo = HashMap::new();
        self.lock()
            .iter()
            .filter(|(_, v)| v.affects_memo(nodes, &mut memo))
            .filter_map(|(k, v)| {
                Some(InvalidNad {
                    key: k.clone(),
                    reason: v.reason()?.to_owned(),
                })
            })
            .collect()
    }
}

/// `namespace/name` of a NAD.
pub fn key_of(nad: &NetworkAttachmentDefinition) -> String {
    format!("{}/{}", nad.namespace().unwrap_or_default(), nad.name_any())
}

/// Validates one NAD, records the verdict and publishes the Event of a
/// change. Returns whether the set of invalid NADs changed.
pub async fn check(
    nad: &NetworkAttachmentDefinition,
    inventory: &Inventory,
    registry: &NadRegistry,
    recorder: &Recorder,
    metrics: &Metrics,
) -> bool {
    let key = key_of(nad);
    let verdict = validate_nad(nad, inventory);
    metrics.nad_validations.inc();
    let previous = registry.set(&key, verdict.clone());
    if let Some(event) = event_for(previous.as_ref(), &verdict) {
        let published = recorder
            .publish(
                &Event {
                    type_: if event.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: event.reason.to_owned(),
                    note: Some(truncate_note(&event.note)),
                    action: "Validate".to_owned(),
                    secondary: None,
                },
                &nad.object_ref(&()),
            )
            .await;
        if let Err(e) = published {
            tracing::warn!(nad = %key, error = %e, "cannot publish an event");
        }
        if event.warning {
            tracing::info!(nad = %key, reason = event.reason, "invalid NetworkAttachmentDefinition");
        }
    }
    previous.as_ref().is_some_and(Verdict::is_invalid) != verdict.is_invalid()
        || (verdict.is_invalid() && previous.as_ref() != Some(&verdict))
}

/// Events notes are limited to 1 kB.
pub fn truncate_note(note: &str) -> String {
    truncate_with_marker(note, 1024, "...")
}

/// Watches every NAD, validating each on change and all of them again when
/// the plugin inventory changes; `changed` gets a message whenever the set
/// of invalid NADs changes (the MultusConfigs then update their counts).
/// Runs until `shutdown` completes.
pub async fn run(
    client: Client,
    recorder: Recorder,
    registry: Arc<NadRegistry>,
    metrics: Arc<Metrics>,
    mut inventory: watch::Receiver<Arc<Inventory>>,
    changed: mpsc::Sender<()>,
    shutdown: impl Future<Output = ()>,
) {
    let api: Api<NetworkAttachmentDefinition> = Api::all(client);
    let (store, writer): (Store<NetworkAttachmentDefinition>, _) = reflector::store();
    let events =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut listed: Option<HashSet<String>> = None;
    let notify = |dirty: bool| {
        if dirty {
            metrics
                .invalid_nads
                .set(i64::try_from(registry.invalid_count()).unwrap_or(i64::MAX));
            // A full channel already holds a pending notification.
            let _ = changed.try_send(());
        }
    };
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = inventory.changed() => {
                if result.is_err() {
                    return;
                }
                let current = inventory.borrow_and_update().clone();
                let mut dirty = false;
                for nad in store.state() {
                    dirty |= check(&nad, &current, &registry, &recorder, &metrics).await;
                }
                notify(dirty);
            }
            event = events.next() => {
                let Some(event) = event else { return };
                let current = inventory.borrow().clone();
                match event {
                    Ok(watcher::Event::Apply(nad)) => {
                        notify(check(&nad, &current, &registry, &recorder, &metrics).await);
                    }
                    Ok(watcher::Event::InitApply(nad)) => {
                        if let Some(seen) = listed.as_mut() {
                            seen.insert(key_of(&nad));
                        }
                        notify(check(&nad, &current, &registry, &recorder, &metrics).await);
                    }
                    Ok(watcher::Event::Delete(nad)) => {
                        let dropped = registry.remove(&key_of(&nad));
                        notify(dropped.as_ref().is_some_and(Verdict::is_invalid));
                    }
                    Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(seen) = listed.take() {
                            notify(registry.retain(&seen));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "NetworkAttachmentDefinition watch failed; retrying"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::crd::{MultusNodeStateSpec, MultusNodeStateStatus};

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

    #[test]
    fn events_only_on_change_and_normal_when_fixed() {
        let bad = Verdict::InvalidConfig("x".into());
        let ok = Verdict::Valid {
            plugins: vec!["bridge".into()],
            nodes: 2,
        };
        assert_eq!(event_for(None, &ok), None);
        let e = event_for(None, &bad).unwrap();
        assert!(e.warning && e.reason == "InvalidConfig");
        assert!(e.note.contains("fix spec.config"));
        assert_eq!(event_for(Some(&bad), &bad), None);
        let fixed = event_for(Some(&bad), &ok).unwrap();
        assert!(!fixed.warning);
        assert_eq!(fixed.reason, "ConfigValid");
        assert!(fixed.note.contains("present on all 2 reporting nodes"));
        let missing = Verdict::PluginMissing(BTreeMap::from([(
            "macvlan".to_owned(),
            Arc::from(vec!["n1".to_owned(), "n2".to_owned()]),
        )]));
        let e = event_for(Some(&ok), &missing).unwrap();
        assert_eq!(e.reason, "PluginMissing");
        assert!(
            e.note
                .starts_with("CNI plugin \"macvlan\" is missing on n1, n2."),
            "{}",
            e.note
        );
    }

    #[test]
    fn registry_counts_per_node_set() {
        let r = NadRegistry::default();
        r.set("a/bad", Verdict::InvalidConfig("x".into()));
        r.set(
            "b/missing",
            Verdict::PluginMissing(BTreeMap::from([(
                "x".to_owned(),
                Arc::from(vec!["n2".to_owned()]),
            )])),
        );
        r.set(
            "c/ok",
            Verdict::Valid {
                plugins: vec![],
                nodes: 1,
            },
        );
        assert_eq!(r.invalid_count(), 2);
        let pool1: BTreeSet<String> = ["n1".to_owned()].into();
        let pool2: BTreeSet<String> = ["n2".to_owned()].into();
        assert_eq!(r.invalid_for(&pool1).len(), 1);
        let both = r.invalid_for(&pool2);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].reason, "PluginMissing");
        assert!(r.retain(&HashSet::from(["c/ok".to_owned(), "b/missing".to_owned()])));
        assert_eq!(r.invalid_count(), 1);
        assert_eq!(r.remove("b/missing").map(|v| v.is_invalid()), Some(true));
    }

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

    fn node_with(name: &str, capacity: &[(&str, &str)], allocatable: &[(&str, &str)]) -> Node {
        let map = |list: &[(&str, &str)]| {
            Some(
                list.iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect(),
            )
        };
        let mut node = Node::default();
        node.metadata.name = Some(name.to_owned());
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            capacity: map(capacity),
            allocatable: map(allocatable),
            ..Default::default()
        });
        node
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
    fn quantities_above_zero() {
        for (q, above) in [
            ("0", false),
            ("1", true),
            ("2k", true),
            ("0k", false),
            ("500m", true),
            ("1e3", true),
            ("-1", false),
            ("", false),
            ("x", false),
        ] {
            assert_eq!(quantity_above_zero(&Quantity(q.to_owned())), above, "{q:?}");
        }
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

    #[tokio::test]
    async fn advertised_resources_follow_the_node_watch() {
        const R: &str = "example.com/nic";
        let with = node_with("n1", &[(R, "2")], &[(R, "2")]);
        let stopped = node_with("n1", &[(R, "2")], &[(R, "0")]);
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(with.clone())),
            Ok(watcher::Event::InitApply(node_with("n2", &[], &[]))),
            Ok(watcher::Event::InitDone),
            // Same resources: nothing published.
            Ok(watcher::Event::Apply(with.clone())),
            Ok(watcher::Event::Apply(stopped)),
            Ok(watcher::Event::Apply(with.clone())),
            Ok(watcher::Event::Delete(with)),
        ]);
        let seen = Mutex::new(Vec::new());
        follow_advertised(events, |a| seen.lock().unwrap().push(a)).await;
        let seen = seen.into_inner().unwrap();
        let sets: Vec<Vec<&str>> = seen
            .iter()
            .map(|s| s.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(sets, [vec![R], vec![], vec![R], vec![]]);
    }

    #[test]
    fn notes_are_bounded() {
        let long = "é".repeat(1000);
        let t = truncate_note(&long);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
