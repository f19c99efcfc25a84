//! Executing delegate CNI plugins, single configs and conflists, the way a
//! runtime (libcni) does: one process per plugin, CNI env vars, config on
//! stdin, `prevResult` chaining inside a list, capability arguments injected
//! into `runtimeConfig` for the capabilities a plugin declares.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use multus_config::cni::CniVersion;
use multus_config::cni::error::CniError;
use multus_config::cni::netconf::{NetConf, NetworkConfig};
use multus_config::cni::result::{CniResult, ConvertError, ResultError};
use multus_config::cni::runtime::inject_capability_args;
use multus_config::cni::version::UnknownVersion;
use multus_config::multus_conf::MultusNetConf;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::attachment::Attachment;
use crate::env::CniEnv;

/// Default time a delegate may take for one command.
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most bytes of a delegate's stderr kept for error messages.
const STDERR_LIMIT: usize = 8 * 1024;

/// Why a delegate plugin did not do its job. Its CNI error object (the
/// plugin's own, or one made for it) is
/// [`DelegateError::to_cni_error`] in crate::error.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// The plugin ran and failed: its CNI error object, or one describing
    /// its output when it printed none.
    #[error("{}", .0.msg)]
    Failed(CniError),
    /// The network's `type` is not a file name.
    #[error("invalid plugin type {0:?}")]
    InvalidType(String),
    /// No directory of the search path holds the plugin.
    #[error(
        "failed to find plugin {plugin_type:?} in [{}]",
        .path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The plugin.
        plugin_type: String,
        /// The directories searched.
        path: Vec<PathBuf>,
    },
    /// The plugin process could not be started.
    #[error("cannot start plugin {}: {source}", .binary.display())]
    Start {
        /// The plugin binary.
        binary: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin process could not be waited for.
    #[error("cannot wait for plugin {}: {source}", .binary.display())]
    Wait {
        /// The plugin binary.
        binary: PathBuf,
        /// The wait error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not finish in time (it was killed).
    #[error("plugin {plugin_type} did not finish {command} within {}s", .timeout.as_secs())]
    Timeout {
        /// The plugin.
        plugin_type: String,
        /// The CNI command.
        command: String,
        /// Its time limit.
        timeout: Duration,
    },
    /// The network's `cniVersion` is not one we know.
    #[error(transparent)]
    Version(#[from] UnknownVersion),
    /// The plugin's result does not parse or convert to the network's
    /// version.
    #[error("plugin {plugin} returned an invalid result: {problem}")]
    InvalidResult {
        /// The plugin.
        plugin: String,
        /// What is wrong with it.
        #[source]
        problem: InvalidResult,
        /// The start of what the plugin printed.
        output: String,
    },
    /// The previous plugin's result cannot be encoded for the next one.
    #[error(transparent)]
    PrevResult(serde_json::Error),
    /// The network lists no plugins.
    #[error("the network has no plugins")]
    NoPlugins,
}

/// What is wrong with a plugin's result.
#[derive(Debug, thiserror::Error)]
pub enum InvalidResult {
    /// It does not parse.
    #[error(transparent)]
    Parse(#[from] ResultError),
    /// It cannot be given in the network's version.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// The CNI environment a delegate is run with.
#[derive(Debug, Clone)]
pub struct ExecEnv {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// Directories searched for the plugin binary, in order; also passed as
    /// `CNI_PATH`.
    pub path: Vec<PathBuf>,
    /// How long one plugin process may run.
    pub timeout: Duration,
}

impl ExecEnv {
    /// The environment a delegate of `attachment` runs with: the runtime's
    /// container and namespace, the attachment's interface and `CNI_ARGS`.
    pub fn for_attachment(env: &CniEnv, conf: &MultusNetConf, attachment: &Attachment) -> Self {
        crate::report::attachment(attachment);
        Self {
            container_id: env.container_id.clone(),
            netns: env.netns.clone(),
            ifname: attachment.ifname.clone(),
            args: attachment.cni_args.clone(),
            path: search_path(Path::new(&conf.bin_dir), &env.path),
            timeout: DEFAULT_DELEGATE_TIMEOUT,
        }
    }

    /// The environment of a command about a whole network rather than one
    /// container (STATUS, GC): no container, namespace, interface or
    /// `CNI_ARGS`.
    pub fn for_network(env: &CniEnv, conf: &MultusNetConf) -> Self {
        Self {
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            args: String::new(),
            path: search_path(Path::new(&conf.bin_dir), &env.path),
            timeout: DEFAULT_DELEGATE_TIMEOUT,
        }
    }
}

/// Finds the binary of plugin `plugin_type` in `path`.
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf, DelegateError> {
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type.starts_with('.') {
        return Err(DelegateError::InvalidType(plugin_type.to_owned()));
    }
    path.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| DelegateError::NotFound {
            plugin_type: plugin_type.to_owned(),
            path: path.to_vec(),
        })
}

/// Runs one plugin process with `command` and `stdin`; returns its stdout.
/// Recorded for the node agent's report ([`crate::report`]).
pub async fn exec_plugin(
    command: &str,
    plugin_type: &str,
    stdin: &[u8],
    env: &ExecEnv,
) -> Result<Vec<u8>, DelegateError> {
    let started = std::time::Instant::now();
    let outcome = run_plugin(command, plugin_type, stdin, env).await;
    crate::report::exec(
        &env.ifname,
        command,
        plugin_type,
        started,
        outcome.as_ref().err(),
    );
    outcome
}

async fn run_plugin(
    command: &str,
    plugin_type: &str,
    stdin: &[u8],
    env: &ExecEnv,
) -> Result<Vec<u8>, DelegateError> {
    let binary = find_plugin(plugin_type, &env.path)?;
    let cni_path = std::env::join_paths(&env.path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", &env.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match &env.netns {
        Some(netns) => cmd.env("CNI_NETNS", netns),
        None => cmd.env_remove("CNI_NETNS"),
    };
    tracing::debug!(plugin = plugin_type, command, ifname = %env.ifname, "executing delegate");
    let mut child = cmd.spawn().map_err(|source| DelegateError::Start {
        binary: binary.clone(),
        source,
    })?;
    let run = async {
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin that exits without reading its stdin is not an error.
            let _ = pipe.write_all(stdin).await;
            drop(pipe);
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let read_out = async {
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut stdout).await;
            }
        };
        let read_err = async {
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut stderr).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, stdout, stderr)
    };
    let (status, stdout, mut stderr) =
        tokio::time::timeout(env.timeout, run)
            .await
            .map_err(|_| DelegateError::Timeout {
                plugin_type: plugin_type.to_owned(),
                command: command.to_owned(),
                timeout: env.timeout,
            })?;
    let status = status.map_err(|source| DelegateError::Wait { binary, source })?;
    stderr.truncate(STDERR_LIMIT);
    if status.success() {
        Ok(stdout)
    } else {
        Err(DelegateError::Failed(CniError::from_plugin_failure(
            plugin_type,
            &stdout,
            &stderr,
        )))
    }
}

