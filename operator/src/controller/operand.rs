//! The kinds of objects the controller creates for a MultusConfig, in one
//! table: [`Kind`] names them, [`Operand`] says what the controller needs
//! to know about each one (its API, which version of a live object tells
//! that it changed, whether the agent pods mount it) and [`Kind::visit`]
//! turns a kind into its type. Caching ([`OperandStores`]), watching
//! ([`super::watch`]), applying and deleting ([`super::apply`]) and
//! pruning ([`super::prune`]) are written once, generically, over this
//! table.
//!
//! Adding a kind (a Service, say) happens here: a variant of [`Kind`], its
//! place in [`Kind::ALL`], its arm in [`Kind::visit`] (the compiler
//! insists) and `impl Operand for Service`; then the object itself in
//! `super::render::Children`. Nothing else names the kinds one by one.

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Kinds of objects the controller creates. The order is the deletion
/// order of one MultusConfig's objects (the agents' DaemonSet first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// v1 ConfigMap.
    ConfigMap,
    /// v1 ServiceAccount.
    ServiceAccount,
    /// rbac/v1 ClusterRoleBinding.
    ClusterRoleBinding,
    /// rbac/v1 Role.
    Role,
    /// rbac/v1 RoleBinding.
    RoleBinding,
}

/// Something done with the type of a [`Kind`] (see [`Kind::visit`]).
pub trait KindVisitor {
    /// What it produces.
    type Output;
    /// Does it for operand type `K`.
    fn visit<K: Operand>(self) -> Self::Output;
}

impl Kind {
    /// Every kind, in deletion order.
    pub const ALL: &'static [Self] = &[
        Self::DaemonSet,
        Self::ConfigMap,
        Self::ServiceAccount,
        Self::ClusterRoleBinding,
        Self::Role,
        Self::RoleBinding,
    ];

    /// Calls `visitor` with this kind's type.
    pub fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
        match self {
            Self::DaemonSet => visitor.visit::<DaemonSet>(),
            Self::ConfigMap => visitor.visit::<ConfigMap>(),
            Self::ServiceAccount => visitor.visit::<ServiceAccount>(),
            Self::ClusterRoleBinding => visitor.visit::<ClusterRoleBinding>(),
            Self::Role => visitor.visit::<Role>(),
            Self::RoleBinding => visitor.visit::<RoleBinding>(),
        }
    }

    /// The Kubernetes `kind`.
    pub fn name(self) -> Cow<'static, str> {
        struct Name;
        impl KindVisitor for Name {
            type Output = Cow<'static, str>;
            fn visit<K: Operand>(self) -> Self::Output {
                K::kind(&())
            }
        }
        self.visit(Name)
    }

    /// The kind whose Kubernetes `kind` is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether the agent pods mount objects of this kind (see
    /// [`Operand::MOUNTED_BY_AGENTS`]).
    pub fn mounted_by_agents(self) -> bool {
        struct Mounted;
        impl KindVisitor for Mounted {
            type Output = bool;
            fn visit<K: Operand>(self) -> bool {
                K::MOUNTED_BY_AGENTS
            }
        }
        self.visit(Mounted)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// An object type the controller creates.
pub trait Operand:
    Resource<DynamicType = (), Scope: ApiScope>
    + Clone
    + fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its entry in the table.
    const KIND: Kind;

    /// Whether the agent pods mount it: then an object the current spec no
    /// longer renders stays until the DaemonSet's rollout is complete,
    /// because pods of the previous template still mount it.
    const MOUNTED_BY_AGENTS: bool = false;

    /// Its API: in `namespace` for namespaced kinds, cluster-wide otherwise.
    fn api(client: Client, namespace: &str) -> Api<Self> {
        <Self::Scope as ApiScope>::api(client, namespace)
    }

    /// The version of a live object that changes when the object needs
    /// another look (`"absent"` for no object): its resourceVersion.
    fn live_version(meta: Option<&ObjectMeta>) -> String {
        meta.and_then(|m| m.resource_version.clone())
            .unwrap_or_else(|| ABSENT.to_owned())
    }
}

/// The version of an object that does not exist.
const ABSENT: &str = "absent";

/// Whether a kind is namespaced, as the way to build its [`Api`].
pub trait ApiScope {
    /// The API of `K`: in `namespace` if namespaced, cluster-wide otherwise.
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(client: Client, namespace: &str) -> Api<K>;
}

impl ApiScope for NamespaceResourceScope {
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(client: Client, namespace: &str) -> Api<K> {
        Api::namespaced(client, namespace)
    }
}

impl ApiScope for ClusterResourceScope {
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: Client,
        _namespace: &str,
    ) -> Api<K> {
        Api::all(client)
    }
}

impl Operand for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;

    /// Its generation: its status changes all the time, its generation
    /// only with its spec.
    fn live_version(meta: Option<&ObjectMeta>) -> String {
        meta.and_then(|m| m.generation)
            .map_or_else(|| ABSENT.to_owned(), |g| g.to_string())
    }
}

impl Operand for ConfigMap {
    const KIND: Kind = Kind::ConfigMap;
    /// The agent settings.
    const MOUNTED_BY_AGENTS: bool = true;
}

impl Operand for ServiceAccount {
    const KIND: Kind = Kind::ServiceAccount;
}

impl Operand for ClusterRoleBinding {
    const KIND: Kind = Kind::ClusterRoleBinding;
}

impl Operand for Role {
    const KIND: Kind = Kind::Role;
}

