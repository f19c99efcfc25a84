//! What every reconcile shares: the client, the caches of watched objects,
//! the event recorder, metrics and the little state kept between passes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use multus_config::crd::{MultusConfig, MultusNodeState};

use super::REPORTER;
use super::conditions::{ProgressMark, ServerFeatures};
use super::metrics::Metrics;
use super::nad::NadRegistry;
use super::operand::{Kind, KindVisitor, Operand, OperandStores, OperandWriters};
use super::render::OperandSettings;

/// Operator settings (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What rendering needs.
    pub operands: OperandSettings,
    /// How long a known-present agent ClusterRole is not checked again.
    pub role_check_interval: Duration,
}

/// Read handles of the caches the reconciler uses.
#[derive(Clone)]
pub struct Stores {
    /// Every MultusConfig (node-pool conflicts).
    pub configs: Store<MultusConfig>,
    /// Every node's metadata (labels for node selection).
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Every MultusNodeState.
    pub node_states: Store<MultusNodeState>,
    /// Our objects, a cache per operand kind.
    pub operands: OperandStores,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("configs", &self.configs.len())
            .field("nodes", &self.nodes.len())
            .field("node_states", &self.node_states.len())
            .field("operands", &self.operands)
            .finish()
    }
}

/// The write handles of [`Stores`] for callers that fill the caches
/// themselves (tests, or the watches started by [`super::watch`]).
pub struct StoreWriters {
    /// MultusConfigs.
    pub configs: Writer<MultusConfig>,
    /// Node metadata.
    pub nodes: Writer<PartialObjectMeta<Node>>,
    /// MultusNodeStates.
    pub node_states: Writer<MultusNodeState>,
    /// Our objects, per operand kind.
    pub operands: OperandWriters,
}

impl StoreWriters {
    /// The write handle of operand kind `K`'s cache.
    pub fn operand<K: Operand>(&mut self) -> &mut Writer<K> {
        self.operands.of::<K>()
    }

    /// Puts an operand given as JSON into its cache (its `kind` picks the
    /// cache); for tests and benchmarks that play the API server.
    pub fn put_operand(&mut self, object: serde_json::Value) -> Result<Kind, serde_json::Error> {
        struct Put<'a> {
            writers: &'a mut StoreWriters,
            object: serde_json::Value,
        }
        impl KindVisitor for Put<'_> {
            type Output = Result<(), serde_json::Error>;
            fn visit<K: Operand>(self) -> Self::Output {
                put(
                    self.writers.operand::<K>(),
                    serde_json::from_value::<K>(self.object)?,
                );
                Ok(())
            }
        }
        let kind = object
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .and_then(Kind::from_name)
            .ok_or_else(|| {
                <serde_json::Error as serde::de::Error>::custom("not a kind the controller creates")
            })?;
        kind.visit(Put {
            writers: self,
            object,
        })?;
        Ok(kind)
    }
}

impl fmt::Debug for StoreWriters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreWriters").finish_non_exhaustive()
    }
}

/// Inserts or replaces `obj` in a cache.
pub fn put<K>(writer: &mut Writer<K>, obj: K)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Apply(obj));
}

/// Removes `obj` from a cache.
pub fn remove<K>(writer: &mut Writer<K>, obj: K)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Delete(obj));
}

impl Stores {
    /// Empty caches and their writers.
    pub fn detached() -> (Self, StoreWriters) {
        let writers = StoreWriters {
            configs: Writer::default(),
            nodes: Writer::default(),
            node_states: Writer::default(),
            operands: OperandWriters::new(),
        };
        let stores = Self {
            configs: writers.configs.as_reader(),
            nodes: writers.nodes.as_reader(),
            node_states: writers.node_states.as_reader(),
            operands: writers.operands.readers(),
        };
        (stores, writers)
    }

    /// The cache of operand kind `K`.
    pub fn operand<K: Operand>(&self) -> &Store<K> {
        self.operands.of::<K>()
    }

    /// The DaemonSet `namespace/name`.
    pub fn daemon_set(&self, namespace: &str, name: &str) -> Option<Arc<DaemonSet>> {
        self.operand::<DaemonSet>()
            .get(&ObjectRef::new(name).within(namespace))
    }
}

/// A source of the current time (fixed in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Operator settings.
    pub settings: Settings,
    /// Caches.
    pub stores: Stores,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// NAD validation results.
    pub nads: Arc<NadRegistry>,
    /// The current time.
    pub clock: Clock,
    progress: Mutex<HashMap<String, ProgressMark>>,
    failures: Mutex<HashMap<String, u32>>,
    role_seen: Mutex<Option<Timestamp>>,
    applied: Mutex<HashMap<String, String>>,
    server: Mutex<Option<ServerFeatures>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Context {
    /// A context over `client` and `stores`.
    pub fn new(
        client: Client,
        settings: Settings,
        stores: Stores,
        metrics: Arc<Metrics>,
        nads: Arc<NadRegistry>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTER.to_owned(),
                instance,
            },
        );
        Self {
            client,
            settings,
            stores,
            recorder,
            metrics,
            nads,
            clock: Arc::new(Timestamp::now),
            progress: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            role_seen: Mutex::new(None),
            applied: Mutex::new(HashMap::new()),
            server: Mutex::new(None),
        }
    }

    /// What the API server offers, as last probed (`None` before).
    pub fn server_features(&self) -> Option<ServerFeatures> {
        lock(&self.server).clone()
    }

    /// Records a probe of the API server.
    pub fn set_server_features(&self, features: ServerFeatures) {
        *lock(&self.server) = Some(features);
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The last progress mark of a MultusConfig.
    pub fn progress(&self, config: &str) -> Option<ProgressMark> {
        lock(&self.progress).get(config).cloned()
    }

    /// Stores a progress mark.
    pub fn set_progress(&self, config: &str, mark: ProgressMark) {
        lock(&self.progress).insert(config.to_owned(), mark);
    }

    /// Counts a failure; returns how many in a row.
    pub fn record_failure(&self, config: &str) -> u32 {
        let mut failures = lock(&self.failures);
        let n = failures.entry(config.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Resets the failure count after a successful reconcile.
    pub fn record_success(&self, config: &str) {
        lock(&self.failures).remove(config);
    }

    /// Forgets everything about a deleted MultusConfig.
    pub fn forget(&self, config: &str) {
        lock(&self.progress).remove(config);
        lock(&self.failures).remove(config);
        lock(&self.applied).remove(config);
    }

    /// The digest of the last successful apply of a MultusConfig.
    pub fn applied(&self, config: &str) -> Option<String> {
        lock(&self.applied).get(config).cloned()
    }

    /// Records (or, with `None`, forgets) the last successful apply.
    pub fn set_applied(&self, config: &str, digest: Option<String>) {
        let mut applied = lock(&self.applied);
        match digest {
            Some(d) => applied.insert(config.to_owned(), d),
            None => applied.remove(config),
        };
    }

    /// Whether the agent ClusterRole was seen recently enough to skip the
    /// check.
    pub fn role_recently_seen(&self, now: Timestamp) -> bool {
        let interval =
            k8s_openapi::jiff::SignedDuration::try_from(self.settings.role_check_interval)
                .unwrap_or(k8s_openapi::jiff::SignedDuration::ZERO);
        lock(&self.role_seen)
            .is_some_and(|seen| seen.checked_add(interval).is_ok_and(|until| until > now))
    }

    /// Records whether the agent ClusterRole exists.
    pub fn set_role_seen(&self, seen: Option<Timestamp>) {
        *lock(&self.role_seen) = seen;
    }
}
