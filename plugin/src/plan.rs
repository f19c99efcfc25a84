//! Which networks a pod gets, in order, on which interfaces: the cluster
//! network (inline delegate, `clusterNetwork`, or the pod's
//! default-network annotation) and every other inline delegate, then
//! `defaultNetworks`, then one attachment per element of the networks
//! annotation.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use multus_config::ConfFile;
use multus_config::cni::CniVersion;
use multus_config::cni::args::{CniArgs, PodArgs};
use multus_config::cni::netconf::NetworkConfig;
use multus_config::cni::runtime::{
    CAP_BANDWIDTH, CAP_DEVICE_ID, CAP_INFINIBAND_GUID, CAP_IPS, CAP_MAC, CAP_PORT_MAPPINGS,
    undeclared_requested,
};
use multus_config::cni::version::DEFAULT_NAD_VERSION;
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::default_network::parse_default_network_annotation;
use multus_config::npwg::device_info::nad_resource_name;
use multus_config::npwg::nad::resolve_nad_config;
use multus_config::npwg::selection::{NetworkSelectionElement, parse_networks_annotation};
use multus_config::npwg::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkAttachmentDefinition,
};
use serde_json::{Map, Value};

use crate::attachment::{Attachment, DeviceAttachment, Origin};
use crate::env::{CniEnv, interface_name_problem};
use crate::error::{MultusConfigError, NetworkConfigError, PluginError, PodRequestError, Result};

/// Where NADs come from (the API server in production).
pub trait NadSource {
    /// The NAD `namespace/name`, or `None` when it does not exist.
    fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Option<NetworkAttachmentDefinition>>>;
}

/// No API access (delegates-only mode): no NAD exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNads;

impl NadSource for NoNads {
    async fn get_nad(&self, _: &str, _: &str) -> Result<Option<NetworkAttachmentDefinition>> {
        Ok(None)
    }
}

/// The Multus conf dir (`confDir`), read at most once per invocation and
/// only when a NAD or network reference needs it.
#[derive(Debug)]
pub struct ConfDir {
    dir: PathBuf,
    files: OnceCell<Vec<ConfFile>>,
}

impl ConfDir {
    /// The conf dir at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            files: OnceCell::new(),
        }
    }

    /// Its regular files (and symlinks to them); unreadable entries skipped.
    pub fn files(&self) -> &[ConfFile] {
        self.files.get_or_init(|| read_conf_dir(&self.dir))
    }
}

fn read_conf_dir(dir: &Path) -> Vec<ConfFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<ConfFile> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let bytes = std::fs::read(e.path()).ok()?;
            Some(ConfFile { name, bytes })
        })
        .collect();
    files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    files
}

/// Everything the planner needs.
#[derive(Debug)]
pub struct PlanInput<'a> {
    /// The Multus config.
    pub conf: &'a MultusNetConf,
    /// The CNI environment.
    pub env: &'a CniEnv,
    /// The pod, when the API server told us about it.
    pub pod: Option<&'a Pod>,
    /// The Multus conf dir.
    pub conf_dir: &'a ConfDir,
}

/// The pod identity from `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`.
    pub uid: String,
}

impl PodIdentity {
    /// Reads the identity from the runtime's `CNI_ARGS`.
    pub fn from_args(args: &CniArgs) -> Self {
        let get = |k: &str| args.get(k).unwrap_or_default().to_owned();
        Self {
            namespace: get("K8S_POD_NAMESPACE"),
            name: get("K8S_POD_NAME"),
            uid: get("K8S_POD_UID"),
        }
    }

    /// Whether the runtime named a Kubernetes pod.
    pub fn is_known(&self) -> bool {
        !self.namespace.is_empty() && !self.name.is_empty()
    }
}

/// Default CNI version for NAD configs without one.
fn default_version(conf: &MultusNetConf) -> CniVersion {
    conf.cni_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_NAD_VERSION)
}

fn annotation<'p>(pod: Option<&'p Pod>, key: &str) -> Option<&'p str> {
    pod?.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// A network reference resolved: its name (`namespace/name` for a NAD),
/// config, and the NAD's device resource (`k8s.v1.cni.cncf.io/resourceName`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// `namespace/name` of the NAD, else the CNI network name.
    pub name: String,
    /// The network's config.
    pub config: NetworkConfig,
    /// The NAD's device resource, if it names one.
    pub resource_name: Option<String>,
}

