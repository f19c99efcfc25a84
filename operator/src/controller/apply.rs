//! Our objects on the cluster, for every operand kind at once: the
//! server-side apply of a rendering under one field manager (a changed
//! DaemonSet is validated with a dry run first), the digest that lets a
//! reconcile skip an apply that would change nothing, a MultusConfig's
//! objects as the caches hold them, and the deletion of one object with a
//! uid precondition.

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use multus_config::generate::hex_sha256;

use super::context::{Context, Stores};
use super::operand::{Kind, KindVisitor, ObjectKey, Operand};
use super::prune;
use super::render::{self, ANNOTATION_RENDERED_HASH, ChildVisitor, Children};
use super::{Error, FIELD_MANAGER};

/// Server-side apply under our field manager, taking over conflicting
/// fields.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Whether `obj` is ours for the MultusConfig `config` with uid `uid`
/// (see [`prune::is_owned`]).
pub fn owned<K: Resource>(obj: &K, config: &str, uid: &str) -> bool {
    prune::is_owned(obj.meta(), config, uid)
}

/// Versions of the live children, in apply order (see
/// [`Operand::live_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersions(Vec<String>);

/// The versions of the children's live objects in the caches.
pub fn cached_versions(children: &Children, stores: &Stores) -> LiveVersions {
    struct Cached<'s> {
        stores: &'s Stores,
        versions: Vec<String>,
    }
    impl ChildVisitor<'_> for Cached<'_> {
        fn child<K: Operand>(&mut self, object: &K) {
            let live = self.stores.operand::<K>().get(&ObjectRef::from_obj(object));
            self.versions
                .push(K::live_version(live.as_deref().map(Resource::meta)));
        }
    }
    let mut cached = Cached {
        stores,
        versions: Vec::new(),
    };
    children.visit(&mut cached);
    LiveVersions(cached.versions)
}

/// A digest of what was rendered and the live objects it was applied
/// over: while neither changes, applying again would change nothing, so
/// the apply is skipped (a no-op reconcile writes nothing).
pub fn applied_digest(children: &Children, versions: &LiveVersions) -> Result<String, Error> {
    let documents = children.documents().map_err(render::RenderError::from)?;
    let rendered = serde_json::to_vec(&documents).map_err(render::RenderError::from)?;
    Ok(format!(
        "{}|{}",
        hex_sha256(&rendered),
        versions.0.join("|")
    ))
}

/// Server-side apply of one object given as JSON; returns its live
/// version (see [`Operand::live_version`]) as the API server has it.
struct ApplyOne<'a> {
    client: Client,
    namespace: &'a str,
    name: &'a str,
    body: &'a serde_json::Value,
}

impl<'a> KindVisitor for ApplyOne<'a> {
    type Output = BoxFuture<'a, Result<String, kube::Error>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move {
            let applied: K = K::api(self.client, self.namespace)
                .patch(self.name, &apply_params(), &Patch::Apply(self.body))
                .await?;
            Ok(K::live_version(Some(applied.meta())))
        })
    }
}

/// What [`apply_children`] applied.
#[derive(Debug)]
pub struct Applied {
    /// The DaemonSet as the API server has it.
    pub daemon_set: DaemonSet,
    /// The versions of what was applied.
    pub versions: LiveVersions,
}

fn rendered_hash(ds: &DaemonSet) -> Option<&String> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_RENDERED_HASH))
}

