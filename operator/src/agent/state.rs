//! [`Agent`]: what the agent keeps between reconcile passes, how it is
//! built at start, and the small upkeep steps of the host: leftover
//! temporary files, the plugin binary, the networks of the Multus conf dir
//! and the record of installed files. The passes themselves are in
//! [`super::reconcile`], the plugin's credential in
//! [`super::plugin_credential`], what is reported in [`super::status`].

use std::sync::Arc;
use std::time::SystemTime;

use multus_config::crd::MultusNodeStateStatus;
use multus_config::generate::{GeneratorOptions, SkippedFile};
use tokio::sync::watch as channel;
use tokio::time::Instant;

use super::credential::{Claims, Keeper};
use super::error::AgentError;
use super::fsutil;
use super::install;
use super::kubeconfig::{KubeconfigPaths, KubeconfigState};
use super::manifest::{Area, Manifest, ManifestStore};
use super::metrics::Shared;
use super::settings::{Settings, load_options};

/// What the last generation left on disk and why.
#[derive(Debug, Clone, Default)]
pub(super) struct ConfState {
    /// Whether the last generation wrote a current config.
    pub(super) ready: bool,
    /// Why not, when not.
    pub(super) message: Option<String>,
    /// The elected primary CNI config file.
    pub(super) primary_file: Option<String>,
    /// Its network name.
    pub(super) primary_network: Option<String>,
    /// Our output file (`00-multus.conf` or `.conflist`).
    pub(super) generated_file: Option<String>,
    /// SHA-256 of what we wrote.
    pub(super) hash: Option<String>,
    /// Candidates the election skipped, and unreadable files.
    pub(super) skipped: Vec<SkippedFile>,
    /// When the output was last written (its mtime when found current).
    pub(super) last_generated: Option<SystemTime>,
}

/// The agent's state between reconciles.
#[derive(Debug)]
pub(super) struct Agent {
    /// From the command line.
    pub(super) settings: Settings,
    /// Where the plugin's kubeconfig and token go, and who writes the token.
    pub(super) kube_paths: KubeconfigPaths,
    /// Health and metrics, shared with the HTTP server.
    pub(super) shared: Arc<Shared>,
    /// The generator options (`--config`), last good ones.
    pub(super) options: GeneratorOptions,
    /// Why the `--config` file was last refused.
    pub(super) options_error: Option<String>,
    /// The record of what we installed.
    pub(super) manifest: Manifest,
    /// Where that record is kept.
    pub(super) manifest_store: ManifestStore,
    /// The plugin's kubeconfig as last synced.
    pub(super) kube_state: Option<KubeconfigState>,
    /// Why the kubeconfig could not be synced.
    pub(super) kube_error: Option<String>,
    /// Tokens of the plugin's own ServiceAccount, when managed.
    pub(super) credential: Option<Keeper>,
    /// Why the plugin's token file could not be written.
    pub(super) credential_error: Option<String>,
    /// Claims of the agent token copied while the plugin has none of its own.
    pub(super) fallback_claims: Option<Claims>,
    /// What the last generation left on disk.
    pub(super) conf: ConfState,
    /// What the installed plugin reports as its version.
    pub(super) plugin_version: Option<String>,
    /// The CNI plugins found in the bin dir.
    pub(super) cni_plugins: Vec<String>,
    /// The CNI network names of the Multus conf dir.
    pub(super) multus_conf_networks: Vec<String>,
    /// The previous primary while it is unusable, and since when.
    pub(super) broken_primary: Option<(String, Instant)>,
    /// When to regenerate again (readiness file polling, settle wait).
    pub(super) retry_at: Option<Instant>,
    /// The node-state status, for the reporter.
    pub(super) status_tx: channel::Sender<Option<MultusNodeStateStatus>>,
    /// The readiness message last logged.
    pub(super) last_message: Option<String>,
}

impl Agent {
    /// Loads the `--config` options, checks that reporting has a node
    /// name, creates the conf dir and `multus.d/` and loads the record of
    /// installed files.
    pub(super) fn new(settings: Settings, shared: Arc<Shared>) -> Result<Self, AgentError> {
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

    /// Removes temporary files a previous run left behind (a write cut
    /// short).
    pub(super) fn remove_stale_temp_files(&self) {
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
    pub(super) async fn install_plugin(&mut self) -> Result<(), AgentError> {
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
    pub(super) fn check_plugin(&mut self) {
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

    /// Reads the CNI network names of the Multus conf dir; on an error the
    /// last names are kept.
    pub(super) fn scan_multus_conf_dir(&mut self) {
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

    pub(super) fn store_manifest(&mut self) {
        if let Err(err) = self.manifest_store.store(&self.manifest) {
            self.shared.metrics.errors.inc();
            tracing::warn!(error = %err, "cannot record the installed files");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings::for_test(dir)
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
}
