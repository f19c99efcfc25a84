//! The node agent's command line, the one contract between the controller
//! and the agent: [`NodeAgentArgs`] is what `multus-operator node-agent`
//! parses (clap) and what the controller renders into the DaemonSet
//! ([`NodeAgentArgs::to_args`]); [`UninstallArgs`] is the `--uninstall`
//! form of the same command line. The defaults are the constants below,
//! used by clap and by the controller alike. The agent turns the parsed
//! arguments into its [`Settings`] here too.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, FromArgMatches as _, ValueEnum};
use multus_config::crd::multus_config as spec_defaults;

use super::credential::CredentialSettings;
use super::settings::{HotplugSettings, Settings};

/// The subcommand of `multus-operator` that runs the agent; the first of
/// its rendered arguments.
pub const SUBCOMMAND: &str = "node-agent";

/// Default `--cni-conf-dir`: where the DaemonSet mounts the host's CNI conf
/// dir.
pub const DEFAULT_CNI_CONF_DIR: &str = "/host/etc/cni/net.d";
/// Default `--host-cni-conf-dir`: the usual CNI conf dir on the host.
pub const DEFAULT_HOST_CNI_CONF_DIR: &str = spec_defaults::DEFAULT_CNI_CONF_DIR;
/// Default `--cni-bin-dir`: where the DaemonSet mounts the host's CNI bin
/// dir.
pub const DEFAULT_CNI_BIN_DIR: &str = "/host/opt/cni/bin";
/// Default `--multus-conf-dir`: where the DaemonSet mounts the host's
/// Multus conf dir.
pub const DEFAULT_MULTUS_CONF_DIR: &str = "/host/etc/cni/multus/net.d";
/// Default `--service-account-dir`: where Kubernetes mounts the projected
/// service-account token.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Port of `/healthz`, `/readyz` and `/metrics`.
pub const DEFAULT_METRICS_PORT: u16 = 9101;
/// Default `--metrics-address`: the port on the loopback address.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_METRICS_PORT));
/// Default `--plugin-token-expiration-seconds`: the MultusConfig's default.
pub const DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS: u32 =
    spec_defaults::DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS;

pub use crate::logging::LogFormat;

/// `--attached-pods`: the spec's `attachedPodsOnRemoval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum AttachedPods {
    /// Wait until the pods with secondary attachments are gone.
    #[default]
    Wait,
    /// Detach their secondary attachments, then remove Multus.
    Detach,
}

impl From<spec_defaults::AttachedPodsPolicy> for AttachedPods {
    fn from(policy: spec_defaults::AttachedPodsPolicy) -> Self {
        match policy {
            spec_defaults::AttachedPodsPolicy::Wait => Self::Wait,
            spec_defaults::AttachedPodsPolicy::Detach => Self::Detach,
        }
    }
}

/// The directories the agent installs into. An uninstall must be given the
/// same ones to find what it installed.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct InstallDirs {
    /// The CNI conf dir as mounted into the agent.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CNI_CONF_DIR)]
    pub cni_conf_dir: PathBuf,
    /// The same directory's path on the host; written into generated files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_HOST_CNI_CONF_DIR)]
    pub host_cni_conf_dir: PathBuf,
    /// The CNI bin dir as mounted into the agent; the plugin is installed here.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CNI_BIN_DIR)]
    pub cni_bin_dir: PathBuf,
}

impl Default for InstallDirs {
    fn default() -> Self {
        Self {
            cni_conf_dir: DEFAULT_CNI_CONF_DIR.into(),
            host_cni_conf_dir: DEFAULT_HOST_CNI_CONF_DIR.into(),
            cni_bin_dir: DEFAULT_CNI_BIN_DIR.into(),
        }
    }
}

impl InstallDirs {
    fn push_args(&self, args: &mut Vec<String>) {
        push_value(args, "cni-conf-dir", self.cni_conf_dir.display());
        push_value(args, "host-cni-conf-dir", self.host_cni_conf_dir.display());
        push_value(args, "cni-bin-dir", self.cni_bin_dir.display());
    }
}

