//! The MultusConfig's status for an assessment: the three conditions
//! (keeping their transition time while their status stays) and the
//! counters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use multus_config::crd::MultusConfigStatus;
use multus_config::crd::multus_config::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY,
};

use super::assess::{Assessment, Verdict};

/// The condition `type_` for `verdict`, keeping the transition time of
/// the `previous` condition of the same type and status.
fn condition(
    type_: &str,
    verdict: &Verdict,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if verdict.status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.to_owned(),
        message: verdict.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The status for `assessment`: conditions keep their transition time
/// while their status stays the same.
pub fn status(
    previous: Option<&MultusConfigStatus>,
    assessment: &Assessment,
    generation: Option<i64>,
    invalid_nads: usize,
    now: Timestamp,
) -> MultusConfigStatus {
    let prev = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    MultusConfigStatus {
        observed_generation: generation,
        conditions: vec![
            condition(CONDITION_READY, &assessment.ready, prev, generation, now),
            condition(
                CONDITION_PROGRESSING,
                &assessment.progressing,
                prev,
                generation,
                now,
            ),
            condition(
                CONDITION_DEGRADED,
                &assessment.degraded,
                prev,
                generation,
                now,
            ),
        ],
        desired_nodes: assessment.desired_nodes,
        ready_nodes: assessment.ready_nodes,
        updated_nodes: assessment.updated_nodes,
        primary_networks: assessment.primary_networks.clone(),
        invalid_network_attachment_definitions: i32::try_from(invalid_nads).unwrap_or(i32::MAX),
        kubernetes_version: assessment.kubernetes_version.clone(),
        cluster_features: assessment.cluster_features.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::assess;
    use crate::controller::conditions::fixtures::{node, obs, rollout};

    #[test]
    fn transition_times_survive_unchanged_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let ok = [node("n1", true, None, None)];
        let a = assess(&obs(Some(rollout(1, 0, 0, 1)), &ok));
        let s0 = status(None, &a, Some(2), 0, t0);
        assert!(s0.conditions.iter().all(|c| c.last_transition_time.0 == t0));
        assert!(
            s0.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        // Same statuses, different message: times kept.
        let a2 = assess(&obs(Some(rollout(1, 0, 1, 1)), &ok));
        let s1 = status(Some(&s0), &a2, Some(2), 0, t1);
        assert!(s1.conditions.iter().all(|c| c.last_transition_time.0 == t0));
        // Ready flips: only Ready and Progressing move.
        let a3 = assess(&obs(Some(rollout(1, 1, 1, 0)), &ok));
        let s2 = status(Some(&s1), &a3, Some(2), 3, t1);
        let time = |s: &MultusConfigStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .last_transition_time
                .0
        };
        assert_eq!(time(&s2, "Ready"), t1);
        assert_eq!(time(&s2, "Progressing"), t1);
        assert_eq!(time(&s2, "Degraded"), t0);
        assert_eq!(s2.invalid_network_attachment_definitions, 3);
        assert_eq!(s2.observed_generation, Some(2));
    }
}