/// Prepares one plugin's stdin: capability arguments, `prevResult`, and for
/// GC the valid attachments.
fn plugin_stdin(
    mut conf: NetConf,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
    extra: &Map<String, Value>,
) -> Vec<u8> {
    inject_capability_args(&mut conf, capability_args);
    if let Some(prev) = prev_result {
        conf.prev_result = Some(prev.clone());
    }
    for (k, v) in extra {
        conf.extra.insert(k.clone(), v.clone());
    }
    conf.to_bytes()
}

/// The plugins of a network as the runtime executes them (list-level name
/// and version applied).
fn exec_plugins(config: &NetworkConfig) -> Vec<NetConf> {
    match config {
        NetworkConfig::Conf(conf) => vec![conf.clone()],
        NetworkConfig::List(list) => (0..list.plugins.len())
            .filter_map(|i| list.plugin_for_exec(i))
            .collect(),
    }
}

/// The version a network's plugins speak (0.1.0 when unset, as libcni).
pub fn config_version(config: &NetworkConfig) -> Result<CniVersion, DelegateError> {
    match config.cni_version_str() {
        None | Some("") => Ok(CniVersion::V0_1_0),
        Some(text) => Ok(text.parse()?),
    }
}

fn decode_result(
    plugin: &str,
    bytes: &[u8],
    version: CniVersion,
) -> Result<CniResult, DelegateError> {
    let fail = |problem: InvalidResult| DelegateError::InvalidResult {
        plugin: plugin.to_owned(),
        problem,
        output: String::from_utf8_lossy(bytes)
            .chars()
            .take(512)
            .collect::<String>(),
    };
    CniResult::parse(bytes, Some(version))
        .map_err(|e| fail(e.into()))?
        .convert_to(version)
        .map_err(|e| fail(e.into()))
}

/// ADD of a network (conf or conflist); the result is in the network's own
/// CNI version.
pub async fn add_network(
    config: &NetworkConfig,
    capability_args: &Map<String, Value>,
    env: &ExecEnv,
) -> Result<CniResult, DelegateError> {
    let version = config_version(config)?;
    let mut prev: Option<CniResult> = None;
    for plugin in exec_plugins(config) {
        let plugin_type = plugin.plugin_type.clone();
        let prev_value = prev
            .as_ref()
            .map(|r| r.to_value())
            .transpose()
            .map_err(DelegateError::PrevResult)?;
        let stdin = plugin_stdin(plugin, capability_args, prev_value.as_ref(), &Map::new());
        let out = exec_plugin("ADD", &plugin_type, &stdin, env).await?;
        prev = Some(decode_result(&plugin_type, &out, version)?);
    }
    prev.ok_or(DelegateError::NoPlugins)
}