/// Options of `multus-operator node-agent`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct NodeAgentArgs {
    /// The directories the agent installs into.
    #[command(flatten)]
    pub dirs: InstallDirs,
    /// The Multus conf dir as mounted into the agent (read only): its CNI
    /// network names are reported for NADs without `spec.config`.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MULTUS_CONF_DIR)]
    pub multus_conf_dir: PathBuf,
    /// The multus plugin binary to install [default: `multus` beside this executable].
    #[arg(long, value_name = "PATH")]
    pub plugin_binary: Option<PathBuf>,
    /// The projected service-account directory (token, ca.crt).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SERVICE_ACCOUNT_DIR)]
    pub service_account_dir: PathBuf,
    /// Generator options (YAML, rendered by the controller from the MultusConfig).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's name (MultusNodeState/<node>).
    #[allow(rustdoc::invalid_html_tags)] // clap help text, not HTML
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The MultusConfig this agent belongs to (recorded in MultusNodeState).
    #[arg(long, env = "MULTUS_CONFIG_NAME", value_name = "NAME")]
    pub multus_config_name: Option<String>,
    /// Do not talk to the API server (no MultusNodeState).
    #[arg(long)]
    pub no_kube: bool,
    /// Install and generate once, then exit (non-zero when no current config).
    #[arg(long, conflicts_with = "uninstall")]
    pub once: bool,
    /// Remove exactly what the agent installed on this node, then exit.
    #[arg(long)]
    pub uninstall: bool,
    /// With --uninstall: what to do while pods on the node still have
    /// secondary networks attached through Multus (wait until they are
    /// gone, or detach those networks first).
    #[arg(long, value_enum, default_value_t = AttachedPods::Wait)]
    pub attached_pods: AttachedPods,
    /// With --uninstall: the CNI bin dir on the host (the delegates'
    /// `CNI_PATH` when the plugin detaches or releases attachments).
    #[arg(long, value_name = "DIR", default_value = multus_config::multus_conf::DEFAULT_BIN_DIR)]
    pub host_cni_bin_dir: PathBuf,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_METRICS_ADDRESS)]
    pub metrics_address: SocketAddr,
    /// Log format (stderr); the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The plugin's own ServiceAccount (`multus-plugin-<mc>`): the agent
    /// requests tokens of it for the plugin (TokenRequest API) instead of
    /// giving the plugin a copy of its own token. Not with --no-kube or
    /// --once.
    #[arg(long, value_name = "NAME")]
    pub plugin_service_account: Option<String>,
    /// Lifetime of the plugin's tokens; the agent refreshes them at half
    /// their life. The API server may issue shorter ones.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS,
        value_parser = clap::value_parser!(u32).range(
            i64::from(spec_defaults::MIN_PLUGIN_TOKEN_EXPIRATION_SECONDS)
                ..=i64::from(spec_defaults::MAX_PLUGIN_TOKEN_EXPIRATION_SECONDS)
        )
    )]
    pub plugin_token_expiration_seconds: u32,
    /// Namespace of the plugin's ServiceAccount [default: the agent's own,
    /// from the service-account directory].
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Serve upstream's thick-plugin delegate API (`POST /delegate`,
    /// `/healthz`) on this unix socket (root only, 0600); upstream's path
    /// is /run/multus/multus.sock. Needs the host's PID namespace.
    #[arg(long, value_name = "PATH")]
    pub delegate_socket: Option<PathBuf>,
    /// Network hot-plug: follow the networks annotation of this node's
    /// running pods, asking the container runtime on this CRI socket (host
    /// path) for their sandboxes. Needs the host's PID namespace and the
    /// node-local caches (not with --no-kube or --once).
    #[arg(long, value_name = "PATH")]
    pub network_hotplug_cri_socket: Option<PathBuf>,
}

