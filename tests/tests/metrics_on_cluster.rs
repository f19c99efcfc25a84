//! End-to-end: the plugin's per-command metrics (issue 16) on a real
//! cluster. The chart is installed; a pod attaching two NADs (bridge
//! networks) starts; the node agent's `/metrics` (host network, port 9101
//! of this node) shows its ADD, the attachments of both networks, the
//! bridge plugin's latency, and `pod_network_name_info` for eth0, net1 and
//! net2 of the pod; deleting the pod shows the DEL and removes the pod's
//! `pod_network_name_info` series.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs a disposable single-node cluster whose node is this
//! machine, root, `helm`, `kubectl` and the image of `MULTUS_E2E_IMAGE` on
//! the node.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use multus_e2e::cluster::{
    TestPod, assert_no_multus_configs, create_nad, create_namespace, delete_pod,
    install_privileged, metric_sample as sample, nad_object, remove_release, scrape_agent_metrics,
    wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{E2eSession, remove_link, remove_namespace, remove_path, wait_until};
use multus_operator::controller::render::AGENT_PORT;
use serde_json::json;

const TEST: &str = "metrics_of_a_pod_with_two_nads_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-metrics";
const OP_NS: &str = "multus-e2e-metrics";
const OPERATOR: &str = "multus-e2e-metrics-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-metrics";
const APP_NS: &str = "multus-e2e-metrics-app";
const POD: &str = "two-nads";
/// (NAD, bridge, subnet)
const NADS: [(&str, &str, &str); 2] = [
    ("metrics-a", "e2emeta0", "10.253.1.0/24"),
    ("metrics-b", "e2emetb0", "10.253.2.0/24"),
];

const MINUTE: Duration = Duration::from_secs(60);

fn remove_everything() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    for (nad, bridge, _) in NADS {
        remove_link(bridge);
        remove_path(format!("/var/lib/cni/networks/{nad}"));
    }
}

/// `GET /metrics` of the node agent on this node.
fn scrape() -> Result<String, String> {
    scrape_agent_metrics(AGENT_PORT)
}

/// Waits until every `(series, at least)` is in the agent's `/metrics`.
async fn wait_metrics(what: &str, expected: &[(String, f64)]) -> String {
    wait_until(what, 2 * MINUTE, async || {
        let text = scrape()?;
        for (series, min) in expected {
            match sample(&text, series) {
                Some(v) if v >= *min => {}
                other => {
                    let related: Vec<&str> = text
                        .lines()
                        .filter(|l| {
                            l.contains(APP_NS) || l.starts_with("multus_node_agent_reports")
                        })
                        .collect();
                    return Err(format!(
                        "{series} = {other:?}; related:\n{}",
                        related.join("\n")
                    ));
                }
            }
        }
        Ok(text)
    })
    .await
}

#[tokio::test]
async fn metrics_of_a_pod_with_two_nads_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    let client = e2e.client.clone();
    e2e.log
        .step("preflight: remove leftovers; no Multus but ours");
    remove_everything();
    assert_no_multus_configs(&client).await;
    e2e.arm_teardown(
        &[OP_NS, APP_NS],
        "remove the pod, the release and the host files",
        remove_everything,
    );
    let log = &mut e2e.log;

    log.step("install the chart; two bridge NADs");
    install_privileged(&client, RELEASE, OP_NS, OPERATOR, &[]).await;
    wait_mc_ready(&client, "default", 3 * MINUTE).await;
    create_namespace(&client, APP_NS).await;
    for (nad, bridge, subnet) in NADS {
        let config = json!({
            "cniVersion": "1.0.0", "name": nad, "type": "bridge", "bridge": bridge,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]}
        });
        create_nad(&client, &nad_object(APP_NS, nad, &config.to_string())).await;
    }
    let before = scrape().ok();
    let adds_before = before
        .as_deref()
        .and_then(|t| {
            sample(
                t,
                &format!(
                    "multus_plugin_commands_total{{command=\"ADD\",result=\"ok\",namespace=\"{APP_NS}\"}}"
                ),
            )
        })
        .unwrap_or(0.0);

    log.step("a pod with both NADs: its ADD and its interfaces show in /metrics");
    TestPod::new(APP_NS, POD)
        .networks(&format!("{},{}", NADS[0].0, NADS[1].0))
        .create(&client)
        .await;
    wait_pod_ready(&client, APP_NS, POD, 2 * MINUTE).await;
    let info = |ifname: &str, network: &str| {
        format!(
            "pod_network_name_info{{namespace=\"{APP_NS}\",pod=\"{POD}\",interface=\"{ifname}\",network_name=\"{network}\"}}"
        )
    };
    let mut expected = vec![
        (
            format!(
                "multus_plugin_commands_total{{command=\"ADD\",result=\"ok\",namespace=\"{APP_NS}\"}}"
            ),
            adds_before + 1.0,
        ),
        (
            "multus_plugin_delegate_duration_seconds_count{delegate_type=\"bridge\",command=\"ADD\",result=\"ok\"}".to_owned(),
            2.0,
        ),
        (
            "multus_node_agent_reports_rejected_total{reason=\"malformed\"}".to_owned(),
            0.0,
        ),
    ];
    for (i, (nad, _, _)) in NADS.iter().enumerate() {
        let network = format!("{APP_NS}/{nad}");
        expected.push((
            format!(
                "multus_plugin_attachments_total{{command=\"ADD\",namespace=\"{APP_NS}\",network=\"{network}\",result=\"ok\"}}"
            ),
            1.0,
        ));
        expected.push((info(&format!("net{}", i + 1), &network), 1.0));
    }
    let text = wait_metrics("the pod's ADD in /metrics", &expected).await;
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "pod_network_name_info{{namespace=\"{APP_NS}\",pod=\"{POD}\",interface=\"eth0\","
        ))),
        "the cluster network's interface too"
    );
    assert!(
        sample(
            &text,
            "multus_plugin_command_duration_seconds_count{command=\"ADD\",result=\"ok\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with("pod_network_name_info")
                && l.contains(&format!("pod=\"{POD}\""))),
        "pod names only in pod_network_name_info"
    );
    log.note("ADD, attachments, delegate latency and pod_network_name_info seen");

    log.step("deleting the pod: its DEL shows and its series go");
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    delete_pod(&pods, POD).await;
    let del = format!(
        "multus_plugin_commands_total{{command=\"DEL\",result=\"ok\",namespace=\"{APP_NS}\"}}"
    );
    wait_until(
        "the DEL and no pod_network_name_info of the pod",
        2 * MINUTE,
        async || {
            let text = scrape()?;
            if sample(&text, &del).is_none_or(|v| v < 1.0) {
                return Err(format!("no {del}"));
            }
            let left: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("pod_network_name_info") && l.contains(&format!("pod=\"{POD}\""))
                })
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join("\n"))
            }
        },
    )
    .await;

    e2e.tear_down();
    e2e.finish();
}
