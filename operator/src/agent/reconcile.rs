//! One reconcile pass, and THE place that decides when the agent
//! regenerates and rewrites `00-multus.conf[list]`.
//!
//! A pass runs on what changed ([`Dirty`]); the event loop
//! ([`super::run_with`]) raises:
//! - [`Dirty::CONF`] when an entry of the CNI conf dir or of the readiness
//!   indicator file's directory changes (or such a directory, missing so
//!   far, can be watched), and when a due retry fires: a missing readiness
//!   indicator file, polled every [`POLL`], or a broken primary waiting
//!   out [`SETTLE`];
//! - [`Dirty::CONFIG`] when the `--config` file's directory changes;
//! - [`Dirty::TOKEN`] when the service-account directory changes, and when
//!   a task of the plugin's credential finishes or falls due;
//! - [`Dirty::MULTUS_CONF`] when the Multus conf dir changes;
//! - [`Dirty::ALL`] at start, on every resync ([`super::RESYNC`]) and when
//!   the watcher may have missed events.
//!
//! [`Agent::reconcile`] regenerates the Multus config when [`Dirty::CONF`]
//! is set, or when the pass changed an input of the generator: reloaded
//! options that differ ([`Dirty::CONFIG`]), or the plugin's kubeconfig
//! appearing or disappearing ([`Dirty::TOKEN`]; it is named in the
//! `kubeconfig` key). Regenerating ([`Agent::generate`]) then writes only
//! when
//! - the readiness indicator file, if configured, exists,
//! - a primary CNI config is elected (otherwise the last output stays),
//! - the previous primary is not merely momentarily unusable (then the last
//!   output stays for up to [`SETTLE`] before switching),
//! - and the bytes differ from the file on disk (no rewrite when nothing
//!   changed, see [`fsutil::write_atomic`]).
//!
//! After writing one extension (`.conf` or `.conflist`) the output of the
//! other is removed when it is ours or another Multus generator's. The
//! rules are those of docs/architecture.md, "Node agent rules".

use std::time::SystemTime;

use multus_config::generate::{
    GenerateError, Generated, GeneratorOptions, OUTPUT_CONF, OUTPUT_CONFLIST, SkippedFile,
    generate, hex_sha256,
};
use tokio::time::Instant;

use super::dirty::Dirty;
use super::fsutil::{self, WriteOutcome};
use super::install;
use super::kubeconfig::KubeconfigState;
use super::manifest::{Area, is_multus_output};
use super::settings::{CONF_MODE, POLL, SETTLE, load_options};
use super::state::{Agent, ConfState};

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

impl Agent {
    /// One pass over what `flags` marks dirty; the only caller of
    /// [`Agent::generate`].
    pub(super) fn reconcile(&mut self, mut flags: Dirty) {
        if flags.contains(Dirty::CONFIG) && self.reload_options() {
            flags |= Dirty::CONF;
        }
        if flags.contains(Dirty::TOKEN) {
            self.write_credential();
            if self.sync_kubeconfig() {
                flags |= Dirty::CONF;
            }
        }
        if flags.contains(Dirty::CONF) {
            self.shared.metrics.reconciles.inc();
            self.generate();
        }
        if flags.contains(Dirty::MULTUS_CONF) {
            self.scan_multus_conf_dir();
        }
        self.cni_plugins = install::list_cni_plugins(&self.settings.cni_bin_dir);
        self.store_manifest();
        self.publish();
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

    /// Reads the `--config` file again; returns whether the options
    /// changed. An invalid file keeps the previous options.
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

    /// Writes the generated config (nothing when the file already holds
    /// these bytes), records it as ours and removes the stale output of the
    /// other extension.
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
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::agent::Settings;

    const CALICO: &str =
        r#"{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"}]}"#;

    fn agent(dir: &Path) -> Agent {
        let s = Settings::for_test(dir);
        std::fs::create_dir_all(&s.cni_conf_dir).unwrap();
        Agent::new(s, Arc::default()).unwrap()
    }

    #[test]
    fn keeps_the_last_output_when_the_primary_goes_and_reports_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(Dirty::ALL);
        assert!(agent.ready(), "{:?}", agent.message());
        let out = std::fs::read(conf.join("00-multus.conf")).unwrap();
        assert_eq!(agent.shared.metrics.regenerations.get(), 1);
        // identical: no rewrite
        agent.reconcile(Dirty::CONF);
        assert_eq!(agent.shared.metrics.regenerations.get(), 1);
        std::fs::remove_file(conf.join("10-calico.conflist")).unwrap();
        agent.reconcile(Dirty::CONF);
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
        agent.reconcile(Dirty::ALL);
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        // a half-written primary does not switch networks at once
        std::fs::write(conf.join("10-calico.conflist"), &CALICO[..20]).unwrap();
        agent.reconcile(Dirty::CONF);
        assert!(!agent.ready());
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        assert!(agent.retry_at.is_some());
        // repaired in time: stays
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(Dirty::CONF);
        assert!(agent.ready());
        assert_eq!(
            agent.conf.primary_file.as_deref(),
            Some("10-calico.conflist")
        );
        // broken for longer than SETTLE: switches
        std::fs::write(conf.join("10-calico.conflist"), b"{").unwrap();
        agent.reconcile(Dirty::CONF);
        assert!(!agent.ready());
        agent.broken_primary = agent
            .broken_primary
            .take()
            .map(|(name, since)| (name, since - SETTLE));
        agent.reconcile(Dirty::CONF);
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
        agent.reconcile(Dirty::ALL);
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
        agent.reconcile(Dirty::CONF);
        assert!(conf.join("00-multus.conflist").exists());
        assert!(
            !conf.join("00-multus.conf").exists(),
            "our stale .conf removed"
        );
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        agent.reconcile(Dirty::CONF);
        assert!(conf.join("00-multus.conf").exists());
        assert!(!conf.join("00-multus.conflist").exists());
        assert_eq!(agent.manifest.conf_dir.len(), 1);
    }

    #[test]
    fn the_readiness_indicator_gates_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = agent(dir.path());
        let conf = agent.settings.cni_conf_dir.clone();
        std::fs::write(conf.join("10-calico.conflist"), CALICO).unwrap();
        let indicator = dir.path().join("ready");
        agent.options.readiness_indicator_file = Some(indicator.to_string_lossy().into_owned());
        agent.reconcile(Dirty::ALL);
        assert!(!agent.ready());
        assert!(agent.message().unwrap().contains("readiness indicator"));
        assert!(!conf.join("00-multus.conf").exists());
        std::fs::write(&indicator, b"").unwrap();
        agent.reconcile(Dirty::CONF);
        assert!(agent.ready());
        let out: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.join("00-multus.conf")).unwrap()).unwrap();
        assert_eq!(
            out["readinessindicatorfile"],
            indicator.to_string_lossy().as_ref()
        );
    }
}
