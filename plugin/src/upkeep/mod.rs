//! `multus upkeep [--mount-ns FILE] <task>`: what the node agent asks of
//! the plugin before it removes Multus from a node. The delegates run
//! here, in the plugin, exactly as for the runtime's DEL: the agent never
//! runs a delegate in its own process.
//!
//! Tasks (the node's Multus config on stdin, a `.conf` or the
//! `.conflist` the agent generated; `CNI_PATH` optional):
//! - `sandboxes`: the cached sandboxes as JSON ([`survey`]);
//! - `detach <containerID>`: DEL the secondary attachments of a live
//!   sandbox ([`detach`]);
//! - `release <containerID>`: DEL everything of a sandbox that is gone
//!   and remove its cache file ([`release`]);
//! - `forget <containerID>`: remove the cache file of a live sandbox that
//!   holds the cluster network only.
//!
//! `--mount-ns` names a mount namespace to enter first (the agent passes
//! the host's, that of the runtime's shim above its container, which runs
//! in the host's PID
//! namespace), so the paths in the config and in the cache are host
//! paths, as for the runtime.

pub mod detach;
pub mod release;
pub mod survey;

use std::path::PathBuf;

use multus_config::multus_conf::{MultusConfError, MultusNetConf};
use serde_json::Value;

use crate::cache::{Cache, CacheError};
use crate::error::PluginError;

/// The first argument that selects upkeep instead of the CNI protocol.
pub const SUBCOMMAND: &str = "upkeep";

/// Why an upkeep task failed.
#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    /// The command line is wrong.
    #[error(
        "usage: multus upkeep [--mount-ns FILE] sandboxes|detach ID|release ID|forget ID ({0})"
    )]
    Usage(String),
    /// The mount namespace cannot be entered.
    #[error("cannot enter the mount namespace {}: {source}", path.display())]
    MountNs {
        /// The namespace file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Multus config on stdin is unusable.
    #[error("the Multus config on stdin: {0}")]
    Config(#[from] MultusConfError),
    /// The Multus config on stdin is a conflist without plugins.
    #[error("the Multus config on stdin: a conflist without plugins")]
    EmptyConfList,
    /// The cache cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The container has no cache file.
    #[error("no cache for container {0}")]
    NoCache(String),
    /// Detach needs a sandbox that exists.
    #[error("the sandbox of container {container_id} is not known to exist: {reason}")]
    NotPresent {
        /// The container.
        container_id: String,
        /// Why.
        reason: String,
    },
    /// Release needs a sandbox that is gone.
    #[error("the sandbox of container {container_id} is not known to be gone: {reason}")]
    NotGone {
        /// The container.
        container_id: String,
        /// Why.
        reason: String,
    },
    /// Forget needs a sandbox without secondary attachments.
    #[error("container {container_id} still has {attachments}")]
    StillAttached {
        /// The container.
        container_id: String,
        /// The attachments.
        attachments: String,
    },
    /// A delegate failed.
    #[error(transparent)]
    Plugin(Box<PluginError>),
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The answer cannot be encoded.
    #[error("cannot encode the answer: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<PluginError> for UpkeepError {
    fn from(error: PluginError) -> Self {
        Self::Plugin(Box::new(error))
    }
}

/// An upkeep task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// List the cached sandboxes.
    Sandboxes,
    /// Detach the secondary attachments of a live sandbox.
    Detach(String),
    /// Release a sandbox that is gone.
    Release(String),
    /// Forget a live sandbox with the cluster network only.
    Forget(String),
}

/// `multus upkeep`'s command line (after the subcommand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpkeepArgs {
    /// The mount namespace to enter first.
    pub mount_ns: Option<PathBuf>,
    /// The task.
    pub task: Task,
}

impl UpkeepArgs {
    /// Parses the arguments after `upkeep`.
    pub fn parse(args: &[String]) -> Result<Self, UpkeepError> {
        let mut mount_ns = None;
        let mut rest = args;
        while let Some(first) = rest.first() {
            if let Some(value) = first.strip_prefix("--mount-ns=") {
                mount_ns = Some(PathBuf::from(value));
                rest = &rest[1..];
            } else if first == "--mount-ns" {
                let value = rest
                    .get(1)
                    .ok_or_else(|| UpkeepError::Usage("--mount-ns needs a file".into()))?;
                mount_ns = Some(PathBuf::from(value));
                rest = &rest[2..];
            } else {
                break;
            }
        }
        let id = |task: &str| -> Result<String, UpkeepError> {
            match rest {
                [_, id] if crate::env::valid_container_id(id) => Ok(id.clone()),
                _ => Err(UpkeepError::Usage(format!(
                    "{task} needs one valid container ID"
                ))),
            }
        };
        let task = match rest.first().map(String::as_str) {
            Some("sandboxes") if rest.len() == 1 => Task::Sandboxes,
            Some("detach") => Task::Detach(id("detach")?),
            Some("release") => Task::Release(id("release")?),
            Some("forget") => Task::Forget(id("forget")?),
            other => {
                return Err(UpkeepError::Usage(format!(
                    "unknown task {:?}",
                    other.unwrap_or_default()
                )));
            }
        };
        Ok(Self { mount_ns, task })
    }
}

