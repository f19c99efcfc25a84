//! `multus delegate [--mount-ns FILE] [--cgroup-of PID]`: one network
//! added to (ADD) or removed from (DEL) a running pod's sandbox, asked by
//! the node agent for a client of upstream's thick-plugin delegate API
//! (`POST /delegate`, see `multus_config::delegate_api`). Not part of the
//! CNI protocol; the delegates run here, in the plugin, never in the
//! agent.
//!
//! stdin: a [`DelegateInput`] (the node's Multus config and the validated
//! request). stdout: the [`DelegateResponse`] after ADD, `{}` after DEL,
//! or the CNI error object (exit 1).
//!
//! ADD attaches ONE network with the same code as the runtime's ADD (the
//! attachment is planned like an element of the networks annotation,
//! recorded in the sandbox's cache before its delegate runs, rolled back
//! when anything fails), so the runtime's later DEL of the pod releases it
//! too; then the pod's network-status is rewritten from the cache. DEL
//! releases exactly the attachment on that interface (with the config and
//! result the cache recorded) and drops it from the cache and the
//! network-status.

pub mod cgroup;
pub mod sync;

use std::path::{Path, PathBuf};

use multus_config::cni::CniVersion;
use multus_config::cni::args::CniArgs;
use multus_config::cni::error::{CniError, ErrorCode};
use multus_config::cni::result::CniResult;
use multus_config::delegate_api::{
    DelegateCommand, DelegateInput, DelegateRequest, DelegateResponse,
};
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::selection::NetworkSelectionElement;

use crate::attachment::Attachment;
use crate::cache::{Cache, CachedAttachments};
use crate::commands::Command;
use crate::commands::del::del_all;
use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::k8s::{EventType, K8sClient, K8sSettings, PodRef, REASON_ADDED_INTERFACE};
use crate::network_status::{network_statuses, result100};
use crate::plan::{ConfDir, PlanInput, PodIdentity, hotplug_attachment};
use crate::upkeep::survey::pod_identity;

/// The first argument that selects this subcommand.
pub const SUBCOMMAND: &str = "delegate";

pub use multus_config::hotplug::REASON_REMOVED_INTERFACE;

/// Why a delegate request failed.
#[derive(Debug, thiserror::Error)]
pub enum HotplugError {
    /// The command line is wrong.
    #[error("usage: multus delegate|sync-networks [--mount-ns FILE] [--cgroup-of PID] ({0})")]
    Usage(String),
    /// The host's namespaces or cgroup cannot be entered.
    #[error("{what} {}: {source}", path.display())]
    Enter {
        /// What was entered.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// stdin is not a delegate input.
    #[error("the input on stdin: {0}")]
    Input(#[source] serde_json::Error),
    /// The Multus config is unusable.
    #[error("the node's Multus config: {0}")]
    Config(String),
    /// The sandbox was not attached through Multus on this node.
    #[error(
        "container {0} has no Multus cache on this node: its sandbox was not set up through Multus (or is gone)"
    )]
    NoSandbox(String),
    /// The container belongs to another pod than the request names.
    #[error("container {container_id} is a sandbox of pod {cached}, not of {requested}")]
    OtherPod {
        /// The container.
        container_id: String,
        /// Its pod per the cache.
        cached: String,
        /// The request's pod.
        requested: String,
    },
    /// The network namespace is not the sandbox's.
    #[error(
        "CNI_NETNS {requested} is not the network namespace of container {container_id} ({cached})"
    )]
    OtherNetns {
        /// The container.
        container_id: String,
        /// Its namespace per the cache.
        cached: String,
        /// The request's.
        requested: String,
    },
    /// The network namespace is not there.
    #[error("CNI_NETNS {0} does not exist")]
    NoNetns(String),
    /// The interface is taken.
    #[error("interface {ifname} of pod {pod} is already in use ({by})")]
    InterfaceTaken {
        /// The interface.
        ifname: String,
        /// The pod.
        pod: String,
        /// By what.
        by: String,
    },
    /// DEL of the cluster network's interface.
    #[error("interface {0} is the pod's cluster network; only added networks can be removed")]
    ClusterInterface(String),
    /// The plugin's own code failed (delegate, cache, API, netlink).
    #[error(transparent)]
    Plugin(Box<PluginError>),
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The answer cannot be encoded.
    #[error("cannot encode the answer: {0}")]
    Encode(#[source] serde_json::Error),
}

