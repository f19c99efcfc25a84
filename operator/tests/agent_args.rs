//! The controller→agent contract: the arguments of every DaemonSet the
//! controller renders (install and uninstall) parse back, with the agent's
//! own clap definition, to exactly the intended settings, and point at what
//! the pod mounts.

use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use multus_config::crd::{MultusConfig, MultusConfigSpec};
use multus_operator::agent::args::{AttachedPods, InstallDirs, NodeAgentArgs};
use multus_operator::controller::render::{
    ImageRef, OperandSettings, render, uninstall_daemon_set,
};

const EXAMPLE: &str = include_str!("../../docs/examples/multusconfig.yaml");

fn operand_settings() -> OperandSettings {
    OperandSettings {
        namespace: "multus-system".to_owned(),
        default_image: ImageRef::parse("ghcr.io/multus-rs/multus:v0.1.0").unwrap(),
        agent_cluster_role: "multus-node-agent".to_owned(),
        plugin_cluster_role: "multus-plugin".to_owned(),
    }
}

fn config(name: &str, spec: MultusConfigSpec) -> MultusConfig {
    let mut config = MultusConfig::new(name, spec);
    config.metadata.uid = Some(format!("uid-{name}"));
    config
}

fn pod(ds: &DaemonSet) -> &PodSpec {
    ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn agent(ds: &DaemonSet) -> &Container {
    &pod(ds).containers[0]
}

/// What the agents of MultusConfig `name` are meant to run with, written
/// out by hand.
fn intended(name: &str, host_cni_conf_dir: &str, token_seconds: u32) -> NodeAgentArgs {
    NodeAgentArgs {
        dirs: InstallDirs {
            cni_conf_dir: "/host/etc/cni/net.d".into(),
            host_cni_conf_dir: host_cni_conf_dir.into(),
            cni_bin_dir: "/host/opt/cni/bin".into(),
        },
        multus_conf_dir: "/host/etc/cni/multus/net.d".into(),
        config: Some("/etc/multus/agent.yaml".into()),
        metrics_address: "0.0.0.0:9101".parse().unwrap(),
        plugin_service_account: Some(format!("multus-plugin-{name}")),
        plugin_token_expiration_seconds: token_seconds,
        ..NodeAgentArgs::default()
    }
}

/// The container path and the host path of the agent's volume `volume`.
fn mount_of<'a>(ds: &'a DaemonSet, volume: &str) -> (&'a str, String) {
    let host = pod(ds)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == volume)
        .and_then(|v| v.host_path.as_ref())
        .map(|h| h.path.clone())
        .unwrap_or_default();
    let mount = agent(ds)
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == volume)
        .unwrap_or_else(|| panic!("no mount of {volume}"));
    (mount.mount_path.as_str(), host)
}

fn is_mounted(ds: &DaemonSet, path: &Path) -> bool {
    agent(ds)
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| path.starts_with(&m.mount_path))
}

fn cases() -> Vec<(MultusConfig, NodeAgentArgs)> {
    let example: MultusConfig = serde_yaml::from_str(EXAMPLE).unwrap();
    let example_name = example.metadata.name.clone().unwrap();
    vec![
        (
            config("default", MultusConfigSpec::default()),
            intended("default", "/etc/cni/net.d", 86_400),
        ),
        (
            config(
                "pool-a",
                MultusConfigSpec {
                    cni_conf_dir: Some("/etc/k/cni".into()),
                    cni_bin_dir: Some("/opt/k/bin".into()),
                    multus_conf_dir: Some("/etc/k/multus".into()),
                    plugin_token_expiration_seconds: Some(3600),
                    ..MultusConfigSpec::default()
                },
            ),
            intended("pool-a", "/etc/k/cni", 3600),
        ),
        (
            config(
                "pool-b",
                MultusConfigSpec {
                    cni_conf_dir: Some("/var/lib/rancher/k3s/agent/etc/cni/net.d/".into()),
                    plugin_token_expiration_seconds: Some(600),
                    ..MultusConfigSpec::default()
                },
            ),
            intended("pool-b", "/var/lib/rancher/k3s/agent/etc/cni/net.d/", 600),
        ),
        (
            config(&example_name, example.spec),
            intended(&example_name, "/etc/cni/net.d", 86_400),
        ),
    ]
}

#[test]
fn install_and_uninstall_arguments_parse_back_to_the_intended_settings() {
    for (config, intended) in cases() {
        let name = config.metadata.name.clone().unwrap();
        let children = render(&config, &operand_settings(), &["node-x".into()]).unwrap();
        let ds = &children.daemon_set;

        let args = agent(ds).args.clone().unwrap();
        let parsed = NodeAgentArgs::parse_rendered(&args)
            .unwrap_or_else(|e| panic!("{name}: {args:?} do not parse: {e}"));
        assert_eq!(parsed, intended, "{name}: {args:?}");

        let uninstall = uninstall_daemon_set(ds, AttachedPods::Wait).unwrap();
        let un_args = agent(&uninstall).args.clone().unwrap();
        let parsed = NodeAgentArgs::parse_rendered(&un_args)
            .unwrap_or_else(|e| panic!("{name}: {un_args:?} do not parse: {e}"));
        assert_eq!(
            parsed,
            NodeAgentArgs {
                uninstall: true,
                dirs: intended.dirs.clone(),
                // the host path of the bin dir's volume
                host_cni_bin_dir: config.spec.cni_bin_dir().into(),
                ..NodeAgentArgs::default()
            },
            "{name}: {un_args:?}"
        );
        // the uninstall of the uninstall DaemonSet stays the same
        assert_eq!(
            agent(&uninstall_daemon_set(&uninstall, AttachedPods::Wait).unwrap()).args,
            Some(un_args)
        );
    }
}

#[test]
fn the_arguments_point_at_what_the_pod_mounts() {
    for (config, intended) in cases() {
        let name = config.metadata.name.clone().unwrap();
        let children = render(&config, &operand_settings(), &[]).unwrap();
        let ds = &children.daemon_set;
        let spec = &config.spec;

        let (conf_mount, conf_host) = mount_of(ds, "cni-conf-dir");
        assert_eq!(Path::new(conf_mount), intended.dirs.cni_conf_dir, "{name}");
        assert_eq!(conf_host, spec.cni_conf_dir(), "{name}");
        assert_eq!(
            Path::new(&conf_host),
            intended.dirs.host_cni_conf_dir,
            "{name}"
        );
        let (bin_mount, bin_host) = mount_of(ds, "cni-bin-dir");
        assert_eq!(Path::new(bin_mount), intended.dirs.cni_bin_dir, "{name}");
        assert_eq!(bin_host, spec.cni_bin_dir(), "{name}");
        let (multus_mount, multus_host) = mount_of(ds, "multus-conf-dir");
        assert_eq!(Path::new(multus_mount), intended.multus_conf_dir, "{name}");
        assert_eq!(multus_host, spec.multus_conf_dir(), "{name}");

        let config_file = intended.config.as_deref().unwrap();
        assert!(is_mounted(ds, config_file), "{name}");
        assert!(
            children
                .config_map
                .data
                .as_ref()
                .unwrap()
                .contains_key(config_file.file_name().unwrap().to_str().unwrap()),
            "{name}"
        );
        assert!(is_mounted(ds, &intended.service_account_dir), "{name}");
        let port = agent(ds).ports.as_ref().unwrap()[0].container_port;
        assert_eq!(
            u16::try_from(port).unwrap(),
            intended.metrics_address.port(),
            "{name}"
        );
    }
}
