//! The Events a change of the conditions deserves: Warnings when
//! something needs attention, Normal events for rollouts, readiness and
//! recovery.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use multus_config::crd::multus_config::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY,
};

use super::reasons::{
    REASON_NO_NODES, REASON_NODES_NOT_READY, REASON_READY, REASON_ROLLOUT_COMPLETE,
    REASON_UNINSTALLING,
};

/// Severity of a state-change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Normal,
    /// Needs attention.
    Warning,
}

/// An Event to publish on the MultusConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason.
    pub reason: String,
    /// The condition's message.
    pub note: String,
}

/// The condition of type `type_`.
fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The Events for going from `previous` to `next` conditions: a Warning
/// when Degraded turns True or changes reason, Normal `Recovered` when it
/// turns False, Normal `Ready` when Ready turns True, and Normal events
/// when a rollout starts or completes. No event when nothing changed.
pub fn transition_events(previous: &[Condition], next: &[Condition]) -> Vec<StateEvent> {
    let mut events = Vec::new();
    let changed = |type_: &str| -> Option<(&Condition, Option<&Condition>)> {
        let now = find(next, type_)?;
        let before = find(previous, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!same).then_some((now, before))
    };
    if let Some((now, before)) = changed(CONDITION_DEGRADED) {
        if now.status == "True" {
            events.push(StateEvent {
                severity: Severity::Warning,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        } else if before.is_some_and(|b| b.status == "True") {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: "Recovered".to_owned(),
                note: format!(
                    "No longer degraded (was {}).",
                    before.map(|b| b.reason.as_str()).unwrap_or_default()
                ),
            });
        }
    }
    if let Some((now, _)) = changed(CONDITION_PROGRESSING) {
        let interesting = (now.status == "True" && now.reason != REASON_UNINSTALLING)
            || now.reason == REASON_ROLLOUT_COMPLETE;
        if interesting {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        }
    }
    if let Some((now, before)) = changed(CONDITION_READY) {
        if now.status == "True" {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: REASON_READY.to_owned(),
                note: now.message.clone(),
            });
        } else if now.reason == REASON_NODES_NOT_READY || now.reason == REASON_NO_NODES {
            events.push(StateEvent {
                severity: Severity::Warning,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        } else if before.is_some_and(|b| b.status == "True")
            && !events.iter().any(|e| e.reason == now.reason)
        {
            events.push(StateEvent {
                severity: Severity::Normal,
                reason: "NotReady".to_owned(),
                note: now.message.clone(),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} message"),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn events_follow_state_changes_only() {
        let ready = vec![
            cond("Ready", "True", "Ready"),
            cond("Progressing", "False", "RolloutComplete"),
            cond("Degraded", "False", "AsExpected"),
        ];
        assert!(transition_events(&ready, &ready).is_empty());
        let rolling = vec![
            cond("Ready", "False", "RollingOut"),
            cond("Progressing", "True", "RollingOut"),
            cond("Degraded", "False", "AsExpected"),
        ];
        let e = transition_events(&ready, &rolling);
        let reasons: Vec<_> = e.iter().map(|e| (e.severity, e.reason.as_str())).collect();
        // Ready dropping for the same reason adds no second event.
        assert_eq!(reasons, [(Severity::Normal, "RollingOut")]);
        let lost = vec![
            cond("Ready", "False", "ApplyFailed"),
            cond("Progressing", "False", "RolloutComplete"),
            cond("Degraded", "False", "AsExpected"),
        ];
        let e = transition_events(&ready, &lost);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].severity, e[0].reason.as_str()),
            (Severity::Normal, "NotReady")
        );
        let e = transition_events(&rolling, &ready);
        let reasons: Vec<_> = e.iter().map(|e| (e.severity, e.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (Severity::Normal, "RolloutComplete"),
                (Severity::Normal, "Ready")
            ]
        );
        let stuck = vec![
            cond("Ready", "False", "RollingOut"),
            cond("Progressing", "True", "RollingOut"),
            cond("Degraded", "True", "RolloutStuck"),
        ];
        let e = transition_events(&rolling, &stuck);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].severity, e[0].reason.as_str()),
            (Severity::Warning, "RolloutStuck")
        );
        assert_eq!(e[0].note, "RolloutStuck message");
        let e = transition_events(&stuck, &rolling);
        assert_eq!(e[0].reason, "Recovered");
        assert!(e[0].note.contains("RolloutStuck"));
        // First status ever: a Warning for Degraded, nothing for a rollout start? It starts.
        let e = transition_events(&[], &stuck);
        assert_eq!(
            e.iter().filter(|e| e.severity == Severity::Warning).count(),
            1
        );
        assert!(e.iter().any(|e| e.reason == "RollingOut"));
    }
}
