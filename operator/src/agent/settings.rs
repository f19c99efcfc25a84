//! The agent's [`Settings`] (from the command line and the environment,
//! see [`super::args`]), the fixed names, modes and timings that go with
//! them, and loading the generator options of the `--config` file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multus_config::generate::GeneratorOptions;

use super::credential::CredentialSettings;
use super::fsutil::IoError;
use super::install;
use super::kubeconfig::{KubeconfigPaths, TokenSource};

/// Name of the directory under the conf dir holding the kubeconfig, the
/// token copy and our record of installed files.
pub const MULTUS_D: &str = "multus.d";

/// Mode of every file the agent writes in the conf dir and `multus.d/`.
pub const CONF_MODE: u32 = 0o600;

/// Full resync period (a safety net for missed events).
pub const RESYNC: Duration = Duration::from_secs(60);

/// How often a missing readiness indicator file (or a directory that could
/// not be watched yet) is checked again.
pub const POLL: Duration = Duration::from_secs(1);

/// How long the previous primary may stay unreadable or unparsable before
/// the agent switches to another primary. A CNI plugin rewriting its config
/// in place briefly leaves a partial file; switching networks for that
/// would be worse than waiting.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The agent's settings (from the command line and the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The CNI conf dir as the agent sees it (`--cni-conf-dir`).
    pub cni_conf_dir: PathBuf,
    /// The same directory on the host (`--host-cni-conf-dir`); paths
    /// written into files use it.
    pub host_cni_conf_dir: PathBuf,
    /// The CNI bin dir as the agent sees it (`--cni-bin-dir`).
    pub cni_bin_dir: PathBuf,
    /// The Multus conf dir as the agent sees it (`--multus-conf-dir`):
    /// the configs of NetworkAttachmentDefinitions without `spec.config`.
    /// Only read; a missing directory has no networks.
    pub multus_conf_dir: PathBuf,
    /// The plugin binary to install; `None` = `multus` beside the agent.
    pub plugin_binary: Option<PathBuf>,
    /// The projected service-account directory.
    pub service_account_dir: PathBuf,
    /// The generator options file (`--config`), YAML or JSON.
    pub config_file: Option<PathBuf>,
    /// API server URL for the plugin's kubeconfig (from
    /// `KUBERNETES_SERVICE_HOST/PORT`); `None` disables the kubeconfig.
    pub api_server: Option<String>,
    /// This node's name.
    pub node_name: Option<String>,
    /// The MultusConfig this agent belongs to (recorded in the node state).
    pub multus_config_name: Option<String>,
    /// Whether to report to the API server (`MultusNodeState`).
    pub kube: bool,
    /// Address of `/healthz`, `/readyz`, `/metrics`.
    pub metrics_address: SocketAddr,
    /// The plugin's ServiceAccount and token lifetime: with them (and
    /// `kube`), a long-running agent gives the plugin tokens of its own
    /// ([`super::credential`]); without them, a copy of the agent's token.
    pub plugin_credential: Option<CredentialSettings>,
    /// Network hot-plug, when enabled ([`super::hotplug`]).
    pub network_hotplug: Option<HotplugSettings>,
}

/// What network hot-plug needs besides the node-local caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotplugSettings {
    /// The container runtime's CRI socket (host path).
    pub cri_socket: PathBuf,
    /// `CNI_PATH` of the delegates (the host's CNI bin dir).
    pub host_cni_bin_dir: PathBuf,
}

impl Settings {
    /// `<cni-conf-dir>/multus.d`.
    pub fn multus_d(&self) -> PathBuf {
        self.cni_conf_dir.join(MULTUS_D)
    }

    /// The kubeconfig paths.
    pub fn kubeconfig_paths(&self) -> KubeconfigPaths {
        KubeconfigPaths {
            service_account_dir: self.service_account_dir.clone(),
            multus_d: self.multus_d(),
            host_multus_d: self.host_cni_conf_dir.join(MULTUS_D),
            server: self.api_server.clone(),
            token_source: TokenSource::CopyServiceAccount,
        }
    }

    /// The plugin binary to install.
    pub fn plugin_source(&self) -> Result<PathBuf, IoError> {
        match &self.plugin_binary {
            Some(path) => Ok(path.clone()),
            None => install::default_plugin_source(),
        }
    }

    /// Where the agent finds a host path: paths under the host conf dir map
    /// into the conf dir it sees; other paths are used as they are (the
    /// DaemonSet must mount them at the same path).
    pub fn container_path(&self, host_path: &str) -> PathBuf {
        let host = Path::new(host_path);
        match host.strip_prefix(&self.host_cni_conf_dir) {
            Ok(rest) => self.cni_conf_dir.join(rest),
            Err(_) => host.to_path_buf(),
        }
    }
}

/// Loads the generator options from `path` (YAML or JSON).
pub fn load_options(path: &Path) -> Result<GeneratorOptions, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

#[cfg(test)]
impl Settings {
    /// Settings rooted in a temporary directory, without API access.
    pub(crate) fn for_test(dir: &Path) -> Self {
        Self {
            cni_conf_dir: dir.join("net.d"),
            host_cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dir: dir.join("bin"),
            multus_conf_dir: dir.join("multus.net.d"),
            plugin_binary: None,
            service_account_dir: dir.join("sa"),
            config_file: None,
            api_server: None,
            node_name: None,
            multus_config_name: None,
            kube: false,
            metrics_address: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            plugin_credential: None,
            network_hotplug: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings::for_test(dir)
    }

    #[test]
    fn host_paths_under_the_conf_dir_map_into_the_container() {
        let s = settings(Path::new("/host"));
        assert_eq!(
            s.container_path("/etc/cni/net.d/10-calico.conflist"),
            PathBuf::from("/host/net.d/10-calico.conflist")
        );
        assert_eq!(
            s.container_path("/run/flannel/subnet.env"),
            PathBuf::from("/run/flannel/subnet.env")
        );
        assert_eq!(
            s.kubeconfig_paths().host_token(),
            PathBuf::from("/etc/cni/net.d/multus.d/token")
        );
    }
}
