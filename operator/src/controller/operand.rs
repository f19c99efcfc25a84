//! The kinds of objects the controller creates for a MultusConfig, in one
//! table: [`Kind`] names them, [`Operand`] says how to reach each one (its
//! API and its cache), and [`Kind::visit`] turns a kind into its type, so
//! that caching, watching, applying, pruning and deleting are written once,
//! generically, instead of once per kind.
//!
//! Adding a kind: a variant of [`Kind`] (and [`Kind::ALL`]), its arm in
//! [`Kind::visit`] (the compiler insists), an [`Operand`] impl, and its
//! cache in [`Stores`]/[`StoreWriters`].

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{StoreWriters, Stores};

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
    pub const ALL: [Self; 6] = [
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
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// An object type the controller creates, with where it lives.
pub trait Operand:
    Resource<DynamicType = ()>
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

    /// Its API: in `namespace` for namespaced kinds, cluster-wide otherwise.
    fn api(client: Client, namespace: &str) -> Api<Self>;

    /// Its cache.
    fn store(stores: &Stores) -> &Store<Self>;

    /// Its cache's write handle.
    fn writer(writers: &mut StoreWriters) -> &mut Writer<Self>;
}

fn namespaced<K>(client: Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client, namespace)
}

fn cluster<K>(client: Client, _namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope>,
    K::DynamicType: Default,
{
    Api::all(client)
}

/// `impl Operand` for a type named like its [`Kind`] variant, cached in
/// the `Stores`/`StoreWriters` field `$field`, reached through `$api`
/// ([`namespaced`] or [`cluster`]).
macro_rules! operand {
    ($type:ident, $field:ident, $api:ident) => {
        impl Operand for $type {
            const KIND: Kind = Kind::$type;

            fn api(client: Client, namespace: &str) -> Api<Self> {
                $api(client, namespace)
            }

            fn store(stores: &Stores) -> &Store<Self> {
                &stores.$field
            }

            fn writer(writers: &mut StoreWriters) -> &mut Writer<Self> {
                &mut writers.$field
            }
        }
    };
}

operand!(DaemonSet, daemon_sets, namespaced);
operand!(ConfigMap, config_maps, namespaced);
operand!(ServiceAccount, service_accounts, namespaced);
operand!(ClusterRoleBinding, bindings, cluster);
operand!(Role, roles, namespaced);
operand!(RoleBinding, role_bindings, namespaced);

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
        for kind in Kind::ALL {
            assert_eq!(kind.visit(KindOf), kind, "{kind}");
            assert_eq!(Kind::from_name(&kind.name()), Some(kind));
        }
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL, "ALL is in deletion order");
        assert_eq!(Kind::ClusterRoleBinding.to_string(), "ClusterRoleBinding");
        assert_eq!(Kind::from_name("Pod"), None);
    }
}
