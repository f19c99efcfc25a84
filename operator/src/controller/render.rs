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

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path};

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIProjection, DownwardAPIVolumeFile, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, KeyToPath, LocalObjectReference, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    Probe, ProjectedVolumeSource, ResourceRequirements, SecurityContext, ServiceAccount,
    ServiceAccountTokenProjection, Toleration, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use multus_config::crd::{MultusConfig, MultusConfigSpec};
use multus_config::generate::{GeneratorOptions, hex_sha256};

use super::operand::{Kind, Operand};
use super::rbac::{agent_token_rules, policy_rules};
use crate::agent::args::{self as agent_args, InstallDirs, NodeAgentArgs};

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

/// Where the host's CNI conf dir is mounted in the agent container.
pub const CONTAINER_CONF_DIR: &str = agent_args::DEFAULT_CNI_CONF_DIR;
/// Where the host's CNI bin dir is mounted in the agent container.
pub const CONTAINER_BIN_DIR: &str = agent_args::DEFAULT_CNI_BIN_DIR;
/// Where the host's Multus conf dir (`spec.multusConfDir`) is mounted,
/// read-only, in the agent container: the agent reports the CNI networks of
/// its configs, which NADs without `spec.config` refer to.
pub const CONTAINER_MULTUS_CONF_DIR: &str = agent_args::DEFAULT_MULTUS_CONF_DIR;
/// Where the agent settings ConfigMap is mounted.
pub const CONFIG_MOUNT_DIR: &str = "/etc/multus";
/// Key (file name) of the agent settings in the ConfigMap.
pub const AGENT_CONFIG_KEY: &str = "agent.yaml";
/// Where the projected service-account token is mounted.
pub const TOKEN_MOUNT_DIR: &str = agent_args::DEFAULT_SERVICE_ACCOUNT_DIR;
/// Host directory for the plugin's runtime files, mounted at the same path.
pub const RUN_MULTUS_DIR: &str = "/run/multus";
/// Port of the agent's `/healthz`, `/readyz` and `/metrics` (host network).
pub const AGENT_PORT: u16 = agent_args::DEFAULT_METRICS_PORT;
/// The executable of the image that runs the agent.
pub const AGENT_COMMAND: &str = "multus-operator";
/// Name of the agent container.
pub const AGENT_CONTAINER: &str = "node-agent";
/// Lifetime of the projected token; the agent refreshes the host copy.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Container paths the agent pod uses for its own mounts; host paths from
/// the spec mounted at the same path must stay clear of them.
pub const RESERVED_CONTAINER_PATHS: [&str; 4] = [
    "/host",
    CONFIG_MOUNT_DIR,
    "/var/run/secrets",
    "/run/secrets",
];

/// An image reference split into repository and tag (or `sha256:` digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry and path, e.g. `ghcr.io/multus-rs/multus`.
    pub repository: String,
    /// Tag (`v0.1.0`) or digest (`sha256:...`).
    pub tag: String,
}