/// Resolves a network reference of the Multus config (`clusterNetwork`,
/// `defaultNetworks` entries): an absolute path (file, or directory whose
/// first config is taken), else a NAD in `namespace`, else a config in the
/// conf dir whose CNI name equals the reference.
pub async fn resolve_reference(
    reference: &str,
    namespace: &str,
    input: &PlanInput<'_>,
    nads: &impl NadSource,
    cache: &mut HashMap<(String, String), Option<NetworkAttachmentDefinition>>,
) -> Result<Resolved> {
    let version = default_version(input.conf);
    if reference.starts_with('/') {
        let path = Path::new(reference);
        let file = if path.is_dir() {
            read_conf_dir(path)
                .into_iter()
                .find(|f| {
                    [".conf", ".conflist", ".json"]
                        .iter()
                        .any(|ext| f.name.ends_with(ext))
                })
                .ok_or_else(|| NetworkConfigError::EmptyDirectory {
                    reference: reference.to_owned(),
                })?
        } else {
            let bytes = std::fs::read(path).map_err(|source| NetworkConfigError::Unreadable {
                reference: reference.to_owned(),
                source,
            })?;
            ConfFile::new(reference, bytes)
        };
        let mut config = NetworkConfig::parse(&file.bytes).map_err(|source| {
            NetworkConfigError::InvalidFile {
                reference: reference.to_owned(),
                file: file.name.clone(),
                source,
            }
        })?;
        config.set_cni_version_if_missing(version);
        let name = config.name().unwrap_or(reference).to_owned();
        return Ok(Resolved {
            name,
            config,
            resource_name: None,
        });
    }
    let nad = lookup_nad(namespace, reference, nads, cache).await?;
    let spec_config = nad.as_ref().and_then(|n| n.spec.config.as_deref());
    let resolved = resolve_nad_config(
        namespace,
        reference,
        spec_config,
        input.conf_dir.files(),
        version,
    )
    .map_err(|source| {
        if nad.is_none() {
            NetworkConfigError::Unresolved {
                reference: reference.to_owned(),
                namespace: namespace.to_owned(),
                conf_dir: input.conf.conf_dir.clone(),
                source,
            }
        } else {
            NetworkConfigError::Nad(source)
        }
    })?;
    let config = NetworkConfig::from_value(resolved.value).map_err(|source| {
        NetworkConfigError::InvalidReferenced {
            namespace: namespace.to_owned(),
            reference: reference.to_owned(),
            source,
        }
    })?;
    let name = if nad.is_some() {
        format!("{namespace}/{reference}")
    } else {
        config.name().unwrap_or(reference).to_owned()
    };
    Ok(Resolved {
        name,
        config,
        resource_name: nad.as_ref().and_then(nad_resource_name).map(str::to_owned),
    })
}

async fn lookup_nad(
    namespace: &str,
    name: &str,
    nads: &impl NadSource,
    cache: &mut HashMap<(String, String), Option<NetworkAttachmentDefinition>>,
) -> Result<Option<NetworkAttachmentDefinition>> {
    let key = (namespace.to_owned(), name.to_owned());
    if let Some(found) = cache.get(&key) {
        return Ok(found.clone());
    }
    let found = nads.get_nad(namespace, name).await?;
    cache.insert(key, found.clone());
    Ok(found)
}

/// A NAD named by the networks annotation that does not exist (the caller
/// publishes a Warning event for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingNad {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The planned attachments, or the reason there are none.
#[derive(Debug)]
pub struct Plan {
    /// In ADD order. Exactly one is the cluster network (on `CNI_IFNAME`,
    /// its result is returned); it is the first unless an inline delegate
    /// other than the first sets `masterplugin`.
    pub attachments: Vec<Attachment>,
}

/// The legacy per-delegate key marking the inline delegate whose result is
/// returned and which gets `CNI_IFNAME`.
pub const MASTERPLUGIN_KEY: &str = "masterplugin";

/// One entry of the config's inline `delegates`, as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineDelegate {
    /// Its CNI network name (or a stand-in naming its position).
    pub name: String,
    /// Its config.
    pub config: NetworkConfig,
    /// Its interface: `CNI_IFNAME` for the cluster network, else
    /// `net1`, `net2`, ... in list order.
    pub ifname: String,
    /// Whether it is the cluster network (`masterplugin`, else the first).
    pub is_cluster_network: bool,
}

