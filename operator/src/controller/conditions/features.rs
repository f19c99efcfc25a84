//! Which features of newer Kubernetes versions protect this MultusConfig's
//! nodes, from what the API server offers ([`ServerFeatures`], probed by
//! the controller) and what the agents report (whether their plugin token
//! is bound to their Node). Shown in the MultusConfig's status, so
//! `kubectl describe multusconfig` says which protection is active.

use multus_config::crd::{ClusterFeature, FeatureState};

use super::inputs::NodeReport;
use super::wording::{NAMES_SHOWN, name_list, plural};

/// Feature name: the plugin's tokens are bound to their Node.
pub const FEATURE_NODE_BOUND_TOKENS: &str = "NodeBoundPluginTokens";
/// Feature name: an admission policy limits the plugin's writes to the
/// pods of its node.
pub const FEATURE_ADMISSION_POLICY: &str = "PluginAdmissionPolicy";
/// Feature name: NADs with a resourceName also get devices the pod holds
/// through ResourceClaims (Dynamic Resource Allocation).
pub const FEATURE_DRA: &str = "DynamicResourceAllocation";

/// What the API server offers, as the controller last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFeatures {
    /// `gitVersion`.
    pub git_version: String,
    /// The plugin's admission policy.
    pub admission_policy: AdmissionPolicy,
    /// Whether `resource.k8s.io/v1` serves ResourceClaims (`None`: could
    /// not look).
    pub dra_v1: Option<bool>,
}

/// The state of the chart's ValidatingAdmissionPolicy for the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionPolicy {
    /// The server does not serve ValidatingAdmissionPolicy v1 (before
    /// Kubernetes 1.30).
    NotServed,
    /// Served, but the policy or its binding does not exist.
    Missing {
        /// The policy's (and binding's) name.
        name: String,
        /// What is missing.
        missing: Vec<&'static str>,
    },
    /// The policy and its binding exist.
    Present {
        /// Their name.
        name: String,
    },
    /// The controller could not look.
    Unknown {
        /// Why.
        error: String,
    },
}

fn feature(name: &str, state: FeatureState, message: String) -> ClusterFeature {
    ClusterFeature {
        name: name.to_owned(),
        state,
        message,
    }
}

/// Whether the plugin tokens the agents report are bound to their Node.
pub fn node_bound_tokens(nodes: &[NodeReport]) -> ClusterFeature {
    let reported: Vec<_> = nodes
        .iter()
        .filter_map(|n| n.credential.as_ref().map(|c| (n, c)))
        .collect();
    if reported.is_empty() {
        return feature(
            FEATURE_NODE_BOUND_TOKENS,
            FeatureState::Unknown,
            "no agent has reported the plugin's token yet".to_owned(),
        );
    }
    let (bound, unbound): (Vec<_>, Vec<_>) =
        reported.iter().partition(|(_, c)| c.bound_node.is_some());
    let total = reported.len();
    if unbound.is_empty() {
        return feature(
            FEATURE_NODE_BOUND_TOKENS,
            FeatureState::Active,
            format!(
                "the plugin's token on {} is bound to its Node: it carries the node's name and \
                 stops working when the Node is deleted",
                plural(total, "node", "nodes")
            ),
        );
    }
    let names: Vec<String> = unbound.iter().map(|(n, _)| n.node.clone()).collect();
    let why = unbound
        .iter()
        .find_map(|(n, c)| {
            c.binding_unavailable
                .as_ref()
                .map(|why| format!("{}: {why}", n.node))
        })
        .unwrap_or_else(|| "the agents use a fallback token".to_owned());
    let (state, lead) = if bound.is_empty() {
        (
            FeatureState::Unavailable,
            format!(
                "the plugin's token is bound to no Node on {} ({})",
                plural(total, "node", "nodes"),
                name_list(&names, NAMES_SHOWN)
            ),
        )
    } else {
        (
            FeatureState::Partial,
            format!(
                "the plugin's token is bound to its Node on {} of {} nodes; not on {}",
                bound.len(),
                total,
                name_list(&names, NAMES_SHOWN)
            ),
        )
    };
    feature(FEATURE_NODE_BOUND_TOKENS, state, format!("{lead}; {why}"))
}

/// Whether the admission policy that limits the plugin to its node's pods
/// is in place.
pub fn admission_policy(server: &ServerFeatures) -> ClusterFeature {
    let (state, message) = match &server.admission_policy {
        AdmissionPolicy::Present { name } => (
            FeatureState::Active,
            format!(
                "ValidatingAdmissionPolicy {name} and its binding are in place: the plugin's \
                 node-bound token may write only the status of pods on its own node, and \
                 Events only in that node's name"
            ),
        ),
        AdmissionPolicy::NotServed => (
            FeatureState::Unavailable,
            format!(
                "the API server ({}) does not serve ValidatingAdmissionPolicy \
                 (admissionregistration.k8s.io/v1, Kubernetes 1.30+)",
                server.git_version
            ),
        ),
        AdmissionPolicy::Missing { name, missing } => (
            FeatureState::Unavailable,
            format!(
                "{} {name} not found: the chart installs it on Kubernetes 1.33 and newer \
                 (nodeIsolation.admissionPolicy)",
                missing.join(" and ")
            ),
        ),
        AdmissionPolicy::Unknown { error } => (
            FeatureState::Unknown,
            format!("cannot look for the admission policy: {error}"),
        ),
    };
    feature(FEATURE_ADMISSION_POLICY, state, message)
}

