//! `multus-operator node-agent`: runs on every node and
//! - installs the `multus` plugin binary into the CNI bin dir,
//! - writes the plugin's kubeconfig and keeps its token file fresh: a
//!   token of the plugin's own ServiceAccount ([`credential`]), so pods
//!   keep starting while the agent is down,
//! - elects the primary CNI config and writes `00-multus.conf[list]`,
//!   regenerating on every change of the conf dir (inotify),
//! - reports what it did in `MultusNodeState/<node>`, with the CNI
//!   networks of the Multus conf dir (for NADs without `spec.config`),
//! - serves `/healthz`, `/readyz` and `/metrics`.
//!
//! The rules are those of docs/architecture.md, "Node agent rules": never an empty or
//! partial file, no rewrite when nothing changed, keep the last good config
//! when the primary disappears, leave the config in place on shutdown and
//! remove only what we installed on uninstall.

pub mod credential;
pub mod fsutil;
pub mod http;
pub mod install;
pub mod kubeconfig;
pub mod manifest;
pub mod metrics;
pub mod node_state;
pub mod uninstall;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use multus_config::crd::node_state::SkippedConfig;
use multus_config::crd::{CredentialSource, MultusNodeStateStatus};
use multus_config::generate::{
    GenerateError, Generated, GeneratorOptions, OUTPUT_CONF, OUTPUT_CONFLIST, SkippedFile,
    generate, hex_sha256,
};
use multus_config::multus_conf::{MULTUS_NETWORK_NAME, MULTUS_PLUGIN_TYPE, MULTUS_SHIM_TYPE};
use tokio::sync::watch as channel;
use tokio::time::Instant;

use credential::{Change, Claims, CredentialSettings, Keeper, Outcome, Task, TokenApi};
use fsutil::{IoError, WriteOutcome};
use kubeconfig::{KubeconfigError, KubeconfigPaths, KubeconfigState, TokenSource};
use manifest::{Area, Manifest, ManifestStore};
use metrics::Shared;
use node_state::{NodeStateError, NodeStateReporter};
use watch::{
    DIRTY_ALL, DIRTY_CONF, DIRTY_CONFIG, DIRTY_MULTUS_CONF, DIRTY_TOKEN, DirWatcher, Signal,
};

pub use uninstall::{UninstallReport, uninstall};

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
    /// ([`credential`]); without them, a copy of the agent's token.
    pub plugin_credential: Option<CredentialSettings>,
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

