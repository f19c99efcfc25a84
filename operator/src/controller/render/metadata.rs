//! The operands' metadata: their names, the labels and annotations we
//! put on them, and the controller owner reference to their MultusConfig
//! ([`Owner`]).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use multus_config::crd::MultusConfig;

use super::RenderError;

/// `app.kubernetes.io/name` of every object we create.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Value of [`LABEL_NAME`].
pub const NAME_VALUE: &str = "multus";
/// `app.kubernetes.io/component` of every object we create.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of [`LABEL_COMPONENT`].
pub const COMPONENT_VALUE: &str = "node-agent";
/// `app.kubernetes.io/managed-by` of every object we create.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "multus-operator";
/// The MultusConfig an object belongs to.
pub const LABEL_CONFIG: &str = "multus.dev/config";
/// What the agent pods do: [`MODE_INSTALL`] or [`MODE_UNINSTALL`].
pub const LABEL_MODE: &str = "multus.dev/mode";
/// Agent pods that install Multus and keep it current.
pub const MODE_INSTALL: &str = "install";
/// Agent pods that remove what the agents installed.
pub const MODE_UNINSTALL: &str = "uninstall";
/// Pod-template annotation: SHA-256 of the agent settings file.
pub const ANNOTATION_CONFIG_HASH: &str = "multus.dev/config-hash";
/// DaemonSet annotation: SHA-256 of the rendered DaemonSet spec.
pub const ANNOTATION_RENDERED_HASH: &str = "multus.dev/rendered-hash";

/// Name of the agents' ServiceAccount, ClusterRoleBinding, Role,
/// RoleBinding and DaemonSet of a MultusConfig.
pub fn agent_name(config: &str) -> String {
    format!("multus-agent-{config}")
}

/// Name of the plugin's ServiceAccount and ClusterRoleBinding of a
/// MultusConfig.
pub fn plugin_name(config: &str) -> String {
    format!("multus-plugin-{config}")
}

/// Name of the ConfigMap holding settings with hash `config_hash`.
pub fn config_map_name(config: &str, config_hash: &str) -> String {
    let short = config_hash.get(..10).unwrap_or(config_hash);
    format!("multus-agent-{config}-{short}")
}

/// The labels on every object of a MultusConfig (and the DaemonSet's
/// selector, plus [`LABEL_MANAGED_BY`]).
pub fn common_labels(config: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(config);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    labels
}

/// The DaemonSet's (immutable) selector.
pub fn selector_labels(config: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), NAME_VALUE.to_owned()),
        (LABEL_COMPONENT.to_owned(), COMPONENT_VALUE.to_owned()),
        (LABEL_CONFIG.to_owned(), config.to_owned()),
    ])
}

/// Label selector (text form) of every object of a MultusConfig.
pub fn config_selector(config: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_CONFIG}={config}")
}

/// The controller owner reference to a MultusConfig.
pub fn owner_reference(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: MultusConfig::api_version(&()).into_owned(),
        kind: MultusConfig::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The MultusConfig whose operands are rendered: what every operand's
/// labels and owner reference name, and the namespace of the namespaced
/// ones.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner<'a> {
    /// The MultusConfig's name.
    pub(super) config: &'a str,
    /// The MultusConfig's uid.
    pub(super) uid: &'a str,
    /// Namespace of the namespaced operands.
    pub(super) namespace: &'a str,
}

impl<'a> Owner<'a> {
    /// The owner of `config`'s operands in `namespace`; the MultusConfig
    /// must have a name and a uid.
    pub(super) fn of(config: &'a MultusConfig, namespace: &'a str) -> Result<Self, RenderError> {
        let name = config
            .metadata
            .name
            .as_deref()
            .ok_or(RenderError::Incomplete("metadata.name"))?;
        let uid = config
            .metadata
            .uid
            .as_deref()
            .ok_or(RenderError::Incomplete("metadata.uid"))?;
        Ok(Self {
            config: name,
            uid,
            namespace,
        })
    }

    /// Metadata of the namespaced operand `name`.
    pub(super) fn namespaced(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(self.namespace.to_owned()),
            ..self.cluster_scoped(name)
        }
    }

    /// Metadata of the cluster-scoped operand `name`.
    pub(super) fn cluster_scoped(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            labels: Some(common_labels(self.config)),
            owner_references: Some(vec![owner_reference(self.config, self.uid)]),
            ..ObjectMeta::default()
        }
    }

    /// The ServiceAccount `name` of the operands' namespace as an RBAC
    /// subject.
    pub(super) fn subject(&self, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(self.namespace.to_owned()),
            api_group: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::controller::render::fixtures::{config, settings};
    use crate::controller::render::{
        LABEL_CONFIG, LABEL_MANAGED_BY, LABEL_NAME, config_map_name, render,
    };
    use multus_config::crd::MultusConfigSpec;

    #[test]
    fn every_object_is_labelled_and_owned() {
        let children = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let metas = children.metas();
        assert_eq!(metas.len(), 8);
        for (_, meta) in metas {
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels[LABEL_NAME], "multus");
            assert_eq!(labels[LABEL_MANAGED_BY], "multus-operator");
            assert_eq!(labels[LABEL_CONFIG], "pool-a");
            let owner = &meta.owner_references.as_ref().unwrap()[0];
            assert_eq!(owner.uid, "uid-1");
            assert_eq!(owner.kind, "MultusConfig");
            assert_eq!(owner.controller, Some(true));
        }
        assert_eq!(children.cluster_role_binding.metadata.namespace, None);
        assert_eq!(
            children.plugin_cluster_role_binding.metadata.namespace,
            None
        );
        assert_eq!(
            children.config_map.metadata.name.as_deref(),
            Some(config_map_name("pool-a", &children.config_hash).as_str())
        );
    }
}
