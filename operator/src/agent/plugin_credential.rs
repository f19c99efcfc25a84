//! How the agent keeps the plugin's credential on the node: the kubeconfig
//! and the token file it names. The token is either a copy of the agent's
//! own projected token or, when a plugin ServiceAccount is configured, a
//! token of that account that [`super::credential::Keeper`] requests,
//! checks and renews; this module wires the keeper into the agent (start,
//! wake-ups, outcomes) and writes what it holds.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use multus_config::crd::CredentialSource;
use multus_config::generate::hex_sha256;
use tokio::time::Instant;

use super::credential::{self, Change, CredentialSettings, Keeper, Outcome, Task, TokenApi};
use super::fsutil::{self, WriteOutcome};
use super::kubeconfig::{self, KubeconfigState, TokenSource};
use super::manifest::Area;
use super::settings::CONF_MODE;
use super::state::Agent;

impl Agent {
    /// Syncs the kubeconfig; returns whether the generated config may change
    /// (the `kubeconfig` key appears or disappears).
    pub(super) fn sync_kubeconfig(&mut self) -> bool {
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
    /// tokens of the plugin's own ServiceAccount (see [`super::credential`]).
    pub(super) fn manage_credential(&mut self, settings: CredentialSettings) {
        self.kube_paths.token_source = TokenSource::Managed;
        self.credential = Some(Keeper::new(settings));
    }

    /// At start: keeps the plugin's token from a previous run when it is
    /// still good (it is checked against the API server soon after),
    /// otherwise requests one (bounded; on failure the fallback applies
    /// and the request is retried with back-off).
    pub(super) async fn start_credential(&mut self, api: &impl TokenApi) {
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
                let outcome = keeper.request_task(Timestamp::now()).run(api).await;
                self.credential_outcome(outcome);
            }
        }
    }

    /// When the credential keeper needs the loop next (a request or check
    /// falls due, or the plugin's token expires).
    pub(super) fn credential_wake(&self) -> Option<Instant> {
        let keeper = self.credential.as_ref()?;
        let now = Timestamp::now();
        let wait = keeper.next_due(now).duration_since(now);
        Some(Instant::now() + Duration::try_from(wait).unwrap_or(Duration::ZERO))
    }

    /// The credential task due now.
    pub(super) fn credential_task(&self) -> Option<Task> {
        self.credential.as_ref()?.due(Timestamp::now())
    }

    /// Takes the outcome of a credential task (logs, metrics), without
    /// writing: the next pass with [`Dirty::TOKEN`](super::dirty::Dirty::TOKEN)
    /// writes.
    pub(super) fn credential_outcome(&mut self, outcome: Outcome) {
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
    pub(super) fn write_credential(&mut self) {
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
}
