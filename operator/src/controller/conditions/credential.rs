//! The plugin's credential on each node: which tokens are not being
//! refreshed (or replaced by the agent's own for too long), and when the
//! next one crosses a threshold.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use multus_config::crd::CredentialSource;

use super::inputs::{CredentialReport, Observation};
use super::issues::Issue;
use super::reasons::REASON_CREDENTIAL_EXPIRING;
use super::wording::{NAMES_SHOWN, name_list, plural};

/// `d` as a signed duration (saturating).
fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// What is wrong with one node's plugin credential at `now`, and when it
/// next deserves a look. A plugin token is expiring when less than a
/// quarter of its lifetime is left (its agent refreshes at half); the
/// lifetime is the configured one or, when the API server issued a
/// shorter token, that token's. The fallback (the agent's own token) is a
/// problem once it lasts longer than `grace`, or when the copy expired.
pub fn credential_problem(
    credential: &CredentialReport,
    lifetime: Duration,
    grace: Duration,
    now: Timestamp,
) -> (Option<String>, Option<Timestamp>) {
    let at = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let expired = credential.expires_at.filter(|e| *e <= now);
    match credential.source {
        CredentialSource::TokenRequest => {
            let Some(expires) = credential.expires_at else {
                return (None, None);
            };
            if let Some(e) = expired {
                return (Some(format!("expired at {}", at(e))), None);
            }
            let mut life = span(lifetime);
            if let Some(issued) = credential.issued_at {
                life = life.min(expires.duration_since(issued));
            }
            let warn_at = expires.checked_sub(life / 4).unwrap_or(expires);
            if warn_at <= now {
                (
                    Some(format!("expires at {}, not refreshed", at(expires))),
                    Some(expires),
                )
            } else {
                (None, Some(warn_at))
            }
        }
        CredentialSource::AgentToken => {
            if let Some(e) = expired {
                return (
                    Some(format!(
                        "uses a copy of the agent's own token, which expired at {}",
                        at(e)
                    )),
                    None,
                );
            }
            let Some(since) = credential.since else {
                return (None, credential.expires_at);
            };
            let until = since.checked_add(span(grace)).unwrap_or(Timestamp::MAX);
            let next = credential.expires_at.map_or(until, |e| e.min(until));
            if until <= now {
                (
                    Some(format!(
                        "uses a copy of the agent's own token since {}",
                        at(since)
                    )),
                    credential.expires_at,
                )
            } else {
                (None, Some(next))
            }
        }
    }
}

