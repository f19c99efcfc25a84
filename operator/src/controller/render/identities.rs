//! The identities of a MultusConfig and their rights: the agents' and the
//! plugin's ServiceAccounts, the ClusterRoleBindings to the chart's roles
//! and the Role letting the agents mint the plugin's tokens.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef};

use super::metadata::{Owner, agent_name, plugin_name};
use crate::controller::rbac::{agent_token_rules, policy_rules};

/// A ServiceAccount without automounted tokens (the agents' DaemonSet
/// projects its own; the plugin's tokens are requested by the agents).
pub(super) fn service_account(owner: &Owner<'_>, name: String) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.namespaced(name),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// A reference to the RBAC role `role` of kind `kind` (`ClusterRole` or
/// `Role`).
fn role_ref(kind: &str, role: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: role.to_owned(),
    }
}

/// Grants the agents the chart's agent ClusterRole `role`.
pub(super) fn agent_cluster_role_binding(owner: &Owner<'_>, role: &str) -> ClusterRoleBinding {
    let agent = agent_name(owner.config);
    ClusterRoleBinding {
        metadata: owner.cluster_scoped(agent.clone()),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![owner.subject(&agent)]),
    }
}

/// Grants the plugin the chart's plugin ClusterRole `role`. The agents
/// are subjects too: while no plugin token can be had, the agent gives the
/// plugin a copy of its own token (the fallback).
pub(super) fn plugin_cluster_role_binding(owner: &Owner<'_>, role: &str) -> ClusterRoleBinding {
    let plugin = plugin_name(owner.config);
    ClusterRoleBinding {
        metadata: owner.cluster_scoped(plugin.clone()),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![
            owner.subject(&plugin),
            owner.subject(&agent_name(owner.config)),
        ]),
    }
}

/// Lets the agents request tokens for the plugin's ServiceAccount only.
pub(super) fn agent_token_role(owner: &Owner<'_>) -> Role {
    Role {
        metadata: owner.namespaced(agent_name(owner.config)),
        rules: Some(policy_rules(&agent_token_rules(&plugin_name(owner.config)))),
    }
}

/// Binds [`agent_token_role`] to the agents' ServiceAccount.
pub(super) fn agent_token_role_binding(owner: &Owner<'_>) -> RoleBinding {
    let agent = agent_name(owner.config);
    RoleBinding {
        metadata: owner.namespaced(agent.clone()),
        role_ref: role_ref("Role", &agent),
        subjects: Some(vec![owner.subject(&agent)]),
    }
}

#[cfg(test)]
mod tests {
    use crate::controller::operand::Kind;
    use crate::controller::render::fixtures::{config, settings};
    use crate::controller::render::render;
    use multus_config::crd::MultusConfigSpec;

    #[test]
    fn the_plugin_has_its_own_identity_and_the_agents_may_only_mint_its_tokens() {
        let children = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let sa = &children.plugin_service_account;
        assert_eq!(sa.metadata.name.as_deref(), Some("multus-plugin-pool-a"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("multus-system"));
        assert_eq!(sa.automount_service_account_token, Some(false));
        let crb = &children.plugin_cluster_role_binding;
        assert_eq!(crb.metadata.name.as_deref(), Some("multus-plugin-pool-a"));
        assert_eq!(
            (crb.role_ref.kind.as_str(), crb.role_ref.name.as_str()),
            ("ClusterRole", "multus-plugin")
        );
        let subjects: Vec<&str> = crb
            .subjects
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        // The agents too: the fallback gives the plugin the agent's token.
        assert_eq!(subjects, ["multus-plugin-pool-a", "multus-agent-pool-a"]);
        let agent_crb = &children.cluster_role_binding;
        assert_eq!(agent_crb.role_ref.name, "multus-node-agent");
        let role = &children.agent_role;
        assert_eq!(role.metadata.name.as_deref(), Some("multus-agent-pool-a"));
        assert_eq!(role.metadata.namespace.as_deref(), Some("multus-system"));
        let rules = role.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_owned()][..]));
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["serviceaccounts/token".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["create"]);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["multus-plugin-pool-a".to_owned()][..])
        );
        let binding = &children.agent_role_binding;
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("Role", "multus-agent-pool-a")
        );
        let subjects = binding.subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, "multus-agent-pool-a");
        assert_eq!(subjects[0].namespace.as_deref(), Some("multus-system"));
        // Everything the agents need exists before their DaemonSet.
        let kinds: Vec<Kind> = children.metas().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds.last(), Some(&Kind::DaemonSet));
        assert_eq!(children.documents().unwrap().len(), kinds.len());
    }
}