/// What clap gives for an empty command line (with no environment).
impl Default for NodeAgentArgs {
    fn default() -> Self {
        Self {
            dirs: InstallDirs::default(),
            multus_conf_dir: DEFAULT_MULTUS_CONF_DIR.into(),
            plugin_binary: None,
            service_account_dir: DEFAULT_SERVICE_ACCOUNT_DIR.into(),
            config: None,
            node_name: None,
            multus_config_name: None,
            no_kube: false,
            once: false,
            uninstall: false,
            attached_pods: AttachedPods::Wait,
            host_cni_bin_dir: multus_config::multus_conf::DEFAULT_BIN_DIR.into(),
            metrics_address: DEFAULT_METRICS_ADDRESS,
            log_format: LogFormat::Text,
            plugin_service_account: None,
            plugin_token_expiration_seconds: DEFAULT_PLUGIN_TOKEN_EXPIRATION_SECONDS,
            namespace: None,
            delegate_socket: None,
            network_hotplug_cri_socket: None,
        }
    }
}

/// `--name=value`.
fn push_value(args: &mut Vec<String>, name: &str, value: impl std::fmt::Display) {
    args.push(format!("--{name}={value}"));
}

/// `--name` when `set`.
fn push_flag(args: &mut Vec<String>, name: &str, set: bool) {
    if set {
        args.push(format!("--{name}"));
    }
}

/// `--name=value` when there is a value.
fn push_some(args: &mut Vec<String>, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(value) = value {
        push_value(args, name, value);
    }
}

/// `--attached-pods` and `--host-cni-bin-dir` when they differ from their
/// defaults.
fn push_removal_args(args: &mut Vec<String>, attached_pods: AttachedPods, host_bin_dir: &Path) {
    if attached_pods != AttachedPods::default()
        && let Some(value) = attached_pods.to_possible_value()
    {
        push_value(args, "attached-pods", value.get_name());
    }
    if host_bin_dir != Path::new(multus_config::multus_conf::DEFAULT_BIN_DIR) {
        push_value(args, "host-cni-bin-dir", host_bin_dir.display());
    }
}

/// The `node-agent` subcommand as clap sees it inside `multus-operator`.
fn command() -> clap::Command {
    clap::Command::new("multus-operator")
        .no_binary_name(true)
        .subcommand_required(true)
        .subcommand(NodeAgentArgs::augment_args(clap::Command::new(SUBCOMMAND)))
}