/// The config's inline `delegates`, every one of them, in list order (the
/// order they are ADDed in). The entry with `masterplugin: true` (at most
/// one), else the first, is the cluster network on `runtime_ifname`; the
/// others get `net1`, `net2`, ... in list order.
pub fn inline_delegates(conf: &MultusNetConf, runtime_ifname: &str) -> Result<Vec<InlineDelegate>> {
    let mut master = None;
    for (index, value) in conf.delegates.iter().enumerate() {
        match value.get(MASTERPLUGIN_KEY) {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                if let Some(first) = master {
                    return Err(MultusConfigError::TwoMasterplugins {
                        first,
                        second: index,
                    }
                    .into());
                }
                master = Some(index);
            }
            Some(other) => {
                return Err(MultusConfigError::MasterpluginNotBool {
                    index,
                    value: other.clone(),
                }
                .into());
            }
        }
    }
    let master = master.unwrap_or(0);
    let version = default_version(conf);
    let mut next_net = 1;
    conf.delegates
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let mut config = NetworkConfig::from_value(value.clone())
                .map_err(|source| MultusConfigError::Delegate { index, source })?;
            config.set_cni_version_if_missing(version);
            let is_cluster_network = index == master;
            let name = match config.name() {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ if is_cluster_network => "cluster-network".to_owned(),
                _ => format!("delegates[{index}]"),
            };
            let ifname = if is_cluster_network {
                runtime_ifname.to_owned()
            } else {
                next_net += 1;
                format!("net{}", next_net - 1)
            };
            Ok(InlineDelegate {
                name,
                config,
                ifname,
                is_cluster_network,
            })
        })
        .collect()
}

/// What every attachment starts from: the runtime's capability arguments
/// and the delegates' `CNI_ARGS`.
struct Common {
    identity: PodIdentity,
    runtime_caps: Map<String, Value>,
    base_args: CniArgs,
}

impl Common {
    fn new(input: &PlanInput<'_>) -> Self {
        let identity = PodIdentity::from_args(&input.env.args);
        let base_args = CniArgs::for_delegate(
            PodArgs {
                namespace: &identity.namespace,
                name: &identity.name,
                infra_container_id: &input.env.container_id,
                uid: &identity.uid,
            },
            &input.env.args,
        );
        Self {
            runtime_caps: input.conf.runtime_config.clone().unwrap_or_default(),
            base_args,
            identity,
        }
    }

    fn attachment(
        &self,
        name: String,
        config: NetworkConfig,
        ifname: String,
        is_cluster_network: bool,
    ) -> Attachment {
        Attachment {
            name,
            config,
            ifname,
            capability_args: self.runtime_caps.clone(),
            cni_args: self.base_args.to_string(),
            is_cluster_network,
            default_route: None,
            result: None,
            device: DeviceAttachment::default(),
            origin: Origin::Static,
        }
    }
}

/// The cluster network and the other inline delegates, in ADD order.
///
/// Without `clusterNetwork`: every inline delegate (see
/// [`inline_delegates`]). With it, `delegates` is ignored (as upstream
/// does) and the cluster network is the only one. The pod's
/// default-network annotation replaces the cluster network only; the other
/// inline delegates stay.
async fn cluster_and_delegates(
    input: &PlanInput<'_>,
    nads: &impl NadSource,
    nad_cache: &mut HashMap<(String, String), Option<NetworkAttachmentDefinition>>,
    common: &Common,
) -> Result<Vec<Attachment>> {
    let conf = input.conf;
    let cluster_network = conf
        .cluster_network
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let mut attachments: Vec<Attachment> = match cluster_network {
        Some(_) => {
            if !conf.delegates.is_empty() {
                tracing::debug!(
                    "clusterNetwork is set: the {} inline delegates are ignored",
                    conf.delegates.len()
                );
            }
            Vec::new()
        }
        None => inline_delegates(conf, &input.env.ifname)?
            .into_iter()
            .map(|d| common.attachment(d.name, d.config, d.ifname, d.is_cluster_network))
            .collect(),
    };
    let replacement = if let Some(text) = annotation(input.pod, DEFAULT_NETWORK_ANNOTATION) {
        let element = parse_default_network_annotation(text, &conf.multus_namespace)
            .map_err(PodRequestError::from)?;
        check_namespace(conf, &common.identity, &element)?;
        Some(resolve_reference(&element.name, &element.namespace, input, nads, nad_cache).await?)
    } else if let Some(reference) = cluster_network {
        Some(resolve_reference(reference, &conf.multus_namespace, input, nads, nad_cache).await?)
    } else {
        None
    };
    if let Some(resolved) = replacement {
        match attachments.iter_mut().find(|a| a.is_cluster_network) {
            Some(cluster) => {
                cluster.name = resolved.name;
                cluster.config = resolved.config;
                cluster.device.resource_name = resolved.resource_name;
            }
            None => {
                let mut cluster = common.attachment(
                    resolved.name,
                    resolved.config,
                    input.env.ifname.clone(),
                    true,
                );
                cluster.device.resource_name = resolved.resource_name;
                attachments.insert(0, cluster);
            }
        }
    }
    if !attachments.iter().any(|a| a.is_cluster_network) {
        return Err(MultusConfigError::NoClusterNetwork.into());
    }
    Ok(attachments)
}