/// Why the agent stopped or a one-shot run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The `--config` file is missing or invalid.
    #[error("invalid agent config: {0}")]
    Config(String),
    /// Reporting to the API server needs the node name.
    #[error(
        "the node name is required to report MultusNodeState: pass --node-name or set NODE_NAME (or pass --no-kube)"
    )]
    NoNodeName,
    /// No in-cluster Kubernetes client.
    #[error("cannot build a Kubernetes client (pass --no-kube to run without one): {0}")]
    Kube(#[source] kube::Error),
    /// A directory cannot be watched.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The watcher error.
        #[source]
        source: notify::Error,
    },
    /// The kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// Reporting to the API server failed.
    #[error(transparent)]
    NodeState(#[from] NodeStateError),
    /// `--once` could not generate a current config.
    #[error("the Multus config is not current: {0}")]
    NotReady(String),
    /// The HTTP server failed.
    #[error("the health/metrics server failed: {0}")]
    Http(#[source] std::io::Error),
    /// No in-cluster Kubernetes configuration.
    #[error("cannot find the Kubernetes configuration (pass --no-kube to run without one): {0}")]
    KubeConfig(#[source] kube::config::InferConfigError),
}

/// Loads the generator options from `path` (YAML or JSON).
pub fn load_options(path: &Path) -> Result<GeneratorOptions, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// Whether `bytes` are a config some Multus generator wrote (ours, or
/// upstream's thin or thick output): a JSON object named
/// `multus-cni-network` whose type (or first plugin's type) is `multus` or
/// `multus-shim`. Such a file left under the other extension would shadow
/// or duplicate ours.
pub fn is_multus_output(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    let plugin_type = value
        .get("type")
        .or_else(|| value.get("plugins")?.get(0)?.get("type"))
        .and_then(serde_json::Value::as_str);
    value.get("name").and_then(serde_json::Value::as_str) == Some(MULTUS_NETWORK_NAME)
        && matches!(plugin_type, Some(t) if t == MULTUS_PLUGIN_TYPE || t == MULTUS_SHIM_TYPE)
}

/// The skipped candidates worth reporting: the election's and the
/// unreadable ones, in name order, without our own outputs.
fn reported_skipped(skipped: &[SkippedFile], unreadable: &[SkippedFile]) -> Vec<SkippedFile> {
    let mut all: Vec<SkippedFile> = skipped
        .iter()
        .chain(unreadable)
        .filter(|s| s.name != OUTPUT_CONF && s.name != OUTPUT_CONFLIST)
        .cloned()
        .collect();
    all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    all
}

/// What the last generation left on disk and why.
#[derive(Debug, Clone, Default)]
struct ConfState {
    ready: bool,
    message: Option<String>,
    primary_file: Option<String>,
    primary_network: Option<String>,
    generated_file: Option<String>,
    hash: Option<String>,
    skipped: Vec<SkippedFile>,
    last_generated: Option<SystemTime>,
}

/// The agent's state between reconciles.
#[derive(Debug)]
struct Agent {
    settings: Settings,
    kube_paths: KubeconfigPaths,
    shared: Arc<Shared>,
    options: GeneratorOptions,
    options_error: Option<String>,
    manifest: Manifest,
    manifest_store: ManifestStore,
    kube_state: Option<KubeconfigState>,
    kube_error: Option<String>,
    credential: Option<Keeper>,
    credential_error: Option<String>,
    fallback_claims: Option<Claims>,
    conf: ConfState,
    plugin_version: Option<String>,
    cni_plugins: Vec<String>,
    multus_conf_networks: Vec<String>,
    broken_primary: Option<(String, Instant)>,
    retry_at: Option<Instant>,
    status_tx: channel::Sender<Option<MultusNodeStateStatus>>,
    last_message: Option<String>,
}

impl Agent {
    fn new(settings: Settings, shared: Arc<Shared>) -> Result<Self, AgentError> {
        let options = match &settings.config_file {
            Some(path) => load_options(path).map_err(AgentError::Config)?,
            None => GeneratorOptions::default(),
        };
        if settings.kube && settings.node_name.as_deref().is_none_or(str::is_empty) {
            return Err(AgentError::NoNodeName);
        }
        fsutil::ensure_dir(&settings.cni_conf_dir)?;
        let created_multus_d = fsutil::ensure_dir(&settings.multus_d())?;
        let mut manifest_store = ManifestStore::new(&settings.multus_d());
        let mut manifest = manifest_store.load().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "ignoring the record of installed files");
            Manifest::default()
        });
        manifest.created_multus_d |= created_multus_d;
        Ok(Self {
            kube_paths: settings.kubeconfig_paths(),
            settings,
            shared,
            options,
            options_error: None,
            manifest,
            manifest_store,
            kube_state: None,
            kube_error: None,
            credential: None,
            credential_error: None,
            fallback_claims: None,
            conf: ConfState::default(),
            plugin_version: None,
            cni_plugins: Vec::new(),
            multus_conf_networks: Vec::new(),
            broken_primary: None,
            retry_at: None,
            status_tx: channel::Sender::new(None),
            last_message: None,
        })
    }

    fn remove_stale_temp_files(&self) {
        for dir in [
            &self.settings.cni_conf_dir,
            &self.settings.multus_d(),
            &self.settings.cni_bin_dir,
        ] {
            match fsutil::remove_stale_temp_files(dir) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(dir = %dir.display(), count = n, "removed leftover temporary files")
                }
                Err(err) => tracing::warn!(error = %err, "cannot clean up temporary files"),
            }
        }
    }

    /// Installs the plugin binary and asks it for its version.
    async fn install_plugin(&mut self) -> Result<(), AgentError> {
        let source = self.settings.plugin_source()?;
        let installed = install::install_plugin(&source, &self.settings.cni_bin_dir)?;
        if installed.written {
            tracing::info!(path = %installed.path.display(), source = %source.display(), "installed the multus plugin");
        } else {
            tracing::info!(path = %installed.path.display(), "the multus plugin is up to date");
        }
        self.manifest
            .record(Area::BinDir, install::PLUGIN_FILE, &installed.hash);
        self.store_manifest();
        self.plugin_version = Some(
            install::query_plugin_version(&installed.path)
                .await
                .unwrap_or_else(|| {
                    tracing::debug!("the plugin did not report a version; using the agent's");
                    env!("CARGO_PKG_VERSION").to_owned()
                }),
        );
        Ok(())
    }

    /// Reinstalls the plugin when the installed copy is gone or differs in
    /// size from the one we ship (someone deleted or replaced it). Cheap:
    /// two `stat`s; the periodic resync calls it.
    fn check_plugin(&mut self) {
        let Ok(source) = self.settings.plugin_source() else {
            return;
        };
        let installed = self.settings.cni_bin_dir.join(install::PLUGIN_FILE);
        let source_len = std::fs::metadata(&source).map(|m| m.len()).ok();
        let installed_len = std::fs::metadata(&installed).map(|m| m.len()).ok();
        if source_len.is_none() || source_len == installed_len {
            return;
        }
        match install::install_plugin(&source, &self.settings.cni_bin_dir) {
            Ok(done) => {
                tracing::warn!(path = %done.path.display(), "the multus plugin was missing or replaced; reinstalled it");
                self.manifest
                    .record(Area::BinDir, install::PLUGIN_FILE, &done.hash);
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %err, "cannot reinstall the multus plugin");
            }
        }
    }

    /// The options as generated: the `kubeconfig` key names our kubeconfig
    /// when the config file leaves it unset and we manage one.
    fn effective_options(&self) -> GeneratorOptions {
        let mut options = self.options.clone();
        if options.kubeconfig.is_none()
            && matches!(self.kube_state, Some(KubeconfigState::Current { .. }))
        {
            options.kubeconfig = Some(
                self.kube_paths
                    .host_kubeconfig()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        options
    }

    fn reload_options(&mut self) -> bool {
        let Some(path) = self.settings.config_file.clone() else {
            return false;
        };
        match load_options(&path) {
            Ok(options) => {
                self.options_error = None;
                if options == self.options {
                    return false;
                }
                tracing::info!(path = %path.display(), "reloaded the agent config");
                self.options = options;
                true
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %err, "keeping the previous agent config");
                self.options_error = Some(err);
                false
            }
        }
    }

    /// Syncs the kubeconfig; returns whether the generated config may change
    /// (the `kubeconfig` key appears or disappears).
    fn sync_kubeconfig(&mut self) -> bool {
        let was_current = matches!(self.kube_state, Some(KubeconfigState::Current { .. }));
        let mut created = false;
        match kubeconfig::sync_kubeconfig(&self.kube_paths, &mut created) {
            Ok(state) => {
                if created {
                    self.manifest.created_multus_d = true;
                }
                match &state {
                    KubeconfigState::Current {
                        token_hash,
                        kubeconfig_hash,
                        token_written,
                        kubeconfig_written,
                    } => {
                        self.manifest
                            .record(Area::MultusD, kubeconfig::TOKEN_FILE, token_hash);
                        self.manifest.record(
                            Area::MultusD,
                            kubeconfig::KUBECONFIG_FILE,
                            kubeconfig_hash,
                        );
                        if *token_written {
                            self.shared.metrics.token_refreshes.inc();
                            tracing::info!(path = %self.kube_paths.token().display(), "refreshed the plugin's token");
                        }
                        if *kubeconfig_written {
                            tracing::info!(path = %self.kube_paths.kubeconfig().display(), "wrote the plugin's kubeconfig");
                        }
                    }
                    KubeconfigState::Disabled(reason) => {
                        if self.kube_state.as_ref() != Some(&state) {
                            tracing::warn!(reason = %reason, "not writing a kubeconfig for the plugin");
                        }
                    }
                }
                self.kube_error = None;
                self.kube_state = Some(state);
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %err, "cannot update the plugin's kubeconfig");
                self.kube_error = Some(err.to_string());
            }
        }
        let is_current = matches!(self.kube_state, Some(KubeconfigState::Current { .. }));
        was_current != is_current
    }

    /// Makes this agent the only writer of the plugin's token file, with
    /// tokens of the plugin's own ServiceAccount (see [`credential`]).
    fn manage_credential(&mut self, settings: CredentialSettings) {
        self.kube_paths.token_source = TokenSource::Managed;
        self.credential = Some(Keeper::new(settings));
    }

    /// At start: keeps the plugin's token from a previous run when it is
    /// still good (it is checked against the API server soon after),
    /// otherwise requests one (bounded; on failure the fallback applies
    /// and the request is retried with back-off).
    async fn start_credential(&mut self, api: &impl TokenApi) {
        let Some(keeper) = self.credential.as_mut() else {
            return;
        };
        let path = self.kube_paths.token();
        let existing = std::fs::read(&path).ok();
        match keeper.adopt(existing.as_deref(), Timestamp::now()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "keeping the plugin's token from the previous run")
            }
            Err(why) => {
                tracing::info!(
                    path = %path.display(),
                    reason = %why,
                    "requesting a token for the plugin's ServiceAccount"
                );
                let outcome = Task::Request.run(api).await;
                self.credential_outcome(outcome);
            }
        }
    }

    /// When the credential keeper needs the loop next (a request or check
    /// falls due, or the plugin's token expires).
    fn credential_wake(&self) -> Option<Instant> {
        let keeper = self.credential.as_ref()?;
        let now = Timestamp::now();
        let wait = keeper.next_due(now).duration_since(now);
        Some(Instant::now() + Duration::try_from(wait).unwrap_or(Duration::ZERO))
    }

    /// The credential task due now.
    fn credential_task(&self) -> Option<Task> {
        self.credential.as_ref()?.due(Timestamp::now())
    }

    /// Takes the outcome of a credential task (logs, metrics), without
    /// writing: the next pass with [`DIRTY_TOKEN`] writes.
    fn credential_outcome(&mut self, outcome: Outcome) {
        let Some(keeper) = self.credential.as_mut() else {
            return;
        };
        let metrics = &self.shared.metrics;
        let requested = matches!(outcome, Outcome::Requested(_));
        if requested {
            metrics.plugin_token_requests.inc();
        }
        let failed = matches!(outcome, Outcome::Requested(Err(_)));
        let now = Timestamp::now();
        match keeper.on_outcome(outcome, now) {
            Change::NewToken => {
                let held = keeper.token(now);
                tracing::info!(
                    service_account = %keeper.settings().service_account,
                    expires_at = %held.map(|h| h.expires_at.to_string()).unwrap_or_default(),
                    refresh_at = %held.map(|h| h.refresh_at.to_string()).unwrap_or_default(),
                    "got a token for the plugin's ServiceAccount"
                );
            }
            Change::Dropped => {
                tracing::warn!(
                    reason = %keeper.last_error().unwrap_or_default(),
                    "the plugin's token no longer authenticates; requesting a new one"
                );
            }
            Change::None if failed => {
                metrics.plugin_token_request_failures.inc();
                metrics.errors.inc();
                let retry_in = keeper
                    .retry_at()
                    .map(|at| at.duration_since(now).to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    error = %keeper.last_error().unwrap_or_default(),
                    failures = keeper.failures(),
                    retry_in = %retry_in,
                    "cannot get a token for the plugin's ServiceAccount"
                );
            }
            Change::None => {}
        }
    }

    /// Managed mode: puts what the plugin should use into its token file,
    /// the plugin's own token or, while there is none, a copy of the
    /// agent's projected token (the fallback).
    fn write_credential(&mut self) {
        let Some(keeper) = self.credential.as_mut() else {
            return;
        };
        let now = Timestamp::now();
        if let Some(previous) = keeper.observe(now) {
            match keeper.source(now) {
                CredentialSource::AgentToken => tracing::warn!(
                    reason = %keeper.last_error().unwrap_or("no token requested yet"),
                    "no token of the plugin's own ServiceAccount: the plugin uses a copy of the \
                     agent's token, which stops working when this agent pod goes"
                ),
                CredentialSource::TokenRequest if previous.is_some() => {
                    tracing::info!("the plugin uses a token of its own ServiceAccount again")
                }
                CredentialSource::TokenRequest => {}
            }
        }
        let metrics = &self.shared.metrics;
        let (bytes, expires_at) = match keeper.token(now) {
            Some(held) => {
                metrics.plugin_token_fallback.set(0);
                (held.token.clone(), Some(held.expires_at))
            }
            None => {
                metrics.plugin_token_fallback.set(1);
                let source = self.settings.service_account_dir.join(kubeconfig::SA_TOKEN);
                match std::fs::read(&source) {
                    Ok(token) if !token.iter().all(u8::is_ascii_whitespace) => {
                        self.fallback_claims = credential::claims(&token).ok();
                        let expires = self.fallback_claims.as_ref().and_then(|c| c.expires_at);
                        (token, expires)
                    }
                    Ok(_) => {
                        self.credential_error = Some(format!(
                            "no token for the plugin: none of its own yet and the service-account \
                             token {} is empty",
                            source.display()
                        ));
                        return;
                    }
                    Err(e) => {
                        self.credential_error = Some(format!(
                            "no token for the plugin: none of its own yet and cannot read the \
                             service-account token {}: {e}",
                            source.display()
                        ));
                        return;
                    }
                }
            }
        };
        let path = self.kube_paths.token();
        let written = fsutil::ensure_dir(&self.kube_paths.multus_d).and_then(|created| {
            self.manifest.created_multus_d |= created;
            fsutil::write_atomic(&path, &bytes, CONF_MODE)
        });
        match written {
            Ok(outcome) => {
                self.credential_error = None;
                self.manifest
                    .record(Area::MultusD, kubeconfig::TOKEN_FILE, &hex_sha256(&bytes));
                if let Some(at) = expires_at {
                    metrics.plugin_token_expiration.set(at.as_second() as f64);
                }
                if outcome == WriteOutcome::Written {
                    metrics.token_refreshes.inc();
                    tracing::info!(path = %path.display(), "wrote the plugin's token");
                }
            }
            Err(err) => {
                metrics.errors.inc();
                tracing::warn!(error = %err, "cannot write the plugin's token");
                self.credential_error = Some(err.to_string());
            }
        }
    }

    /// One pass over whatever `flags` marks dirty.
    fn reconcile(&mut self, mut flags: u8) {
        if flags & DIRTY_CONFIG != 0 && self.reload_options() {
            flags |= DIRTY_CONF;
        }
        if flags & DIRTY_TOKEN != 0 {
            self.write_credential();
            if self.sync_kubeconfig() {
                flags |= DIRTY_CONF;
            }
        }
        if flags & DIRTY_CONF != 0 {
            self.shared.metrics.reconciles.inc();
            self.generate();
        }
        if flags & DIRTY_MULTUS_CONF != 0 {
            self.scan_multus_conf_dir();
        }
        self.cni_plugins = install::list_cni_plugins(&self.settings.cni_bin_dir);
        self.store_manifest();
        self.publish();
    }

    /// Reads the CNI network names of the Multus conf dir; on an error the
    /// last names are kept.
    fn scan_multus_conf_dir(&mut self) {
        match fsutil::list_conf_networks(&self.settings.multus_conf_dir) {
            Ok(networks) => {
                if networks != self.multus_conf_networks {
                    tracing::info!(
                        dir = %self.settings.multus_conf_dir.display(),
                        networks = %networks.join(","),
                        "networks in the Multus conf dir"
                    );
                }
                self.multus_conf_networks = networks;
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %err, "cannot read the Multus conf dir");
            }
        }
    }

    fn not_ready(&mut self, message: String) {
        self.conf.ready = false;
        self.conf.message = Some(message);
    }

    /// Elects the primary and writes the Multus config.
    fn generate(&mut self) {
        let options = self.effective_options();
        if let Some(indicator) = &options.readiness_indicator_file {
            let path = self.settings.container_path(indicator);
            if !path.exists() {
                self.retry_at = Some(Instant::now() + POLL);
                self.not_ready(format!(
                    "waiting for the readiness indicator file {indicator} (seen by the agent at {})",
                    path.display()
                ));
                return;
            }
        }
        let listing = match fsutil::read_conf_dir(&self.settings.cni_conf_dir) {
            Ok(listing) => listing,
            Err(err) => {
                self.shared.metrics.errors.inc();
                self.not_ready(format!("{err}; keeping the last generated config"));
                return;
            }
        };
        // (logged once per file and reason, not on every pass)
        for file in &listing.unreadable {
            if !self.conf.skipped.contains(file) {
                tracing::warn!(file = %file.name, reason = %file.reason, "skipping an unreadable CNI config");
            }
        }
        match generate(&listing.files, &options) {
            Ok(generated) => {
                if self.should_wait_for_primary(&generated, &listing) {
                    return;
                }
                self.write_output(generated, &listing.unreadable);
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                let skipped = match &err {
                    GenerateError::NoPrimary { skipped } => {
                        reported_skipped(skipped, &listing.unreadable)
                    }
                    _ => reported_skipped(&[], &listing.unreadable),
                };
                let detail = match &err {
                    GenerateError::NoPrimary { .. } if skipped.is_empty() => {
                        "no primary CNI config in the conf dir: no *.conf or *.conflist file besides ours".to_owned()
                    }
                    GenerateError::NoPrimary { .. } => format!(
                        "no primary CNI config in the conf dir: {}",
                        skipped
                            .iter()
                            .map(|s| format!("{} ({})", s.name, s.reason))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    _ => err.to_string(),
                };
                self.conf.skipped = skipped;
                let kept = if self.conf.generated_file.is_some()
                    || self.output_exists(OUTPUT_CONF)
                    || self.output_exists(OUTPUT_CONFLIST)
                {
                    "; keeping the last generated config"
                } else {
                    ""
                };
                self.not_ready(format!("{detail}{kept}"));
            }
        }
    }

    fn output_exists(&self, name: &str) -> bool {
        self.settings.cni_conf_dir.join(name).exists()
    }

    /// Whether to hold the last output because the previous primary is
    /// still there but momentarily unusable (see [`SETTLE`]).
    fn should_wait_for_primary(
        &mut self,
        generated: &Generated,
        listing: &fsutil::Listing,
    ) -> bool {
        let Some(previous) = self.conf.primary_file.clone() else {
            return false;
        };
        let new = &generated.election.file_name;
        let broken = generated
            .election
            .skipped
            .iter()
            .chain(listing.unreadable.iter())
            .find(|s| s.name == previous)
            .map(|s| s.reason.clone());
        let Some(reason) = broken.filter(|_| &previous != new) else {
            self.broken_primary = None;
            return false;
        };
        let now = Instant::now();
        let since = match &self.broken_primary {
            Some((name, since)) if *name == previous => *since,
            _ => {
                self.broken_primary = Some((previous.clone(), now));
                now
            }
        };
        if now.duration_since(since) >= SETTLE {
            tracing::warn!(previous = %previous, reason = %reason, new = %new, "the previous primary stayed unusable; switching");
            self.broken_primary = None;
            return false;
        }
        self.retry_at = Some(since + SETTLE);
        self.not_ready(format!(
            "the primary {previous} is unusable ({reason}); keeping the last generated config and switching to {new} if it stays so"
        ));
        true
    }

    fn write_output(&mut self, generated: Generated, unreadable: &[SkippedFile]) {
        let target = self.settings.cni_conf_dir.join(generated.file_name);
        let primary = generated.election.file_name.clone();
        if self.conf.primary_file.as_deref() != Some(primary.as_str()) {
            tracing::info!(
                primary = %primary,
                skipped = ?generated.election.skipped.iter().map(|s| format!("{} ({})", s.name, s.reason)).collect::<Vec<_>>(),
                "elected the primary CNI config"
            );
        }
        match fsutil::write_atomic(&target, &generated.bytes, CONF_MODE) {
            Ok(outcome) => {
                self.manifest
                    .record(Area::ConfDir, generated.file_name, &generated.hash);
                if outcome == WriteOutcome::Written {
                    let now = SystemTime::now();
                    self.shared.metrics.regenerated(now);
                    self.conf.last_generated = Some(now);
                    tracing::info!(file = %target.display(), primary = %primary, hash = %generated.hash, "wrote the Multus config");
                } else if self.conf.last_generated.is_none() {
                    self.conf.last_generated =
                        std::fs::metadata(&target).and_then(|m| m.modified()).ok();
                }
                self.remove_stale(generated.stale_file_name);
                let skipped = reported_skipped(&generated.election.skipped, unreadable);
                self.conf = ConfState {
                    ready: true,
                    message: None,
                    primary_network: generated.election.config.name().map(str::to_owned),
                    primary_file: Some(primary),
                    generated_file: Some(generated.file_name.to_owned()),
                    hash: Some(generated.hash),
                    skipped,
                    last_generated: self.conf.last_generated,
                };
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                self.not_ready(format!("{err}; keeping the last generated config"));
            }
        }
    }

    /// Removes the output of the other extension if it is ours (recorded
    /// with its current contents) or another Multus generator's output.
    fn remove_stale(&mut self, name: &str) {
        let path = self.settings.cni_conf_dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.manifest.forget(Area::ConfDir, name);
                return;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot inspect a stale Multus config");
                return;
            }
        };
        let ours = self.manifest.owns(Area::ConfDir, name, &hex_sha256(&bytes));
        if !ours && !is_multus_output(&bytes) {
            tracing::warn!(file = %path.display(), "leaving a file that is not a Multus config in place");
            return;
        }
        match fsutil::remove_file(&path) {
            Ok(_) => {
                self.manifest.forget(Area::ConfDir, name);
                tracing::info!(file = %path.display(), "removed the stale Multus config");
            }
            Err(err) => {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %err, "cannot remove the stale Multus config");
            }
        }
    }

    fn store_manifest(&mut self) {
        if let Err(err) = self.manifest_store.store(&self.manifest) {
            self.shared.metrics.errors.inc();
            tracing::warn!(error = %err, "cannot record the installed files");
        }
    }

    fn ready(&self) -> bool {
        self.conf.ready
            && self.options_error.is_none()
            && self.kube_error.is_none()
            && self.credential_error.is_none()
    }

    fn message(&self) -> Option<String> {
        let parts: Vec<&str> = [
            self.conf.message.as_deref(),
            self.options_error.as_deref(),
            self.kube_error.as_deref(),
            self.credential_error.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn node_status(&self) -> MultusNodeStateStatus {
        MultusNodeStateStatus {
            ready: self.ready(),
            message: self.message(),
            primary_config_file: self.conf.primary_file.clone(),
            primary_network_name: self.conf.primary_network.clone(),
            generated_config_file: self.conf.generated_file.clone(),
            generated_config_hash: self.conf.hash.clone(),
            plugin_version: self.plugin_version.clone(),
            cni_plugins: self.cni_plugins.clone(),
            multus_conf_networks: self.multus_conf_networks.clone(),
            skipped_configs: self
                .conf
                .skipped
                .iter()
                .map(|s| SkippedConfig {
                    file: s.name.clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
            last_generated: self
                .conf
                .last_generated
                .and_then(|t| k8s_openapi::jiff::Timestamp::try_from(t).ok())
                .map(Time),
            plugin_credential: self
                .credential
                .as_ref()
                .map(|k| k.report(Timestamp::now(), self.fallback_claims.as_ref())),
        }
    }

    /// Updates `/readyz`, the logs and the node-state reporter.
    fn publish(&mut self) {
        let ready = self.ready();
        let message = self.message();
        self.shared
            .set_health(ready, message.as_deref().unwrap_or_default());
        if message != self.last_message {
            match &message {
                Some(text) => tracing::warn!(message = %text, "not ready"),
                None => tracing::info!("ready: the Multus config is current"),
            }
            self.last_message = message;
        }
        let status = self.node_status();
        self.status_tx.send_if_modified(|current| {
            if current.as_ref() == Some(&status) {
                false
            } else {
                *current = Some(status);
                true
            }
        });
    }
}

fn watch_dirs(agent: &Agent, watcher: &mut DirWatcher) -> Result<(), AgentError> {
    let settings = &agent.settings;
    let mut dirs: Vec<(PathBuf, u8, bool)> = vec![
        (settings.cni_conf_dir.clone(), DIRTY_CONF, true),
        (settings.service_account_dir.clone(), DIRTY_TOKEN, false),
        (settings.multus_conf_dir.clone(), DIRTY_MULTUS_CONF, false),
    ];
    if let Some(dir) = settings.config_file.as_ref().and_then(|f| f.parent()) {
        dirs.push((dir.to_path_buf(), DIRTY_CONFIG, true));
    }
    if let Some(indicator) = &agent.options.readiness_indicator_file
        && let Some(dir) = settings.container_path(indicator).parent()
    {
        dirs.push((dir.to_path_buf(), DIRTY_CONF, false));
    }
    for (dir, flags, required) in dirs {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        match watcher.add(&dir, flags) {
            Ok(true) => tracing::debug!(dir = %dir.display(), "watching"),
            Ok(false) if required => {
                return Err(AgentError::Watch {
                    path: dir,
                    source: notify::Error::path_not_found(),
                });
            }
            Ok(false) => {
                tracing::info!(dir = %dir.display(), "not there yet; will watch it once it exists")
            }
            Err(source) => return Err(AgentError::Watch { path: dir, source }),
        }
    }
    Ok(())
}

/// A future that completes on SIGTERM or SIGINT. Create it early: the
/// handlers are installed when this function returns.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    })
}

async fn kube_client() -> Result<kube::Client, AgentError> {
    kube::Client::try_default().await.map_err(AgentError::Kube)
}

/// Access to the API server: the agent's client (node state, token
/// requests) and, when the agent manages the plugin's token, the API it
/// uses for that.
pub struct KubeAccess<A> {
    /// The agent's client.
    pub client: kube::Client,
    /// Requests and checks the plugin's tokens.
    pub token_api: Option<Arc<A>>,
}

impl<A> std::fmt::Debug for KubeAccess<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAccess")
            .field("token_api", &self.token_api.is_some())
            .finish_non_exhaustive()
    }
}

