//! Where the agent pods run: the spec's placement, every taint tolerated
//! by default, and the nodes claimed by an older MultusConfig excluded.

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
};

/// Tolerations when the spec sets none: every taint, so every node gets
/// Multus (control plane, tainted and not-ready nodes included).
pub fn default_tolerations() -> Vec<Toleration> {
    vec![Toleration {
        operator: Some("Exists".to_owned()),
        ..Toleration::default()
    }]
}

/// The spec's affinity, with the nodes in `excluded` (node-pool
/// conflicts) removed from every required node-selector term through
/// `metadata.name NotIn [node]` field requirements, one per node:
/// Kubernetes allows exactly one value in a `matchFields` `In`/`NotIn`
/// requirement, and the requirements of a term all have to hold. Each
/// excluded node costs about 60 bytes of DaemonSet, so hundreds of
/// conflicting nodes stay far below the object size limit.
pub fn affinity_excluding(affinity: Option<&Affinity>, excluded: &[String]) -> Option<Affinity> {
    if excluded.is_empty() {
        return affinity.cloned();
    }
    let mut names = excluded.to_vec();
    names.sort();
    names.dedup();
    let requirements: Vec<NodeSelectorRequirement> = names
        .into_iter()
        .map(|name| NodeSelectorRequirement {
            key: "metadata.name".to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(vec![name]),
        })
        .collect();
    let mut affinity = affinity.cloned().unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = node_affinity
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields
            .get_or_insert_with(Vec::new)
            .extend(requirements.iter().cloned());
    }
    Some(affinity)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::controller::render::fixtures::{config, pod_spec, settings};
    use crate::controller::render::render;
    use multus_config::crd::MultusConfigSpec;
    use multus_config::crd::multus_config::Placement;

    #[test]
    fn excluded_nodes_join_every_required_term() {
        assert_eq!(affinity_excluding(None, &[]), None);
        let a = affinity_excluding(None, &["n2".into(), "n1".into(), "n1".into()]).unwrap();
        let terms = a
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        // One single-value requirement per node (the API server refuses
        // more than one value in a matchFields NotIn), sorted, deduplicated.
        let fields = terms[0].match_fields.as_ref().unwrap();
        let excluded: Vec<&str> = fields
            .iter()
            .map(|f| {
                assert_eq!(f.key, "metadata.name");
                assert_eq!(f.operator, "NotIn");
                let values = f.values.as_deref().unwrap();
                assert_eq!(values.len(), 1, "{f:?}");
                values[0].as_str()
            })
            .collect();
        assert_eq!(excluded, ["n1", "n2"]);

        let user = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![
                        NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: "In".into(),
                                values: Some(vec!["a".into()]),
                            }]),
                            match_fields: None,
                        },
                        NodeSelectorTerm::default(),
                    ],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        };
        let merged = affinity_excluding(Some(&user), &["n1".into()]).unwrap();
        let terms = merged
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 2);
        for term in &terms {
            assert_eq!(term.match_fields.as_ref().unwrap().len(), 1);
        }
        assert_eq!(terms[0].match_expressions.as_ref().unwrap()[0].key, "zone");
    }

    #[test]
    fn hundreds_of_excluded_nodes_stay_valid_and_small() {
        let excluded: Vec<String> = (0..500).map(|i| format!("worker-{i:04}")).collect();
        let affinity = affinity_excluding(None, &excluded).unwrap();
        let fields = affinity
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms[0]
            .match_fields
            .clone()
            .unwrap();
        assert_eq!(fields.len(), 500);
        assert!(fields.iter().all(|f| f.values.as_ref().unwrap().len() == 1));
        let bytes = serde_json::to_vec(&affinity).unwrap().len();
        assert!(bytes < 64 * 1024, "{bytes} bytes for 500 excluded nodes");
        // The pool logic (the scheduler's rule) keeps every excluded node
        // out and every other node in.
        let term = &affinity
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms[0];
        let node = |name: &str| crate::controller::pools::NodeInfo {
            name: name.to_owned(),
            labels: BTreeMap::new(),
        };
        assert!(!crate::controller::pools::term_matches(
            term,
            &node("worker-0000")
        ));
        assert!(!crate::controller::pools::term_matches(
            term,
            &node("worker-0499")
        ));
        assert!(crate::controller::pools::term_matches(
            term,
            &node("worker-0500")
        ));
    }

    #[test]
    fn placement_defaults_tolerate_everything_and_select_every_node() {
        let children = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let pod = pod_spec(&children);
        assert_eq!(pod.tolerations.as_deref(), Some(&default_tolerations()[..]));
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.affinity, None);
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        let selected = render(
            &config(MultusConfigSpec {
                placement: Some(Placement {
                    node_selector: Some(BTreeMap::from([("pool".into(), "a".into())])),
                    tolerations: Some(vec![]),
                    affinity: None,
                }),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &["n9".into()],
        )
        .unwrap();
        let pod = pod_spec(&selected);
        assert_eq!(pod.tolerations.as_deref(), Some(&[][..]));
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "a");
        assert!(pod.affinity.is_some());
    }
}