impl NodeAgentArgs {
    /// The command line (starting with [`SUBCOMMAND`]) that parses back to
    /// these arguments. It states the directories, the Multus conf dir, the
    /// metrics address and the token lifetime even at their defaults (a
    /// DaemonSet says where it mounts things); other options appear when set
    /// or, for those with a default, when they differ from it.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![SUBCOMMAND.to_owned()];
        push_flag(&mut args, "no-kube", self.no_kube);
        push_flag(&mut args, "once", self.once);
        push_flag(&mut args, "uninstall", self.uninstall);
        self.dirs.push_args(&mut args);
        push_removal_args(&mut args, self.attached_pods, &self.host_cni_bin_dir);
        push_value(&mut args, "multus-conf-dir", self.multus_conf_dir.display());
        push_some(
            &mut args,
            "plugin-binary",
            self.plugin_binary.as_deref().map(Path::display),
        );
        if self.service_account_dir != Path::new(DEFAULT_SERVICE_ACCOUNT_DIR) {
            push_value(
                &mut args,
                "service-account-dir",
                self.service_account_dir.display(),
            );
        }
        push_some(
            &mut args,
            "config",
            self.config.as_deref().map(Path::display),
        );
        push_some(&mut args, "node-name", self.node_name.as_deref());
        push_some(
            &mut args,
            "multus-config-name",
            self.multus_config_name.as_deref(),
        );
        push_value(&mut args, "metrics-address", self.metrics_address);
        if self.log_format != LogFormat::default()
            && let Some(value) = self.log_format.to_possible_value()
        {
            push_value(&mut args, "log-format", value.get_name());
        }
        push_some(
            &mut args,
            "plugin-service-account",
            self.plugin_service_account.as_deref(),
        );
        push_value(
            &mut args,
            "plugin-token-expiration-seconds",
            self.plugin_token_expiration_seconds,
        );
        push_some(&mut args, "namespace", self.namespace.as_deref());
        push_some(
            &mut args,
            "delegate-socket",
            self.delegate_socket.as_deref().map(Path::display),
        );
        push_some(
            &mut args,
            "network-hotplug-cri-socket",
            self.network_hotplug_cri_socket
                .as_deref()
                .map(Path::display),
        );
        args
    }

    /// Parses a command line rendered for a DaemonSet (starting with
    /// [`SUBCOMMAND`], as [`NodeAgentArgs::to_args`] writes it), the way the
    /// agent parses it but without reading this process's environment: the
    /// variables the agent reads (`NODE_NAME`, ...) are the agent pod's.
    pub fn parse_rendered<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = command().mut_subcommand(SUBCOMMAND, |agent| {
            agent.mut_args(|arg| arg.env(None::<&'static str>))
        });
        let mut matches = command.try_get_matches_from(args)?;
        let (_, mut agent) = matches
            .remove_subcommand()
            .expect("the subcommand is required");
        Self::from_arg_matches_mut(&mut agent)
    }

    /// [`NodeAgentArgs::parse_rendered`] for a command line that another
    /// version of the controller may have rendered: `--name[=value]`
    /// options this version does not know are left out first.
    pub fn parse_rendered_lenient(args: &[String]) -> Result<Self, clap::Error> {
        let command = command();
        let known: HashSet<&str> = command
            .find_subcommand(SUBCOMMAND)
            .into_iter()
            .flat_map(clap::Command::get_arguments)
            .filter_map(clap::Arg::get_long)
            .collect();
        let kept = args.iter().filter(|arg| {
            arg.strip_prefix("--")
                .map(|option| option.split_once('=').map_or(option, |(name, _)| name))
                .is_none_or(|name| known.contains(name))
        });
        Self::parse_rendered(kept)
    }

    /// The `--uninstall` command line of an agent that ran with these
    /// arguments: the same directories, nothing else.
    pub fn uninstall_form(&self) -> UninstallArgs {
        UninstallArgs {
            dirs: self.dirs.clone(),
            attached_pods: self.attached_pods,
            host_cni_bin_dir: self.host_cni_bin_dir.clone(),
        }
    }

    /// What the agent needs to give the plugin tokens of its own, when a
    /// plugin ServiceAccount is named.
    pub fn plugin_credential(&self) -> Option<CredentialSettings> {
        let service_account = self
            .plugin_service_account
            .clone()
            .filter(|n| !n.trim().is_empty())?;
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string(self.service_account_dir.join("namespace"))
                    .ok()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
            });
        let Some(namespace) = namespace else {
            tracing::warn!(
                service_account = %service_account,
                "the namespace of the plugin's ServiceAccount is unknown (set POD_NAMESPACE or \
                 --namespace); the plugin gets a copy of the agent's token"
            );
            return None;
        };
        Some(CredentialSettings {
            namespace,
            service_account,
            lifetime: Duration::from_secs(u64::from(self.plugin_token_expiration_seconds)),
            node: self.node_name.clone().filter(|n| !n.trim().is_empty()),
        })
    }

    /// The agent's settings: these arguments, the API server from
    /// `KUBERNETES_SERVICE_HOST/PORT` and, for the plugin's credential, the
    /// namespace (see [`NodeAgentArgs::plugin_credential`]).
    pub fn settings(&self) -> Settings {
        let api_server = match (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Ok(host), Ok(port)) if !host.trim().is_empty() && !port.trim().is_empty() => {
                Some(multus_config::generate::server_url(&host, &port))
            }
            _ => None,
        };
        Settings {
            cni_conf_dir: self.dirs.cni_conf_dir.clone(),
            host_cni_conf_dir: self.dirs.host_cni_conf_dir.clone(),
            cni_bin_dir: self.dirs.cni_bin_dir.clone(),
            multus_conf_dir: self.multus_conf_dir.clone(),
            plugin_binary: self.plugin_binary.clone(),
            service_account_dir: self.service_account_dir.clone(),
            config_file: self.config.clone(),
            api_server,
            node_name: self.node_name.clone().filter(|n| !n.is_empty()),
            multus_config_name: self.multus_config_name.clone().filter(|n| !n.is_empty()),
            kube: !self.no_kube,
            metrics_address: self.metrics_address,
            plugin_credential: self.plugin_credential(),
            network_hotplug: self.network_hotplug_cri_socket.clone().map(|cri_socket| {
                HotplugSettings {
                    cri_socket,
                    host_cni_bin_dir: self.host_cni_bin_dir.clone(),
                }
            }),
        }
    }
}