/// Runs the agent until `shutdown` completes: install, generate, then watch
/// and regenerate. The generated config is left in place on return.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    if !settings.kube {
        return run_with::<credential::KubeTokenApi>(settings, shutdown, None).await;
    }
    if settings.node_name.as_deref().is_none_or(str::is_empty) {
        return Err(AgentError::NoNodeName);
    }
    let config = kube::Config::infer()
        .await
        .map_err(AgentError::KubeConfig)?;
    let client = kube::Client::try_from(config.clone()).map_err(AgentError::Kube)?;
    let token_api = settings.plugin_credential.clone().map(|s| {
        Arc::new(credential::KubeTokenApi::new(
            client.clone(),
            credential::KubeTokenApi::token_clients(config),
            s,
        ))
    });
    run_with(settings, shutdown, Some(KubeAccess { client, token_api })).await
}

/// [`run`] over the given API access (`None`: no API server, as with
/// `--no-kube`).
pub async fn run_with<A: TokenApi + 'static>(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    kube: Option<KubeAccess<A>>,
) -> Result<(), AgentError> {
    let shared = Arc::new(Shared::default());
    let mut agent = Agent::new(settings, Arc::clone(&shared))?;
    agent.remove_stale_temp_files();
    agent.install_plugin().await?;

    let (client, token_api) = match kube {
        Some(KubeAccess { client, token_api }) => (Some(client), token_api),
        None => (None, None),
    };
    match (&token_api, agent.settings.plugin_credential.clone()) {
        (Some(api), Some(credential_settings)) => {
            tracing::info!(
                service_account = %credential_settings.service_account,
                namespace = %credential_settings.namespace,
                lifetime = ?credential_settings.lifetime,
                "the plugin gets tokens of its own ServiceAccount"
            );
            agent.manage_credential(credential_settings);
            agent.start_credential(api.as_ref()).await;
        }
        _ => tracing::info!(
            "the plugin gets a copy of the agent's token (no plugin ServiceAccount configured)"
        ),
    }

    // Bind first so a taken address fails at once; serve once the first
    // pass is done, so /readyz never reports a state before it.
    let listener = http::bind(agent.settings.metrics_address).await?;
    let address = listener.local_addr().map_err(AgentError::Http)?;

    // Watch before the first pass so no change in between is missed.
    let signal = Arc::new(Signal::default());
    let mut watcher = DirWatcher::new(Arc::clone(&signal)).map_err(|source| AgentError::Watch {
        path: agent.settings.cni_conf_dir.clone(),
        source,
    })?;
    watch_dirs(&agent, &mut watcher)?;
    agent.reconcile(DIRTY_ALL);

    let (stop_tx, stop_rx) = channel::channel(false);
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(http::serve(listener, Arc::clone(&shared), async move {
        let _ = http_stop.changed().await;
    }));
    tracing::info!(address = %address, "serving /healthz, /readyz and /metrics");

    let reporter = match client {
        Some(client) if agent.settings.kube => {
            let node = agent.settings.node_name.clone().unwrap_or_default();
            let reporter =
                NodeStateReporter::new(client, node, agent.settings.multus_config_name.clone());
            Some(tokio::spawn(reporter.run(
                agent.status_tx.subscribe(),
                stop_rx.clone(),
                Arc::clone(&shared),
            )))
        }
        _ => None,
    };

    // At most one credential task (token request or check) at a time.
    let mut credential_task: Option<tokio::task::JoinHandle<Outcome>> = None;
    tokio::pin!(shutdown);
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
    let mut watch_retry_at: Option<Instant> = None;
    loop {
        if watcher.has_missing() {
            watch_retry_at.get_or_insert_with(|| Instant::now() + POLL);
        }
        let retry_at = match (agent.retry_at, watch_retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let credential_at = if credential_task.is_none() {
            agent.credential_wake()
        } else {
            None
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(credential_at.unwrap_or_else(Instant::now)), if credential_at.is_some() => {
                match (agent.credential_task(), &token_api) {
                    (Some(task), Some(api)) => {
                        let api = Arc::clone(api);
                        credential_task = Some(tokio::spawn(async move { task.run(api.as_ref()).await }));
                    }
                    // The plugin's token expired: switch to the fallback.
                    _ => agent.reconcile(DIRTY_TOKEN),
                }
            }
            joined = async { credential_task.as_mut().expect("guarded by the precondition").await }, if credential_task.is_some() => {
                credential_task = None;
                match joined {
                    Ok(outcome) => agent.credential_outcome(outcome),
                    Err(err) => {
                        shared.metrics.errors.inc();
                        tracing::warn!(error = %err, "the plugin token task failed");
                    }
                }
                agent.reconcile(DIRTY_TOKEN);
            }
            () = signal.notified() => {
                tokio::select! {
                    () = signal.debounce() => {}
                    () = &mut shutdown => break,
                }
                let flags = signal.take();
                if flags != 0 {
                    agent.reconcile(flags);
                }
            }
            _ = resync.tick() => {
                watcher.retry();
                agent.check_plugin();
                agent.reconcile(DIRTY_ALL);
            }
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                // Only a due agent retry regenerates; a due watch retry
                // reconciles what the newly watched directories affect (a
                // missing optional directory costs a `stat` per poll).
                let now = Instant::now();
                let mut flags = 0;
                if agent.retry_at.is_some_and(|at| at <= now) {
                    agent.retry_at = None;
                    flags |= DIRTY_CONF;
                }
                if watch_retry_at.is_some_and(|at| at <= now) {
                    watch_retry_at = None;
                    flags |= watcher.retry();
                }
                if flags != 0 {
                    agent.reconcile(flags);
                }
            }
        }
    }

    if let Some(task) = credential_task {
        task.abort();
    }
    tracing::info!("stopping; the generated Multus config stays in place");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(2);
    if let Ok(Ok(Err(err))) = tokio::time::timeout(grace, server).await {
        tracing::warn!(error = %err, "the health/metrics server failed");
    }
    if let Some(reporter) = reporter {
        let _ = tokio::time::timeout(grace, reporter).await;
    }
    Ok(())
}