/// Decides which nodes' plugin tokens are not being refreshed (see
/// [`credential_problem`]), and when the next one crosses a threshold.
pub(super) fn credential_issue(
    obs: &Observation<'_>,
    pods_hint: &str,
) -> (Option<Issue>, Option<Timestamp>) {
    let mut expiring = Vec::new();
    let mut recheck: Option<Timestamp> = None;
    for node in obs.nodes {
        let Some(credential) = &node.credential else {
            continue;
        };
        let (problem, next) =
            credential_problem(credential, obs.token_lifetime, obs.deadline, obs.now);
        if let Some(problem) = problem {
            expiring.push(format!("{} ({problem})", node.node));
        }
        if let Some(next) = next.filter(|t| *t > obs.now) {
            recheck = Some(recheck.map_or(next, |r| r.min(next)));
        }
    }
    if expiring.is_empty() {
        return (None, recheck);
    }
    let issue = (
        REASON_CREDENTIAL_EXPIRING,
        format!(
            "The multus plugin's API token is not being refreshed on {}: {}. Pods with extra \
             networks fail to start on a node once its token has expired. The agent \
             refreshes the token at half its life and otherwise uses a copy of its own token \
             (which dies with the agent pod); see the reason in `kubectl get \
             multusnodestate <node> -o yaml` (status.pluginCredential.message) and the agent \
             pods: {}.",
            plural(expiring.len(), "node", "nodes"),
            name_list(&expiring, NAMES_SHOWN),
            pods_hint
        ),
    );
    (Some(issue), recheck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::fixtures::{T0, node, obs, rollout, triple};
    use crate::controller::conditions::{Severity, assess, status, transition_events};

    fn credential(
        source: CredentialSource,
        issued: Option<i64>,
        expires: Option<i64>,
        since: Option<i64>,
    ) -> CredentialReport {
        let t = |s: i64| Timestamp::from_second(T0 + s).unwrap();
        CredentialReport {
            source,
            issued_at: issued.map(t),
            expires_at: expires.map(t),
            since: since.map(t),
            bound_node: None,
            binding_unavailable: None,
        }
    }

    #[test]
    fn credential_problem_table() {
        use CredentialSource::{AgentToken, TokenRequest};
        const DAY: i64 = 86_400;
        let now = Timestamp::from_second(T0).unwrap();
        let lifetime = Duration::from_secs(86_400);
        let grace = Duration::from_secs(600);
        let t = |s: i64| Timestamp::from_second(T0 + s).unwrap();
        #[allow(clippy::type_complexity)]
        let cases: Vec<(CredentialReport, Option<&str>, Option<Timestamp>)> = vec![
            // Refreshed at half its life: fine until a quarter is left.
            (
                credential(TokenRequest, Some(-DAY / 2), Some(DAY / 2), Some(-DAY)),
                None,
                Some(t(DAY / 4)),
            ),
            // A quarter left: its agent missed the refresh.
            (
                credential(TokenRequest, Some(-DAY * 3 / 4), Some(DAY / 4), None),
                Some("expires at 2026-01-01T06:00:00Z, not refreshed"),
                Some(t(DAY / 4)),
            ),
            (
                credential(TokenRequest, Some(-DAY), Some(0), None),
                Some("expired at 2026-01-01T00:00:00Z"),
                None,
            ),
            // The API server issued 1 h tokens: a quarter of that counts.
            (
                credential(TokenRequest, Some(-1800), Some(1800), None),
                None,
                Some(t(900)),
            ),
            (
                credential(TokenRequest, Some(-2800), Some(800), None),
                Some("expires at 2026-01-01T00:13:20Z, not refreshed"),
                Some(t(800)),
            ),
            // Without issuedAt, the configured lifetime.
            (
                credential(TokenRequest, None, Some(DAY / 5), None),
                Some("expires at 2026-01-01T04:48:00Z, not refreshed"),
                Some(t(DAY / 5)),
            ),
            // The fallback, briefly: fine; for longer than the grace: not.
            (
                credential(AgentToken, Some(-60), Some(3540), Some(-60)),
                None,
                Some(t(540)),
            ),
            (
                credential(AgentToken, Some(-700), Some(2900), Some(-700)),
                Some("uses a copy of the agent's own token since 2025-12-31T23:48:20Z"),
                Some(t(2900)),
            ),
            (
                credential(AgentToken, Some(-3600), Some(0), Some(-60)),
                Some("uses a copy of the agent's own token, which expired at 2026-01-01T00:00:00Z"),
                None,
            ),
        ];
        for (c, problem, next) in cases {
            let (p, n) = credential_problem(&c, lifetime, grace, now);
            assert_eq!((p.as_deref(), n), (problem, next), "{c:?}");
        }
    }

    #[test]
    fn unrefreshed_plugin_tokens_are_degraded_and_name_the_nodes() {
        let mut nodes = vec![
            node("n1", true, None, Some("k8s")),
            node("n2", true, None, Some("k8s")),
            node("n3", true, None, Some("k8s")),
            node("n4", true, None, Some("k8s")),
        ];
        const DAY: i64 = 86_400;
        nodes[0].credential = Some(credential(
            CredentialSource::TokenRequest,
            Some(-DAY / 2),
            Some(DAY / 2),
            Some(-DAY),
        ));
        nodes[1].credential = Some(credential(
            CredentialSource::TokenRequest,
            Some(-DAY + 60),
            Some(60),
            Some(-DAY),
        ));
        nodes[2].credential = Some(credential(
            CredentialSource::AgentToken,
            Some(-900),
            Some(2700),
            Some(-900),
        ));
        // n4: an agent older than this check reports nothing.
        let a = assess(&obs(Some(rollout(4, 4, 4, 0)), &nodes));
        assert_eq!(
            triple(&a),
            (
                true,
                "Ready",
                false,
                "RolloutComplete",
                true,
                "PluginCredentialExpiring"
            )
        );
        let m = &a.degraded.message;
        assert!(
            m.starts_with(
                "The multus plugin's API token is not being refreshed on 2 nodes: n2 (expires at \
                 2026-01-01T00:01:00Z, not refreshed), n3 (uses a copy of the agent's own token \
                 since 2025-12-31T23:45:00Z)."
            ),
            "{m}"
        );
        assert!(m.contains("status.pluginCredential.message"), "{m}");
        assert!(m.contains("kubectl -n multus-system get pods"), "{m}");
        // The next look: when n2's token expires.
        assert_eq!(a.recheck_in, Some(Duration::from_secs(60)));
        // The Warning event comes with the transition.
        let status = status(None, &a, Some(1), 0, Timestamp::from_second(T0).unwrap());
        let events = transition_events(&[], &status.conditions);
        assert!(
            events
                .iter()
                .any(|e| e.severity == Severity::Warning && e.reason == "PluginCredentialExpiring")
        );
        // Healthy credentials only schedule the next look.
        nodes.truncate(1);
        let a = assess(&obs(Some(rollout(1, 1, 1, 0)), &nodes));
        assert_eq!(a.degraded.reason, "AsExpected");
        assert_eq!(a.recheck_in, Some(Duration::from_secs(86_400 / 4)));
    }
}