impl Operand for RoleBinding {
    const KIND: Kind = Kind::RoleBinding;
}

/// One object, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid (a delete precondition).
    pub uid: Option<String>,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl ObjectKey {
    /// The key of an object's metadata.
    pub fn of(kind: Kind, meta: &ObjectMeta) -> Self {
        Self {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
        }
    }

    /// Whether both name the same object (whatever their uids).
    pub fn same_object(&self, other: &Self) -> bool {
        self.kind == other.kind && self.namespace == other.namespace && self.name == other.name
    }
}

/// The cache of every operand kind: a `Store<K>` per [`Kind`], read with
/// [`OperandStores::of`].
#[derive(Clone)]
pub struct OperandStores(BTreeMap<Kind, Arc<dyn Any + Send + Sync>>);

/// The write handles of [`OperandStores`]: a `Writer<K>` per [`Kind`].
pub struct OperandWriters(BTreeMap<Kind, Box<dyn Any + Send>>);

/// Why a cache is always there: [`OperandWriters::new`] makes one per
/// kind of the table, keyed by the kind its type names.
const EVERY_KIND_IS_CACHED: &str = "OperandWriters::new caches every kind of the table";

impl OperandWriters {
    /// An empty cache per kind.
    pub fn new() -> Self {
        struct Empty;
        impl KindVisitor for Empty {
            type Output = (Kind, Box<dyn Any + Send>);
            fn visit<K: Operand>(self) -> Self::Output {
                (K::KIND, Box::new(Writer::<K>::default()))
            }
        }
        Self(Kind::ALL.iter().map(|kind| kind.visit(Empty)).collect())
    }

    /// The write handle of `K`'s cache.
    pub fn of<K: Operand>(&mut self) -> &mut Writer<K> {
        self.0
            .get_mut(&K::KIND)
            .and_then(|w| w.downcast_mut())
            .expect(EVERY_KIND_IS_CACHED)
    }

    /// The read handles.
    pub fn readers(&self) -> OperandStores {
        struct Reader<'a>(&'a OperandWriters);
        impl KindVisitor for Reader<'_> {
            type Output = (Kind, Arc<dyn Any + Send + Sync>);
            fn visit<K: Operand>(self) -> Self::Output {
                let writer: &Writer<K> = self
                    .0
                    .0
                    .get(&K::KIND)
                    .and_then(|w| w.downcast_ref())
                    .expect(EVERY_KIND_IS_CACHED);
                (K::KIND, Arc::new(writer.as_reader()))
            }
        }
        OperandStores(
            Kind::ALL
                .iter()
                .map(|kind| kind.visit(Reader(self)))
                .collect(),
        )
    }
}

impl Default for OperandWriters {
    fn default() -> Self {
        Self::new()
    }
}

impl OperandStores {
    /// The cache of `K`.
    pub fn of<K: Operand>(&self) -> &Store<K> {
        self.0
            .get(&K::KIND)
            .and_then(|s| s.downcast_ref())
            .expect(EVERY_KIND_IS_CACHED)
    }

    /// How many objects each cache holds.
    pub fn sizes(&self) -> BTreeMap<Kind, usize> {
        struct Size<'a>(&'a OperandStores);
        impl KindVisitor for Size<'_> {
            type Output = usize;
            fn visit<K: Operand>(self) -> usize {
                self.0.of::<K>().len()
            }
        }
        Kind::ALL
            .iter()
            .map(|&kind| (kind, kind.visit(Size(self))))
            .collect()
    }
}

impl fmt::Debug for OperandStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sizes()).finish()
    }
}

impl fmt::Debug for OperandWriters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OperandWriters").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct KindOf;
    impl KindVisitor for KindOf {
        type Output = Kind;
        fn visit<K: Operand>(self) -> Kind {
            K::KIND
        }
    }

    #[test]
    fn the_table_is_consistent() {
        for &kind in Kind::ALL {
            assert_eq!(kind.visit(KindOf), kind, "{kind}");
            assert_eq!(Kind::from_name(&kind.name()), Some(kind));
        }
        let mut sorted = Kind::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Kind::ALL, "ALL is in deletion order");
        assert_eq!(Kind::ClusterRoleBinding.to_string(), "ClusterRoleBinding");
        assert_eq!(Kind::from_name("Pod"), None);
    }

    #[test]
    fn every_kind_has_a_cache() {
        let mut writers = OperandWriters::new();
        let stores = writers.readers();
        let sizes = stores.sizes();
        assert_eq!(sizes.keys().copied().collect::<Vec<_>>(), Kind::ALL);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.namespace = Some("ns".into());
        writers
            .of::<ConfigMap>()
            .apply_watcher_event(&kube::runtime::watcher::Event::Apply(cm));
        assert_eq!(stores.of::<ConfigMap>().len(), 1);
        assert!(stores.of::<DaemonSet>().is_empty());
    }

    #[test]
    fn per_kind_rules() {
        let meta = ObjectMeta {
            resource_version: Some("7".into()),
            generation: Some(3),
            ..ObjectMeta::default()
        };
        assert_eq!(DaemonSet::live_version(Some(&meta)), "3");
        assert_eq!(ConfigMap::live_version(Some(&meta)), "7");
        assert_eq!(DaemonSet::live_version(None), "absent");
        assert_eq!(Role::live_version(None), "absent");
        let mounted: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.mounted_by_agents())
            .collect();
        assert_eq!(mounted, [Kind::ConfigMap]);
    }
}