/// Plans only what the Multus config attaches to every pod whatever its
/// annotations: the cluster network and the other inline delegates (no
/// `defaultNetworks`, no annotation networks). DEL without a cache falls
/// back to it when the pod's attachments cannot be re-derived.
pub async fn plan_static(input: &PlanInput<'_>, nads: &impl NadSource) -> Result<Plan> {
    let common = Common::new(input);
    let attachments = cluster_and_delegates(input, nads, &mut HashMap::new(), &common).await?;
    check_interface_names(&attachments)?;
    Ok(Plan { attachments })
}

/// Plans the attachments of an ADD (or a DEL without cache): the cluster
/// network and the other inline delegates, then `defaultNetworks`, then the
/// networks annotation; interfaces `net<k>` continue the numbering.
pub async fn plan(
    input: &PlanInput<'_>,
    nads: &impl NadSource,
) -> std::result::Result<Plan, (PluginError, Option<MissingNad>)> {
    let conf = input.conf;
    let common = Common::new(input);
    let identity = &common.identity;
    let mut nad_cache = HashMap::new();

    // 1. The cluster network and the other inline delegates.
    let mut attachments = cluster_and_delegates(input, nads, &mut nad_cache, &common)
        .await
        .map_err(|e| (e, None))?;

    // 2. defaultNetworks, except for system namespaces.
    let system_pod = identity.is_known() && conf.is_system_namespace(&identity.namespace);
    if !system_pod {
        for reference in &conf.default_networks {
            let resolved = resolve_reference(
                reference,
                &conf.multus_namespace,
                input,
                nads,
                &mut nad_cache,
            )
            .await
            .map_err(|e| (e, None))?;
            let ifname = format!("net{}", attachments.len());
            let mut attachment = common.attachment(resolved.name, resolved.config, ifname, false);
            attachment.device.resource_name = resolved.resource_name;
            attachments.push(attachment);
        }
    }

    // 3. The networks annotation.
    if let Some(text) = annotation(input.pod, NETWORKS_ANNOTATION) {
        let elements = parse_networks_annotation(text, &identity.namespace)
            .map_err(|e| (PodRequestError::from(e).into(), None))?;
        for element in elements {
            let ifname = element
                .interface
                .clone()
                .unwrap_or_else(|| format!("net{}", attachments.len()));
            let attachment =
                selection_attachment(&common, input, &element, ifname, nads, &mut nad_cache)
                    .await?;
            attachments.push(attachment);
        }
    }

    check_interface_names(&attachments).map_err(|e| (e, None))?;
    Ok(Plan { attachments })
}

/// The attachment of one element of the networks annotation on `ifname`:
/// its namespace allowed, its NAD looked up and its config resolved.
async fn selection_attachment(
    common: &Common,
    input: &PlanInput<'_>,
    element: &NetworkSelectionElement,
    ifname: String,
    nads: &impl NadSource,
    nad_cache: &mut HashMap<(String, String), Option<NetworkAttachmentDefinition>>,
) -> std::result::Result<Attachment, (PluginError, Option<MissingNad>)> {
    check_namespace(input.conf, &common.identity, element).map_err(|e| (e, None))?;
    let nad = lookup_nad(&element.namespace, &element.name, nads, nad_cache)
        .await
        .map_err(|e| (e, None))?;
    let full_name = element.namespaced_name();
    let Some(nad) = nad else {
        return Err((
            NetworkConfigError::NadNotFound { network: full_name }.into(),
            Some(MissingNad {
                namespace: element.namespace.clone(),
                name: element.name.clone(),
            }),
        ));
    };
    let resolved = resolve_nad_config(
        &element.namespace,
        &element.name,
        nad.spec.config.as_deref(),
        input.conf_dir.files(),
        default_version(input.conf),
    )
    .map_err(|e| (NetworkConfigError::from(e).into(), None))?;
    element_attachment(
        common,
        input,
        full_name,
        resolved.value,
        element,
        ifname,
        nad_resource_name(&nad).map(str::to_owned),
    )
    .map_err(|e| (e, None))
}

