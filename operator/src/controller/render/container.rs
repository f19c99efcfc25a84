//! The agent container: its image, command line ([`agent_args()`]),
//! environment, health port and probes, resources and privileges.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Probe,
    ResourceRequirements, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multus_config::crd::MultusConfigSpec;

use super::agent_settings::AGENT_CONFIG_KEY;
use super::image::ImageRef;
use super::metadata::plugin_name;
use super::volumes::{
    CONFIG_MOUNT_DIR, CONTAINER_BIN_DIR, CONTAINER_CONF_DIR, CONTAINER_MULTUS_CONF_DIR,
};
use crate::agent::args::{self as agent_args, InstallDirs, NodeAgentArgs};

/// Port of the agent's `/healthz`, `/readyz` and `/metrics` (host network).
pub const AGENT_PORT: u16 = agent_args::DEFAULT_METRICS_PORT;
/// The executable of the image that runs the agent.
pub const AGENT_COMMAND: &str = "multus-operator";
/// Name of the agent container.
pub const AGENT_CONTAINER: &str = "node-agent";

/// Resources when the spec sets none: small requests, no limits (the
/// agent must not be OOM-killed in the middle of a node's CNI setup).
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("10m".to_owned())),
            ("memory".to_owned(), Quantity("32Mi".to_owned())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// An HTTP probe of `path` on the metrics port, every `period` seconds,
/// failing after `failures` misses.
fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The agent's command line for the MultusConfig `config`: the mounts of
/// the DaemonSet, its settings file, the metrics port on every address and
/// the plugin's ServiceAccount. Its [`NodeAgentArgs::to_args`] are the
/// container's arguments (after [`AGENT_COMMAND`]). The node name, the
/// MultusConfig's name and the namespace come from the environment.
pub fn agent_args(config: &str, spec: &MultusConfigSpec) -> NodeAgentArgs {
    NodeAgentArgs {
        dirs: InstallDirs {
            cni_conf_dir: CONTAINER_CONF_DIR.into(),
            host_cni_conf_dir: spec.cni_conf_dir().into(),
            cni_bin_dir: CONTAINER_BIN_DIR.into(),
        },
        multus_conf_dir: CONTAINER_MULTUS_CONF_DIR.into(),
        config: Some(Path::new(CONFIG_MOUNT_DIR).join(AGENT_CONFIG_KEY)),
        metrics_address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, AGENT_PORT)),
        plugin_service_account: Some(plugin_name(config)),
        plugin_token_expiration_seconds: spec.plugin_token_expiration_seconds(),
        delegate_socket: spec.delegate_socket().map(Into::into),
        network_hotplug_cri_socket: spec.network_hotplug_cri_socket().map(Into::into),
        // The delegates' CNI_PATH (host path) for the delegate API and
        // network hot-plug.
        host_cni_bin_dir: if spec.runs_host_children() {
            spec.cni_bin_dir().into()
        } else {
            multus_config::multus_conf::DEFAULT_BIN_DIR.into()
        },
        ..NodeAgentArgs::default()
    }
}

/// The agent container of MultusConfig `config`: the image of the spec
/// (or `default_image`), the command line of [`agent_args()`], the
/// environment of [`agent_env`], the health port and probes, privileged.
pub(super) fn agent_container(
    config: &str,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    mounts: Vec<VolumeMount>,
) -> Container {
    let image = ImageRef::for_spec(spec, default_image);
    Container {
        name: AGENT_CONTAINER.to_owned(),
        image: Some(image.to_string()),
        image_pull_policy: Some(spec.image_pull_policy().as_str().to_owned()),
        command: Some(vec![AGENT_COMMAND.to_owned()]),
        args: Some(agent_args(config, spec).to_args()),
        env: Some(agent_env(config)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: i32::from(AGENT_PORT),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The agent's environment: its node, its MultusConfig `config` and its
/// namespace (also the plugin's ServiceAccount's).
fn agent_env(config: &str) -> Vec<EnvVar> {
    vec![
        field_env("NODE_NAME", "spec.nodeName"),
        EnvVar {
            name: "MULTUS_CONFIG_NAME".to_owned(),
            value: Some(config.to_owned()),
            value_from: None,
        },
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ]
}

/// The environment variable `name` set from the pod's field `field_path`.
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_owned()),
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::args::AttachedPods;
    use crate::controller::render::fixtures::{config, pod_spec, settings};
    use crate::controller::render::{render, uninstall_daemon_set};
    use multus_config::crd::MultusConfigSpec;

    #[test]
    fn the_agents_are_told_the_plugin_account_its_token_lifetime_and_their_namespace() {
        let children = render(
            &config(MultusConfigSpec {
                plugin_token_expiration_seconds: Some(3600),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        let c = &pod_spec(&children).containers[0];
        let args = c.args.as_ref().unwrap();
        assert!(args.contains(&"--plugin-service-account=multus-plugin-pool-a".to_owned()));
        assert!(args.contains(&"--plugin-token-expiration-seconds=3600".to_owned()));
        let env = c.env.as_ref().unwrap();
        let ns = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
        assert_eq!(
            ns.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.namespace"
        );
        let default = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        assert!(
            pod_spec(&default).containers[0]
                .args
                .as_ref()
                .unwrap()
                .contains(&"--plugin-token-expiration-seconds=86400".to_owned())
        );
        // The uninstall needs neither.
        let un = uninstall_daemon_set(&children.daemon_set, AttachedPods::Wait).unwrap();
        let un_args = &un.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(!un_args.iter().any(|a| a.starts_with("--plugin-")));
    }
}
