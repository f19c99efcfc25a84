//! Prometheus metrics of the controller (prefix `multus_operator_`).

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the errors counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// [`super::Error::metric_label`].
    pub reason: String,
}

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles of MultusConfigs started.
    pub reconciles: Counter,
    /// Failed reconciles by reason.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// NAD validations run.
    pub nad_validations: Counter,
    /// NADs currently invalid.
    pub invalid_nads: Gauge<i64, AtomicI64>,
    /// 1 while this replica leads (reconciles), else 0.
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("multus_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let nad_validations = Counter::default();
        let invalid_nads = Gauge::<i64, AtomicI64>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "reconciles",
            "Reconciles of MultusConfigs",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles of MultusConfigs, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one MultusConfig reconcile",
            duration.clone(),
        );
        registry.register(
            "nad_validations",
            "NetworkAttachmentDefinition validations",
            nad_validations.clone(),
        );
        registry.register(
            "invalid_network_attachment_definitions",
            "NetworkAttachmentDefinitions that currently fail validation",
            invalid_nads.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            nad_validations,
            invalid_nads,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a failed reconcile.
    pub fn error(&self, reason: String) {
        self.errors.get_or_create(&ErrorLabels { reason }).inc();
    }

    /// Records a reconcile's duration.
    pub fn observe(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_errors_and_histogram() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.error("apply_403".into());
        m.observe(Duration::from_millis(20));
        let text = m.encode();
        assert!(
            text.contains("multus_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("multus_operator_reconcile_errors_total{reason=\"apply_403\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("multus_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
