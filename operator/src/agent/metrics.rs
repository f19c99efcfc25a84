//! Prometheus metrics of the node agent and its health state.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::reports::ReportMetrics;
use super::reports::pod_networks::ReportedPodNetworks;

/// The agent's counters and gauges (names carry the `multus_node_agent_`
/// prefix; counters get the `_total` suffix when encoded), and the metrics
/// made of the plugin's reports ([`ReportMetrics`]: `multus_plugin_*`,
/// `pod_network_name_info`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The plugin's reports.
    pub reports: ReportMetrics,
    /// Reconcile passes (each lists the conf dir and runs the election).
    pub reconciles: Counter,
    /// Times the Multus config file was written with new contents.
    pub regenerations: Counter,
    /// Failed steps (generation, writes, config reloads, API updates).
    pub errors: Counter,
    /// Times the token copy was rewritten.
    pub token_refreshes: Counter,
    /// Unix time of the last write of the Multus config.
    pub last_regeneration: Gauge<f64, AtomicU64>,
    /// 1 when the generated config is current, else 0.
    pub ready: Gauge,
    /// Token requests for the plugin's ServiceAccount.
    pub plugin_token_requests: Counter,
    /// Token requests for the plugin's ServiceAccount that failed.
    pub plugin_token_request_failures: Counter,
    /// 1 while the plugin uses a copy of the agent's token (no token of
    /// its own), else 0.
    pub plugin_token_fallback: Gauge,
    /// Unix time at which the plugin's current token expires.
    pub plugin_token_expiration: Gauge<f64, AtomicU64>,
    /// Network hot-plug syncs, by outcome.
    pub hotplug_syncs: Family<HotplugSyncLabels, Counter>,
    /// Interfaces attached or detached by network hot-plug.
    pub hotplug_interfaces: Family<HotplugChangeLabels, Counter>,
    /// How long network hot-plug syncs took.
    pub hotplug_sync_duration: Histogram,
}

/// `outcome` of a network hot-plug sync: `in_step` (nothing to do),
/// `changed`, `no_sandbox`, `refused`, `failed`, `error` (the plugin
/// could not be run or answered nothing usable).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HotplugSyncLabels {
    /// How the sync ended.
    pub outcome: &'static str,
}

/// `change` of an interface: `attached` or `detached`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HotplugChangeLabels {
    /// What happened to it.
    pub change: &'static str,
}

/// Buckets of a hot-plug sync's duration (a no-op sync is milliseconds, an
/// attach with IPAM a second or so).
const HOTPLUG_SYNC_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let reports = ReportMetrics::register(&mut root, Arc::new(ReportedPodNetworks::default()));
        let registry = root.sub_registry_with_prefix("multus_node_agent");
        let reconciles = Counter::default();
        let regenerations = Counter::default();
        let errors = Counter::default();
        let token_refreshes = Counter::default();
        let last_regeneration = Gauge::<f64, AtomicU64>::default();
        let ready = Gauge::default();
        let plugin_token_requests = Counter::default();
        let plugin_token_request_failures = Counter::default();
        let plugin_token_fallback = Gauge::default();
        let plugin_token_expiration = Gauge::<f64, AtomicU64>::default();
        let hotplug_syncs = Family::<HotplugSyncLabels, Counter>::default();
        let hotplug_interfaces = Family::<HotplugChangeLabels, Counter>::default();
        let hotplug_sync_duration = Histogram::new(HOTPLUG_SYNC_BUCKETS);
        registry.register(
            "reconciles",
            "Reconcile passes over the CNI conf dir",
            reconciles.clone(),
        );
        registry.register(
            "regenerations",
            "Times the Multus config file was written with new contents",
            regenerations.clone(),
        );
        registry.register(
            "errors",
            "Failed steps (generation, file writes, config reloads, API updates)",
            errors.clone(),
        );
        registry.register(
            "token_refreshes",
            "Times the plugin's token file was rewritten",
            token_refreshes.clone(),
        );
        registry.register(
            "last_regeneration_timestamp_seconds",
            "Unix time of the last write of the Multus config file",
            last_regeneration.clone(),
        );
        registry.register(
            "ready",
            "1 when the generated Multus config is current",
            ready.clone(),
        );
        registry.register(
            "plugin_token_requests",
            "Token requests for the plugin's ServiceAccount",
            plugin_token_requests.clone(),
        );
        registry.register(
            "plugin_token_request_failures",
            "Token requests for the plugin's ServiceAccount that failed",
            plugin_token_request_failures.clone(),
        );
        registry.register(
            "plugin_token_fallback",
            "1 while the plugin uses a copy of the agent's own token",
            plugin_token_fallback.clone(),
        );
        registry.register(
            "plugin_token_expiration_timestamp_seconds",
            "Unix time at which the plugin's current token expires",
            plugin_token_expiration.clone(),
        );
        registry.register(
            "hotplug_syncs",
            "Network hot-plug syncs (multus sync-networks runs), by outcome",
            hotplug_syncs.clone(),
        );
        registry.register(
            "hotplug_interfaces",
            "Interfaces attached or detached by network hot-plug",
            hotplug_interfaces.clone(),
        );
        registry.register(
            "hotplug_sync_duration_seconds",
            "How long network hot-plug syncs took",
            hotplug_sync_duration.clone(),
        );
        Self {
            registry: root,
            reports,
            reconciles,
            regenerations,
            errors,
            token_refreshes,
            last_regeneration,
            ready,
            plugin_token_requests,
            plugin_token_request_failures,
            plugin_token_fallback,
            plugin_token_expiration,
            hotplug_syncs,
            hotplug_interfaces,
            hotplug_sync_duration,
        }
    }
}

impl Metrics {
    /// Records a write of the Multus config at `at`.
    pub fn regenerated(&self, at: SystemTime) {
        self.regenerations.inc();
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_regeneration.set(secs);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Readiness as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether the generated config is current.
    pub ready: bool,
    /// Why not, when not ready.
    pub message: String,
}

/// State shared between the reconcile loop and the HTTP server.
#[derive(Debug)]
pub struct Shared {
    /// The metrics.
    pub metrics: Metrics,
    health: Mutex<Health>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            metrics: Metrics::default(),
            health: Mutex::new(Health {
                ready: false,
                message: "starting".to_owned(),
            }),
        }
    }
}

impl Shared {
    /// Sets the readiness.
    pub fn set_health(&self, ready: bool, message: &str) {
        self.metrics.ready.set(i64::from(ready));
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        health.ready = ready;
        message.clone_into(&mut health.message);
    }

    /// The current readiness.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_names() {
        let shared = Shared::default();
        shared.metrics.reconciles.inc();
        shared
            .metrics
            .regenerated(UNIX_EPOCH + std::time::Duration::from_secs(42));
        shared.set_health(true, "");
        let text = shared.metrics.encode();
        for line in [
            "multus_node_agent_reconciles_total 1",
            "multus_node_agent_regenerations_total 1",
            "multus_node_agent_errors_total 0",
            "multus_node_agent_token_refreshes_total 0",
            "multus_node_agent_last_regeneration_timestamp_seconds 42",
            "multus_node_agent_ready 1",
            "multus_node_agent_plugin_token_requests_total 0",
            "multus_node_agent_plugin_token_request_failures_total 0",
            "multus_node_agent_plugin_token_fallback 0",
            "multus_node_agent_plugin_token_expiration_timestamp_seconds 0",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line} in\n{text}"
            );
        }
        assert_eq!(
            shared.health(),
            Health {
                ready: true,
                message: String::new()
            }
        );
    }
}
