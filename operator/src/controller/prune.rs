//! Which of our objects the current spec no longer renders.
//!
//! Candidates carry our labels and a controller owner reference to the
//! MultusConfig's uid; anything else is never deleted. Objects the agent
//! pods mount (the settings ConfigMaps, see
//! [`super::operand::Operand::MOUNTED_BY_AGENTS`]) that are no longer
//! current stay until the rollout is complete, because agent pods of the
//! previous template still mount them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::operand::ObjectKey;
use super::render::{Children, LABEL_CONFIG, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// Whether `meta` is ours for the MultusConfig `config` with uid `uid`:
/// our labels and a controller owner reference to that uid.
pub fn is_owned(meta: &ObjectMeta, config: &str, uid: &str) -> bool {
    let labels = meta.labels.as_ref();
    let labelled = labels
        .and_then(|l| l.get(LABEL_CONFIG))
        .is_some_and(|v| v == config)
        && labels
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .is_some_and(|v| v == MANAGED_BY_VALUE);
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true));
    labelled && owned
}

/// The keys of rendered children, in apply order.
pub fn desired_keys(children: &Children) -> Vec<ObjectKey> {
    children
        .metas()
        .into_iter()
        .map(|(kind, meta)| ObjectKey::of(kind, meta))
        .collect()
}

/// The objects of `existing` (ours) to delete given the `desired` set:
/// everything not desired, except what the agent pods mount (ConfigMaps)
/// while the rollout is not complete. Sorted, DaemonSets first.
pub fn stale(
    existing: &[ObjectKey],
    desired: &[ObjectKey],
    rollout_complete: bool,
) -> Vec<ObjectKey> {
    let mut out: Vec<ObjectKey> = existing
        .iter()
        .filter(|e| !desired.iter().any(|d| d.same_object(e)))
        .filter(|e| rollout_complete || !e.kind.mounted_by_agents())
        .cloned()
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::operand::Kind;
    use crate::controller::render::fixtures::default_children_of_a;
    use crate::controller::render::{common_labels, owner_reference};

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: (kind != Kind::ClusterRoleBinding).then(|| "ns".to_owned()),
            name: name.into(),
            uid: Some(format!("uid-{name}")),
        }
    }

    #[test]
    fn old_config_maps_wait_for_the_rollout() {
        let desired = [key(Kind::ConfigMap, "cm-new"), key(Kind::DaemonSet, "ds")];
        let existing = [
            key(Kind::ConfigMap, "cm-old"),
            key(Kind::ConfigMap, "cm-new"),
            key(Kind::DaemonSet, "ds"),
            key(Kind::ServiceAccount, "old-sa"),
        ];
        assert_eq!(
            stale(&existing, &desired, false),
            [key(Kind::ServiceAccount, "old-sa")]
        );
        assert_eq!(
            stale(&existing, &desired, true),
            [
                key(Kind::ConfigMap, "cm-old"),
                key(Kind::ServiceAccount, "old-sa")
            ]
        );
        assert!(stale(&desired, &desired, true).is_empty());
    }

    #[test]
    fn only_labelled_and_owned_objects_are_candidates() {
        let mut meta = ObjectMeta {
            labels: Some(common_labels("a")),
            owner_references: Some(vec![owner_reference("a", "uid-a")]),
            ..ObjectMeta::default()
        };
        assert!(is_owned(&meta, "a", "uid-a"));
        assert!(!is_owned(&meta, "a", "uid-other"), "recreated MultusConfig");
        assert!(!is_owned(&meta, "b", "uid-a"));
        meta.labels = None;
        assert!(!is_owned(&meta, "a", "uid-a"), "unlabelled");
    }

    #[test]
    fn desired_keys_cover_every_child() {
        let children = default_children_of_a();
        let keys: Vec<String> = desired_keys(&children)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            keys,
            [
                "ServiceAccount ns/multus-agent-a",
                "ClusterRoleBinding multus-agent-a",
                "ServiceAccount ns/multus-plugin-a",
                "ClusterRoleBinding multus-plugin-a",
                "Role ns/multus-agent-a",
                "RoleBinding ns/multus-agent-a",
                "ConfigMap ns/multus-agent-a-0750f23f28",
                "DaemonSet ns/multus-agent-a",
            ]
        );
    }
}
