//! The RBAC of the operator and its operands, each rule with the reason it
//! exists. docs/rbac.md holds the same tables (a test keeps them equal),
//! and the Helm chart ships these roles.
//!
//! Decision (docs/rbac.md): the chart ships the node agent's ClusterRole
//! [`AGENT_CLUSTER_ROLE`] and the plugin's ClusterRole
//! [`PLUGIN_CLUSTER_ROLE`] with fixed rules; the controller never writes a
//! ClusterRole. Per MultusConfig it creates a ServiceAccount for the agents
//! and one for the plugin, and a ClusterRoleBinding of each to its chart
//! role, which Kubernetes only allows because the controller holds `bind`
//! on exactly those two ClusterRoles (by `resourceNames`). The controller
//! therefore does not hold the plugin's rights (pods/status patch on every
//! pod) itself.
//!
//! The plugin's identity is its own (issue 11): the agent requests tokens
//! for the plugin's ServiceAccount (TokenRequest), allowed by a Role per
//! MultusConfig ([`agent_token_rules`]) limited to that one ServiceAccount,
//! so the plugin's token outlives the agent pod.

use super::probe::admission_policy_name;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use multus_config::crd::generated_crds;

/// The chart's ClusterRole for the node agents.
pub const AGENT_CLUSTER_ROLE: &str = "multus-node-agent";
/// The chart's ClusterRole for the `multus` plugin on the hosts.
pub const PLUGIN_CLUSTER_ROLE: &str = "multus-plugin";
/// The chart's ClusterRole for the controller.
pub const CONTROLLER_CLUSTER_ROLE: &str = "multus-operator";
/// Name of the NAD CRD (created by the controller only when absent).
pub const NAD_CRD_NAME: &str = "network-attachment-definitions.k8s.cni.cncf.io";

/// One rule and why it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentedRule {
    /// API group (`""` is the core group).
    pub api_group: &'static str,
    /// Resources (with subresources as `pods/status`).
    pub resources: Vec<&'static str>,
    /// Verbs.
    pub verbs: Vec<&'static str>,
    /// Object names the rule is limited to (empty: all).
    pub resource_names: Vec<String>,
    /// Who uses it and for what.
    pub reason: &'static str,
}

impl DocumentedRule {
    fn new(
        api_group: &'static str,
        resources: &[&'static str],
        verbs: &[&'static str],
        reason: &'static str,
    ) -> Self {
        Self {
            api_group,
            resources: resources.to_vec(),
            verbs: verbs.to_vec(),
            resource_names: Vec::new(),
            reason,
        }
    }

    fn named(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.resource_names = names.into_iter().collect();
        self
    }

    /// The rule as Kubernetes takes it.
    pub fn policy_rule(&self) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![self.api_group.to_owned()]),
            resources: Some(self.resources.iter().map(|r| (*r).to_owned()).collect()),
            verbs: self.verbs.iter().map(|v| (*v).to_owned()).collect(),
            resource_names: (!self.resource_names.is_empty()).then(|| self.resource_names.clone()),
            non_resource_urls: None,
        }
    }
}

/// Rules of [`PLUGIN_CLUSTER_ROLE`]: exactly what the `multus` plugin
/// uses. Its token sits on every node's disk (readable by root there), so
/// nothing else: no right that would let a stolen token reach beyond pods'
/// network annotations.
pub fn plugin_rules() -> Vec<DocumentedRule> {
    vec![
        DocumentedRule::new(
            "",
            &["pods"],
            &["get"],
            "plugin: reads the pod's network annotations and UID on ADD/DEL",
        ),
        DocumentedRule::new(
            "",
            &["pods/status"],
            &["patch"],
            "plugin: writes the network-status annotation with one merge patch of the status \
             subresource (which cannot change the pod's spec)",
        ),
        DocumentedRule::new(
            "k8s.cni.cncf.io",
            &["network-attachment-definitions"],
            &["get"],
            "plugin: reads each NAD a pod asks for, and the cluster/default networks",
        ),
        DocumentedRule::new(
            "",
            &["events"],
            &["create"],
            "plugin: records AddedInterface / NoNetworkFound / ClaimStatusNotWritten events on \
             the pod (core/v1)",
        ),
        DocumentedRule::new(
            "resource.k8s.io",
            &["resourceclaims"],
            &["get"],
            "plugin: reads the allocated devices of the pod's ResourceClaims, only when a NAD \
             names a resource the device plugins do not serve (DRA)",
        ),
        DocumentedRule::new(
            "resource.k8s.io",
            &["resourceslices"],
            &["list"],
            "plugin: reads the attributes of those devices in its node's ResourceSlices (LIST \
             with fieldSelector spec.nodeName and spec.driver)",
        ),
        DocumentedRule::new(
            "resource.k8s.io",
            &["resourceclaims/status"],
            &["patch"],
            "plugin: server-side apply of its own entries of the claim's status.devices (the \
             attached interface's name, IPs and MAC) after ADD, and their removal on DEL",
        ),
    ]
}