/// The attachments of elements added to the networks annotation of a
/// running pod (hot-plug), each on the interface given with it, planned
/// by the same rules as at ADD: `(element, ifname)` in order.
pub async fn added_selection_attachments(
    input: &PlanInput<'_>,
    added: &[(NetworkSelectionElement, String)],
    nads: &impl NadSource,
) -> std::result::Result<Vec<Attachment>, (PluginError, Option<MissingNad>)> {
    let common = Common::new(input);
    let mut nad_cache = HashMap::new();
    let mut attachments = Vec::with_capacity(added.len());
    for (element, ifname) in added {
        attachments.push(
            selection_attachment(
                &common,
                input,
                element,
                ifname.clone(),
                nads,
                &mut nad_cache,
            )
            .await?,
        );
    }
    check_interface_names(&attachments).map_err(|e| (e, None))?;
    Ok(attachments)
}

/// How many attachments of a pod's ADD come before those of its networks
/// annotation (the cluster network, the other inline delegates and, but
/// for system namespaces, `defaultNetworks`): the annotation's are the
/// rest of its cache, in annotation order, then any added later.
pub fn static_attachment_count(conf: &MultusNetConf, identity: &PodIdentity) -> usize {
    let cluster_network = conf
        .cluster_network
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    let first = if cluster_network {
        1
    } else {
        conf.delegates.len().max(1)
    };
    let system_pod = identity.is_known() && conf.is_system_namespace(&identity.namespace);
    first
        + if system_pod {
            0
        } else {
            conf.default_networks.len()
        }
}

/// One attachment of a network selection element whose config is
/// resolved: `cni-args` merged, the requested capabilities checked
/// against the ones the config declares, `IP`/`MAC` in `CNI_ARGS`.
fn element_attachment(
    common: &Common,
    input: &PlanInput<'_>,
    full_name: String,
    mut value: Value,
    element: &NetworkSelectionElement,
    ifname: String,
    resource_name: Option<String>,
) -> Result<Attachment> {
    if let Some(cni_args) = &element.cni_args {
        merge_cni_args(&mut value, cni_args);
    }
    let config = NetworkConfig::from_value(value).map_err(|source| {
        NetworkConfigError::InvalidRequested {
            network: full_name.clone(),
            source,
        }
    })?;
    let requested = requested_capabilities(element);
    let undeclared = undeclared_requested(requested.keys(), &config.capabilities());
    if !undeclared.is_empty() {
        return Err(PodRequestError::UndeclaredCapabilities {
            network: full_name,
            undeclared,
        }
        .into());
    }
    let mut caps = common.runtime_caps.clone();
    caps.extend(requested);
    let mut args = common.base_args.clone();
    if let Some(ips) = element.ips.as_ref().filter(|i| !i.is_empty()) {
        args.set("IP", ips.join(","));
    }
    if let Some(mac) = &element.mac {
        args.set("MAC", mac.clone());
    }
    let default_route = element.default_route.as_ref().map(|_| element.gateways());
    let mut attachment = Attachment {
        name: full_name,
        config,
        ifname,
        capability_args: caps,
        cni_args: args.to_string(),
        is_cluster_network: false,
        default_route,
        result: None,
        device: DeviceAttachment {
            resource_name,
            ..DeviceAttachment::default()
        },
        origin: Origin::Annotation,
    };
    if let Some(id) = &element.device_id {
        // The annotation's device: runtimeConfig only (the kubelet's
        // device of the NAD's resource, if any, wins).
        crate::devices::set_device(
            &mut attachment,
            id,
            false,
            Path::new(input.conf.device_info_dir()),
            &input.env.container_id,
        );
    }
    Ok(attachment)
}

