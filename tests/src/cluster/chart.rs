//! The chart on the cluster: `helm install|upgrade` with the end-to-end
//! image, the operator becoming available, the documented removal.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::objects::get_for_poll;
use super::pods::{hopeless_reason, pod_summary, pods_summary};
use crate::cmd::Cmd;
use crate::env::{E2E_IMAGE_ENV, e2e_image, workspace_root};
use crate::teardown::cleanup_cmd;
use crate::wait::wait_until;

/// `helm install|upgrade RELEASE charts/multus -n NAMESPACE` with the
/// end-to-end image (`MULTUS_E2E_IMAGE`) and the extra `--set`s.
pub fn helm_chart(verb: &str, release: &str, namespace: &str, sets: &[&str]) -> Cmd {
    let chart = workspace_root().join("charts/multus");
    let mut cmd = Cmd::helm([verb, release])
        .args([chart.as_os_str()])
        .args(["--namespace", namespace]);
    if verb == "install" {
        cmd = cmd.args(["--create-namespace"]);
    }
    if let Some((repo, tag)) = e2e_image() {
        cmd = cmd.args([
            "--set".to_owned(),
            format!("image.repository={repo}"),
            "--set".to_owned(),
            format!("image.tag={tag}"),
            "--set".to_owned(),
            "image.pullPolicy=IfNotPresent".to_owned(),
        ]);
    }
    for set in sets {
        cmd = cmd.args(["--set", set]);
    }
    cmd
}

/// Waits until the operator's Deployment (`<fullname>-operator`) has an
/// available replica of its latest generation; fails at once when its
/// image cannot be used (not imported into the node, wrong name).
pub async fn wait_operator_available(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    timeout: Duration,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("Deployment {namespace}/{deployment} available"),
        timeout,
        async || {
            let d = get_for_poll(&deployments, deployment, "no Deployment").await?;
            let status = d.status.clone().unwrap_or_default();
            let current = status.observed_generation == d.metadata.generation;
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if current
                && status.updated_replicas.unwrap_or(0) >= replicas
                && status.available_replicas.unwrap_or(0) >= replicas
                && status.replicas.unwrap_or(0) == replicas
            {
                return Ok(());
            }
            let params = ListParams::default().labels("app.kubernetes.io/component=operator");
            let list = pods
                .list(&params)
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for pod in &list {
                let restarts = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum::<i32>());
                if restarts >= 3 {
                    let name = pod.metadata.name.as_deref().unwrap_or_default();
                    let logs = Cmd::kubectl(["logs", "-n", namespace, name, "--previous"])
                        .args(["--all-containers", "--tail=20"])
                        .run_for(Duration::from_secs(30))
                        .await
                        .unwrap_or_else(|e| e);
                    panic!(
                        "the operator keeps crashing ({}); its last log lines:\n{logs}",
                        pod_summary(pod)
                    );
                }
                if let Some(reason) = hopeless_reason(pod) {
                    panic!(
                        "the operator cannot start: {reason} ({}); is {} set to an image the \
                         node has (image/build.sh, then import it into the node)?",
                        pod_summary(pod),
                        E2E_IMAGE_ENV
                    );
                }
            }
            Err(format!(
                "generation {:?} observed {:?}, replicas {:?} updated {:?} available {:?}; {}",
                d.metadata.generation,
                status.observed_generation,
                status.replicas,
                status.updated_replicas,
                status.available_replicas,
                pods_summary(&list)
            ))
        },
    )
    .await;
}

/// Removes a release of the chart the documented way, for cleanups
/// (blocking, never fails the test): the MultusConfigs matching
/// `mc_selector` first (their finalizer has the agents remove Multus from
/// the nodes; finalizers still there after the wait are removed, so a
/// dead operator cannot block the cleanup), then `helm uninstall`, then
/// the namespace.
pub fn remove_release(release: &str, namespace: &str, mc_selector: &str) {
    cleanup_cmd(&Cmd::kubectl([
        "delete",
        "multusconfigs",
        "-l",
        mc_selector,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=150s",
    ]));
    let left = Cmd::kubectl(["get", "multusconfigs", "-l", mc_selector, "-o", "name"])
        .run_blocking()
        .unwrap_or_default();
    for mc in left.lines().filter(|l| !l.is_empty()) {
        eprintln!("cleanup: {mc} is stuck in deletion; removing its finalizers");
        cleanup_cmd(&Cmd::kubectl([
            "patch",
            mc,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]));
    }
    cleanup_cmd(&Cmd::helm([
        "uninstall",
        release,
        "--namespace",
        namespace,
        "--ignore-not-found",
        "--wait",
        "--timeout",
        "90s",
    ]));
    cleanup_cmd(&Cmd::kubectl([
        "delete",
        "namespace",
        namespace,
        "--ignore-not-found",
        "--timeout=90s",
    ]));
}

/// Installs the chart as docs/quickstart.md does: `helm install` (see
/// [`helm_chart`]), the namespace labelled for privileged pods (the agents
/// are privileged), then waits (2 minutes at most) until the operator's
/// Deployment `operator` is available.
pub async fn install_privileged(
    client: &kube::Client,
    release: &str,
    namespace: &str,
    operator: &str,
    sets: &[&str],
) {
    helm_chart("install", release, namespace, sets).ok().await;
    Cmd::kubectl(["label", "namespace", namespace, "--overwrite"])
        .args(["pod-security.kubernetes.io/enforce=privileged"])
        .ok()
        .await;
    wait_operator_available(client, namespace, operator, Duration::from_secs(120)).await;
}