/// `--once`: install the plugin, write the kubeconfig and the Multus config,
/// report the node state (unless `--no-kube`) and return. Fails when no
/// current config could be generated (no primary, readiness indicator file
/// missing, invalid config, I/O error).
pub async fn run_once(settings: Settings) -> Result<MultusNodeStateStatus, AgentError> {
    run_once_with_client(settings, None).await
}

/// [`run_once`] reporting through `client` (the in-cluster client when
/// `None`). A failed report is logged, not fatal: the files on the node are
/// what pods need.
pub async fn run_once_with_client(
    settings: Settings,
    client: Option<kube::Client>,
) -> Result<MultusNodeStateStatus, AgentError> {
    let shared = Arc::new(Shared::default());
    let mut agent = Agent::new(settings, shared)?;
    agent.remove_stale_temp_files();
    agent.install_plugin().await?;
    agent.reconcile(DIRTY_ALL);
    let status = agent.node_status();
    if agent.settings.kube {
        let client = match client {
            Some(client) => client,
            None => kube_client().await?,
        };
        let node = agent.settings.node_name.clone().unwrap_or_default();
        let mut reporter =
            NodeStateReporter::new(client, node, agent.settings.multus_config_name.clone());
        if let Err(err) = reporter.publish(&status).await {
            tracing::warn!(error = %err, "cannot report the node state");
        }
    }
    if !status.ready {
        return Err(AgentError::NotReady(
            status.message.clone().unwrap_or_default(),
        ));
    }
    Ok(status)
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

    #[test]
    fn recognises_multus_outputs() {
        assert!(is_multus_output(
            br#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}"#
        ));
        assert!(is_multus_output(
            br#"{"name":"multus-cni-network","plugins":[{"type":"multus-shim"}]}"#
        ));
        assert!(!is_multus_output(
            br#"{"name":"k8s-pod-network","type":"multus"}"#
        ));
        assert!(!is_multus_output(
            br#"{"name":"multus-cni-network","type":"calico"}"#
        ));
        assert!(!is_multus_output(b"not json"));
    }

    #[test]
    fn the_node_name_is_required_with_kube() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.kube = true;
        assert!(matches!(
            Agent::new(s, Arc::default()),
            Err(AgentError::NoNodeName)
        ));
    }

    #[test]
    fn an_invalid_config_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, "logLevel: verbose\nunknownKey: 1\n").unwrap();
        s.config_file = Some(path);
        let err = Agent::new(s, Arc::default()).unwrap_err();
        assert!(err.to_string().contains("agent.yaml"), "{err}");
        assert!(err.to_string().contains("unknownKey"), "{err}");
    }

    const CALICO: &str =
        r#"{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"}]}"#;

    fn agent(dir: &Path) -> Agent {
        let s = settings(dir);
        std::fs::create_dir_all(&s.cni_conf_dir).unwrap();
        Agent::new(s, Arc::default()).unwrap()
    }

    #[test]
    fn keeps_the_last_output_when_the_primary_goes_and_reports_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(DIRTY_ALL);
        assert!(agent.ready(), "{:?}", agent.message());
        let out = std::fs::read(conf.join("00-multus.conf")).unwrap();
        assert_eq!(agent.shared.metrics.regenerations.get(), 1);
        // identical: no rewrite
        agent.reconcile(DIRTY_CONF);
        assert_eq!(agent.shared.metrics.regenerations.get(), 1);
        std::fs::remove_file(conf.join("10-calico.conflist")).unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(!agent.ready());
        let message = agent.message().unwrap();
        assert!(message.contains("no primary"), "{message}");
        assert!(message.contains("keeping the last"), "{message}");
        assert_eq!(std::fs::read(conf.join("00-multus.conf")).unwrap(), out);
        let status = agent.node_status();
        assert!(!status.ready);
        assert_eq!(
            status.generated_config_file.as_deref(),
            Some("00-multus.conf")
        );
    }

    #[test]
    fn waits_before_switching_away_from_a_broken_primary() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        std::fs::write(
            conf.join("20-other.conf"),
            r#"{"name":"other","cniVersion":"0.3.1","type":"bridge"}"#,
        )
        .unwrap();
        agent.reconcile(DIRTY_ALL);
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        // a half-written primary does not switch networks at once
        std::fs::write(conf.join("10-calico.conflist"), &CALICO[..20]).unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(!agent.ready());
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        assert!(agent.retry_at.is_some());
        // repaired in time: stays
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(agent.ready());
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        // broken for longer than SETTLE: switches
        std::fs::write(conf.join("10-calico.conflist"), b"{").unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(!agent.ready());
        agent.broken_primary = agent
            .broken_primary
            .take()
            .map(|(name, since)| (name, since - SETTLE));
        agent.reconcile(DIRTY_CONF);
        assert!(agent.ready());
        assert_eq!(agent.conf.primary_file.as_deref(), Some("20-other.conf"));
        assert_eq!(agent.conf.skipped[0].name, "10-calico.conflist");
    }

    #[test]
    fn removes_a_stale_output_only_if_it_is_a_multus_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        std::fs::write(conf.join("00-multus.conflist"), b"foreign, not JSON").unwrap();
        agent.reconcile(DIRTY_ALL);
        assert!(conf.join("00-multus.conf").exists());
        assert!(
            conf.join("00-multus.conflist").exists(),
            "foreign file kept"
        );
        // the primary moves to CNI 1.0.0: we write .conflist, then back
        std::fs::remove_file(conf.join("00-multus.conflist")).unwrap();
        std::fs::write(
            conf.join("10-calico.conflist"),
            CALICO.replace("0.3.1", "1.0.0"),
        )
        .unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(conf.join("00-multus.conflist").exists());
        assert!(
            !conf.join("00-multus.conf").exists(),
            "our stale .conf removed"
        );
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(conf.join("00-multus.conf").exists());
        assert!(!conf.join("00-multus.conflist").exists());
        assert_eq!(agent.manifest.conf_dir.len(), 1);
    }

    #[test]
    fn a_deleted_plugin_is_reinstalled_on_resync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        let source = dir.path().join("multus-src");
        std::fs::write(&source, b"plugin").unwrap();
        s.plugin_binary = Some(source);
        let mut agent = Agent::new(s, Arc::default()).unwrap();
        let installed = agent.settings.cni_bin_dir.join("multus");
        agent.check_plugin();
        assert_eq!(std::fs::read(&installed).unwrap(), b"plugin");
        std::fs::remove_file(&installed).unwrap();
        agent.check_plugin();
        assert_eq!(std::fs::read(&installed).unwrap(), b"plugin");
    }

    #[test]
    fn the_readiness_indicator_gates_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        let indicator = dir.path().join("ready");
        agent.options.readiness_indicator_file = Some(indicator.to_string_lossy().into_owned());
        agent.reconcile(DIRTY_ALL);
        assert!(!agent.ready());
        assert!(agent.message().unwrap().contains("readiness indicator"));
        assert!(!conf.join("00-multus.conf").exists());
        std::fs::write(&indicator, b"").unwrap();
        agent.reconcile(DIRTY_CONF);
        assert!(agent.ready());
        let out: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.join("00-multus.conf")).unwrap()).unwrap();
        assert_eq!(
            out["readinessindicatorfile"],
            indicator.to_string_lossy().as_ref()
        );
    }
}
