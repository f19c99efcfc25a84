//! The node-agent DaemonSet: its rolling update, its pod template (in
//! install mode, annotated with the settings' hash) and the pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{Affinity, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multus_config::crd::MultusConfigSpec;
use multus_config::generate::hex_sha256;

use super::container::{AGENT_CONTAINER, agent_container};
use super::image::{ImageRef, image_pull_secrets};
use super::metadata::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_RENDERED_HASH, LABEL_MODE, MODE_INSTALL, Owner, agent_name,
    common_labels, config_map_name, selector_labels,
};
use super::placement::{affinity_excluding, default_tolerations};
use super::volumes::agent_volumes;

/// The node-agent DaemonSet: the agent pods of [`agent_pod_template`],
/// replaced `spec.updateStrategy.maxUnavailable` at a time, annotated with
/// the hash of its whole spec.
pub(super) fn agent_daemon_set(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> Result<DaemonSet, serde_json::Error> {
    let ds_spec = DaemonSetSpec {
        selector: LabelSelector {
            match_labels: Some(selector_labels(owner.config)),
            match_expressions: None,
        },
        update_strategy: Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(spec.max_unavailable()),
                max_surge: Some(IntOrString::Int(0)),
            }),
        }),
        revision_history_limit: Some(5),
        template: agent_pod_template(owner, spec, default_image, config_hash, excluded),
        ..DaemonSetSpec::default()
    };
    let rendered_hash = hex_sha256(&serde_json::to_vec(&ds_spec)?);
    let mut metadata = owner.namespaced(agent_name(owner.config));
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_RENDERED_HASH.to_owned(),
        rendered_hash,
    )]));
    Ok(DaemonSet {
        metadata,
        spec: Some(ds_spec),
        status: None,
    })
}

/// The agent pods in install mode, annotated with the hash of their
/// settings (so a settings change rolls them).
fn agent_pod_template(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> PodTemplateSpec {
    let mut labels = common_labels(owner.config);
    labels.insert(LABEL_MODE.to_owned(), MODE_INSTALL.to_owned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_CONFIG_HASH.to_owned(), config_hash.to_owned()),
                (
                    "kubectl.kubernetes.io/default-container".to_owned(),
                    AGENT_CONTAINER.to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        }),
        spec: Some(agent_pod_spec(
            owner,
            spec,
            default_image,
            config_hash,
            excluded,
        )),
    }
}

/// The agent pod: privileged on the host network, on the nodes of
/// `spec.placement` minus `excluded`, with the host directories and
/// settings of [`agent_volumes`].
fn agent_pod_spec(
    owner: &Owner<'_>,
    spec: &MultusConfigSpec,
    default_image: &ImageRef,
    config_hash: &str,
    excluded: &[String],
) -> PodSpec {
    let (volumes, mounts) = agent_volumes(spec, config_map_name(owner.config, config_hash));
    let placement = spec.placement.as_ref();
    PodSpec {
        service_account_name: Some(agent_name(owner.config)),
        automount_service_account_token: Some(false),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".to_owned()),
        priority_class_name: Some(spec.priority_class_name().to_owned()),
        node_selector: placement
            .and_then(|p| p.node_selector.clone())
            .filter(|s| !s.is_empty()),
        affinity: affinity_excluding(placement.and_then(|p| p.affinity.as_ref()), excluded)
            .filter(|a| *a != Affinity::default()),
        tolerations: Some(
            placement
                .and_then(|p| p.tolerations.clone())
                .unwrap_or_else(default_tolerations),
        ),
        image_pull_secrets: image_pull_secrets(spec),
        termination_grace_period_seconds: Some(10),
        containers: vec![agent_container(owner.config, spec, default_image, mounts)],
        volumes: Some(volumes),
        // The delegate API and network hot-plug run `multus` children in
        // the host's mount namespace and the runtime's cgroup, found
        // through the host's processes.
        host_pid: spec.runs_host_children().then_some(true),
        ..PodSpec::default()
    }
}
