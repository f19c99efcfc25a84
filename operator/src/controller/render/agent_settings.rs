//! The agent settings file (`agent.yaml`, the spec's generator options)
//! and the ConfigMap holding it: immutable and named after its hash, so a
//! settings change gets a new ConfigMap and rolls the agent pods at the
//! DaemonSet's pace instead of reconfiguring every node at once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use multus_config::crd::MultusConfigSpec;
use multus_config::generate::{GeneratorOptions, hex_sha256};

use super::metadata::{Owner, config_map_name};

/// Key (file name) of the agent settings in the ConfigMap.
pub const AGENT_CONFIG_KEY: &str = "agent.yaml";

/// The host path of the plugin's kubeconfig for a spec.
pub fn kubeconfig_host_path(spec: &MultusConfigSpec) -> String {
    format!(
        "{}/multus.d/multus.kubeconfig",
        spec.cni_conf_dir().trim_end_matches('/')
    )
}

/// The agent settings file (`agent.yaml`) for a spec.
pub fn agent_settings_yaml(spec: &MultusConfigSpec) -> Result<String, serde_yaml::Error> {
    let options = GeneratorOptions::from_spec(spec, Some(kubeconfig_host_path(spec)));
    serde_yaml::to_string(&options)
}

/// The ConfigMap holding the agent settings (`agent.yaml`) of `spec`,
/// immutable and named after their SHA-256, which comes with it.
pub(super) fn agent_settings_config_map(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
) -> Result<(ConfigMap, String), serde_yaml::Error> {
    let settings_yaml = agent_settings_yaml(spec)?;
    let config_hash = hex_sha256(settings_yaml.as_bytes());
    let config_map = ConfigMap {
        metadata: owner.namespaced(config_map_name(owner.config, &config_hash)),
        data: Some(BTreeMap::from([(
            AGENT_CONFIG_KEY.to_owned(),
            settings_yaml,
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    Ok((config_map, config_hash))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use multus_config::crd::multus_config::UpdateStrategy;

    use crate::controller::render::fixtures::{config, settings};
    use crate::controller::render::{ANNOTATION_CONFIG_HASH, Children, render};
    use multus_config::crd::MultusConfigSpec;

    #[test]
    fn a_settings_change_renames_the_config_map_and_rolls_the_pods() {
        let a = render(&config(MultusConfigSpec::default()), &settings(), &[]).unwrap();
        let b = render(
            &config(MultusConfigSpec {
                namespace_isolation: Some(true),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        assert_ne!(a.config_hash, b.config_hash);
        assert_ne!(a.config_map.metadata.name, b.config_map.metadata.name);
        let hash = |c: &Children| {
            c.daemon_set
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[ANNOTATION_CONFIG_HASH]
                .clone()
        };
        assert_eq!(hash(&a), a.config_hash);
        assert_ne!(hash(&a), hash(&b));
        // A spec change that does not touch the settings keeps the hash.
        let c = render(
            &config(MultusConfigSpec {
                update_strategy: Some(UpdateStrategy {
                    max_unavailable: Some(IntOrString::Int(3)),
                }),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        assert_eq!(a.config_hash, c.config_hash);
        assert_ne!(
            a.daemon_set.metadata.annotations, c.daemon_set.metadata.annotations,
            "the rendered hash follows the whole DaemonSet spec"
        );
    }
}
