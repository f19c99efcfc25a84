//! Node pools: which nodes a MultusConfig selects, and which of them an
//! older MultusConfig already claims. A node selected by two MultusConfigs
//! belongs to the older one (creation time, then name); the newer one
//! reports `NodeSelectorConflict` and its DaemonSet excludes the node.
//!
//! Selection follows the scheduler for what the spec controls:
//! `placement.nodeSelector` and the required node affinity. Taints are
//! ignored (the default tolerations accept every taint).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::jiff::Timestamp;
use multus_config::crd::MultusConfig;

/// What pool matching needs of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

/// A node of this MultusConfig's selection that an older one claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The node.
    pub node: String,
    /// The older MultusConfig that keeps it.
    pub owner: String,
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// Whether one required node-selector term selects `node`.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        // The scheduler matches nothing with an empty term.
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node.name.as_str())))
}

/// Whether `config` selects `node` (node selector and required affinity).
pub fn selects(config: &MultusConfig, node: &NodeInfo) -> bool {
    let placement = config.spec.placement.as_ref();
    let selector_ok = placement
        .and_then(|p| p.node_selector.as_ref())
        .is_none_or(|s| s.iter().all(|(k, v)| node.labels.get(k) == Some(v)));
    let terms = placement
        .and_then(|p| p.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    let affinity_ok = match terms {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
    };
    selector_ok && affinity_ok
}

/// The order of age: creation time (unknown = newest), then name.
fn age_key(config: &MultusConfig) -> (Timestamp, &str) {
    (
        config
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::MAX, |t| t.0),
        config.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The nodes `config` selects that an older MultusConfig of `all` also
/// selects, sorted by node name. `all` may include `config` itself.
pub fn conflicts(
    config: &MultusConfig,
    all: &[&MultusConfig],
    nodes: &[NodeInfo],
) -> Vec<Conflict> {
    let me = age_key(config);
    let mut older: Vec<&MultusConfig> = all
        .iter()
        .copied()
        .filter(|other| age_key(other) < me)
        .collect();
    older.sort_by(|a, b| age_key(a).cmp(&age_key(b)));
    let mut found: Vec<Conflict> = nodes
        .iter()
        .filter(|node| selects(config, node))
        .filter_map(|node| {
            older.iter().find(|o| selects(o, node)).map(|o| Conflict {
                node: node.name.clone(),
                owner: o.metadata.name.clone().unwrap_or_default(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.node.cmp(&b.node));
    found
}

/// How many of `nodes` `config` selects and keeps (not claimed by an
/// older MultusConfig).
pub fn kept_count(config: &MultusConfig, nodes: &[NodeInfo], conflicts: &[Conflict]) -> usize {
    nodes.iter().filter(|n| selects(config, n)).count() - conflicts.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use multus_config::crd::MultusConfigSpec;
    use multus_config::crd::multus_config::Placement;

    fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn config(name: &str, created: i64, selector: &[(&str, &str)]) -> MultusConfig {
        let mut mc = MultusConfig::new(
            name,
            MultusConfigSpec {
                placement: (!selector.is_empty()).then(|| Placement {
                    node_selector: Some(
                        selector
                            .iter()
                            .map(|(k, v)| ((*k).into(), (*v).into()))
                            .collect(),
                    ),
                    ..Placement::default()
                }),
                ..MultusConfigSpec::default()
            },
        );
        mc.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        mc
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).into()).collect()),
        }
    }

    #[test]
    fn requirement_operators_follow_the_scheduler() {
        let n = node("n1", &[("zone", "a"), ("cpus", "8")]);
        let cases = [
            (req("zone", "In", &["a", "b"]), true),
            (req("zone", "In", &["b"]), false),
            (req("zone", "NotIn", &["b"]), true),
            (req("missing", "NotIn", &["b"]), true),
            (req("zone", "Exists", &[]), true),
            (req("zone", "DoesNotExist", &[]), false),
            (req("cpus", "Gt", &["4"]), true),
            (req("cpus", "Lt", &["4"]), false),
            (req("zone", "Gt", &["4"]), false),
            (req("zone", "Bogus", &[]), false),
        ];
        for (r, want) in cases {
            let term = NodeSelectorTerm {
                match_expressions: Some(vec![r.clone()]),
                match_fields: None,
            };
            assert_eq!(term_matches(&term, &n), want, "{r:?}");
        }
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "NotIn", &["n1"])]),
        };
        assert!(!term_matches(&by_name, &n));
        assert!(!term_matches(&NodeSelectorTerm::default(), &n));
    }

    #[test]
    fn selection_combines_selector_and_required_affinity() {
        let mut mc = config("a", 1, &[("pool", "gpu")]);
        let gpu_a = node("g1", &[("pool", "gpu"), ("zone", "a")]);
        let gpu_b = node("g2", &[("pool", "gpu"), ("zone", "b")]);
        let cpu = node("c1", &[("pool", "cpu")]);
        assert!(selects(&mc, &gpu_a) && selects(&mc, &gpu_b) && !selects(&mc, &cpu));
        mc.spec.placement.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![req("zone", "In", &["a"])]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        assert!(selects(&mc, &gpu_a) && !selects(&mc, &gpu_b));
        assert!(selects(&config("all", 1, &[]), &cpu));
    }

    #[test]
    fn the_newer_config_loses_overlapping_nodes() {
        let nodes = [
            node("n1", &[("pool", "a")]),
            node("n2", &[("pool", "b")]),
            node("n3", &[("pool", "a")]),
        ];
        let everything = config("everything", 100, &[]);
        let pool_a = config("pool-a", 50, &[("pool", "a")]);
        let pool_b = config("pool-b", 200, &[("pool", "b")]);
        let all = [&everything, &pool_a, &pool_b];
        // pool-a is the oldest: no conflicts.
        assert!(conflicts(&pool_a, &all, &nodes).is_empty());
        // everything loses n1 and n3 to pool-a.
        let c = conflicts(&everything, &all, &nodes);
        assert_eq!(
            c,
            [
                Conflict {
                    node: "n1".into(),
                    owner: "pool-a".into()
                },
                Conflict {
                    node: "n3".into(),
                    owner: "pool-a".into()
                },
            ]
        );
        assert_eq!(kept_count(&everything, &nodes, &c), 1);
        // pool-b loses n2 to everything (older).
        let c = conflicts(&pool_b, &all, &nodes);
        assert_eq!(
            c,
            [Conflict {
                node: "n2".into(),
                owner: "everything".into()
            }]
        );
        assert_eq!(kept_count(&pool_b, &nodes, &c), 0);
    }

    #[test]
    fn equal_creation_times_are_ordered_by_name() {
        let nodes = [node("n1", &[])];
        let a = config("a", 10, &[]);
        let b = config("b", 10, &[]);
        assert!(conflicts(&a, &[&a, &b], &nodes).is_empty());
        assert_eq!(conflicts(&b, &[&a, &b], &nodes)[0].owner, "a");
    }
}