/// Applies the children in order. A DaemonSet that differs from the live
/// one `live_ds` is first validated with a server-side dry run, so that a
/// spec the API server rejects changes nothing.
pub async fn apply_children(
    ctx: &Context,
    children: &Children,
    live_ds: Option<&DaemonSet>,
) -> Result<Applied, Error> {
    let ns = ctx.settings.operands.namespace.as_str();
    let client = &ctx.client;
    let params = apply_params();
    let ds_name = children.daemon_set.name_any();
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    if live_ds.and_then(rendered_hash) != rendered_hash(&children.daemon_set) {
        ds_api
            .patch(
                &ds_name,
                &params.clone().dry_run(),
                &Patch::Apply(&children.daemon_set),
            )
            .await
            .map_err(|e| Error::api("validate", format!("DaemonSet {ns}/{ds_name}"), e))?;
    }
    let documents = children.documents().map_err(render::RenderError::from)?;
    let mut versions = Vec::new();
    let mut applied_ds = None;
    for ((kind, meta), body) in children.metas().into_iter().zip(&documents) {
        let key = ObjectKey::of(kind, meta);
        if kind == Kind::DaemonSet {
            // Typed, for its rollout status.
            let ds = ds_api
                .patch(&ds_name, &params, &Patch::Apply(&children.daemon_set))
                .await
                .map_err(|e| Error::api("apply", key.to_string(), e))?;
            versions.push(DaemonSet::live_version(Some(&ds.metadata)));
            applied_ds = Some(ds);
            continue;
        }
        let version = kind
            .visit(ApplyOne {
                client: client.clone(),
                namespace: ns,
                name: &key.name,
                body,
            })
            .await
            .map_err(|e| Error::api("apply", key.to_string(), e))?;
        versions.push(version);
    }
    let daemon_set =
        applied_ds.ok_or(Error::Incomplete("DaemonSet among the rendered operands"))?;
    Ok(Applied {
        daemon_set,
        versions: LiveVersions(versions),
    })
}

/// Our objects of a MultusConfig, from the caches, sorted (deletion order).
pub fn owned_objects(stores: &Stores, config: &str, uid: &str) -> Vec<ObjectKey> {
    struct Owned<'a> {
        stores: &'a Stores,
        config: &'a str,
        uid: &'a str,
    }
    impl KindVisitor for Owned<'_> {
        type Output = Vec<ObjectKey>;
        fn visit<K: Operand>(self) -> Vec<ObjectKey> {
            self.stores
                .operand::<K>()
                .state()
                .iter()
                .filter(|o| owned(o.as_ref(), self.config, self.uid))
                .map(|o| ObjectKey::of(K::KIND, o.meta()))
                .collect()
        }
    }
    let mut keys: Vec<ObjectKey> = Kind::ALL
        .iter()
        .flat_map(|kind| {
            kind.visit(Owned {
                stores,
                config,
                uid,
            })
        })
        .collect();
    keys.sort();
    keys
}

/// Deletes one object of the kind it visits.
struct DeleteOne<'a> {
    client: Client,
    key: &'a ObjectKey,
    params: &'a DeleteParams,
}

impl<'a> KindVisitor for DeleteOne<'a> {
    type Output = BoxFuture<'a, Result<(), kube::Error>>;

    fn visit<K: Operand>(self) -> Self::Output {
        Box::pin(async move {
            let ns = self.key.namespace.as_deref().unwrap_or_default();
            K::api(self.client, ns)
                .delete(&self.key.name, self.params)
                .await
                .map(drop)
        })
    }
}

/// Deletes one object (gone already is fine), only if its uid matches.
pub async fn delete(client: &Client, key: &ObjectKey) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: key.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let result = key
        .kind
        .visit(DeleteOne {
            client: client.clone(),
            key,
            params: &params,
        })
        .await;
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(Error::api("delete", key.to_string(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::context::put;
    use crate::controller::render::fixtures::default_children_of_a;

    #[test]
    fn the_digest_follows_the_rendering_and_the_live_versions() {
        let children = default_children_of_a();
        let (stores, mut writers) = Stores::detached();
        let nothing = cached_versions(&children, &stores);
        assert!(nothing.0.iter().all(|v| v == "absent"), "{nothing:?}");
        let before = applied_digest(&children, &nothing).unwrap();

        let mut live = children.daemon_set.clone();
        live.metadata.generation = Some(4);
        live.metadata.resource_version = Some("99".into());
        put(writers.operand::<DaemonSet>(), live);
        let versions = cached_versions(&children, &stores);
        assert_eq!(versions.0.last().map(String::as_str), Some("4"));
        assert_ne!(applied_digest(&children, &versions).unwrap(), before);
    }
}
