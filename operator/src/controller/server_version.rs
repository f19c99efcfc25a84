//! The Kubernetes versions we support: 1.28 and newer. The controller reads
//! the API server's version at start and refuses an older server with a
//! message saying so, on every MultusConfig (Ready=False, Degraded=True,
//! reason `UnsupportedKubernetesVersion`, and a Warning event) and in its
//! log, instead of failing later on an API the server lacks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::version::Info;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use multus_config::crd::MultusConfig;
use serde_json::json;

use super::{FIELD_MANAGER, REPORTER};
use multus_config::crd::multus_config::{CONDITION_DEGRADED, CONDITION_READY};

/// The oldest Kubernetes release we support, as (major, minor).
pub const MIN_KUBERNETES: (u32, u32) = (1, 28);

/// Condition reason and event reason for a server older than
/// [`MIN_KUBERNETES`].
pub const REASON_UNSUPPORTED_VERSION: &str = "UnsupportedKubernetesVersion";

/// What is wrong with the API server's version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Older than [`MIN_KUBERNETES`].
    #[error(
        "the API server runs Kubernetes {found}, older than {}.{}, the oldest release this Multus supports: upgrade the cluster first",
        MIN_KUBERNETES.0,
        MIN_KUBERNETES.1
    )]
    TooOld {
        /// The server's `gitVersion` (or major.minor).
        found: String,
    },
    /// The version fields do not parse (some distributions rewrite them).
    #[error(
        "cannot read the API server's version (major {major:?}, minor {minor:?}, gitVersion {git_version:?})"
    )]
    Unreadable {
        /// `major` as the server sent it.
        major: String,
        /// `minor` as the server sent it.
        minor: String,
        /// `gitVersion` as the server sent it.
        git_version: String,
    },
}

/// Leading decimal digits of `text` (`"28+"` → 28, as managed clusters
/// report their minor version).
fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// (major, minor) of a server: from `major`/`minor`, else from
/// `gitVersion` (`v1.28.7-gke.1` → (1, 28)).
pub fn parse(info: &Info) -> Result<(u32, u32), VersionError> {
    let from_fields = leading_number(&info.major).zip(leading_number(&info.minor));
    let from_git = || {
        let mut parts = info.git_version.trim_start_matches('v').split('.');
        leading_number(parts.next()?).zip(leading_number(parts.next()?))
    };
    from_fields
        .or_else(from_git)
        .ok_or_else(|| VersionError::Unreadable {
            major: info.major.clone(),
            minor: info.minor.clone(),
            git_version: info.git_version.clone(),
        })
}

/// The server's (major, minor) when it is supported.
pub fn check(info: &Info) -> Result<(u32, u32), VersionError> {
    let version = parse(info)?;
    if version < MIN_KUBERNETES {
        let found = if info.git_version.is_empty() {
            format!("{}.{}", version.0, version.1)
        } else {
            info.git_version.clone()
        };
        return Err(VersionError::TooOld { found });
    }
    Ok(version)
}

/// The conditions that tell a MultusConfig's reader the cluster is too old.
pub fn unsupported_conditions(
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let condition = |type_: &str, status: &str| Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: REASON_UNSUPPORTED_VERSION.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: Time(now),
    };
    vec![
        condition(CONDITION_READY, "False"),
        condition(CONDITION_DEGRADED, "True"),
    ]
}

/// Reports `error` on every MultusConfig (conditions and a Warning event),
/// best effort: failures are logged, the caller exits anyway.
pub async fn report_unsupported(client: &Client, error: &VersionError) {
    let message = error.to_string();
    let api: Api<MultusConfig> = Api::all(client.clone());
    let configs = match api.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list MultusConfigs to report the unsupported version");
            return;
        }
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: REPORTER.to_owned(),
            instance: None,
        },
    );
    let now = Timestamp::now();
    for config in configs {
        let name = config.name_any();
        let already = config.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == CONDITION_READY && c.reason == REASON_UNSUPPORTED_VERSION)
        });
        if already {
            continue;
        }
        let body = json!({
            "apiVersion": MultusConfig::api_version(&()),
            "kind": MultusConfig::kind(&()),
            "metadata": { "name": name },
            "status": {
                "conditions": unsupported_conditions(&message, config.metadata.generation, now),
            },
        });
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            tracing::warn!(multusconfig = %name, error = %e, "cannot report the unsupported version");
        }
        let event = Event {
            type_: EventType::Warning,
            reason: REASON_UNSUPPORTED_VERSION.to_owned(),
            note: Some(message.clone()),
            action: "Start".to_owned(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &config.object_ref(&())).await {
            tracing::warn!(multusconfig = %name, error = %e, "cannot publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.to_owned(),
            minor: minor.to_owned(),
            git_version: git.to_owned(),
            ..Info::default()
        }
    }

    #[test]
    fn supported_releases_pass() {
        assert_eq!(check(&info("1", "28", "v1.28.7")), Ok((1, 28)));
        assert_eq!(check(&info("1", "33", "v1.33.1")), Ok((1, 33)));
        // Managed clusters report "28+".
        assert_eq!(check(&info("1", "28+", "v1.28.15-eks-1")), Ok((1, 28)));
        // Empty fields: the gitVersion tells.
        assert_eq!(check(&info("", "", "v1.30.2-gke.100")), Ok((1, 30)));
        assert_eq!(check(&info("2", "0", "v2.0.0")), Ok((2, 0)));
    }

    #[test]
    fn older_releases_are_refused_naming_the_version_and_the_floor() {
        let error = check(&info("1", "27+", "v1.27.16-eks-1")).unwrap_err();
        assert_eq!(
            error,
            VersionError::TooOld {
                found: "v1.27.16-eks-1".to_owned()
            }
        );
        let message = error.to_string();
        assert!(message.contains("v1.27.16-eks-1"), "{message}");
        assert!(message.contains("1.28"), "{message}");
        assert!(matches!(
            check(&info("1", "19", "")),
            Err(VersionError::TooOld { found }) if found == "1.19"
        ));
    }

    #[test]
    fn an_unreadable_version_says_what_it_got() {
        let error = check(&info("x", "y", "custom")).unwrap_err();
        assert!(matches!(error, VersionError::Unreadable { .. }));
        assert!(error.to_string().contains("custom"), "{error}");
    }

    #[test]
    fn conditions_say_not_ready_and_degraded_with_the_reason() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let conditions = unsupported_conditions("too old", Some(3), now);
        assert_eq!(conditions.len(), 2);
        assert_eq!(
            (conditions[0].type_.as_str(), conditions[0].status.as_str()),
            (CONDITION_READY, "False")
        );
        assert_eq!(
            (conditions[1].type_.as_str(), conditions[1].status.as_str()),
            (CONDITION_DEGRADED, "True")
        );
        assert!(
            conditions
                .iter()
                .all(|c| c.reason == REASON_UNSUPPORTED_VERSION
                    && c.message == "too old"
                    && c.observed_generation == Some(3))
        );
    }
}