/// Rules of [`AGENT_CLUSTER_ROLE`]: the agent's own MultusNodeState.
pub fn node_agent_rules() -> Vec<DocumentedRule> {
    vec![
        DocumentedRule::new(
            "multus.dev",
            &["multusnodestates"],
            &["create", "patch"],
            "agent: server-side apply of MultusNodeState/<node> (apply creates it, so both verbs)",
        ),
        DocumentedRule::new(
            "multus.dev",
            &["multusnodestates/status"],
            &["patch"],
            "agent: server-side apply of its node's status",
        ),
        DocumentedRule::new(
            "",
            &["pods"],
            &["list", "watch"],
            "agent: cache of its node's pods for the plugin (field selector spec.nodeName)",
        ),
        DocumentedRule::new(
            "k8s.cni.cncf.io",
            &["network-attachment-definitions"],
            &["list", "watch"],
            "agent: cache of the NADs for the plugin",
        ),
    ]
}

/// Rules of the Role `multus-agent-<mc>` the controller creates in its
/// namespace for each MultusConfig's agents: tokens for that
/// MultusConfig's plugin ServiceAccount `plugin_service_account`, and
/// nothing else.
pub fn agent_token_rules(plugin_service_account: &str) -> Vec<DocumentedRule> {
    vec![
        DocumentedRule::new(
            "",
            &["serviceaccounts/token"],
            &["create"],
            "agent: requests the plugin's token (TokenRequest API) for the plugin's \
             ServiceAccount of its MultusConfig only",
        )
        .named([plugin_service_account.to_owned()]),
    ]
}