impl From<PluginError> for HotplugError {
    fn from(error: PluginError) -> Self {
        Self::Plugin(Box::new(error))
    }
}

impl From<crate::cache::CacheError> for HotplugError {
    fn from(error: crate::cache::CacheError) -> Self {
        PluginError::from(error).into()
    }
}

impl HotplugError {
    /// The CNI error object for stdout.
    pub fn to_cni_error(&self) -> CniError {
        let code = match self {
            Self::Plugin(error) => return error.to_cni_error(),
            Self::Usage(_) | Self::Input(_) => ErrorCode::InvalidEnvironmentVariables,
            Self::Enter { .. } | Self::Runtime(_) | Self::Encode(_) => ErrorCode::IoFailure,
            Self::Config(_) => ErrorCode::InvalidNetworkConfig,
            Self::NoSandbox(_) | Self::OtherPod { .. } | Self::NoNetns(_) => {
                ErrorCode::UnknownContainer
            }
            Self::OtherNetns { .. } | Self::InterfaceTaken { .. } | Self::ClusterInterface(_) => {
                ErrorCode::InvalidEnvironmentVariables
            }
        };
        CniError::new(code, self.to_string(), "")
    }
}

/// `multus delegate`'s command line (after the subcommand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotplugArgs {
    /// The mount namespace to enter first (the host's).
    pub mount_ns: Option<PathBuf>,
    /// A host process whose cgroup (and cgroup namespace) to join first,
    /// so the delegates are not charged to the agent's container.
    pub cgroup_of: Option<u32>,
}

impl HotplugArgs {
    /// Parses the arguments after `delegate`.
    pub fn parse(args: &[String]) -> Result<Self, HotplugError> {
        let mut parsed = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| rest.next().cloned())
                    .ok_or_else(|| HotplugError::Usage(format!("{name} needs a value")))
            };
            match name {
                "--mount-ns" => parsed.mount_ns = Some(PathBuf::from(value()?)),
                "--cgroup-of" => {
                    let v = value()?;
                    parsed.cgroup_of = Some(
                        v.parse()
                            .map_err(|_| HotplugError::Usage(format!("--cgroup-of {v:?}")))?,
                    );
                }
                other => return Err(HotplugError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        Ok(parsed)
    }
}

/// Runs one request; the JSON for stdout.
pub fn run(
    args: &HotplugArgs,
    stdin: &[u8],
    cni_path: Option<&str>,
) -> Result<Vec<u8>, HotplugError> {
    enter_namespaces(args)?;
    let input: DelegateInput = serde_json::from_slice(stdin).map_err(HotplugError::Input)?;
    let child = AgentChild::start(&input.multus_config, cni_path)?;
    let (conf, cni_path) = (&child.conf, &child.cni_path);
    child.runtime.block_on(async {
        match input.request.command {
            DelegateCommand::Add => {
                let response = add(conf, cni_path, &input.request).await?;
                serde_json::to_vec(&response).map_err(HotplugError::Encode)
            }
            DelegateCommand::Del => {
                del(conf, cni_path, &input.request).await?;
                Ok(b"{}".to_vec())
            }
        }
    })
}

/// What a subcommand run by the node agent works with: the node's Multus
/// config (logging set up from it), `CNI_PATH` split, and a
/// current-thread async runtime.
pub(crate) struct AgentChild {
    pub(crate) conf: MultusNetConf,
    pub(crate) cni_path: Vec<PathBuf>,
    pub(crate) runtime: tokio::runtime::Runtime,
}

impl AgentChild {
    /// From the Multus config the agent sent and `CNI_PATH`.
    pub(crate) fn start(
        multus_config: &serde_json::Value,
        cni_path: Option<&str>,
    ) -> Result<Self, HotplugError> {
        let conf_bytes = serde_json::to_vec(multus_config).map_err(HotplugError::Encode)?;
        let conf = crate::upkeep::multus_conf(&conf_bytes)
            .map_err(|e| HotplugError::Config(e.to_string()))?;
        crate::logging::init(Some(&conf));
        let cni_path = crate::upkeep::split_cni_path(cni_path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HotplugError::Runtime)?;
        Ok(Self {
            conf,
            cni_path,
            runtime,
        })
    }
}