/// DEL of a network, plugins in reverse order; `prev_result` is the cached
/// ADD result (given to plugins of CNI >= 0.4.0). Every plugin is called even
/// if an earlier one fails; the first error is returned.
pub async fn del_network(
    config: &NetworkConfig,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
    env: &ExecEnv,
) -> Result<(), DelegateError> {
    let version = config_version(config)?;
    let prev = prev_result.filter(|_| version >= CniVersion::V0_4_0);
    let mut first_error = None;
    for plugin in exec_plugins(config).into_iter().rev() {
        let plugin_type = plugin.plugin_type.clone();
        let stdin = plugin_stdin(plugin, capability_args, prev, &Map::new());
        if let Err(e) = exec_plugin("DEL", &plugin_type, &stdin, env).await {
            tracing::warn!(plugin = %plugin_type, error = %e.to_cni_error(), "delegate DEL failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// CHECK of a network with its cached result; a no-op for versions before
/// 0.4.0 and lists with `disableCheck`.
pub async fn check_network(
    config: &NetworkConfig,
    capability_args: &Map<String, Value>,
    prev_result: &Value,
    env: &ExecEnv,
) -> Result<(), DelegateError> {
    let version = config_version(config)?;
    if !version.supports_check() {
        return Ok(());
    }
    if let NetworkConfig::List(list) = config
        && list.disable_check == Some(true)
    {
        return Ok(());
    }
    for plugin in exec_plugins(config) {
        let plugin_type = plugin.plugin_type.clone();
        let stdin = plugin_stdin(plugin, capability_args, Some(prev_result), &Map::new());
        exec_plugin("CHECK", &plugin_type, &stdin, env).await?;
    }
    Ok(())
}

/// STATUS of every plugin of a network (CNI >= 1.1.0; older: ready).
pub async fn status_network(config: &NetworkConfig, env: &ExecEnv) -> Result<(), DelegateError> {
    if !config_version(config)?.supports_status_and_gc() {
        return Ok(());
    }
    for plugin in exec_plugins(config) {
        let plugin_type = plugin.plugin_type.clone();
        let stdin = plugin_stdin(plugin, &Map::new(), None, &Map::new());
        exec_plugin("STATUS", &plugin_type, &stdin, env).await?;
    }
    Ok(())
}

/// GC of every plugin of a network (CNI >= 1.1.0) with the attachments that
/// are still valid (`cni.dev/valid-attachments`).
pub async fn gc_network(
    config: &NetworkConfig,
    valid_attachments: &[Value],
    env: &ExecEnv,
) -> Result<(), DelegateError> {
    if !config_version(config)?.supports_status_and_gc() {
        return Ok(());
    }
    if let NetworkConfig::List(list) = config
        && list.disable_gc == Some(true)
    {
        return Ok(());
    }
    let mut extra = Map::new();
    extra.insert(
        "cni.dev/valid-attachments".into(),
        Value::Array(valid_attachments.to_vec()),
    );
    for plugin in exec_plugins(config) {
        let plugin_type = plugin.plugin_type.clone();
        let stdin = plugin_stdin(plugin, &Map::new(), None, &extra);
        exec_plugin("GC", &plugin_type, &stdin, env).await?;
    }
    Ok(())
}

/// `binDir` first, then the runtime's `CNI_PATH`, without duplicates.
pub fn search_path(bin_dir: &Path, cni_path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![bin_dir.to_path_buf()];
    for p in cni_path {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_types_cannot_be_paths() {
        for bad in ["", "../bridge", "/bin/sh", ".hidden"] {
            let err = find_plugin(bad, &[PathBuf::from("/usr/lib/cni")])
                .unwrap_err()
                .to_cni_error();
            assert_eq!(err.code, 7, "{bad:?}");
        }
    }

    #[test]
    fn missing_plugins_name_the_directories() {
        let err = find_plugin("no-such-plugin", &[PathBuf::from("/nonexistent/bin")]).unwrap_err();
        let err = err.to_cni_error();
        assert_eq!(err.code, 50);
        assert!(err.msg.contains("no-such-plugin"), "{}", err.msg);
        assert!(err.msg.contains("/nonexistent/bin"), "{}", err.msg);
    }

    #[test]
    fn search_path_puts_bin_dir_first_without_duplicates() {
        let path = search_path(
            Path::new("/opt/cni/bin"),
            &[PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
        );
        assert_eq!(
            path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn stdin_gets_declared_capabilities_and_prev_result() {
        let conf = NetConf::from_value(serde_json::json!({
            "cniVersion": "1.0.0", "name": "n", "type": "portmap",
            "capabilities": {"portMappings": true}
        }))
        .unwrap();
        let mut caps = Map::new();
        caps.insert("portMappings".into(), serde_json::json!([{"hostPort": 80}]));
        caps.insert("mac".into(), serde_json::json!("aa:bb:cc:dd:ee:ff"));
        let prev = serde_json::json!({"cniVersion": "1.0.0"});
        let bytes = plugin_stdin(conf, &caps, Some(&prev), &Map::new());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        assert!(
            v["runtimeConfig"].get("mac").is_none(),
            "undeclared capability"
        );
        assert_eq!(v["prevResult"]["cniVersion"], "1.0.0");
    }
}