/// The attachment of one network added to a running pod (upstream's
/// delegate API, `multus delegate`): `config` is the network's resolved
/// config (a NAD's `spec.config` with its defaults), `element` carries
/// the requested IPs, MAC and `cni-args`; the same rules as for an
/// element of the networks annotation apply.
pub fn hotplug_attachment(
    input: &PlanInput<'_>,
    name: String,
    config: Value,
    element: &NetworkSelectionElement,
    ifname: String,
) -> Result<Attachment> {
    let common = Common::new(input);
    let mut attachment = element_attachment(&common, input, name, config, element, ifname, None)?;
    attachment.origin = Origin::DelegateApi;
    check_interface_names(std::slice::from_ref(&attachment))?;
    Ok(attachment)
}

/// The capability arguments a selection element asks for.
fn requested_capabilities(element: &NetworkSelectionElement) -> Map<String, Value> {
    let mut caps = Map::new();
    if let Some(ips) = element.ips.as_ref().filter(|i| !i.is_empty()) {
        caps.insert(CAP_IPS.into(), Value::from(ips.clone()));
    }
    if let Some(mac) = &element.mac {
        caps.insert(CAP_MAC.into(), Value::from(mac.clone()));
    }
    if let Some(guid) = &element.infiniband_guid {
        caps.insert(CAP_INFINIBAND_GUID.into(), Value::from(guid.clone()));
    }
    if let Some(ports) = element.port_mappings.as_ref().filter(|p| !p.is_empty()) {
        caps.insert(CAP_PORT_MAPPINGS.into(), Value::Array(ports.clone()));
    }
    if let Some(bandwidth) = &element.bandwidth {
        caps.insert(CAP_BANDWIDTH.into(), bandwidth.clone());
    }
    if let Some(device) = &element.device_id {
        caps.insert(CAP_DEVICE_ID.into(), Value::from(device.clone()));
    }
    caps
}

/// Merges the annotation's `cni-args` into `args.cni` of the config (every
/// plugin of a list); annotation keys win.
fn merge_cni_args(config: &mut Value, cni_args: &Map<String, Value>) {
    let merge_into = |plugin: &mut Value| {
        let Some(obj) = plugin.as_object_mut() else {
            return;
        };
        let args = obj
            .entry("args")
            .or_insert_with(|| Value::Object(Map::new()));
        if !args.is_object() {
            *args = Value::Object(Map::new());
        }
        if let Some(args) = args.as_object_mut() {
            let cni = args
                .entry("cni")
                .or_insert_with(|| Value::Object(Map::new()));
            if !cni.is_object() {
                *cni = Value::Object(Map::new());
            }
            if let Some(cni) = cni.as_object_mut() {
                for (k, v) in cni_args {
                    cni.insert(k.clone(), v.clone());
                }
            }
        }
    };
    match config.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins.iter_mut().for_each(merge_into),
        None => merge_into(config),
    }
}

fn check_namespace(
    conf: &MultusNetConf,
    identity: &PodIdentity,
    element: &NetworkSelectionElement,
) -> Result<()> {
    if identity.is_known() && !conf.namespace_allowed(&identity.namespace, &element.namespace) {
        return Err(PodRequestError::NamespaceIsolation {
            pod: format!("{}/{}", identity.namespace, identity.name),
            network: element.namespaced_name(),
            allowed: conf.effective_global_namespaces().join(", "),
        }
        .into());
    }
    Ok(())
}

fn check_interface_names(attachments: &[Attachment]) -> Result<()> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for a in attachments {
        if let Some(problem) = interface_name_problem(&a.ifname) {
            return Err(PodRequestError::InvalidInterfaceName {
                attachment: a.name.clone(),
                ifname: a.ifname.clone(),
                problem,
            }
            .into());
        }
        if let Some(other) = seen.insert(&a.ifname, &a.name) {
            return Err(PodRequestError::DuplicateInterface {
                ifname: a.ifname.clone(),
                first: other.to_owned(),
                second: a.name.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// The default-route gateways requested over all attachments.
pub fn gateway_requests(attachments: &[Attachment]) -> Vec<(String, Vec<IpAddr>)> {
    attachments
        .iter()
        .filter_map(|a| {
            a.default_route
                .as_ref()
                .map(|g| (a.ifname.clone(), g.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
