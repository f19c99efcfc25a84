//! The watches that fill the reconciler's caches ([`Stores`]) and decide
//! what triggers a reconcile of every MultusConfig:
//! - nodes (metadata only, every node): a change of a node's labels;
//! - nodes (full objects, for `status.allocatable`): only the resource
//!   names nodes advertise, handed to NAD validation;
//! - MultusNodeStates (every one): a change of what the agent reports
//!   ([`node_state_digest`], plugins and conf-dir networks), which also
//!   refreshes the NAD validator's [`Inventory`];
//! - each operand kind of the table ([`super::operand`]): our objects only
//!   (label `app.kubernetes.io/managed-by=multus-operator`), in the
//!   operator's namespace for namespaced kinds; any new resourceVersion.
//!
//! Each also triggers once its first list is complete and when an object
//! goes.
//!
//! Why not `Controller::owns()`/`watches()`: they would watch the same
//! objects a second time, into caches the reconciler cannot read (sharing
//! one reflector needs kube's `unstable-runtime-subscribe` feature), and
//! only once this replica leads, whereas these caches are filled (and
//! waited for) by every replica before it asks for the leader Lease. They
//! would also reconcile only the owner of a changed object, where a change
//! here reconciles every MultusConfig (through `reconcile_all_on`, the
//! same path NAD validation uses), and without the digest filter; nodes
//! and MultusNodeStates have no owner reference to map from anyway.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::{Writer, WriterDropped};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use multus_config::crd::MultusNodeState;
use tokio::sync::{mpsc, watch};

use super::context::{StoreWriters, Stores};
use super::nad::{self, Inventory};
use super::operand::{Kind, KindVisitor, Operand};
use super::render::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// A cache whose watch stopped before its first list was complete.
#[derive(Debug, thiserror::Error)]
#[error("the {what} cache stopped before it was filled")]
pub struct CacheStopped {
    /// Which cache.
    what: String,
    /// Its watch is gone.
    #[source]
    source: WriterDropped,
}

/// The running watches: the caches they fill and what they send.
#[derive(Debug)]
pub struct Watches {
    /// The caches (but the MultusConfigs', which the controller fills).
    pub stores: Stores,
    /// Reconcile every MultusConfig; a full channel already holds a
    /// pending trigger (NAD validation sends here too).
    pub trigger: mpsc::Sender<()>,
    /// Where the triggers arrive.
    pub triggers: mpsc::Receiver<()>,
    /// What the nodes report and advertise, for NAD validation.
    pub inventory: watch::Receiver<Arc<Inventory>>,
}

/// Where the watches send what they see.
struct Sinks<'a> {
    trigger: &'a mpsc::Sender<()>,
    inventory: &'a Arc<watch::Sender<Arc<Inventory>>>,
}

/// Starts every watch (see the module doc); `namespace` is the operands'.
pub fn start(client: &Client, namespace: &str) -> Watches {
    let (stores, mut writers) = Stores::detached();
    let (trigger, triggers) = mpsc::channel::<()>(1);
    let (inventory_tx, inventory) = watch::channel(Arc::new(Inventory::new()));
    let sinks = Sinks {
        trigger: &trigger,
        inventory: &Arc::new(inventory_tx),
    };
    watch_node_labels(client, &mut writers, &sinks);
    watch_advertised_resources(client, &sinks);
    watch_node_states(client, &mut writers, &stores, &sinks);
    for kind in Kind::ALL {
        kind.visit(WatchOperand {
            client,
            namespace,
            writers: &mut writers,
            trigger: &trigger,
        });
    }
    Watches {
        stores,
        trigger,
        triggers,
        inventory,
    }
}

/// Waits until every cache of `stores` but the MultusConfigs' (the
/// controller's own) holds its first list.
pub async fn filled(stores: &Stores) -> Result<(), CacheStopped> {
    wait_ready(&stores.nodes, "node").await?;
    wait_ready(&stores.node_states, "MultusNodeState").await?;
    for kind in Kind::ALL {
        kind.visit(WaitOperand { stores }).await?;
    }
    Ok(())
}

/// Node metadata, for node selection: a reconcile when labels change.
fn watch_node_labels(client: &Client, writers: &mut StoreWriters, sinks: &Sinks<'_>) {
    let nodes = watcher(
        Api::<PartialObjectMeta<Node>>::all(client.clone()),
        watcher::Config::default(),
    );
    tokio::spawn(mirror(
        nodes,
        std::mem::take(&mut writers.nodes),
        |n| format!("{:?}", n.metadata.labels),
        sinks.trigger.clone(),
        || {},
        "nodes",
    ));
}

/// The resources nodes advertise, for the NADs' resourceName: a second
/// Node watch (full objects, as allocatable is in the status) keeping only
/// each node's resource names.
fn watch_advertised_resources(client: &Client, sinks: &Sinks<'_>) {
    let inventory = sinks.inventory.clone();
    tokio::spawn(nad::follow_advertised(
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
        move |advertised| {
            inventory.send_if_modified(|inv| {
                if inv.advertised() == Some(&advertised) {
                    return false;
                }
                *inv = Arc::new(Inventory::clone(inv).with_advertised(Some(advertised)));
                true
            });
        },
    ));
}

