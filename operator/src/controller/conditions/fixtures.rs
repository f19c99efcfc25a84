//! What the tests of the conditions share: an observation of a healthy
//! MultusConfig and builders of its parts.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::{Assessment, NodeReport, Observation, Phase, Rollout};

/// The observation of MultusConfig `default` at [`T0`], nothing wrong
/// but what `rollout` and `nodes` say.
pub(super) fn obs<'a>(rollout: Option<Rollout>, nodes: &'a [NodeReport]) -> Observation<'a> {
    Observation {
        name: "default",
        daemon_set: "multus-system/multus-agent-default".into(),
        namespace: "multus-system",
        spec_problems: &[],
        apply_error: None,
        missing_role: None,
        missing_plugin_role: None,
        rollout,
        nodes,
        conflicts: &[],
        invalid_nads: &[],
        stalled_for: Duration::ZERO,
        deadline: Duration::from_secs(600),
        token_lifetime: Duration::from_secs(86_400),
        now: Timestamp::from_second(T0).unwrap(),
        phase: Phase::Active,
        server: None,
    }
}

/// 2026-01-01T00:00:00Z, the time of every observation.
pub(super) const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Rollout counters of generation 2, observed.
pub(super) fn rollout(desired: i32, updated: i32, ready: i32, unavailable: i32) -> Rollout {
    Rollout {
        generation: 2,
        observed_generation: 2,
        desired,
        updated,
        ready,
        unavailable,
    }
}

/// An agent's report without a credential.
pub(super) fn node(
    name: &str,
    ready: bool,
    message: Option<&str>,
    primary: Option<&str>,
) -> NodeReport {
    NodeReport {
        node: name.into(),
        ready,
        message: message.map(Into::into),
        primary_network: primary.map(Into::into),
        credential: None,
    }
}

/// Status and reason of `Ready`, `Progressing` and `Degraded`.
pub(super) type Triple<'a> = (bool, &'a str, bool, &'a str, bool, &'a str);

/// The [`Triple`] of an assessment.
pub(super) fn triple(a: &Assessment) -> Triple<'_> {
    (
        a.ready.status,
        a.ready.reason,
        a.progressing.status,
        a.progressing.reason,
        a.degraded.status,
        a.degraded.reason,
    )
}
