//! The DaemonSet that removes Multus from the nodes, derived from the
//! live install DaemonSet, and how to tell the two modes apart.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::AGENT_CONTAINER;
use super::metadata::{ANNOTATION_CONFIG_HASH, LABEL_MODE, MODE_UNINSTALL};
use crate::agent::args::{self as agent_args, AttachedPods, NodeAgentArgs};

/// The DaemonSet that removes Multus from the nodes, derived from the
/// live install DaemonSet `live` so it reaches exactly the nodes and host
/// paths the agents used (even when the spec changed since): the agent
/// container runs `node-agent --uninstall` with the same mounts and the
/// directories of its install command line
/// ([`NodeAgentArgs::uninstall_form`]) with `--attached-pods` and the
/// host's CNI bin dir (the host path of the bin dir's volume), without
/// probes or ports, in the host's PID namespace (the agent runs the
/// plugin's `upkeep` in the host's mount namespace, that of the runtime's
/// shim above it), and
/// every node is switched at once (`maxUnavailable: 100%`). `None` when
/// `live` has no pod template to derive from or its agent's command line
/// cannot be read.
pub fn uninstall_daemon_set(live: &DaemonSet, attached_pods: AttachedPods) -> Option<DaemonSet> {
    let live_spec = live.spec.as_ref()?;
    let mut template = live_spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_MODE.to_owned(), MODE_UNINSTALL.to_owned());
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(ANNOTATION_CONFIG_HASH);
    }
    let pod = template.spec.as_mut()?;
    let container = pod.containers.iter().find(|c| c.name == AGENT_CONTAINER)?;
    let install_args = container
        .args
        .clone()
        .unwrap_or_else(|| vec![agent_args::SUBCOMMAND.to_owned()]);
    let installed = NodeAgentArgs::parse_rendered_lenient(&install_args).ok()?;
    let mut form = installed.uninstall_form();
    form.attached_pods = attached_pods;
    let bin_mount = container.volume_mounts.as_ref().and_then(|mounts| {
        mounts
            .iter()
            .find(|m| std::path::Path::new(&m.mount_path) == installed.dirs.cni_bin_dir)
    });
    if let Some(host) = bin_mount
        .and_then(|m| pod.volumes.as_ref()?.iter().find(|v| v.name == m.name))
        .and_then(|v| v.host_path.as_ref())
    {
        form.host_cni_bin_dir = host.path.clone().into();
    }
    let container = pod
        .containers
        .iter_mut()
        .find(|c| c.name == AGENT_CONTAINER)?;
    container.args = Some(form.to_args());
    container.liveness_probe = None;
    container.readiness_probe = None;
    container.ports = None;
    pod.host_pid = Some(true);
    Some(DaemonSet {
        metadata: ObjectMeta {
            name: live.metadata.name.clone(),
            namespace: live.metadata.namespace.clone(),
            labels: live.metadata.labels.clone(),
            owner_references: live.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: live_spec.selector.clone(),
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("100%".to_owned())),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: live_spec.revision_history_limit,
            template,
            min_ready_seconds: None,
        }),
        status: None,
    })
}

/// Whether a live DaemonSet's pod template is in uninstall mode.
pub fn is_uninstall_mode(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(LABEL_MODE))
        .is_some_and(|m| m == MODE_UNINSTALL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::render::fixtures::{config, pod_spec, settings};
    use crate::controller::render::render;
    use multus_config::crd::MultusConfigSpec;

    #[test]
    fn uninstall_mode_keeps_paths_and_placement_and_drops_probes() {
        let children = render(
            &config(MultusConfigSpec {
                cni_conf_dir: Some("/etc/k/cni".into()),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &["n1".into()],
        )
        .unwrap();
        assert!(!is_uninstall_mode(&children.daemon_set));
        let un = uninstall_daemon_set(&children.daemon_set, AttachedPods::Wait).unwrap();
        assert!(is_uninstall_mode(&un));
        let spec = un.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_deref().unwrap(),
            [
                "node-agent",
                "--uninstall",
                "--cni-conf-dir=/host/etc/cni/net.d",
                "--host-cni-conf-dir=/etc/k/cni",
                "--cni-bin-dir=/host/opt/cni/bin",
            ]
        );
        assert!(c.readiness_probe.is_none() && c.liveness_probe.is_none() && c.ports.is_none());
        assert_eq!(
            pod.host_pid,
            Some(true),
            "the agent enters the host's mount namespace"
        );
        assert_eq!(
            c.volume_mounts,
            pod_spec(&children).containers[0].volume_mounts
        );
        assert_eq!(pod.affinity, pod_spec(&children).affinity);
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .unwrap()
                .rolling_update
                .as_ref()
                .unwrap()
                .max_unavailable,
            Some(IntOrString::String("100%".into()))
        );
        assert_eq!(
            spec.selector,
            children.daemon_set.spec.as_ref().unwrap().selector
        );
        assert_eq!(
            un.metadata.owner_references,
            children.daemon_set.metadata.owner_references
        );
    }

    #[test]
    fn uninstall_mode_carries_the_policy_and_the_hosts_bin_dir() {
        let children = render(
            &config(MultusConfigSpec {
                cni_bin_dir: Some("/var/lib/rancher/k3s/data/cni".into()),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &["n1".into()],
        )
        .unwrap();
        let un = uninstall_daemon_set(&children.daemon_set, AttachedPods::Detach).unwrap();
        let args = un.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(
            args.contains(&"--attached-pods=detach".to_owned()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--host-cni-bin-dir=/var/lib/rancher/k3s/data/cni".to_owned()),
            "{args:?}"
        );
    }
}
