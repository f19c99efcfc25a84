//! The Helm chart, rendered by a real `helm` (scripts/install-helm.sh
//! installs one; scripts/test.sh runs it first): lint, render with default and
//! every-field values, parse the objects into Kubernetes types and check
//! what matters; the chart's CRDs equal ours in crds/; bad values are rejected.

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use multus_config::crd::MultusConfig;
use multus_e2e::{running_in_ci, workspace_root};
use multus_operator::controller::probe::admission_policy_name;
use multus_operator::controller::rbac;
use serde_yaml::Value;

fn chart() -> PathBuf {
    workspace_root().join("charts/multus")
}

/// `helm`, or `None` (after saying why) outside CI; under CI a missing helm
/// fails the test.
fn helm(test: &str) -> Option<PathBuf> {
    let found = Command::new("helm")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from("helm"));
    }
    assert!(
        !running_in_ci(),
        "{test}: helm is required under CI (scripts/install-helm.sh installs it)"
    );
    eprintln!("SKIPPED {test}: helm not installed (run scripts/install-helm.sh)");
    None
}

fn run(helm: &PathBuf, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn render(helm: &PathBuf, values: Option<&str>) -> Vec<Value> {
    render_with(helm, values, &[])
}

/// Renders with `extra` arguments (e.g. the server's version and APIs).
fn render_with(helm: &PathBuf, values: Option<&str>, extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let mut args = vec![
        "template",
        "rel",
        chart,
        "--namespace",
        "multus-system",
        "--include-crds",
    ];
    let file;
    if let Some(v) = values {
        file = chart.to_owned() + "/" + v;
        args.extend(["-f", &file]);
    }
    args.extend(extra);
    let (ok, out, err) = run(helm, &args);
    assert!(ok, "helm template failed: {err}");
    out.split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name_suffix: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_suffix))
        })
        .unwrap_or_else(|| panic!("no {kind} *{name_suffix} rendered"));
    serde_yaml::from_value(doc.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn chart_lints_with_default_and_every_field_values() {
    let Some(helm) = helm("chart_lints_with_default_and_every_field_values") else {
        return;
    };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let (ok, out, err) = run(&helm, &["lint", "--strict", chart]);
    assert!(ok, "{out}{err}");
    let values = format!("{chart}/ci/every-field-values.yaml");
    let (ok, out, err) = run(&helm, &["lint", "--strict", chart, "-f", &values]);
    assert!(ok, "{out}{err}");
}

#[test]
fn default_render_has_the_operator_rbac_crds_and_a_default_multusconfig() {
    let Some(helm) = helm("default_render_has_the_operator_rbac_crds_and_a_default_multusconfig")
    else {
        return;
    };
    let docs = render(&helm, None);
    let deploy: Deployment = one(&docs, "Deployment", "-operator");
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/multus-rs/multus:v0.1.0"));
    assert_eq!(c.args.as_ref().unwrap()[0], "controller");
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert!(
        c.resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("memory")
    );
    let env: Vec<_> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for name in ["POD_NAMESPACE", "POD_NAME", "MULTUS_AGENT_IMAGE"] {
        assert!(env.contains(&name), "{name} missing: {env:?}");
    }
    let _: ServiceAccount = one(&docs, "ServiceAccount", "rel-multus");
    let _: Service = one(&docs, "Service", "-metrics");
    let _: ClusterRoleBinding = one(&docs, "ClusterRoleBinding", "-operator");
    let _: RoleBinding = one(&docs, "RoleBinding", "-operator");

    // RBAC equals what the controller code documents and expects.
    let agent: ClusterRole = one(&docs, "ClusterRole", "multus-node-agent");
    assert_eq!(
        agent.rules,
        rbac::node_agent_cluster_role("multus-node-agent").rules
    );
    let plugin: ClusterRole = one(&docs, "ClusterRole", "multus-plugin");
    assert_eq!(plugin.rules, rbac::plugin_cluster_role("x").rules);
    let operator: ClusterRole = one(&docs, "ClusterRole", "rel-multus-operator");
    assert_eq!(
        operator.rules,
        rbac::controller_cluster_role("x", "multus-node-agent").rules
    );
    let role: Role = one(&docs, "Role", "rel-multus-operator");
    assert_eq!(
        role.rules,
        rbac::controller_role("x", "multus-system").rules
    );

    // Our CRDs present, the shared NAD CRD not (the controller creates it
    // only when absent, so Helm never fights another owner over it), and
    // the default MultusConfig kept on uninstall.
    let mut crds: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    crds.sort();
    assert_eq!(
        crds,
        ["multusconfigs.multus.dev", "multusnodestates.multus.dev"],
        "the chart must ship exactly our generated CRDs"
    );
    let mc: MultusConfig = one(&docs, "MultusConfig", "default");
    assert_eq!(
        mc.metadata.annotations.unwrap()["helm.sh/resource-policy"],
        "keep"
    );
}

#[test]
fn every_field_values_reach_the_objects() {
    let Some(helm) = helm("every_field_values_reach_the_objects") else {
        return;
    };
    let docs = render(&helm, Some("ci/every-field-values.yaml"));
    let deploy: Deployment = one(&docs, "Deployment", "-operator");
    let spec = deploy.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/multus:v0.1.0-rc1")
    );
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let args = c.args.clone().unwrap();
    assert!(
        args.contains(&"--agent-cluster-role=multus-node-agent-custom".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--plugin-cluster-role=multus-plugin-custom".to_owned()),
        "{args:?}"
    );
    assert!(args.contains(&"--log-format=json".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--metrics-address=0.0.0.0:9090".to_owned()),
        "{args:?}"
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("multus-operator"));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
    assert!(pod.affinity.is_some() && pod.tolerations.is_some() && pod.node_selector.is_some());
    let operator: ClusterRole = one(&docs, "ClusterRole", "rel-multus-operator");
    assert_eq!(
        operator.rules,
        rbac::controller_cluster_role_with("x", "multus-node-agent-custom", "multus-plugin-custom")
            .rules,
        "bind is limited to the configured agent and plugin roles"
    );
    let agent: ClusterRole = one(&docs, "ClusterRole", "multus-node-agent-custom");
    assert_eq!(agent.rules, rbac::node_agent_cluster_role("y").rules);
    let plugin: ClusterRole = one(&docs, "ClusterRole", "multus-plugin-custom");
    assert_eq!(plugin.rules, rbac::plugin_cluster_role("y").rules);
    let mc: MultusConfig = one(&docs, "MultusConfig", "pool-a");
    assert!(mc.metadata.annotations.is_none(), "keep=false");
    let example: MultusConfig = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join("docs/examples/multusconfig.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(mc.spec, example.spec, "the whole spec reaches the object");
}

#[test]
fn bad_values_are_rejected_with_a_clear_message() {
    let Some(helm) = helm("bad_values_are_rejected_with_a_clear_message") else {
        return;
    };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for (set, expect) in [
        ("multusConfig.spec.logLevel=loud", "logLevel"),
        ("multusConfig.spec.logLevl=debug", "logLevl"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("replicaCount=0", "replicaCount"),
        ("unknownKey=1", "unknownKey"),
    ] {
        let (ok, _, err) = run(&helm, &["template", "rel", chart, "--set", set]);
        assert!(!ok, "{set} accepted");
        assert!(err.contains(expect), "{set}: {err}");
    }
}

#[test]
fn values_schema_knows_every_multusconfig_field() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    let mut in_values: Vec<String> =
        schema["properties"]["multusConfig"]["properties"]["spec"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
    let crd = <MultusConfig as kube::CustomResourceExt>::crd();
    let crd_schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap(),
    )
    .unwrap();
    let mut in_crd: Vec<String> = crd_schema["properties"]["spec"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    in_values.sort();
    in_crd.sort();
    assert_eq!(
        in_values, in_crd,
        "regenerate charts/multus/values.schema.json's spec from the CRD"
    );
}

#[test]
fn chart_crds_equal_the_committed_crds() {
    let ours = workspace_root().join("crds");
    // Every committed CRD but the shared NAD CRD, which the chart leaves out.
    let mut names: Vec<_> = std::fs::read_dir(&ours)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "network-attachment-definitions.k8s.cni.cncf.io.yaml")
        .collect();
    names.sort();
    let mut chart_names: Vec<_> = std::fs::read_dir(chart().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    chart_names.sort();
    assert_eq!(names, chart_names);
    for name in names {
        let a = std::fs::read(ours.join(&name)).unwrap();
        let b = std::fs::read(chart().join("crds").join(&name)).unwrap();
        assert!(
            a == b,
            "charts/multus/crds/{name:?} differs from crds/: copy it"
        );
    }
}

#[test]
fn the_node_isolation_policy_is_rendered_only_where_the_server_offers_it() {
    let Some(helm) = helm("the_node_isolation_policy_is_rendered_only_where_the_server_offers_it")
    else {
        return;
    };
    const VAP_API: &str = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
    let kinds = |docs: &[Value]| -> Vec<String> {
        docs.iter()
            .filter(|d| {
                d["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("ValidatingAdmissionPolicy"))
            })
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let name = admission_policy_name("multus-plugin");
    assert_eq!(name, "multus-plugin-node-isolation");

    // 1.35 serving ValidatingAdmissionPolicy v1: the policy and its binding
    let docs = render_with(
        &helm,
        None,
        &["--kube-version", "1.35.0", "--api-versions", VAP_API],
    );
    assert_eq!(
        kinds(&docs),
        [
            format!("ValidatingAdmissionPolicy/{name}"),
            format!("ValidatingAdmissionPolicyBinding/{name}")
        ]
    );
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .unwrap();
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let condition = policy["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap();
    for account in [
        "system:serviceaccount:multus-system:multus-plugin-",
        "system:serviceaccount:multus-system:multus-agent-",
    ] {
        assert!(condition.contains(account), "{condition}");
    }
    let resources: Vec<&str> = policy["spec"]["matchConstraints"]["resourceRules"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_sequence().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "pods",
            "pods/status",
            "events",
            "serviceaccounts/token",
            "resourceclaims/status"
        ]
    );
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .unwrap();
    assert_eq!(binding["spec"]["policyName"].as_str(), Some(name.as_str()));
    assert_eq!(binding["spec"]["validationActions"][0], "Deny");

    // a custom plugin role names the policy the controller looks for
    let custom = render_with(
        &helm,
        None,
        &[
            "--kube-version",
            "1.35.0",
            "--api-versions",
            VAP_API,
            "--set",
            "rbac.pluginClusterRole=p-custom",
        ],
    );
    assert_eq!(
        kinds(&custom)[0],
        format!(
            "ValidatingAdmissionPolicy/{}",
            admission_policy_name("p-custom")
        )
    );

    // not before 1.33 (tokens are not bound to Nodes for certain), not
    // without the API, not when turned off
    for extra in [
        &["--kube-version", "1.32.0", "--api-versions", VAP_API][..],
        &["--kube-version", "1.35.0"][..],
        &["--kube-version", "1.28.7"][..],
        &[
            "--kube-version",
            "1.35.0",
            "--api-versions",
            VAP_API,
            "--set",
            "nodeIsolation.admissionPolicy=false",
        ][..],
    ] {
        let docs = render_with(&helm, None, extra);
        assert!(kinds(&docs).is_empty(), "{extra:?}: {:?}", kinds(&docs));
    }
}

/// The metric names (TYPE lines) the node agent's `/metrics` serves once
/// it received a report (families without series are not described).
fn agent_metric_names() -> Vec<String> {
    let metrics = multus_operator::agent::metrics::Metrics::default();
    let report = multus_config::agent_api::report::decode(
        br#"{"version":1,"command":"ADD","namespace":"ns","pod":"p","containerId":"c","durationUs":5,
            "attachments":[{"network":"ns/n","interface":"net1","execs":[{"type":"macvlan","command":"ADD","durationUs":1}]}]}"#,
    )
    .unwrap();
    metrics.reports.record(&report);
    metrics
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_agent_pod_monitor_and_dashboard_are_optional_and_match_the_agents() {
    let Some(helm) = helm("the_agent_pod_monitor_and_dashboard_are_optional_and_match_the_agents")
    else {
        return;
    };
    const POD_MONITOR_API: &str = "monitoring.coreos.com/v1/PodMonitor";
    let of_kind = |docs: &[Value], kind: &str| -> Vec<Value> {
        docs.iter().filter(|d| d["kind"] == kind).cloned().collect()
    };
    let dashboards = |docs: &[Value]| -> Vec<Value> {
        of_kind(docs, "ConfigMap")
            .into_iter()
            .filter(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-grafana-dashboard"))
            })
            .collect()
    };

    // Off by default, also where the API is served.
    let docs = render_with(&helm, None, &["--api-versions", POD_MONITOR_API]);
    assert!(of_kind(&docs, "PodMonitor").is_empty());
    assert!(dashboards(&docs).is_empty());

    // Enabled, but the cluster does not serve PodMonitor: not rendered.
    let values = Some("ci/every-field-values.yaml");
    let docs = render_with(&helm, values, &[]);
    assert!(of_kind(&docs, "PodMonitor").is_empty());

    let docs = render_with(&helm, values, &["--api-versions", POD_MONITOR_API]);
    let monitors = of_kind(&docs, "PodMonitor");
    assert_eq!(monitors.len(), 1);
    let monitor = &monitors[0];
    assert_eq!(monitor["metadata"]["namespace"], "multus-system");
    assert_eq!(
        monitor["metadata"]["labels"]["release"], "kube-prometheus-stack",
        "extra labels"
    );

    // It selects the agent pods exactly as the controller renders them.
    let config = MultusConfig::new("default", Default::default());
    let mut config = config;
    config.metadata.uid = Some("6f1c1c8e-0000-4000-8000-000000000001".to_owned());
    let children = multus_operator::controller::render::render(
        &config,
        &multus_operator::controller::render::OperandSettings {
            namespace: "multus-system".to_owned(),
            default_image: multus_operator::controller::render::ImageRef::parse(
                "ghcr.io/multus-rs/multus:v0.1.0",
            )
            .unwrap(),
            agent_cluster_role: "multus-node-agent".to_owned(),
            plugin_cluster_role: "multus-plugin".to_owned(),
        },
        &[],
    )
    .unwrap();
    let ds = &children.daemon_set;
    assert_eq!(
        ds.metadata.namespace.as_deref(),
        monitor["spec"]["namespaceSelector"]["matchNames"][0].as_str(),
        "the agents run in the release namespace"
    );
    let template = ds.spec.as_ref().unwrap().template.clone();
    let pod_labels = template.metadata.unwrap().labels.unwrap();
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            pod_labels.get(k.as_str().unwrap()).map(String::as_str),
            v.as_str(),
            "agent pods carry {k:?}: {pod_labels:?}"
        );
    }
    let uninstall = multus_operator::controller::render::uninstall_daemon_set(
        ds,
        multus_operator::agent::args::AttachedPods::Wait,
    )
    .unwrap();
    let uninstall_labels = uninstall
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert!(
        selector.iter().any(|(k, v)| uninstall_labels
            .get(k.as_str().unwrap())
            .map(String::as_str)
            != v.as_str()),
        "uninstall pods are not scraped"
    );
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let container = &template.spec.unwrap().containers[0];
    let port = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == endpoint["port"].as_str())
        .expect("the endpoint names the agent's port");
    assert_eq!(
        port.container_port,
        i32::from(multus_operator::controller::render::AGENT_PORT)
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["honorLabels"], true,
        "pod_network_name_info keeps the namespace and pod it describes"
    );
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "10s");

    // The dashboard: valid JSON, the file in the chart, only metrics the
    // agent serves (or cAdvisor's, for the join).
    let found = dashboards(&docs);
    assert_eq!(found.len(), 1);
    let cm = &found[0];
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        "Networking"
    );
    let text = cm["data"]["multus.json"].as_str().unwrap();
    let file = std::fs::read_to_string(chart().join("dashboards/multus.json")).unwrap();
    assert_eq!(text.trim_end(), file.trim_end());
    let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
    let served = agent_metric_names();
    assert!(
        served.iter().any(|n| n == "pod_network_name_info"),
        "{served:?}"
    );
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("multus_") || word.starts_with("pod_network_") {
                let base = ["_bucket", "_count", "_sum", "_total"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    served.iter().any(|n| n == base),
                    "{word} in the dashboard is not served by the agent ({served:?})"
                );
                used.insert(base.to_owned());
            }
        }
    }
    for needed in [
        "multus_plugin_commands",
        "multus_plugin_command_duration_seconds",
        "multus_plugin_delegate_duration_seconds",
        "multus_plugin_attachments",
        "pod_network_name_info",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard shows {needed}: {used:?}"
        );
    }
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("container_network_receive_bytes_total")
                && e.contains("on (namespace, pod, interface)")),
        "the cAdvisor join example"
    );
}

#[test]
fn every_metric_made_of_reports_is_documented() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/metrics.md")).unwrap();
    let names: Vec<String> = agent_metric_names()
        .into_iter()
        .filter(|n| {
            n.starts_with("multus_plugin_")
                || n.starts_with("pod_network_")
                || n.starts_with("multus_node_agent_reports")
        })
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    for name in names {
        let documented = ["", "_total"]
            .iter()
            .any(|suffix| doc.contains(&format!("`{name}{suffix}`")));
        assert!(documented, "{name} is not in docs/metrics.md");
    }
}
