//! `multus-operator`: the cluster controller, the node agent and CRD output
//! in one binary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use multus_operator::agent;

#[derive(Debug, Parser)]
#[command(
    name = "multus-operator",
    version,
    about = "Operator of the Rust Multus"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Print the CRDs of multus.dev (MultusConfig, MultusNodeState) as YAML.
    Crd {
        /// Write one file per CRD (`<plural>.<group>.yaml`) into this
        /// directory instead of printing a multi-document stream.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Run the cluster controller (reconciles MultusConfigs and NADs).
    Controller(Box<multus_operator::controller::ControllerArgs>),
    /// Run the node agent (writes 00-multus.conf, kubeconfig, plugin binary).
    NodeAgent(Box<NodeAgentArgs>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, clap::Args)]
struct NodeAgentArgs {
    /// The CNI conf dir as mounted into the agent.
    #[arg(long, value_name = "DIR", default_value = "/host/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// The same directory's path on the host; written into generated files.
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    host_cni_conf_dir: PathBuf,
    /// The CNI bin dir as mounted into the agent; the plugin is installed here.
    #[arg(long, value_name = "DIR", default_value = "/host/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// The Multus conf dir as mounted into the agent (read only): its CNI
    /// network names are reported for NADs without `spec.config`.
    #[arg(long, value_name = "DIR", default_value = "/host/etc/cni/multus/net.d")]
    multus_conf_dir: PathBuf,
    /// The multus plugin binary to install [default: `multus` beside this executable].
    #[arg(long, value_name = "PATH")]
    plugin_binary: Option<PathBuf>,
    /// The projected service-account directory (token, ca.crt).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount"
    )]
    service_account_dir: PathBuf,
    /// Generator options (YAML, rendered by the controller from the MultusConfig).
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's name (MultusNodeState/<node>).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// The MultusConfig this agent belongs to (recorded in MultusNodeState).
    #[arg(long, env = "MULTUS_CONFIG_NAME", value_name = "NAME")]
    multus_config_name: Option<String>,
    /// Do not talk to the API server (no MultusNodeState).
    #[arg(long)]
    no_kube: bool,
    /// Install and generate once, then exit (non-zero when no current config).
    #[arg(long, conflicts_with = "uninstall")]
    once: bool,
    /// Remove exactly what the agent installed on this node, then exit.
    #[arg(long)]
    uninstall: bool,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9101")]
    metrics_address: SocketAddr,
    /// Log format (stderr); the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The plugin's own ServiceAccount (`multus-plugin-<mc>`): the agent
    /// requests tokens of it for the plugin (TokenRequest API) instead of
    /// giving the plugin a copy of its own token. Not with --no-kube or
    /// --once.
    #[arg(long, value_name = "NAME")]
    plugin_service_account: Option<String>,
    /// Lifetime of the plugin's tokens; the agent refreshes them at half
    /// their life. The API server may issue shorter ones.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u32).range(600..=2_592_000)
    )]
    plugin_token_expiration_seconds: u32,
    /// Namespace of the plugin's ServiceAccount [default: the agent's own,
    /// from the service-account directory].
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    namespace: Option<String>,
}

impl NodeAgentArgs {
    /// What the agent needs to give the plugin tokens of its own, when a
    /// plugin ServiceAccount is named.
    fn plugin_credential(&self) -> Option<agent::credential::CredentialSettings> {
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
        Some(agent::credential::CredentialSettings {
            namespace,
            service_account,
            lifetime: std::time::Duration::from_secs(u64::from(
                self.plugin_token_expiration_seconds,
            )),
        })
    }

    fn settings(&self) -> agent::Settings {
        let api_server = match (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Ok(host), Ok(port)) if !host.trim().is_empty() && !port.trim().is_empty() => {
                Some(multus_config::generate::server_url(&host, &port))
            }
            _ => None,
        };
        agent::Settings {
            cni_conf_dir: self.cni_conf_dir.clone(),
            host_cni_conf_dir: self.host_cni_conf_dir.clone(),
            cni_bin_dir: self.cni_bin_dir.clone(),
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
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn node_agent(args: &NodeAgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let settings = args.settings();
    if args.uninstall {
        let report = agent::uninstall(&settings).context("node-agent --uninstall failed")?;
        tracing::info!(
            removed = report.removed.len(),
            kept = report.kept.len(),
            "uninstall done"
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.once {
            let status = agent::run_once(settings)
                .await
                .context("node-agent --once failed")?;
            tracing::info!(
                primary = status.primary_config_file.as_deref().unwrap_or_default(),
                file = status.generated_config_file.as_deref().unwrap_or_default(),
                "done"
            );
            return Ok(());
        }
        let shutdown = agent::shutdown_signal().context("cannot install signal handlers")?;
        agent::run(settings, shutdown)
            .await
            .context("node-agent failed")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Crd { output_dir } => multus_operator::crd::run(output_dir.as_deref()),
        Commands::Controller(args) => multus_operator::controller::cli::main(*args),
        Commands::NodeAgent(args) => node_agent(&args),
    }
    .context("multus-operator failed");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
