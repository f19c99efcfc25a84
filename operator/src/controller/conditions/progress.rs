//! When the rollout last made progress: the deadline
//! (`progressDeadlineSeconds`) counts from the last change of a progress
//! signature.

use k8s_openapi::jiff::Timestamp;

use super::inputs::{NodeReport, Rollout};

/// A key that changes whenever the rollout or a node makes progress; the
/// deadline counts from its last change.
pub fn progress_signature(rollout: Option<&Rollout>, nodes: &[NodeReport]) -> String {
    let mut not_ready: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.ready)
        .map(|n| n.node.as_str())
        .collect();
    not_ready.sort_unstable();
    match rollout {
        Some(r) => format!(
            "{}/{}:{}/{}/{}/{}|{}",
            r.generation,
            r.observed_generation,
            r.desired,
            r.updated,
            r.ready,
            r.unavailable,
            not_ready.join(",")
        ),
        None => format!("none|{}", not_ready.join(",")),
    }
}

/// When progress was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressMark {
    /// [`progress_signature`] at the time.
    pub signature: String,
    /// When the signature last changed.
    pub since: Timestamp,
}

/// The new mark: `previous` if nothing changed, else `now`. Without a
/// previous mark (controller restart) the rollout counts from
/// `fallback` (the Progressing condition's transition time) if given.
pub fn advance(
    previous: Option<&ProgressMark>,
    signature: String,
    now: Timestamp,
    fallback: Option<Timestamp>,
) -> ProgressMark {
    match previous {
        Some(mark) if mark.signature == signature => mark.clone(),
        Some(_) => ProgressMark {
            signature,
            since: now,
        },
        None => ProgressMark {
            signature,
            since: fallback.filter(|t| *t <= now).unwrap_or(now),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::fixtures::{node, rollout};

    #[test]
    fn progress_marks_move_only_on_change() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(1_500).unwrap();
        let r = rollout(2, 1, 1, 1);
        let sig = progress_signature(Some(&r), &[]);
        let m0 = advance(None, sig.clone(), t1, Some(t0));
        assert_eq!(
            m0.since, t0,
            "restart: counts from the condition's transition"
        );
        let m1 = advance(Some(&m0), sig.clone(), t1, None);
        assert_eq!(m1.since, t0);
        let moved = progress_signature(Some(&rollout(2, 2, 1, 1)), &[]);
        assert_eq!(advance(Some(&m1), moved, t1, None).since, t1);
        let node_changed = progress_signature(Some(&r), &[node("n1", false, None, None)]);
        assert_ne!(node_changed, sig);
        assert_eq!(
            advance(None, sig, t0, Some(t1)).since,
            t0,
            "future fallback ignored"
        );
    }
}