/// The Multus config from stdin: a `.conf`, or the first plugin of a
/// `.conflist` with the list's `name` and `cniVersion` (as libcni hands
/// it to the plugin).
pub fn multus_conf(stdin: &[u8]) -> Result<MultusNetConf, UpkeepError> {
    let value: Value = serde_json::from_slice(stdin).map_err(MultusConfError::from)?;
    let Some(plugins) = value.get("plugins") else {
        return Ok(MultusNetConf::parse(stdin)?);
    };
    let mut first = plugins
        .as_array()
        .and_then(|p| p.first())
        .and_then(Value::as_object)
        .cloned()
        .ok_or(UpkeepError::EmptyConfList)?;
    for key in ["name", "cniVersion"] {
        if let Some(v) = value.get(key) {
            first.insert(key.into(), v.clone());
        }
    }
    Ok(MultusNetConf::parse(&serde_json::to_vec(&first)?)?)
}

/// Enters the mount namespace `path` (the process must still be single
/// threaded).
fn enter_mount_ns(path: &PathBuf) -> Result<(), UpkeepError> {
    let error = |source| UpkeepError::MountNs {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(error)?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| error(std::io::Error::from(e)))
}

/// A client for the API server, when the config names one.
pub async fn api_client(conf: &MultusNetConf) -> Option<crate::k8s::K8sClient> {
    match crate::k8s::K8sClient::connect(conf, crate::k8s::K8sSettings::default()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "no API access");
            None
        }
    }
}

/// `CNI_PATH` as the agent passes it to its children, split (empty
/// entries dropped).
pub fn split_cni_path(cni_path: Option<&str>) -> Vec<PathBuf> {
    cni_path
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Runs one upkeep task; the JSON answer for stdout.
pub fn run(
    args: &UpkeepArgs,
    stdin: &[u8],
    cni_path: Option<&str>,
) -> Result<Vec<u8>, UpkeepError> {
    if let Some(ns) = &args.mount_ns {
        enter_mount_ns(ns)?;
    }
    let conf = multus_conf(stdin)?;
    crate::logging::init(Some(&conf));
    let cni_path = split_cni_path(cni_path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UpkeepError::Runtime)?;
    runtime.block_on(async {
        Ok(match &args.task {
            Task::Sandboxes => {
                let mut found = survey::survey(&Cache::for_conf(&conf))?;
                if found
                    .iter()
                    .any(|s| s.state == survey::SandboxState::Unknown && s.netns.is_none())
                {
                    let client = api_client(&conf).await;
                    survey::judge_by_the_api(client.as_ref(), &mut found).await;
                }
                serde_json::to_vec(&found)?
            }
            Task::Detach(id) => serde_json::to_vec(&detach::detach(&conf, &cni_path, id).await?)?,
            Task::Release(id) => {
                serde_json::to_vec(&release::release(&conf, &cni_path, id).await?)?
            }
            Task::Forget(id) => serde_json::to_vec(&release::forget(&conf, id)?)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_line_names_one_task() {
        let parsed =
            UpkeepArgs::parse(&args(&["--mount-ns", "/proc/1/ns/mnt", "detach", "c1"])).unwrap();
        assert_eq!(parsed.mount_ns, Some(PathBuf::from("/proc/1/ns/mnt")));
        assert_eq!(parsed.task, Task::Detach("c1".into()));
        assert_eq!(
            UpkeepArgs::parse(&args(&["--mount-ns=/x", "sandboxes"]))
                .unwrap()
                .task,
            Task::Sandboxes
        );
        for bad in [
            &["detach"][..],
            &["release", "../etc"],
            &["forget", "a", "b"],
            &["frob"],
            &["--mount-ns"],
            &[],
        ] {
            assert!(
                matches!(UpkeepArgs::parse(&args(bad)), Err(UpkeepError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_conflist_gives_its_first_plugin_with_the_list_name_and_version() {
        let conf = multus_conf(
            br#"{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[
                {"type":"multus","cniDir":"/var/lib/cni/multus",
                 "delegates":[{"cniVersion":"1.0.0","name":"kindnet","type":"ptp"}]}]}"#,
        )
        .unwrap();
        assert_eq!(conf.cni_dir, "/var/lib/cni/multus");
        assert_eq!(conf.cni_version.as_deref(), Some("1.0.0"));
        assert!(matches!(
            multus_conf(br#"{"name":"x","plugins":[]}"#),
            Err(UpkeepError::EmptyConfList)
        ));
    }
}