/// Whether the plugin can match NADs' resourceName with devices of the
/// pod's ResourceClaims here.
pub fn dynamic_resource_allocation(server: &ServerFeatures) -> ClusterFeature {
    let (state, message) = match server.dra_v1 {
        Some(true) => (
            FeatureState::Active,
            "resource.k8s.io/v1 is served: a NAD's resourceName also matches devices the pod \
             holds through ResourceClaims (their k8s.cni.cncf.io/resourceName attribute)"
                .to_owned(),
        ),
        Some(false) => (
            FeatureState::Unavailable,
            format!(
                "the API server ({}) does not serve resource.k8s.io/v1 (Kubernetes 1.34+): a \
                 NAD's resourceName matches device-plugin devices only",
                server.git_version
            ),
        ),
        None => (
            FeatureState::Unknown,
            "cannot look for resource.k8s.io/v1 (API discovery failed)".to_owned(),
        ),
    };
    feature(FEATURE_DRA, state, message)
}

/// Every feature, in a fixed order; nothing while the server has not been
/// probed.
pub fn cluster_features(
    server: Option<&ServerFeatures>,
    nodes: &[NodeReport],
) -> Vec<ClusterFeature> {
    let Some(server) = server else {
        return Vec::new();
    };
    vec![
        node_bound_tokens(nodes),
        admission_policy(server),
        dynamic_resource_allocation(server),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::inputs::CredentialReport;
    use multus_config::crd::CredentialSource;

    fn report(node: &str, bound: Option<&str>, why: Option<&str>) -> NodeReport {
        NodeReport {
            node: node.into(),
            ready: true,
            message: None,
            primary_network: None,
            credential: Some(CredentialReport {
                source: CredentialSource::TokenRequest,
                issued_at: None,
                expires_at: None,
                since: None,
                bound_node: bound.map(str::to_owned),
                binding_unavailable: why.map(str::to_owned),
            }),
        }
    }

    fn server(policy: AdmissionPolicy) -> ServerFeatures {
        ServerFeatures {
            git_version: "v1.28.7".into(),
            admission_policy: policy,
            dra_v1: Some(false),
        }
    }

    #[test]
    fn tokens_bound_on_every_node_are_active() {
        let f = node_bound_tokens(&[report("a", Some("a"), None), report("b", Some("b"), None)]);
        assert_eq!(f.state, FeatureState::Active);
        assert!(f.message.contains("on 2 nodes"), "{}", f.message);
    }

    #[test]
    fn a_server_refusing_the_binding_makes_it_unavailable_with_its_words() {
        let f = node_bound_tokens(&[report(
            "vm",
            None,
            Some("the API server does not bind ... feature-gate is disabled"),
        )]);
        assert_eq!(f.state, FeatureState::Unavailable);
        assert!(f.message.contains("(vm)"), "{}", f.message);
        assert!(
            f.message.contains("vm: the API server does not bind"),
            "{}",
            f.message
        );
    }

    #[test]
    fn some_nodes_bound_is_partial_and_names_the_others() {
        let f = node_bound_tokens(&[
            report("a", Some("a"), None),
            report("b", None, Some("refused")),
        ]);
        assert_eq!(f.state, FeatureState::Partial);
        assert!(
            f.message.contains("1 of 2 nodes; not on b"),
            "{}",
            f.message
        );
        assert!(f.message.contains("b: refused"), "{}", f.message);
    }

    #[test]
    fn no_report_is_unknown() {
        let mut silent = report("a", None, None);
        silent.credential = None;
        assert_eq!(node_bound_tokens(&[silent]).state, FeatureState::Unknown);
        assert_eq!(node_bound_tokens(&[]).state, FeatureState::Unknown);
    }

    #[test]
    fn the_policy_state_follows_what_the_server_has() {
        let present = admission_policy(&server(AdmissionPolicy::Present {
            name: "multus-node-isolation".into(),
        }));
        assert_eq!(present.state, FeatureState::Active);
        assert!(present.message.contains("multus-node-isolation"));
        let old = admission_policy(&server(AdmissionPolicy::NotServed));
        assert_eq!(old.state, FeatureState::Unavailable);
        assert!(old.message.contains("v1.28.7"), "{}", old.message);
        let missing = admission_policy(&server(AdmissionPolicy::Missing {
            name: "p".into(),
            missing: vec!["ValidatingAdmissionPolicyBinding"],
        }));
        assert_eq!(missing.state, FeatureState::Unavailable);
        assert!(
            missing
                .message
                .starts_with("ValidatingAdmissionPolicyBinding p not found"),
            "{}",
            missing.message
        );
        let unknown = admission_policy(&server(AdmissionPolicy::Unknown {
            error: "403".into(),
        }));
        assert_eq!(unknown.state, FeatureState::Unknown);
    }

    #[test]
    fn nothing_is_shown_before_the_server_was_probed() {
        assert!(cluster_features(None, &[report("a", Some("a"), None)]).is_empty());
        let all = cluster_features(
            Some(&server(AdmissionPolicy::NotServed)),
            &[report("a", Some("a"), None)],
        );
        let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                FEATURE_NODE_BOUND_TOKENS,
                FEATURE_ADMISSION_POLICY,
                FEATURE_DRA
            ]
        );
    }

    #[test]
    fn dra_follows_what_discovery_found() {
        let mut s = server(AdmissionPolicy::NotServed);
        assert_eq!(
            dynamic_resource_allocation(&s).state,
            FeatureState::Unavailable
        );
        assert!(dynamic_resource_allocation(&s).message.contains("v1.28.7"));
        s.dra_v1 = Some(true);
        assert_eq!(dynamic_resource_allocation(&s).state, FeatureState::Active);
        s.dra_v1 = None;
        assert_eq!(dynamic_resource_allocation(&s).state, FeatureState::Unknown);
    }
}
