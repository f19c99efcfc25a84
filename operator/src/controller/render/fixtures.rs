//! What the tests of the rendering share: the operator's settings, a
//! MultusConfig and the agent pod of its operands.

use k8s_openapi::api::core::v1::PodSpec;
use multus_config::crd::{MultusConfig, MultusConfigSpec};

use super::{Children, ImageRef, OperandSettings};

/// The operator's settings, with image `example.org/multus:v9`.
pub(super) fn settings() -> OperandSettings {
    OperandSettings {
        namespace: "multus-system".to_owned(),
        default_image: ImageRef::parse("example.org/multus:v9").unwrap(),
        agent_cluster_role: "multus-node-agent".to_owned(),
        plugin_cluster_role: "multus-plugin".to_owned(),
    }
}

/// MultusConfig `pool-a` (uid `uid-1`) with `spec`.
pub(super) fn config(spec: MultusConfigSpec) -> MultusConfig {
    let mut mc = MultusConfig::new("pool-a", spec);
    mc.metadata.uid = Some("uid-1".to_owned());
    mc
}

/// The agent pod of the rendered DaemonSet.
pub(super) fn pod_spec(children: &Children) -> &PodSpec {
    children
        .daemon_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

/// The operands of MultusConfig `a` (uid `u`, default spec) in namespace
/// `ns` with the built-in image: the small world the apply and prune tests
/// reason about.
pub(crate) fn default_children_of_a() -> Children {
    let mut mc = MultusConfig::new("a", MultusConfigSpec::default());
    mc.metadata.uid = Some("u".into());
    let settings = OperandSettings {
        namespace: "ns".into(),
        default_image: ImageRef::builtin(),
        agent_cluster_role: "r".into(),
        plugin_cluster_role: "p".into(),
    };
    super::render(&mc, &settings, &[]).unwrap()
}