impl ImageRef {
    /// The compiled-in default: our repository at this operator's version.
    pub fn builtin() -> Self {
        Self {
            repository: multus_config::crd::multus_config::DEFAULT_IMAGE_REPOSITORY.to_owned(),
            tag: format!("v{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Parses `repo:tag`, `repo@sha256:...` or a bare `repo` (tag
    /// `latest`). `None` for an empty or blank reference.
    pub fn parse(reference: &str) -> Option<Self> {
        let reference = reference.trim();
        if reference.is_empty() {
            return None;
        }
        if let Some((repository, digest)) = reference.split_once('@') {
            return Some(Self {
                repository: repository.to_owned(),
                tag: digest.to_owned(),
            });
        }
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[last_slash..].rfind(':') {
            Some(colon) => {
                let split = last_slash + colon;
                Some(Self {
                    repository: reference[..split].to_owned(),
                    tag: reference[split + 1..].to_owned(),
                })
            }
            None => Some(Self {
                repository: reference.to_owned(),
                tag: "latest".to_owned(),
            }),
        }
    }

    /// The image of a spec: its repository and tag where set, the
    /// defaults' where not.
    pub fn for_spec(spec: &MultusConfigSpec, default: &Self) -> Self {
        let image = spec.image.as_ref();
        Self {
            repository: image
                .and_then(|i| i.repository.clone())
                .unwrap_or_else(|| default.repository.clone()),
            tag: image
                .and_then(|i| i.tag.clone())
                .unwrap_or_else(|| default.tag.clone()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = self.tag.strip_prefix('@').unwrap_or(&self.tag);
        if tag.contains(':') {
            write!(f, "{}@{tag}", self.repository)
        } else {
            write!(f, "{}:{tag}", self.repository)
        }
    }
}

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
struct Owner<'a> {
    /// The MultusConfig's name.
    config: &'a str,
    /// The MultusConfig's uid.
    uid: &'a str,
    /// Namespace of the namespaced operands.
    namespace: &'a str,
}

impl<'a> Owner<'a> {
    /// The owner of `config`'s operands in `namespace`; the MultusConfig
    /// must have a name and a uid.
    fn of(config: &'a MultusConfig, namespace: &'a str) -> Result<Self, RenderError> {
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
    fn namespaced(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(self.namespace.to_owned()),
            ..self.cluster_scoped(name)
        }
    }

    /// Metadata of the cluster-scoped operand `name`.
    fn cluster_scoped(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            labels: Some(common_labels(self.config)),
            owner_references: Some(vec![owner_reference(self.config, self.uid)]),
            ..ObjectMeta::default()
        }
    }

    /// The ServiceAccount `name` of the operands' namespace as an RBAC
    /// subject.
    fn subject(&self, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(self.namespace.to_owned()),
            api_group: None,
        }
    }
}

/// The host path of the plugin's kubeconfig for a spec.
pub fn kubeconfig_host_path(spec: &MultusConfigSpec) -> String {
    format!(
        "{}/multus.d/multus.kubeconfig",
        spec.cni_conf_dir().trim_end_matches('/')
    )
}

/// The agent settings file (`agent.yaml`) for a spec.
pub fn agent_settings_yaml(spec: &MultusConfigSpec) -> Result<String, serde_yaml::Error> {
    let options = GeneratorOptions::from_spec(spec, Some(kubeconfig_host_path(spec)));
    serde_yaml::to_string(&options)
}

/// Whether `path` is `dir` or below it (by path components).
pub fn is_within(path: &str, dir: &str) -> bool {
    let normal = |p: &str| -> Vec<String> {
        Path::new(p)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (path, dir) = (normal(path), normal(dir));
    path.len() >= dir.len() && path[..dir.len()] == dir[..]
}

/// The host directory to mount (at the same path) so the agent sees the
/// readiness indicator file: `None` when there is no indicator or when it
/// is already visible through the conf dir, cache dir or /run/multus
/// mount.
pub fn indicator_mount_dir(spec: &MultusConfigSpec) -> Option<String> {
    let file = spec.readiness_indicator_file.as_deref()?;
    if is_within(file, spec.cni_conf_dir()) {
        return None;
    }
    let parent = Path::new(file).parent()?.to_string_lossy().into_owned();
    if is_within(&parent, spec.cache_dir()) || is_within(&parent, RUN_MULTUS_DIR) {
        return None;
    }
    Some(parent)
}

fn host_path_volume(name: &str, path: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_owned(),
            type_: Some("DirectoryOrCreate".to_owned()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// Resources when the spec sets none: small requests, no limits (the
/// agent must not be OOM-killed in the middle of a node's CNI setup).
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("10m".to_owned())),
            ("memory".to_owned(), Quantity("32Mi".to_owned())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// Tolerations when the spec sets none: every taint, so every node gets
/// Multus (control plane, tainted and not-ready nodes included).
pub fn default_tolerations() -> Vec<Toleration> {
    vec![Toleration {
        operator: Some("Exists".to_owned()),
        ..Toleration::default()
    }]
}

/// The spec's affinity, with the nodes in `excluded` (node-pool
/// conflicts) removed from every required node-selector term through
/// `metadata.name NotIn [node]` field requirements, one per node:
/// Kubernetes allows exactly one value in a `matchFields` `In`/`NotIn`
/// requirement, and the requirements of a term all have to hold. Each
/// excluded node costs about 60 bytes of DaemonSet, so hundreds of
/// conflicting nodes stay far below the object size limit.
pub fn affinity_excluding(affinity: Option<&Affinity>, excluded: &[String]) -> Option<Affinity> {
    if excluded.is_empty() {
        return affinity.cloned();
    }
    let mut names = excluded.to_vec();
    names.sort();
    names.dedup();
    let requirements: Vec<NodeSelectorRequirement> = names
        .into_iter()
        .map(|name| NodeSelectorRequirement {
            key: "metadata.name".to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(vec![name]),
        })
        .collect();
    let mut affinity = affinity.cloned().unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = node_affinity
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields
            .get_or_insert_with(Vec::new)
            .extend(requirements.iter().cloned());
    }
    Some(affinity)
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn token_volume() -> Volume {
    Volume {
        name: "service-account-token".to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".to_owned(),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".to_owned(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".to_owned(),
                            path: "ca.crt".to_owned(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".to_owned(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".to_owned()),
                                field_path: "metadata.namespace".to_owned(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
            default_mode: None,
        }),
        ..Volume::default()
    }
}

/// The agent's command line for the MultusConfig `config`: the mounts of
/// the DaemonSet, its settings file, the metrics port on every address and
/// the plugin's ServiceAccount. Its [`NodeAgentArgs::to_args`] are the
/// container's arguments (after [`AGENT_COMMAND`]). The node name, the
/// MultusConfig's name and the namespace come from the environment.
pub fn agent_args(config: &str, spec: &MultusConfigSpec) -> NodeAgentArgs {
    NodeAgentArgs {
        dirs: InstallDirs {
            cni_conf_dir: CONTAINER_CONF_DIR.into(),
            host_cni_conf_dir: spec.cni_conf_dir().into(),
            cni_bin_dir: CONTAINER_BIN_DIR.into(),
        },
        multus_conf_dir: CONTAINER_MULTUS_CONF_DIR.into(),
        config: Some(Path::new(CONFIG_MOUNT_DIR).join(AGENT_CONFIG_KEY)),
        metrics_address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, AGENT_PORT)),
        plugin_service_account: Some(plugin_name(config)),
        plugin_token_expiration_seconds: spec.plugin_token_expiration_seconds(),
        ..NodeAgentArgs::default()
    }
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

/// A ServiceAccount without automounted tokens (the agents' DaemonSet
/// projects its own; the plugin's tokens are requested by the agents).
fn service_account(owner: &Owner<'_>, name: String) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.namespaced(name),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// A reference to the RBAC role `role` of kind `kind` (`ClusterRole` or
/// `Role`).
fn role_ref(kind: &str, role: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: role.to_owned(),
    }
}

/// Grants the agents the chart's agent ClusterRole `role`.
fn agent_cluster_role_binding(owner: &Owner<'_>, role: &str) -> ClusterRoleBinding {
    let agent = agent_name(owner.config);
    ClusterRoleBinding {
        metadata: owner.cluster_scoped(agent.clone()),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![owner.subject(&agent)]),
    }
}

/// Grants the plugin the chart's plugin ClusterRole `role`. The agents
/// are subjects too: while no plugin token can be had, the agent gives the
/// plugin a copy of its own token (the fallback).
fn plugin_cluster_role_binding(owner: &Owner<'_>, role: &str) -> ClusterRoleBinding {
    let plugin = plugin_name(owner.config);
    ClusterRoleBinding {
        metadata: owner.cluster_scoped(plugin.clone()),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![
            owner.subject(&plugin),
            owner.subject(&agent_name(owner.config)),
        ]),
    }
}

/// Lets the agents request tokens for the plugin's ServiceAccount only.
fn agent_token_role(owner: &Owner<'_>) -> Role {
    Role {
        metadata: owner.namespaced(agent_name(owner.config)),
        rules: Some(policy_rules(&agent_token_rules(&plugin_name(owner.config)))),
    }
}

/// Binds [`agent_token_role`] to the agents' ServiceAccount.
fn agent_token_role_binding(owner: &Owner<'_>) -> RoleBinding {
    let agent = agent_name(owner.config);
    RoleBinding {
        metadata: owner.namespaced(agent.clone()),
        role_ref: role_ref("Role", &agent),
        subjects: Some(vec![owner.subject(&agent)]),
    }
}

/// The ConfigMap holding the agent settings (`agent.yaml`) of `spec`,
/// immutable and named after their SHA-256, which comes with it.
fn agent_settings_config_map(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
) -> Result<(ConfigMap, String), serde_yaml::Error> {
    let settings_yaml = agent_settings_yaml(spec)?;
    let config_hash = hex_sha256(settings_yaml.as_bytes());
    let config_map = ConfigMap {
        metadata: owner.namespaced(config_map_name(owner.config, &config_hash)),
        data: Some(BTreeMap::from([(
            AGENT_CONFIG_KEY.to_owned(),
            settings_yaml,
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    Ok((config_map, config_hash))
}

/// The node-agent DaemonSet: the agent pods of [`agent_pod_template`],
/// replaced `spec.updateStrategy.maxUnavailable` at a time, annotated with
/// the hash of its whole spec.
fn agent_daemon_set(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> Result<DaemonSet, serde_json::Error> {
    let ds_spec = DaemonSetSpec {
        selector: LabelSelector {
            match_labels: Some(selector_labels(owner.config)),
            match_expressions: None,
        },
        update_strategy: Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(spec.max_unavailable()),
                max_surge: Some(IntOrString::Int(0)),
            }),
        }),
        revision_history_limit: Some(5),
        template: agent_pod_template(owner, spec, default_image, config_hash, excluded),
        ..DaemonSetSpec::default()
    };
    let rendered_hash = hex_sha256(&serde_json::to_vec(&ds_spec)?);
    let mut metadata = owner.namespaced(agent_name(owner.config));
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_RENDERED_HASH.to_owned(),
        rendered_hash,
    )]));
    Ok(DaemonSet {
        metadata,
        spec: Some(ds_spec),
        status: None,
    })
}

