//! What the agent reports of its state: readiness and its message
//! (`/readyz`, the logs) and the `MultusNodeState` status (sent to the
//! reporter, [`super::node_state`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use multus_config::crd::MultusNodeStateStatus;
use multus_config::crd::node_state::SkippedConfig;

use super::state::Agent;

impl Agent {
    pub(super) fn ready(&self) -> bool {
        self.conf.ready
            && self.options_error.is_none()
            && self.kube_error.is_none()
            && self.credential_error.is_none()
    }

    pub(super) fn message(&self) -> Option<String> {
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

    pub(super) fn node_status(&self) -> MultusNodeStateStatus {
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
            removal: None,
        }
    }

    /// Updates `/readyz`, the logs and the node-state reporter.
    pub(super) fn publish(&mut self) {
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