/// Cluster-wide rules of [`CONTROLLER_CLUSTER_ROLE`], which may bind the
/// agent and plugin ClusterRoles named here (and no other role).
pub fn controller_cluster_rules(
    agent_cluster_role: &str,
    plugin_cluster_role: &str,
) -> Vec<DocumentedRule> {
    let mut crd_names: Vec<String> = generated_crds()
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    crd_names.push(NAD_CRD_NAME.to_owned());
    vec![
        DocumentedRule::new(
            "multus.dev",
            &["multusconfigs"],
            &["list", "watch", "patch"],
            "watch the MultusConfigs it reconciles; patch adds and removes its finalizer",
        ),
        DocumentedRule::new(
            "multus.dev",
            &["multusconfigs/status"],
            &["patch"],
            "server-side apply of status (conditions, node counts)",
        ),
        DocumentedRule::new(
            "multus.dev",
            &["multusconfigs/finalizers"],
            &["update"],
            "owner references with blockOwnerDeletion on the operands it creates \
             (OwnerReferencesPermissionEnforcement)",
        ),
        DocumentedRule::new(
            "multus.dev",
            &["multusnodestates"],
            &["list", "watch", "delete"],
            "status from the agents' reports; deletes the reports of deleted nodes and of \
             uninstalled MultusConfigs",
        ),
        DocumentedRule::new(
            "",
            &["nodes"],
            &["list", "watch"],
            "node labels for node-pool conflicts; allocatable resources for NADs' resourceName",
        ),
        DocumentedRule::new(
            "k8s.cni.cncf.io",
            &["network-attachment-definitions"],
            &["list", "watch"],
            "validates every NAD; never writes one",
        ),
        DocumentedRule::new(
            "events.k8s.io",
            &["events"],
            &["create", "patch"],
            "events on MultusConfigs and on NADs in any namespace (kube-rs Recorder: create, \
             patch for repeats)",
        ),
        DocumentedRule::new(
            "rbac.authorization.k8s.io",
            &["clusterrolebindings"],
            &["list", "watch", "create", "patch", "delete"],
            "per MultusConfig, one binding of its agent ServiceAccount to the agent role and \
             one of its plugin ServiceAccount to the plugin role; create cannot be limited by \
             name",
        ),
        DocumentedRule::new(
            "rbac.authorization.k8s.io",
            &["clusterroles"],
            &["get", "bind"],
            "bind: allowed to bind only the chart's agent and plugin roles without holding \
             their rights; get: reports a missing role on the MultusConfig",
        )
        .named([
            agent_cluster_role.to_owned(),
            plugin_cluster_role.to_owned(),
        ]),
        DocumentedRule::new(
            "admissionregistration.k8s.io",
            &[
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings",
            ],
            &["get"],
            "reports whether the chart's admission policy (the plugin writes only its node's \
             pods) and its binding are in place; never writes them",
        )
        .named([admission_policy_name(plugin_cluster_role)]),
        DocumentedRule::new(
            "apiextensions.k8s.io",
            &["customresourcedefinitions"],
            &["create"],
            "creates the NAD CRD when absent, and ours on first start (create cannot be \
             limited by name)",
        ),
        DocumentedRule::new(
            "apiextensions.k8s.io",
            &["customresourcedefinitions"],
            &["get", "patch"],
            "server-side apply of its own CRDs at start, so `helm upgrade` brings new fields; \
             get of the NAD CRD (never patched)",
        )
        .named(crd_names),
    ]
}

/// Rules of the controller's Role in its own namespace (the operands).
pub fn controller_namespace_rules() -> Vec<DocumentedRule> {
    vec![
        DocumentedRule::new(
            "apps",
            &["daemonsets"],
            &["list", "watch", "create", "patch", "delete"],
            "the node-agent DaemonSets (server-side apply creates and patches; delete on \
             uninstall and prune)",
        ),
        DocumentedRule::new(
            "",
            &["configmaps"],
            &["list", "watch", "create", "patch", "delete"],
            "the agent settings ConfigMaps (one per settings hash; old ones are pruned)",
        ),
        DocumentedRule::new(
            "",
            &["serviceaccounts"],
            &["list", "watch", "create", "patch", "delete"],
            "the agents' and the plugin's ServiceAccounts (deleting a plugin ServiceAccount \
             revokes every token issued for it)",
        ),
        DocumentedRule::new(
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            &["list", "watch", "create", "patch", "delete"],
            "per MultusConfig, the agents' Role allowing them to request the plugin's token, \
             and its RoleBinding",
        ),
        DocumentedRule::new(
            "",
            &["serviceaccounts/token"],
            &["create"],
            "never used itself: Kubernetes lets the controller create a Role granting the \
             agents `create serviceaccounts/token` only if the controller holds that right \
             (escalation prevention); see \"The plugin's own identity\"",
        ),
        DocumentedRule::new(
            "",
            &["pods"],
            &["list"],
            "on deletion: whether each node's uninstall pod has finished",
        ),
        DocumentedRule::new(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "patch"],
            "leader election (kube-lease-manager: get, create, server-side apply), so only one \
             replica reconciles",
        ),
    ]
}

/// The rules of `docs` as Kubernetes takes them.
pub fn policy_rules(docs: &[DocumentedRule]) -> Vec<PolicyRule> {
    docs.iter().map(DocumentedRule::policy_rule).collect()
}

fn cluster_role(name: &str, docs: &[DocumentedRule]) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(policy_rules(docs)),
        aggregation_rule: None,
    }
}

/// The agent ClusterRole as the chart ships it.
pub fn node_agent_cluster_role(name: &str) -> ClusterRole {
    cluster_role(name, &node_agent_rules())
}