/// `node-agent --uninstall` with the directories an agent installed into
/// and what to do with pods still attached through Multus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallArgs {
    /// The directories the agent installed into.
    pub dirs: InstallDirs,
    /// What to do with pods that still have secondary attachments.
    pub attached_pods: AttachedPods,
    /// The CNI bin dir on the host.
    pub host_cni_bin_dir: PathBuf,
}

impl Default for UninstallArgs {
    fn default() -> Self {
        Self {
            dirs: InstallDirs::default(),
            attached_pods: AttachedPods::default(),
            host_cni_bin_dir: multus_config::multus_conf::DEFAULT_BIN_DIR.into(),
        }
    }
}

impl UninstallArgs {
    /// The command line (starting with [`SUBCOMMAND`]); it parses back to
    /// [`NodeAgentArgs`] with `uninstall` and these directories, everything
    /// else at its default.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![SUBCOMMAND.to_owned()];
        push_flag(&mut args, "uninstall", true);
        self.dirs.push_args(&mut args);
        push_removal_args(&mut args, self.attached_pods, &self.host_cni_bin_dir);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_option_set() -> NodeAgentArgs {
        NodeAgentArgs {
            dirs: InstallDirs {
                cni_conf_dir: "/c/net.d".into(),
                host_cni_conf_dir: "/etc/k/cni".into(),
                cni_bin_dir: "/c/bin".into(),
            },
            multus_conf_dir: "/c/multus".into(),
            plugin_binary: Some("/opt/multus".into()),
            service_account_dir: "/sa".into(),
            config: Some("/etc/multus/agent.yaml".into()),
            node_name: Some("node-a".into()),
            multus_config_name: Some("pool-a".into()),
            no_kube: true,
            once: true,
            uninstall: false,
            attached_pods: AttachedPods::Detach,
            host_cni_bin_dir: "/var/lib/k/bin".into(),
            metrics_address: "0.0.0.0:9200".parse().unwrap(),
            log_format: LogFormat::Json,
            plugin_service_account: Some("multus-plugin-pool-a".into()),
            plugin_token_expiration_seconds: 3600,
            namespace: Some("multus-system".into()),
            delegate_socket: Some("/run/multus/multus.sock".into()),
            network_hotplug_cri_socket: Some("/run/containerd/containerd.sock".into()),
        }
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn the_defaults_are_what_clap_gives_an_empty_command_line() {
        assert_eq!(
            NodeAgentArgs::parse_rendered([SUBCOMMAND]).unwrap(),
            NodeAgentArgs::default()
        );
    }

    #[test]
    fn rendered_arguments_parse_back_to_the_same_settings() {
        for args in [NodeAgentArgs::default(), every_option_set()] {
            let rendered = args.to_args();
            assert_eq!(rendered[0], SUBCOMMAND);
            assert_eq!(
                NodeAgentArgs::parse_rendered(&rendered).unwrap(),
                args,
                "{rendered:?}"
            );
        }
        let mut uninstall = NodeAgentArgs {
            uninstall: true,
            ..every_option_set()
        };
        uninstall.once = false;
        assert_eq!(
            NodeAgentArgs::parse_rendered(uninstall.to_args()).unwrap(),
            uninstall
        );
    }

    #[test]
    fn the_uninstall_form_keeps_only_the_directories() {
        let args = every_option_set().uninstall_form().to_args();
        assert_eq!(
            args,
            [
                "node-agent",
                "--uninstall",
                "--cni-conf-dir=/c/net.d",
                "--host-cni-conf-dir=/etc/k/cni",
                "--cni-bin-dir=/c/bin",
                "--attached-pods=detach",
                "--host-cni-bin-dir=/var/lib/k/bin",
            ]
        );
        assert_eq!(
            NodeAgentArgs::parse_rendered(&args).unwrap(),
            NodeAgentArgs {
                uninstall: true,
                dirs: every_option_set().dirs,
                attached_pods: AttachedPods::Detach,
                host_cni_bin_dir: "/var/lib/k/bin".into(),
                ..NodeAgentArgs::default()
            }
        );
    }

    #[test]
    fn only_the_lenient_parse_leaves_out_unknown_options() {
        let mut args = every_option_set().to_args();
        args.insert(2, "--from-a-newer-controller=1".to_owned());
        args.push("--also-new".to_owned());
        assert!(NodeAgentArgs::parse_rendered(&args).is_err());
        assert_eq!(
            NodeAgentArgs::parse_rendered_lenient(&args).unwrap(),
            every_option_set()
        );
        assert!(NodeAgentArgs::parse_rendered(["controller"]).is_err());
        assert!(NodeAgentArgs::parse_rendered_lenient(&["node-agent".into(), "x".into()]).is_err());
    }

    #[test]
    fn the_token_lifetime_is_bounded_like_the_multus_config() {
        let parse = |seconds: u32| {
            NodeAgentArgs::parse_rendered([
                SUBCOMMAND.to_owned(),
                format!("--plugin-token-expiration-seconds={seconds}"),
            ])
        };
        assert!(parse(spec_defaults::MIN_PLUGIN_TOKEN_EXPIRATION_SECONDS).is_ok());
        assert!(parse(spec_defaults::MAX_PLUGIN_TOKEN_EXPIRATION_SECONDS).is_ok());
        assert!(parse(spec_defaults::MIN_PLUGIN_TOKEN_EXPIRATION_SECONDS - 1).is_err());
        assert!(parse(spec_defaults::MAX_PLUGIN_TOKEN_EXPIRATION_SECONDS + 1).is_err());
    }

    #[test]
    fn the_plugin_credential_needs_an_account_and_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = NodeAgentArgs {
            service_account_dir: dir.path().to_path_buf(),
            plugin_service_account: Some("multus-plugin-a".into()),
            plugin_token_expiration_seconds: 3600,
            ..NodeAgentArgs::default()
        };
        // no namespace: neither given nor in the service-account directory
        assert_eq!(args.plugin_credential(), None);
        std::fs::write(dir.path().join("namespace"), "from-file\n").unwrap();
        assert_eq!(
            args.plugin_credential(),
            Some(CredentialSettings {
                namespace: "from-file".into(),
                service_account: "multus-plugin-a".into(),
                lifetime: Duration::from_secs(3600),
                node: None,
            })
        );
        args.namespace = Some("given".into());
        assert_eq!(args.plugin_credential().unwrap().namespace, "given");
        args.plugin_service_account = Some(" ".into());
        assert_eq!(args.plugin_credential(), None);
        let settings = args.settings();
        assert_eq!(settings.cni_conf_dir, Path::new(DEFAULT_CNI_CONF_DIR));
        assert_eq!(settings.metrics_address, DEFAULT_METRICS_ADDRESS);
        assert!(settings.kube);
    }
}
