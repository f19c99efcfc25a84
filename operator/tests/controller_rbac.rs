//! docs/rbac.md states the RBAC decision and every rule with its reason;
//! its tables must be exactly the rules in the code (which the chart
//! ships, and from which the controller renders the agents' Role). Run
//! with PRINT_RBAC_TABLES=1 to print the current tables.

// In a module named `controller` so that `cargo test -p multus-operator controller`
// selects these tests too.
mod controller {
    use multus_operator::controller::rbac::{
        AGENT_CLUSTER_ROLE, PLUGIN_CLUSTER_ROLE, agent_token_rules, controller_cluster_rules,
        controller_namespace_rules, markdown_table, node_agent_rules, plugin_rules,
    };

    const DOC: &str = include_str!("../../docs/rbac.md");

    #[test]
    fn rbac_doc_tables_match_the_code() {
        let tables = [
            ("plugin ClusterRole", markdown_table(&plugin_rules())),
            (
                "node agent ClusterRole",
                markdown_table(&node_agent_rules()),
            ),
            (
                "node agent Role",
                markdown_table(&agent_token_rules("multus-plugin-<mc>")),
            ),
            (
                "controller ClusterRole",
                markdown_table(&controller_cluster_rules(
                    AGENT_CLUSTER_ROLE,
                    PLUGIN_CLUSTER_ROLE,
                )),
            ),
            (
                "controller Role",
                markdown_table(&controller_namespace_rules()),
            ),
        ];
        if std::env::var_os("PRINT_RBAC_TABLES").is_some() {
            for (name, table) in &tables {
                eprintln!("### {name}\n\n{table}");
            }
        }
        for (name, table) in tables {
            assert!(
                DOC.contains(&table),
                "docs/rbac.md lacks the current {name} table; run with PRINT_RBAC_TABLES=1 \
             and paste it:\n{table}"
            );
        }
    }
}