/// The plugin ClusterRole as the chart ships it.
pub fn plugin_cluster_role(name: &str) -> ClusterRole {
    cluster_role(name, &plugin_rules())
}

/// The controller's ClusterRole as the chart ships it, when the plugin
/// ClusterRole has its default name [`PLUGIN_CLUSTER_ROLE`].
pub fn controller_cluster_role(name: &str, agent_cluster_role: &str) -> ClusterRole {
    controller_cluster_role_with(name, agent_cluster_role, PLUGIN_CLUSTER_ROLE)
}

/// The controller's ClusterRole as the chart ships it.
pub fn controller_cluster_role_with(
    name: &str,
    agent_cluster_role: &str,
    plugin_cluster_role: &str,
) -> ClusterRole {
    cluster_role(
        name,
        &controller_cluster_rules(agent_cluster_role, plugin_cluster_role),
    )
}

/// The controller's Role in `namespace` as the chart ships it.
pub fn controller_role(name: &str, namespace: &str) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(policy_rules(&controller_namespace_rules())),
    }
}

/// One rule table in Markdown (the form docs/rbac.md uses).
pub fn markdown_table(docs: &[DocumentedRule]) -> String {
    let mut out = String::from(
        "| apiGroup | resources | verbs | resourceNames | why |\n|---|---|---|---|---|\n",
    );
    for d in docs {
        let group = if d.api_group.is_empty() {
            "`\"\"`".to_owned()
        } else {
            format!("`{}`", d.api_group)
        };
        let names = if d.resource_names.is_empty() {
            "all".to_owned()
        } else {
            d.resource_names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {group} | {} | {} | {names} | {} |\n",
            d.resources.join(", "),
            d.verbs.join(", "),
            d.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(docs: &[DocumentedRule], group: &str, resource: &str, verb: &str) -> bool {
        docs.iter().any(|d| {
            d.api_group == group && d.resources.contains(&resource) && d.verbs.contains(&verb)
        })
    }

    #[test]
    fn plugin_role_is_exactly_what_the_plugin_uses() {
        let docs = plugin_rules();
        assert!(grants(&docs, "", "pods", "get"));
        assert!(grants(&docs, "", "pods/status", "patch"));
        assert!(grants(
            &docs,
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            "get"
        ));
        assert!(grants(&docs, "", "events", "create"));
        assert!(grants(&docs, "resource.k8s.io", "resourceclaims", "get"));
        assert!(grants(&docs, "resource.k8s.io", "resourceslices", "list"));
        assert!(grants(
            &docs,
            "resource.k8s.io",
            "resourceclaims/status",
            "patch"
        ));
        assert_eq!(docs.len(), 7);
        // What upstream grants and nobody needs.
        for (group, resource, verb) in [
            ("", "pods", "update"),
            ("", "pods", "list"),
            ("", "pods/status", "update"),
            ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
            ("", "events", "update"),
            ("multus.dev", "multusnodestates", "patch"),
            // Upstream grants get/list on all three; one GET per claim,
            // a LIST of slices and an apply need no more.
            ("resource.k8s.io", "resourceclaims", "list"),
            ("resource.k8s.io", "resourceslices", "get"),
            ("resource.k8s.io", "resourceslices", "watch"),
            ("resource.k8s.io", "resourceclaims/status", "get"),
            ("resource.k8s.io", "resourceclaims/status", "update"),
            (
                "resource.k8s.io",
                "resourceclaims/driver",
                "arbitrary-node:patch",
            ),
        ] {
            assert!(!grants(&docs, group, resource, verb), "{resource} {verb}");
        }
        for d in &docs {
            assert!(!d.verbs.contains(&"*") && !d.resources.contains(&"*"));
        }
    }

    #[test]
    fn agent_roles_hold_only_the_node_state_and_one_token_request() {
        let docs = node_agent_rules();
        assert!(grants(&docs, "multus.dev", "multusnodestates", "patch"));
        assert!(grants(
            &docs,
            "multus.dev",
            "multusnodestates/status",
            "patch"
        ));
        assert_eq!(docs.len(), 4, "the plugin's rules moved to the plugin role");
        // The caches list and watch; single objects and every write stay
        // the plugin's.
        assert!(grants(&docs, "", "pods", "watch"));
        assert!(grants(
            &docs,
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            "list"
        ));
        assert!(!grants(&docs, "", "pods", "get"));
        assert!(!grants(&docs, "", "pods/status", "patch"));
        let token = agent_token_rules("multus-plugin-default");
        assert_eq!(token.len(), 1);
        assert_eq!(token[0].resources, ["serviceaccounts/token"]);
        assert_eq!(token[0].verbs, ["create"]);
        assert_eq!(token[0].resource_names, ["multus-plugin-default"]);
    }

    #[test]
    fn controller_binds_only_the_chart_roles_and_never_writes_cluster_roles() {
        let cluster = controller_cluster_rules("multus-node-agent", "multus-plugin");
        let bind: Vec<_> = cluster
            .iter()
            .filter(|d| d.verbs.contains(&"bind") || d.verbs.contains(&"escalate"))
            .collect();
        assert_eq!(bind.len(), 1);
        assert_eq!(
            bind[0].resource_names,
            ["multus-node-agent", "multus-plugin"]
        );
        assert!(!bind[0].verbs.contains(&"escalate"));
        assert!(!grants(
            &cluster,
            "rbac.authorization.k8s.io",
            "clusterroles",
            "create"
        ));
        assert!(!grants(
            &cluster,
            "rbac.authorization.k8s.io",
            "clusterroles",
            "patch"
        ));
        // It never holds the plugin's pod rights itself.
        assert!(!grants(&cluster, "", "pods/status", "patch"));
        assert!(!grants(&cluster, "", "pods", "get"));
        let ns = controller_namespace_rules();
        assert!(grants(&ns, "apps", "daemonsets", "patch"));
        // The agents' token Role: the controller must hold what it grants.
        for verb in ["list", "watch", "create", "patch", "delete"] {
            assert!(grants(&ns, "rbac.authorization.k8s.io", "roles", verb));
            assert!(grants(
                &ns,
                "rbac.authorization.k8s.io",
                "rolebindings",
                verb
            ));
        }
        assert!(grants(&ns, "", "serviceaccounts/token", "create"));
        assert!(!grants(
            &ns,
            "rbac.authorization.k8s.io",
            "roles",
            "escalate"
        ));
        assert!(!grants(&ns, "rbac.authorization.k8s.io", "roles", "bind"));
        let role = controller_role("multus-operator", "multus-system");
        assert_eq!(role.rules.unwrap().len(), ns.len());
        let crd = cluster
            .iter()
            .find(|d| d.verbs.contains(&"patch") && d.resources == ["customresourcedefinitions"])
            .unwrap();
        assert!(
            crd.resource_names
                .contains(&"multusconfigs.multus.dev".to_owned())
        );
        assert!(crd.resource_names.contains(&NAD_CRD_NAME.to_owned()));
    }

    #[test]
    fn policy_rules_carry_resource_names_only_when_limited() {
        let role = controller_cluster_role_with("multus-operator", "x", "y");
        let rules = role.rules.unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.resource_names.as_deref() == Some(&["x".to_owned(), "y".to_owned()][..]))
        );
        assert!(rules.iter().filter(|r| r.resource_names.is_none()).count() > 5);
        assert_eq!(
            controller_cluster_role("multus-operator", "x"),
            controller_cluster_role_with("multus-operator", "x", PLUGIN_CLUSTER_ROLE)
        );
        let agent = node_agent_cluster_role(AGENT_CLUSTER_ROLE);
        assert_eq!(agent.metadata.name.as_deref(), Some("multus-node-agent"));
        let plugin = plugin_cluster_role(PLUGIN_CLUSTER_ROLE);
        assert_eq!(plugin.metadata.name.as_deref(), Some("multus-plugin"));
        assert_eq!(plugin.rules.unwrap().len(), plugin_rules().len());
    }

    #[test]
    fn markdown_lists_every_rule() {
        let table = markdown_table(&plugin_rules());
        assert_eq!(table.lines().count(), 2 + plugin_rules().len());
        assert!(table.contains("| `\"\"` | pods/status | patch | all |"));
    }
}
