//! The operand objects of one MultusConfig, as pure functions: the node
//! agent's ServiceAccount and the ClusterRoleBinding that grants it the
//! chart's `multus-node-agent` ClusterRole; the plugin's ServiceAccount and
//! the ClusterRoleBinding that grants it the chart's `multus-plugin`
//! ClusterRole; the agent's Role and RoleBinding allowing it to request the
//! plugin's tokens; the ConfigMap with the agent's settings and the
//! node-agent DaemonSet.
//!
//! Every object carries the common labels ([`common_labels`]) and a
//! controller owner reference to the MultusConfig. The ConfigMap is
//! immutable and named after the hash of its contents: the agents reload
//! their `--config` file when it changes, so editing one ConfigMap in place
//! would reconfigure every node at once; a new ConfigMap per spec makes the
//! DaemonSet's rolling update (`maxUnavailable`) pace the change instead.
//!
//! Where things are:
//! - `metadata`: the operands' names, labels, annotations and owner
//!   reference;
//! - `identities`: the agents' and the plugin's ServiceAccounts and their
//!   RBAC bindings;
//! - `agent_settings`: the agent settings file and its ConfigMap;
//! - `daemon_set`: the node-agent DaemonSet and its pod, made of the
//!   `container` (command line, environment, probes, resources), the
//!   `volumes` (host directories, settings, token) and the `placement`
//!   (nodes, tolerations, node-pool exclusions), with the `image`;
//! - `uninstall`: the uninstall DaemonSet derived from the live one;
//! - `children`: [`Children`], the rendered operands, and how to visit
//!   them.

mod agent_settings;
mod children;
mod container;
mod daemon_set;
mod identities;
mod image;
mod metadata;
mod placement;
mod uninstall;
mod volumes;

#[cfg(test)]
pub(crate) mod fixtures;

use multus_config::crd::MultusConfig;

pub use agent_settings::{AGENT_CONFIG_KEY, agent_settings_yaml, kubeconfig_host_path};
pub use children::{ChildVisitor, Children};
pub use container::{AGENT_COMMAND, AGENT_CONTAINER, AGENT_PORT, agent_args, default_resources};
pub use image::ImageRef;
pub use metadata::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_RENDERED_HASH, COMPONENT_VALUE, LABEL_COMPONENT,
    LABEL_CONFIG, LABEL_MANAGED_BY, LABEL_MODE, LABEL_NAME, MANAGED_BY_VALUE, MODE_INSTALL,
    MODE_UNINSTALL, NAME_VALUE, agent_name, common_labels, config_map_name, config_selector,
    owner_reference, plugin_name, selector_labels,
};
pub use placement::{affinity_excluding, default_tolerations};
pub use uninstall::{is_uninstall_mode, uninstall_daemon_set};
pub use volumes::{
    CONFIG_MOUNT_DIR, CONTAINER_BIN_DIR, CONTAINER_CONF_DIR, CONTAINER_MULTUS_CONF_DIR,
    RESERVED_CONTAINER_PATHS, RUN_MULTUS_DIR, TOKEN_EXPIRATION_SECONDS, TOKEN_MOUNT_DIR,
    delegate_socket_mount_dir, indicator_mount_dir, is_within,
};

use agent_settings::agent_settings_config_map;
use daemon_set::agent_daemon_set;
use identities::{
    agent_cluster_role_binding, agent_token_role, agent_token_role_binding,
    plugin_cluster_role_binding, service_account,
};
use metadata::Owner;

/// What rendering needs besides the MultusConfig (operator settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperandSettings {
    /// Namespace of the namespaced operands (the operator's namespace).
    pub namespace: String,
    /// Image used where the spec sets none (`--agent-image`).
    pub default_image: ImageRef,
    /// The chart's ClusterRole the agents are bound to.
    pub agent_cluster_role: String,
    /// The chart's ClusterRole the plugin's ServiceAccount is bound to.
    pub plugin_cluster_role: String,
}

/// Why a MultusConfig could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The object lacks `metadata.name` or `metadata.uid`.
    #[error("the MultusConfig has no {0}")]
    Incomplete(&'static str),
    /// The agent settings could not be written as YAML.
    #[error("cannot write the agent settings as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// An object could not be serialised for hashing.
    #[error("cannot serialise the DaemonSet spec: {0}")]
    Json(#[from] serde_json::Error),
}

/// Renders the operands of `config`, whose DaemonSet skips the nodes in
/// `excluded` (claimed by an older MultusConfig). The spec must have
/// passed [`super::validate::validate`].
pub fn render(
    config: &MultusConfig,
    settings: &OperandSettings,
    excluded: &[String],
) -> Result<Children, RenderError> {
    let owner = Owner::of(config, &settings.namespace)?;
    let spec = &config.spec;
    let (config_map, config_hash) = agent_settings_config_map(&owner, spec)?;
    let daemon_set = agent_daemon_set(
        &owner,
        spec,
        &settings.default_image,
        &config_hash,
        excluded,
    )?;
    Ok(Children {
        service_account: service_account(&owner, agent_name(owner.config)),
        cluster_role_binding: agent_cluster_role_binding(&owner, &settings.agent_cluster_role),
        plugin_service_account: service_account(&owner, plugin_name(owner.config)),
        plugin_cluster_role_binding: plugin_cluster_role_binding(
            &owner,
            &settings.plugin_cluster_role,
        ),
        agent_role: agent_token_role(&owner),
        agent_role_binding: agent_token_role_binding(&owner),
        config_map,
        daemon_set,
        config_hash,
    })
}