/// The agent pods in install mode, annotated with the hash of their
/// settings (so a settings change rolls them).
fn agent_pod_template(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> PodTemplateSpec {
    let mut labels = common_labels(owner.config);
    labels.insert(LABEL_MODE.to_owned(), MODE_INSTALL.to_owned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_CONFIG_HASH.to_owned(), config_hash.to_owned()),
                (
                    "kubectl.kubernetes.io/default-container".to_owned(),
                    AGENT_CONTAINER.to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        }),
        spec: Some(agent_pod_spec(
            owner,
            spec,
            default_image,
            config_hash,
            excluded,
        )),
    }
}

/// The agent pod: privileged on the host network, on the nodes of
/// `spec.placement` minus `excluded`, with the host directories and
/// settings of [`agent_volumes`].
fn agent_pod_spec(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> PodSpec {
    let (volumes, mounts) = agent_volumes(spec, config_map_name(owner.config, config_hash));
    let placement = spec.placement.as_ref();
    PodSpec {
        service_account_name: Some(agent_name(owner.config)),
        automount_service_account_token: Some(false),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".to_owned()),
        priority_class_name: Some(spec.priority_class_name().to_owned()),
        node_selector: placement
            .and_then(|p| p.node_selector.clone())
            .filter(|s| !s.is_empty()),
        affinity: affinity_excluding(placement.and_then(|p| p.affinity.as_ref()), excluded)
            .filter(|a| *a != Affinity::default()),
        tolerations: Some(
            placement
                .and_then(|p| p.tolerations.clone())
                .unwrap_or_else(default_tolerations),
        ),
        image_pull_secrets: image_pull_secrets(spec),
        termination_grace_period_seconds: Some(10),
        containers: vec![agent_container(owner.config, spec, default_image, mounts)],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// The spec's image pull secrets, `None` when it lists none.
fn image_pull_secrets(spec: &MultusConfigSpec) -> Option<Vec<LocalObjectReference>> {
    spec.image
        .as_ref()
        .and_then(|i| i.pull_secrets.as_ref())
        .filter(|s| !s.is_empty())
        .map(|secrets| {
            secrets
                .iter()
                .map(|s| LocalObjectReference { name: s.clone() })
                .collect()
        })
}

/// The agent pod's volumes and the agent container's mounts: the host's
/// CNI conf, bin, Multus conf and cache dirs, `/run/multus`, the settings
/// ConfigMap `config_map`, the projected token and, where needed, the
/// readiness indicator's directory ([`indicator_mount_dir`]).
fn agent_volumes(spec: &MultusConfigSpec, config_map: String) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        host_path_volume("cni-conf-dir", spec.cni_conf_dir()),
        host_path_volume("cni-bin-dir", spec.cni_bin_dir()),
        host_path_volume("multus-conf-dir", spec.multus_conf_dir()),
        host_path_volume("cache-dir", spec.cache_dir()),
        host_path_volume("run-multus", RUN_MULTUS_DIR),
        Volume {
            name: "agent-config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map,
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        token_volume(),
    ];
    let mut mounts = vec![
        mount("cni-conf-dir", CONTAINER_CONF_DIR, false),
        mount("cni-bin-dir", CONTAINER_BIN_DIR, false),
        mount("multus-conf-dir", CONTAINER_MULTUS_CONF_DIR, true),
        mount("cache-dir", spec.cache_dir(), false),
        mount("run-multus", RUN_MULTUS_DIR, false),
        mount("agent-config", CONFIG_MOUNT_DIR, true),
        mount("service-account-token", TOKEN_MOUNT_DIR, true),
    ];
    if let Some(dir) = indicator_mount_dir(spec) {
        volumes.push(host_path_volume("readiness-indicator", &dir));
        mounts.push(mount("readiness-indicator", &dir, true));
    }
    (volumes, mounts)
}

/// The agent container of MultusConfig `config`: the image of the spec
/// (or `default_image`), the command line of [`agent_args`], the
/// environment of [`agent_env`], the health port and probes, privileged.
fn agent_container(
    config: &str,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    mounts: Vec<VolumeMount>,
) -> Container {
    let image = ImageRef::for_spec(spec, default_image);
    Container {
        name: AGENT_CONTAINER.to_owned(),
        image: Some(image.to_string()),
        image_pull_policy: Some(spec.image_pull_policy().as_str().to_owned()),
        command: Some(vec![AGENT_COMMAND.to_owned()]),
        args: Some(agent_args(config, spec).to_args()),
        env: Some(agent_env(config)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: i32::from(AGENT_PORT),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The agent's environment: its node, its MultusConfig `config` and its
/// namespace (also the plugin's ServiceAccount's).
fn agent_env(config: &str) -> Vec<EnvVar> {
    vec![
        field_env("NODE_NAME", "spec.nodeName"),
        EnvVar {
            name: "MULTUS_CONFIG_NAME".to_owned(),
            value: Some(config.to_owned()),
            value_from: None,
        },
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ]
}

/// The environment variable `name` set from the pod's field `field_path`.
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_owned()),
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

/// The DaemonSet that removes Multus from the nodes, derived from the
/// live install DaemonSet `live` so it reaches exactly the nodes and host
/// paths the agents used (even when the spec changed since): the agent
/// container runs `node-agent --uninstall` with the same mounts and the
/// directories of its install command line
/// ([`NodeAgentArgs::uninstall_form`]), without probes or ports, and every
/// node is switched at once (`maxUnavailable: 100%`). `None` when `live`
/// has no pod template to derive from or its agent's command line cannot
/// be read.
pub fn uninstall_daemon_set(live: &DaemonSet) -> Option<DaemonSet> {
    let live_spec = live.spec.as_ref()?;
    let mut template = live_spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_MODE.to_owned(), MODE_UNINSTALL.to_owned());
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(ANNOTATION_CONFIG_HASH);
    }
    let pod = template.spec.as_mut()?;
    let container = pod
        .containers
        .iter_mut()
        .find(|c| c.name == AGENT_CONTAINER)?;
    let install_args = container
        .args
        .clone()
        .unwrap_or_else(|| vec![agent_args::SUBCOMMAND.to_owned()]);
    let installed = NodeAgentArgs::parse_rendered_lenient(&install_args).ok()?;
    container.args = Some(installed.uninstall_form().to_args());
    container.liveness_probe = None;
    container.readiness_probe = None;
    container.ports = None;
    Some(DaemonSet {
        metadata: ObjectMeta {
            name: live.metadata.name.clone(),
            namespace: live.metadata.namespace.clone(),
            labels: live.metadata.labels.clone(),
            owner_references: live.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: live_spec.selector.clone(),
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("100%".to_owned())),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: live_spec.revision_history_limit,
            template,
            min_ready_seconds: None,
        }),
        status: None,
    })
}