/// Enters the host's cgroup namespace, mount namespace and the runtime's
/// cgroup, as `args` say; first thing, while the process is single
/// threaded.
pub(crate) fn enter_namespaces(args: &HotplugArgs) -> Result<(), HotplugError> {
    if let Some(pid) = args.cgroup_of {
        cgroup::enter_cgroup_ns(pid)?;
    }
    if let Some(ns) = &args.mount_ns {
        enter_mount_ns(ns)?;
    }
    if let Some(pid) = args.cgroup_of {
        cgroup::join_cgroup_of(pid)?;
    }
    Ok(())
}

fn enter_mount_ns(path: &Path) -> Result<(), HotplugError> {
    let error = |source| HotplugError::Enter {
        what: "cannot enter the mount namespace",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(error)?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| error(std::io::Error::from(e)))
}

/// The CNI environment of the request, as the runtime would have given it.
fn cni_env(request: &DelegateRequest, cni_path: &[PathBuf]) -> Result<CniEnv, HotplugError> {
    let args = CniArgs::parse(&request.cni_args).map_err(|e| HotplugError::Usage(e.to_string()))?;
    Ok(CniEnv {
        command: match request.command {
            DelegateCommand::Add => Command::Add,
            DelegateCommand::Del => Command::Del,
        },
        container_id: request.container_id.clone(),
        netns: Some(PathBuf::from(&request.netns)),
        ifname: request.ifname.clone(),
        args,
        path: cni_path.to_vec(),
    })
}

/// The sandbox's cache, checked to be the request's pod and namespace.
fn sandbox(
    conf: &MultusNetConf,
    request: &DelegateRequest,
) -> Result<CachedAttachments, HotplugError> {
    let cache = Cache::for_conf(conf);
    let cached = cache
        .load(&request.container_id, "eth0", "")?
        .ok_or_else(|| HotplugError::NoSandbox(request.container_id.clone()))?;
    let identity = pod_identity(&cached.attachments);
    let uid_differs = match (&request.pod_uid, identity.uid.as_str()) {
        (Some(requested), cached_uid) => !cached_uid.is_empty() && requested != cached_uid,
        (None, _) => false,
    };
    if identity.is_known()
        && (identity.namespace != request.pod_namespace
            || identity.name != request.pod_name
            || uid_differs)
    {
        return Err(HotplugError::OtherPod {
            container_id: request.container_id.clone(),
            cached: format!(
                "{}/{} (uid {})",
                identity.namespace, identity.name, identity.uid
            ),
            requested: format!(
                "{} (uid {})",
                request.pod(),
                request.pod_uid.as_deref().unwrap_or("not given")
            ),
        });
    }
    if let Some(recorded) = &cached.netns
        && !same_file(recorded, Path::new(&request.netns))
    {
        return Err(HotplugError::OtherNetns {
            container_id: request.container_id.clone(),
            cached: recorded.display().to_string(),
            requested: request.netns.clone(),
        });
    }
    if !Path::new(&request.netns).exists() {
        return Err(HotplugError::NoNetns(request.netns.clone()));
    }
    Ok(cached)
}

/// Whether two paths name the same file (a netns may be reached by
/// several paths: `/var/run/netns/x` and `/run/netns/x`).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

async fn api(conf: &MultusNetConf) -> Result<Option<K8sClient>, HotplugError> {
    K8sClient::connect(conf, K8sSettings::default())
        .await
        .map_err(|e| PluginError::from(e).into())
}

