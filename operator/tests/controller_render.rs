//! Golden YAML of the operands the controller renders, for the default
//! spec and for docs/examples/multusconfig.yaml (every field set), plus
//! the uninstall DaemonSet. Regenerate with `UPDATE_GOLDEN=1 cargo test -p
//! multus-operator --test controller_render`; otherwise the test compares.

// In a module named `controller` so that `cargo test -p multus-operator controller`
// selects these tests too.
mod controller {
    use std::path::PathBuf;

    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::PodSpec;
    use multus_config::crd::{MultusConfig, MultusConfigSpec};
    use multus_operator::agent::args::AttachedPods;
    use multus_operator::controller::render::{
        Children, ImageRef, OperandSettings, render, uninstall_daemon_set,
    };

    const EXAMPLE: &str = include_str!("../../docs/examples/multusconfig.yaml");

    fn settings() -> OperandSettings {
        OperandSettings {
            namespace: "multus-system".to_owned(),
            default_image: ImageRef::parse("ghcr.io/multus-rs/multus:v0.1.0").unwrap(),
            agent_cluster_role: "multus-node-agent".to_owned(),
            plugin_cluster_role: "multus-plugin".to_owned(),
        }
    }

    fn with_uid(mut config: MultusConfig) -> MultusConfig {
        config.metadata.uid = Some("6f1c1c8e-0000-4000-8000-000000000001".to_owned());
        config
    }

    fn default_config() -> MultusConfig {
        with_uid(MultusConfig::new("default", MultusConfigSpec::default()))
    }

    fn example_config() -> MultusConfig {
        with_uid(serde_yaml::from_str(EXAMPLE).unwrap())
    }

    fn golden(name: &str, actual: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it",
                path.display()
            )
        });
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(actual.lines().count()));
            panic!(
                "{} differs from the rendering at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             Review the change and run with UPDATE_GOLDEN=1 to accept it.",
                path.display(),
                first + 1,
                expected.lines().nth(first),
                actual.lines().nth(first)
            );
        }
    }

    fn pod(ds: &DaemonSet) -> &PodSpec {
        ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn default_spec_matches_golden() {
        let children = render(&default_config(), &settings(), &[]).unwrap();
        golden("default.yaml", &children.to_yaml().unwrap());
    }

    #[test]
    fn every_field_example_matches_golden() {
        let children = render(&example_config(), &settings(), &[]).unwrap();
        golden("every-field.yaml", &children.to_yaml().unwrap());
    }

    #[test]
    fn conflict_exclusion_and_uninstall_match_golden() {
        let children = render(
            &default_config(),
            &settings(),
            &["node-b".to_owned(), "node-a".to_owned()],
        )
        .unwrap();
        let un = uninstall_daemon_set(&children.daemon_set, AttachedPods::Wait).unwrap();
        let text = format!(
            "{}---\n{}",
            serde_yaml::to_string(&children.daemon_set).unwrap(),
            serde_yaml::to_string(&un).unwrap()
        );
        golden("excluded-and-uninstall.yaml", &text);
    }

    /// The properties the issue asks for, checked on typed objects so a
    /// golden update cannot silently drop them.
    #[test]
    fn default_daemon_set_has_the_required_shape() {
        let Children {
            daemon_set,
            config_map,
            service_account,
            cluster_role_binding,
            config_hash,
            ..
        } = render(&default_config(), &settings(), &[]).unwrap();
        let spec = daemon_set.spec.as_ref().unwrap();
        let p = pod(&daemon_set);
        assert_eq!(p.host_network, Some(true));
        assert_eq!(
            p.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(
            p.tolerations.as_ref().unwrap()[0].operator.as_deref(),
            Some("Exists")
        );
        assert_eq!(p.automount_service_account_token, Some(false));
        assert_eq!(p.service_account_name, service_account.metadata.name);
        let c = &p.containers[0];
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(c.image.as_deref(), Some("ghcr.io/multus-rs/multus:v0.1.0"));
        assert_eq!(c.command.as_deref().unwrap(), ["multus-operator"]);
        let args = c.args.as_ref().unwrap();
        for expected in [
            "node-agent",
            "--cni-conf-dir=/host/etc/cni/net.d",
            "--host-cni-conf-dir=/etc/cni/net.d",
            "--cni-bin-dir=/host/opt/cni/bin",
            "--config=/etc/multus/agent.yaml",
            "--metrics-address=0.0.0.0:9101",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        let env = c.env.as_ref().unwrap();
        let node_name = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
        assert_eq!(
            node_name
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "spec.nodeName"
        );
        let liveness = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        let readiness = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(liveness.path.as_deref(), Some("/healthz"));
        assert_eq!(readiness.path.as_deref(), Some("/readyz"));
        let volumes = p.volumes.as_ref().unwrap();
        let host = |name: &str| {
            volumes
                .iter()
                .find(|v| v.name == name)
                .and_then(|v| v.host_path.as_ref())
                .map(|h| h.path.clone())
        };
        assert_eq!(host("cni-conf-dir").as_deref(), Some("/etc/cni/net.d"));
        assert_eq!(host("cni-bin-dir").as_deref(), Some("/opt/cni/bin"));
        assert_eq!(host("cache-dir").as_deref(), Some("/var/lib/cni/multus"));
        assert_eq!(host("run-multus").as_deref(), Some("/run/multus"));
        let token = volumes
            .iter()
            .find(|v| v.name == "service-account-token")
            .unwrap();
        let sources = token.projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert!(sources.iter().any(|s| s.service_account_token.is_some()));
        let rolling = spec
            .update_strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(
            rolling.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("10%".into()))
        );
        let annotations = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(annotations["multus.dev/config-hash"], config_hash);
        // The ConfigMap holds the agent's --config file, parseable as the
        // agent parses it.
        let text = &config_map.data.as_ref().unwrap()["agent.yaml"];
        let options: multus_config::generate::GeneratorOptions =
            serde_yaml::from_str(text).unwrap();
        assert_eq!(
            options.kubeconfig.as_deref(),
            Some("/etc/cni/net.d/multus.d/multus.kubeconfig")
        );
        assert_eq!(config_map.immutable, Some(true));
        assert_eq!(cluster_role_binding.role_ref.name, "multus-node-agent");
        assert_eq!(
            cluster_role_binding.subjects.as_ref().unwrap()[0]
                .namespace
                .as_deref(),
            Some("multus-system")
        );
    }

    #[test]
    fn every_field_example_reaches_the_objects() {
        let config = example_config();
        let children = render(&config, &settings(), &[]).unwrap();
        let p = pod(&children.daemon_set);
        assert_eq!(
            p.node_selector.as_ref().unwrap()["kubernetes.io/os"],
            "linux"
        );
        assert_eq!(
            p.containers[0].resources, config.spec.resources,
            "resources come from the spec"
        );
        let volumes = p.volumes.as_ref().unwrap();
        let indicator = volumes
            .iter()
            .find(|v| v.name == "readiness-indicator")
            .unwrap();
        assert_eq!(indicator.host_path.as_ref().unwrap().path, "/run/calico");
        let text = &children.config_map.data.as_ref().unwrap()["agent.yaml"];
        for expected in [
            "clusterNetwork: k8s-pod-network",
            "readinessIndicatorFile: /run/calico/ready",
            "logFile: /var/log/multus.log",
            "additionalBinDir: /opt/cni/extra/bin",
            "cniVersion: 0.3.1",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}