/// Whether a live DaemonSet's pod template is in uninstall mode.
pub fn is_uninstall_mode(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(LABEL_MODE))
        .is_some_and(|m| m == MODE_UNINSTALL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::crd::multus_config::{ImageSpec, Placement, UpdateStrategy};

    fn settings() -> OperandSettings {
        OperandSettings {
            namespace: "multus-system".to_owned(),
            default_image: ImageRef::parse("example.org/multus:v9").unwrap(),
            agent_cluster_role: "multus-node-agent".to_owned(),
            plugin_cluster_role: "multus-plugin".to_owned(),
        }
    }

    fn config(spec: MultusConfigSpec) -> MultusConfig {
        let mut mc = MultusConfig::new("pool-a", spec);
        mc.metadata.uid = Some("uid-1".to_owned());
        mc
    }

    fn pod_spec(children: &Children) -> &PodSpec {
        children
            .daemon_set
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    #[test]
    fn image_references_parse_and_print() {
        let cases = [
            ("ghcr.io/a/b:v1", "ghcr.io/a/b", "v1", "ghcr.io/a/b:v1"),
            (
                "localhost:5000/b",
                "localhost:5000/b",
                "latest",
                "localhost:5000/b:latest",
            ),
            (
                "localhost:5000/b:t",
                "localhost:5000/b",
                "t",
                "localhost:5000/b:t",
            ),
            ("r/b@sha256:abc", "r/b", "sha256:abc", "r/b@sha256:abc"),
        ];
        for (text, repo, tag, shown) in cases {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!((image.repository.as_str(), image.tag.as_str()), (repo, tag));
            assert_eq!(image.to_string(), shown);
        }
        assert_eq!(ImageRef::parse("  "), None);
        let digest = ImageRef {
            repository: "r".into(),
            tag: "@sha256:00".into(),
        };
        assert_eq!(digest.to_string(), "r@sha256:00");
    }

    #[test]
    fn spec_image_fields_override_the_default_one_by_one() {
        let default = ImageRef::parse("d/img:v1").unwrap();
        let spec = MultusConfigSpec {
            image: Some(ImageSpec {
                tag: Some("v2".into()),
                ..ImageSpec::default()
            }),
            ..MultusConfigSpec::default()
        };
        assert_eq!(ImageRef::for_spec(&spec, &default).to_string(), "d/img:v2");
        assert_eq!(
            ImageRef::for_spec(&MultusConfigSpec::default(), &default).to_string(),
            "d/img:v1"
        );
        assert!(ImageRef::builtin().tag.starts_with('v'));
    }

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

    #[test]
    fn the_plugin_has_its_own_identity_and_the_agents_may_only_mint_its_tokens() {
        let children = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let sa = &children.plugin_service_account;
        assert_eq!(sa.metadata.name.as_deref(), Some("multus-plugin-pool-a"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("multus-system"));
        assert_eq!(sa.automount_service_account_token, Some(false));
        let crb = &children.plugin_cluster_role_binding;
        assert_eq!(crb.metadata.name.as_deref(), Some("multus-plugin-pool-a"));
        assert_eq!(
            (crb.role_ref.kind.as_str(), crb.role_ref.name.as_str()),
            ("ClusterRole", "multus-plugin")
        );
        let subjects: Vec<&str> = crb
            .subjects
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        // The agents too: the fallback gives the plugin the agent's token.
        assert_eq!(subjects, ["multus-plugin-pool-a", "multus-agent-pool-a"]);
        let agent_crb = &children.cluster_role_binding;
        assert_eq!(agent_crb.role_ref.name, "multus-node-agent");
        let role = &children.agent_role;
        assert_eq!(role.metadata.name.as_deref(), Some("multus-agent-pool-a"));
        assert_eq!(role.metadata.namespace.as_deref(), Some("multus-system"));
        let rules = role.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_owned()][..]));
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["serviceaccounts/token".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["create"]);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["multus-plugin-pool-a".to_owned()][..])
        );
        let binding = &children.agent_role_binding;
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("Role", "multus-agent-pool-a")
        );
        let subjects = binding.subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, "multus-agent-pool-a");
        assert_eq!(subjects[0].namespace.as_deref(), Some("multus-system"));
        // Everything the agents need exists before their DaemonSet.
        let kinds: Vec<Kind> = children.metas().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds.last(), Some(&Kind::DaemonSet));
        assert_eq!(children.documents().unwrap().len(), kinds.len());
    }

    #[test]
    fn a_settings_change_renames_the_config_map_and_rolls_the_pods() {
        let a = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let b = render(
            &config(MultusConfigSpec {
                namespace_isolation: Some(true),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        assert_ne!(a.config_hash, b.config_hash);
        assert_ne!(a.config_map.metadata.name, b.config_map.metadata.name);
        let hash = |c: &Children| {
            c.daemon_set
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[ANNOTATION_CONFIG_HASH]
                .clone()
        };
        assert_eq!(hash(&a), a.config_hash);
        assert_ne!(hash(&a), hash(&b));
        // A spec change that does not touch the settings keeps the hash.
        let c = render(
            &config(MultusConfigSpec {
                update_strategy: Some(UpdateStrategy {
                    max_unavailable: Some(IntOrString::Int(3)),
                }),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        assert_eq!(a.config_hash, c.config_hash);
        assert_ne!(
            a.daemon_set.metadata.annotations, c.daemon_set.metadata.annotations,
            "the rendered hash follows the whole DaemonSet spec"
        );
    }

    #[test]
    fn excluded_nodes_join_every_required_term() {
        assert_eq!(affinity_excluding(None, &[]), None);
        let a = affinity_excluding(None, &["n2".into(), "n1".into(), "n1".into()]).unwrap();
        let terms = a
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        // One single-value requirement per node (the API server refuses
        // more than one value in a matchFields NotIn), sorted, deduplicated.
        let fields = terms[0].match_fields.as_ref().unwrap();
        let excluded: Vec<&str> = fields
            .iter()
            .map(|f| {
                assert_eq!(f.key, "metadata.name");
                assert_eq!(f.operator, "NotIn");
                let values = f.values.as_deref().unwrap();
                assert_eq!(values.len(), 1, "{f:?}");
                values[0].as_str()
            })
            .collect();
        assert_eq!(excluded, ["n1", "n2"]);

        let user = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![
                        NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: "In".into(),
                                values: Some(vec!["a".into()]),
                            }]),
                            match_fields: None,
                        },
                        NodeSelectorTerm::default(),
                    ],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        };
        let merged = affinity_excluding(Some(&user), &["n1".into()]).unwrap();
        let terms = merged
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 2);
        for term in &terms {
            assert_eq!(term.match_fields.as_ref().unwrap().len(), 1);
        }
        assert_eq!(terms[0].match_expressions.as_ref().unwrap()[0].key, "zone");
    }

    #[test]
    fn hundreds_of_excluded_nodes_stay_valid_and_small() {
        let excluded: Vec<String> = (0..500).map(|i| format!("worker-{i:04}")).collect();
        let affinity = affinity_excluding(None, &excluded).unwrap();
        let fields = affinity
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms[0]
            .match_fields
            .clone()
            .unwrap();
        assert_eq!(fields.len(), 500);
        assert!(fields.iter().all(|f| f.values.as_ref().unwrap().len() == 1));
        let bytes = serde_json::to_vec(&affinity).unwrap().len();
        assert!(bytes < 64 * 1024, "{bytes} bytes for 500 excluded nodes");
        // The pool logic (the scheduler's rule) keeps every excluded node
        // out and every other node in.
        let term = &affinity
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms[0];
        let node = |name: &str| crate::controller::pools::NodeInfo {
            name: name.to_owned(),
            labels: BTreeMap::new(),
        };
        assert!(!crate::controller::pools::term_matches(
            term,
            &node("worker-0000")
        ));
        assert!(!crate::controller::pools::term_matches(
            term,
            &node("worker-0499")
        ));
        assert!(crate::controller::pools::term_matches(
            term,
            &node("worker-0500")
        ));
    }

    #[test]
    fn readiness_indicator_dir_is_mounted_only_when_not_already_visible() {
        let with = |file: &str| MultusConfigSpec {
            readiness_indicator_file: Some(file.into()),
            ..MultusConfigSpec::default()
        };
        assert_eq!(indicator_mount_dir(&MultusConfigSpec::default()), None);
        assert_eq!(indicator_mount_dir(&with("/etc/cni/net.d/10-x.conf")), None);
        assert_eq!(indicator_mount_dir(&with("/run/multus/ready")), None);
        assert_eq!(indicator_mount_dir(&with("/var/lib/cni/multus/x")), None);
        assert_eq!(
            indicator_mount_dir(&with("/run/calico/ready")).as_deref(),
            Some("/run/calico")
        );
        let children = render(&config(with("/run/calico/ready")), &settings(), &[]).unwrap();
        let mounts = pod_spec(&children).containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        let m = mounts
            .iter()
            .find(|m| m.name == "readiness-indicator")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/run/calico", Some(true))
        );
        assert!(is_within("/a/b/c", "/a/b"));
        assert!(is_within("/a/b", "/a/b/"));
        assert!(!is_within("/a/bc", "/a/b"));
    }

    #[test]
    fn the_multus_conf_dir_is_mounted_read_only_for_the_agent_to_report() {
        let children = render(
            &config(MultusConfigSpec {
                multus_conf_dir: Some("/etc/k/multus".into()),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        let pod = pod_spec(&children);
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "multus-conf-dir")
            .unwrap();
        assert_eq!(volume.host_path.as_ref().unwrap().path, "/etc/k/multus");
        let c = &pod.containers[0];
        let m = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "multus-conf-dir")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/host/etc/cni/multus/net.d", Some(true))
        );
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--multus-conf-dir=/host/etc/cni/multus/net.d".to_owned())
        );
    }

    #[test]
    fn placement_defaults_tolerate_everything_and_select_every_node() {
        let children = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let pod = pod_spec(&children);
        assert_eq!(pod.tolerations.as_deref(), Some(&default_tolerations()[..]));
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.affinity, None);
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        let selected = render(
            &config(MultusConfigSpec {
                placement: Some(Placement {
                    node_selector: Some(BTreeMap::from([("pool".into(), "a".into())])),
                    tolerations: Some(vec![]),
                    affinity: None,
                }),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &["n9".into()],
        )
        .unwrap();
        let pod = pod_spec(&selected);
        assert_eq!(pod.tolerations.as_deref(), Some(&[][..]));
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "a");
        assert!(pod.affinity.is_some());
    }

    #[test]
    fn the_agents_are_told_the_plugin_account_its_token_lifetime_and_their_namespace() {
        let children = render(
            &config(MultusConfigSpec {
                plugin_token_expiration_seconds: Some(3600),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        let c = &pod_spec(&children).containers[0];
        let args = c.args.as_ref().unwrap();
        assert!(args.contains(&"--plugin-service-account=multus-plugin-pool-a".to_owned()));
        assert!(args.contains(&"--plugin-token-expiration-seconds=3600".to_owned()));
        let env = c.env.as_ref().unwrap();
        let ns = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
        assert_eq!(
            ns.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.namespace"
        );
        let default = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        assert!(
            pod_spec(&default).containers[0]
                .args
                .as_ref()
                .unwrap()
                .contains(&"--plugin-token-expiration-seconds=86400".to_owned())
        );
        // The uninstall needs neither.
        let un = uninstall_daemon_set(&children.daemon_set).unwrap();
        let un_args = &un.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(!un_args.iter().any(|a| a.starts_with("--plugin-")));
    }

    #[test]
    fn uninstall_mode_keeps_paths_and_placement_and_drops_probes() {
        let children = render(
            &config(MultusConfigSpec {
                cni_conf_dir: Some("/etc/k/cni".into()),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &["n1".into()],
        )
        .unwrap();
        assert!(!is_uninstall_mode(&children.daemon_set));
        let un = uninstall_daemon_set(&children.daemon_set).unwrap();
        assert!(is_uninstall_mode(&un));
        let spec = un.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_deref().unwrap(),
            [
                "node-agent",
                "--uninstall",
                "--cni-conf-dir=/host/etc/cni/net.d",
                "--host-cni-conf-dir=/etc/k/cni",
                "--cni-bin-dir=/host/opt/cni/bin",
            ]
        );
        assert!(c.readiness_probe.is_none() && c.liveness_probe.is_none() && c.ports.is_none());
        assert_eq!(
            c.volume_mounts,
            pod_spec(&children).containers[0].volume_mounts
        );
        assert_eq!(pod.affinity, pod_spec(&children).affinity);
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .unwrap()
                .rolling_update
                .as_ref()
                .unwrap()
                .max_unavailable,
            Some(IntOrString::String("100%".into()))
        );
        assert_eq!(
            spec.selector,
            children.daemon_set.spec.as_ref().unwrap().selector
        );
        assert_eq!(
            un.metadata.owner_references,
            children.daemon_set.metadata.owner_references
        );
    }
}