/// ADD: attaches the request's network on its interface.
async fn add(
    conf: &MultusNetConf,
    cni_path: &[PathBuf],
    request: &DelegateRequest,
) -> Result<DelegateResponse, HotplugError> {
    let env = cni_env(request, cni_path)?;
    let _lock = Cache::for_conf(conf).lock(&request.container_id, sync::LOCK_TIMEOUT)?;
    let cached = sandbox(conf, request)?;
    let pod_name = request.pod();
    if let Some(a) = cached
        .attachments
        .iter()
        .find(|a| a.ifname == request.ifname)
    {
        return Err(HotplugError::InterfaceTaken {
            ifname: request.ifname.clone(),
            pod: pod_name,
            by: format!("attached to {}", a.name),
        });
    }
    let netns = PathBuf::from(&request.netns);
    if crate::netns::link_exists(&netns, &request.ifname).map_err(PluginError::from)? {
        return Err(HotplugError::InterfaceTaken {
            ifname: request.ifname.clone(),
            pod: pod_name,
            by: "a link of that name exists in the pod".into(),
        });
    }
    let identity = PodIdentity {
        namespace: request.pod_namespace.clone(),
        name: request.pod_name.clone(),
        uid: request.pod_uid.clone().unwrap_or_default(),
    };
    let client = api(conf).await?;
    let pod = crate::k8s::fetch_pod(client.as_ref(), &identity)
        .await
        .map_err(PluginError::from)?;
    if client.is_some() && pod.is_none() {
        return Err(PluginError::PodNotFound {
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
        }
        .into());
    }
    let conf_dir = ConfDir::new(&conf.conf_dir);
    let input = PlanInput {
        conf,
        env: &env,
        pod: pod.as_ref(),
        conf_dir: &conf_dir,
    };
    let (namespace, name) = request
        .network
        .split_once('/')
        .unwrap_or((&request.pod_namespace, &request.network));
    let element = NetworkSelectionElement {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        interface: Some(request.ifname.clone()),
        ips: (!request.ips.is_empty()).then(|| request.ips.clone()),
        mac: request.mac.clone(),
        cni_args: request.cni_args_map.clone(),
        ..NetworkSelectionElement::default()
    };
    let mut config = request.config.clone();
    if let Some(object) = config.as_object_mut()
        && !object.contains_key("cniVersion")
    {
        let version = conf.cni_version.clone().unwrap_or_else(|| "0.3.1".into());
        object.insert("cniVersion".into(), version.into());
    }
    let mut attachment = hotplug_attachment(
        &input,
        request.network.clone(),
        config,
        &element,
        request.ifname.clone(),
    )?;

    // Recorded before its delegate runs: a crash from here on still has
    // the runtime's DEL of the pod release it.
    let cache = Cache::for_conf(conf);
    let before = cached.attachments;
    let mut all = before.clone();
    all.push(attachment.clone());
    cache.save(&request.container_id, cached.netns.as_deref(), &all)?;

    let exec = ExecEnv::for_attachment(&env, conf, &attachment);
    let outcome = delegate::add_network(&attachment.config, &attachment.capability_args, &exec)
        .await
        .map_err(|error| PluginError::delegate(&attachment.name, error))
        .and_then(|result| {
            result
                .to_value()
                .map_err(|source| PluginError::DelegateResult {
                    attachment: attachment.name.clone(),
                    source,
                })
        });
    let value = match outcome {
        Ok(value) => value,
        Err(error) => {
            return Err(rollback(
                conf,
                &env,
                &cache,
                &cached.netns,
                &before,
                &attachment,
                error,
            )
            .await);
        }
    };
    attachment.result = Some(value.clone());
    let last = all.len() - 1;
    all[last] = attachment.clone();
    if let Err(error) = cache.save(&request.container_id, cached.netns.as_deref(), &all) {
        return Err(rollback(
            conf,
            &env,
            &cache,
            &cached.netns,
            &before,
            &attachment,
            error.into(),
        )
        .await);
    }
    let statuses = network_statuses(&all);
    if let (Some(client), Some(pod)) = (&client, &pod)
        && !conf.is_system_namespace(&identity.namespace)
    {
        if let Err(error) = client
            .set_network_status(&PodRef::from(&identity), &statuses)
            .await
        {
            return Err(rollback(
                conf,
                &env,
                &cache,
                &cached.netns,
                &before,
                &attachment,
                error.into(),
            )
            .await);
        }
        if let Some(result) = result100(&attachment) {
            let ips: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
            let message =
                crate::k8s::added_interface_message(&attachment.ifname, &ips, &attachment.name);
            client
                .record_event(pod, EventType::Normal, REASON_ADDED_INTERFACE, &message)
                .await;
        }
    }
    tracing::info!(pod = %request.pod(), container = %request.container_id, network = %attachment.name, ifname = %attachment.ifname, "added an interface (delegate API)");
    let result = CniResult::from_value(value, None)
        .ok()
        .and_then(|r| r.convert_to(CniVersion::V1_0_0).ok())
        .and_then(|r| r.to_value().ok());
    let network_status = network_statuses(std::slice::from_ref(&attachment))
        .into_iter()
        .next();
    Ok(DelegateResponse {
        result,
        network_status,
    })
}

