//! [`Children`]: the operands of one MultusConfig, and what is done
//! with each of them in apply order ([`ChildVisitor`]).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controller::operand::{Kind, Operand};

/// The operands of one MultusConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// The agents' identity.
    pub service_account: ServiceAccount,
    /// Grants the agents the chart's agent role.
    pub cluster_role_binding: ClusterRoleBinding,
    /// The plugin's identity on the hosts (tokens requested by the agents).
    pub plugin_service_account: ServiceAccount,
    /// Grants the plugin the chart's plugin role (and the agents too, for
    /// the fallback in which the plugin uses the agent's own token).
    pub plugin_cluster_role_binding: ClusterRoleBinding,
    /// Lets the agents request tokens for the plugin's ServiceAccount only.
    pub agent_role: Role,
    /// Binds [`Children::agent_role`] to the agents' ServiceAccount.
    pub agent_role_binding: RoleBinding,
    /// The agent settings (`agent.yaml`), immutable, named by hash.
    pub config_map: ConfigMap,
    /// The node agents.
    pub daemon_set: DaemonSet,
    /// SHA-256 of `agent.yaml` (also on the pod template).
    pub config_hash: String,
}

/// Something done with each object of [`Children`] (see
/// [`Children::visit`]).
pub trait ChildVisitor<'a> {
    /// Does it for one object.
    fn child<K: Operand>(&mut self, object: &'a K);
}

impl Children {
    /// Calls `visitor` with every object, in apply order: the identities
    /// and their rights, the settings, the DaemonSet last (so its pods
    /// start with everything they need in place).
    pub fn visit<'a>(&'a self, visitor: &mut impl ChildVisitor<'a>) {
        visitor.child(&self.service_account);
        visitor.child(&self.cluster_role_binding);
        visitor.child(&self.plugin_service_account);
        visitor.child(&self.plugin_cluster_role_binding);
        visitor.child(&self.agent_role);
        visitor.child(&self.agent_role_binding);
        visitor.child(&self.config_map);
        visitor.child(&self.daemon_set);
    }

    /// Kind and metadata of every object, in apply order.
    pub fn metas(&self) -> Vec<(Kind, &ObjectMeta)> {
        struct Metas<'a>(Vec<(Kind, &'a ObjectMeta)>);
        impl<'a> ChildVisitor<'a> for Metas<'a> {
            fn child<K: Operand>(&mut self, object: &'a K) {
                self.0.push((K::KIND, object.meta()));
            }
        }
        let mut metas = Metas(Vec::new());
        self.visit(&mut metas);
        metas.0
    }

    /// Every object as JSON, in apply order.
    pub fn documents(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        struct Documents(Result<Vec<serde_json::Value>, serde_json::Error>);
        impl ChildVisitor<'_> for Documents {
            fn child<K: Operand>(&mut self, object: &K) {
                if let Ok(docs) = &mut self.0 {
                    match serde_json::to_value(object) {
                        Ok(doc) => docs.push(doc),
                        Err(e) => self.0 = Err(e),
                    }
                }
            }
        }
        let mut documents = Documents(Ok(Vec::new()));
        self.visit(&mut documents);
        documents.0
    }

    /// All objects as one multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        struct Yaml(Result<String, serde_yaml::Error>);
        impl ChildVisitor<'_> for Yaml {
            fn child<K: Operand>(&mut self, object: &K) {
                if let Ok(out) = &mut self.0 {
                    match serde_yaml::to_string(object) {
                        Ok(doc) => {
                            out.push_str("---\n");
                            out.push_str(&doc);
                        }
                        Err(e) => self.0 = Err(e),
                    }
                }
            }
        }
        let mut yaml = Yaml(Ok(String::new()));
        self.visit(&mut yaml);
        yaml.0
    }
}