/// The agents' MultusNodeStates: a reconcile when a report changes, and a
/// new inventory for NAD validation.
fn watch_node_states(
    client: &Client,
    writers: &mut StoreWriters,
    stores: &Stores,
    sinks: &Sinks<'_>,
) {
    let states = stores.node_states.clone();
    let inventory = sinks.inventory.clone();
    tokio::spawn(mirror(
        watcher(
            Api::<MultusNodeState>::all(client.clone()),
            watcher::Config::default(),
        ),
        std::mem::take(&mut writers.node_states),
        |s: &MultusNodeState| {
            let (plugins, networks) = s
                .status
                .as_ref()
                .map(|st| (st.cni_plugins.join(","), st.multus_conf_networks.join(",")))
                .unwrap_or_default();
            format!("{}|{plugins}|{networks}", node_state_digest(s))
        },
        sinks.trigger.clone(),
        move || {
            let current = nad::inventory(states.state().iter().map(AsRef::as_ref));
            inventory.send_if_modified(|inv| {
                let current = current.with_advertised(inv.advertised().cloned());
                let changed = **inv != current;
                if changed {
                    *inv = Arc::new(current.clone());
                }
                changed
            });
        },
        "MultusNodeStates",
    ));
}

/// The reconcile-relevant fields of a MultusNodeState, for change
/// detection.
pub fn node_state_digest(state: &MultusNodeState) -> String {
    let status = state.status.clone().unwrap_or_default();
    let summary: BTreeMap<&str, String> = BTreeMap::from([
        (
            "config",
            state.spec.multus_config.clone().unwrap_or_default(),
        ),
        ("ready", status.ready.to_string()),
        ("message", status.message.unwrap_or_default()),
        ("primary", status.primary_network_name.unwrap_or_default()),
        (
            "credential",
            status
                .plugin_credential
                .map(|c| {
                    format!(
                        "{}|{:?}|{:?}",
                        c.source.as_str(),
                        c.expires_at.map(|t| t.0),
                        c.since.map(|t| t.0)
                    )
                })
                .unwrap_or_default(),
        ),
    ]);
    format!("{summary:?}")
}

/// Keeps a cache filled from a watch and sends on `trigger` when an
/// object's `digest` changes (or it appears or goes); `on_change` runs
/// first.
async fn mirror<K, S>(
    stream: S,
    writer: Writer<K>,
    digest: impl Fn(&K) -> String,
    trigger: mpsc::Sender<()>,
    on_change: impl Fn(),
    what: impl std::fmt::Display,
) where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let stream = reflector::reflector(writer, stream).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut digests: HashMap<String, String> = HashMap::new();
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let d = digest(&o);
                digests.insert(key(&o), d.clone()).as_ref() != Some(&d)
            }
            Ok(watcher::Event::Delete(o)) => {
                digests.remove(&key(&o));
                true
            }
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) => false,
            Err(e) => {
                tracing::warn!(error = %e, what = %what, "watch failed; retrying");
                false
            }
        };
        if changed {
            on_change();
            // A full channel already holds a pending trigger.
            let _ = trigger.try_send(());
        }
    }
}

/// Our objects only: the label every operand carries.
fn owned_config() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"))
}

fn resource_version<K: Resource>(o: &K) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

async fn wait_ready<K>(store: &Store<K>, what: &str) -> Result<(), CacheStopped>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .wait_until_ready()
        .await
        .map_err(|source| CacheStopped {
            what: what.to_owned(),
            source,
        })
}

/// Starts the watch that fills an operand kind's cache (our objects only,
/// by label; in the operator's namespace for namespaced kinds) and
/// triggers a reconcile of every MultusConfig when one of them changes.
struct WatchOperand<'a> {
    client: &'a Client,
    namespace: &'a str,
    writers: &'a mut StoreWriters,
    trigger: &'a mpsc::Sender<()>,
}

impl KindVisitor for WatchOperand<'_> {
    type Output = ();

    fn visit<K: Operand>(self) {
        let writer = std::mem::take(self.writers.operand::<K>());
        tokio::spawn(mirror(
            watcher(K::api(self.client.clone(), self.namespace), owned_config()),
            writer,
            resource_version,
            self.trigger.clone(),
            || {},
            K::KIND.name(),
        ));
    }
}

/// Waits until an operand kind's cache is filled.
struct WaitOperand<'a> {
    stores: &'a Stores,
}

impl<'a> KindVisitor for WaitOperand<'a> {
    type Output = BoxFuture<'a, Result<(), CacheStopped>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move { wait_ready(self.stores.operand::<K>(), &K::KIND.name()).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[tokio::test]
    async fn mirror_fills_the_cache_and_triggers_only_on_digest_changes() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.resource_version = Some("1".into());
        let mut changed = cm.clone();
        changed.metadata.resource_version = Some("2".into());
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(cm.clone())),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(cm.clone())),
            Ok(watcher::Event::Apply(changed.clone())),
            Ok(watcher::Event::Delete(changed)),
        ]);
        let writer: Writer<ConfigMap> = Writer::default();
        let store = writer.as_reader();
        let (tx, mut rx) = mpsc::channel(16);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        mirror(
            events,
            writer,
            resource_version,
            tx,
            || {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            "test",
        )
        .await;
        let mut triggers = 0;
        while rx.try_recv().is_ok() {
            triggers += 1;
        }
        // new object, list complete, changed, deleted; the unchanged
        // re-apply triggers nothing.
        assert_eq!(triggers, 4);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert!(store.is_empty());
    }
}