/// Undoes a failed ADD: DEL of the new attachment, the cache as before.
async fn rollback(
    conf: &MultusNetConf,
    env: &CniEnv,
    cache: &Cache,
    netns: &Option<PathBuf>,
    before: &[Attachment],
    attachment: &Attachment,
    error: PluginError,
) -> HotplugError {
    tracing::error!(%error, "delegate ADD failed; rolling back");
    let failures = del_all(env, conf, std::slice::from_ref(attachment)).await;
    if !failures.is_empty() {
        // Keep it recorded: the pod's DEL releases it later.
        let mut all = vec![error];
        all.extend(failures);
        return PluginError::Many(all).into();
    }
    if let Err(e) = cache.save(&env.container_id, netns.as_deref(), before) {
        return PluginError::Many(vec![error, e.into()]).into();
    }
    error.into()
}

/// DEL: releases the attachment on the request's interface.
async fn del(
    conf: &MultusNetConf,
    cni_path: &[PathBuf],
    request: &DelegateRequest,
) -> Result<(), HotplugError> {
    let env = cni_env(request, cni_path)?;
    let _lock = Cache::for_conf(conf).lock(&request.container_id, sync::LOCK_TIMEOUT)?;
    let cached = sandbox(conf, request)?;
    let Some(index) = cached
        .attachments
        .iter()
        .position(|a| a.ifname == request.ifname)
    else {
        // Not ours (e.g. added by upstream's daemon before a migration):
        // DEL with the request's config, as upstream does; idempotent.
        let identity = PodIdentity::from_args(&env.args);
        let conf_dir = ConfDir::new(&conf.conf_dir);
        let input = PlanInput {
            conf,
            env: &env,
            pod: None,
            conf_dir: &conf_dir,
        };
        let element = NetworkSelectionElement {
            name: request.network.clone(),
            namespace: identity.namespace,
            ..NetworkSelectionElement::default()
        };
        let attachment = hotplug_attachment(
            &input,
            request.network.clone(),
            request.config.clone(),
            &element,
            request.ifname.clone(),
        )?;
        let failures = del_all(&env, conf, std::slice::from_ref(&attachment)).await;
        if !failures.is_empty() {
            return Err(PluginError::Many(failures).into());
        }
        return Ok(());
    };
    let mut remaining = cached.attachments;
    let attachment = remaining.remove(index);
    if attachment.is_cluster_network {
        return Err(HotplugError::ClusterInterface(request.ifname.clone()));
    }
    let failures = del_all(&env, conf, std::slice::from_ref(&attachment)).await;
    if !failures.is_empty() {
        // The cache keeps it: a retry, or the pod's DEL, releases it.
        return Err(PluginError::Many(failures).into());
    }
    let cache = Cache::for_conf(conf);
    cache.save(&request.container_id, cached.netns.as_deref(), &remaining)?;
    tracing::info!(pod = %request.pod(), container = %request.container_id, network = %attachment.name, ifname = %attachment.ifname, "removed an interface (delegate API)");
    if conf.is_system_namespace(&request.pod_namespace) {
        return Ok(());
    }
    // The addresses are released: the annotation and the Event are best
    // effort.
    let identity = pod_identity(&remaining)
        .is_known()
        .then(|| pod_identity(&remaining));
    let identity = identity.unwrap_or(PodIdentity {
        namespace: request.pod_namespace.clone(),
        name: request.pod_name.clone(),
        uid: request.pod_uid.clone().unwrap_or_default(),
    });
    match api(conf).await {
        Ok(Some(client)) => {
            if let Err(error) = client
                .set_network_status(&PodRef::from(&identity), &network_statuses(&remaining))
                .await
            {
                tracing::warn!(%error, "cannot rewrite the pod's network-status");
            }
            if let Ok(Some(pod)) = crate::k8s::fetch_pod(Some(&client), &identity).await {
                let message = format!(
                    "Removed interface {} of network {}",
                    attachment.ifname, attachment.name
                );
                client
                    .record_event(&pod, EventType::Normal, REASON_REMOVED_INTERFACE, &message)
                    .await;
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "no API access; the pod's network-status still names the removed interface")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
