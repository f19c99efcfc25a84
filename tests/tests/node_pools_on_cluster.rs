//! End-to-end: node pools on a real API server. The chart is installed
//! without its default MultusConfig; Node objects without a kubelet (they
//! stay NotReady) make pools next to the real node:
//!
//! - disjoint pools are each Ready or not as their nodes allow (the real
//!   node's pool Ready, a pool of fake nodes not);
//! - a newer MultusConfig whose selector overlaps two older ones on three
//!   nodes reports `NodeSelectorConflict` naming the nodes and the older
//!   MultusConfigs, is otherwise valid (its DaemonSet excludes several nodes
//!   at once) and keeps off those nodes;
//! - when one older MultusConfig is deleted, the newer one takes its nodes
//!   over and only the remaining conflict is reported.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs a disposable cluster whose node is this machine (the
//! real node's pool installs Multus there), root, `helm`, `kubectl` and the
//! image of `MULTUS_E2E_IMAGE` on the node. It creates and deletes Node
//! objects and labels the real node for the duration of the test.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use multus_config::crd::MultusConfig;
use multus_e2e::cluster::{
    assert_no_multus_configs, condition, has_condition, helm_chart, mc_summary, remove_release,
    status_current, wait_gone, wait_mc, wait_mc_ready, wait_operator_available,
};
use multus_e2e::{Cmd, E2eSession, cleanup_cmd, host_name, multus_files_on_node, wait_until};
use serde_json::json;

const TEST: &str = "node_pools_on_a_real_api_server";
const RELEASE: &str = "multus-e2e-pools";
const OP_NS: &str = "multus-e2e-pools";
const OPERATOR: &str = "multus-e2e-pools-operator";
/// Label of everything this test creates (MultusConfigs, fake Nodes).
const TEST_LABEL: &str = "e2e.multus.dev/test";
const TEST_SELECTOR: &str = "e2e.multus.dev/test=pools";
/// Pool labels.
const POOL: &str = "e2e.multus.dev/pool";
const OLD: &str = "e2e.multus.dev/old";
const NEW: &str = "e2e.multus.dev/new";

const REAL_POOL: &str = "e2e-pool-real";
const FAKE_POOL: &str = "e2e-pool-fake";
/// Created before NEW_POOL (names in the same order, so that even equal
/// creation times rank them the same way).
const OLD_POOL: &str = "e2e-pool-1-old";
const NEW_POOL: &str = "e2e-pool-2-new";

const MINUTE: Duration = Duration::from_secs(60);

fn fake(n: u8) -> String {
    format!("multus-e2e-fake-{n}")
}

/// The fake nodes and their labels: 1-2 in the fake pool, 3-4 in the old
/// pool, 2-5 selected by the new pool (so it conflicts on 2 with the fake
/// pool and on 3, 4 with the old one, and keeps 5).
fn fake_nodes() -> Vec<(String, BTreeMap<&'static str, &'static str>)> {
    vec![
        (fake(1), BTreeMap::from([(POOL, "fake")])),
        (fake(2), BTreeMap::from([(POOL, "fake"), (NEW, "true")])),
        (fake(3), BTreeMap::from([(OLD, "true"), (NEW, "true")])),
        (fake(4), BTreeMap::from([(OLD, "true"), (NEW, "true")])),
        (fake(5), BTreeMap::from([(NEW, "true")])),
    ]
}

/// Removes what the test creates (blocking; teardown and leftovers): the
/// MultusConfigs (while the real node still has its label, so its agent
/// uninstalls), the release, the fake nodes, the real node's label.
fn remove_pools() {
    remove_release(RELEASE, OP_NS, TEST_SELECTOR);
    cleanup_cmd(&Cmd::kubectl([
        "delete",
        "nodes",
        "-l",
        TEST_SELECTOR,
        "--ignore-not-found",
        "--timeout=60s",
    ]));
    cleanup_cmd(&Cmd::kubectl([
        "label",
        "node",
        &host_name(),
        &format!("{POOL}-"),
    ]));
}

#[tokio::test]
async fn node_pools_on_a_real_api_server() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    let client = e2e.client.clone();
    e2e.log
        .step("preflight: remove leftovers, install the chart without a MultusConfig");
    remove_pools();
    e2e.arm_teardown(
        &[OP_NS],
        "remove the pools, fake nodes and the release",
        remove_pools,
    );
    let log = &mut e2e.log;
    assert_no_multus_configs(&client).await;
    let configs: Api<MultusConfig> = Api::all(client.clone());
    helm_chart("install", RELEASE, OP_NS, &["multusConfig.create=false"])
        .ok()
        .await;
    wait_operator_available(&client, OP_NS, OPERATOR, 2 * MINUTE).await;

    log.step("nodes: the real one labelled, five fake ones");
    let real = host_name();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            &real,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {POOL: "real"}}})),
        )
        .await
        .unwrap_or_else(|e| panic!("labelling node {real} (this machine): {e}"));
    for (name, labels) in fake_nodes() {
        let mut labels: BTreeMap<&str, &str> = labels;
        labels.insert(TEST_LABEL, "pools");
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        nodes
            .create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
    }

    log.step("disjoint pools: the real node's Ready, the fake nodes' not");
    create_pool(&client, REAL_POOL, POOL, "real", None).await;
    create_pool(&client, FAKE_POOL, POOL, "fake", Some(30)).await;
    let mc = wait_mc_ready(&client, REAL_POOL, 3 * MINUTE).await;
    assert_nodes(&mc, 1);
    assert!(
        has_condition(&mc, "Degraded", "False", None),
        "{}",
        mc_summary(&mc)
    );
    let mc = wait_mc(
        &client,
        FAKE_POOL,
        "status for its generation: 2 nodes desired, Ready False, no conflict",
        MINUTE,
        |mc| {
            status_current(mc)
                && mc.status.as_ref().is_some_and(|s| s.desired_nodes == 2)
                && has_condition(mc, "Ready", "False", None)
        },
    )
    .await;
    assert_eq!(mc.status.as_ref().unwrap().ready_nodes, 0);
    assert!(
        !has_condition(&mc, "Degraded", "True", Some("NodeSelectorConflict")),
        "{}",
        mc_summary(&mc)
    );
    log.note(&mc_summary(&mc));

    log.step("a newer pool overlapping two older ones on three nodes");
    create_pool(&client, OLD_POOL, OLD, "true", Some(30)).await;
    // Creation times have a resolution of one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create_pool(&client, NEW_POOL, NEW, "true", Some(30)).await;
    let mc = wait_conflict(&client, 1).await;
    let message = &condition(&mc, "Degraded").unwrap().message;
    for name in [fake(2), fake(3), fake(4)] {
        assert!(
            message.contains(&name),
            "conflict without {name}: {message}"
        );
    }
    for owner in [FAKE_POOL, OLD_POOL] {
        assert!(
            message.contains(owner),
            "conflict without {owner}: {message}"
        );
    }
    assert!(!message.contains(&fake(5)), "{message}");
    log.note(message);
    assert_daemonset_nodes(&client, NEW_POOL, &[fake(2), fake(3), fake(4)], 1).await;
    let old = wait_mc(
        &client,
        OLD_POOL,
        "status for its generation with 2 nodes desired",
        MINUTE,
        |mc| status_current(mc) && mc.status.as_ref().is_some_and(|s| s.desired_nodes == 2),
    )
    .await;
    assert!(
        !has_condition(&old, "Degraded", "True", Some("NodeSelectorConflict")),
        "the older pool must keep its nodes without conflict: {}",
        mc_summary(&old)
    );

    log.step("the older pool deleted: the newer one takes its nodes over");
    configs
        .delete(OLD_POOL, &DeleteParams::default())
        .await
        .unwrap();
    // Its agents on fake nodes never run their uninstall: the deletion
    // completes after progressDeadlineSeconds (30).
    wait_gone(&configs, OLD_POOL, 2 * MINUTE).await;
    let mc = wait_conflict(&client, 3).await;
    let message = &condition(&mc, "Degraded").unwrap().message;
    assert!(
        message.contains(&fake(2)) && message.contains(FAKE_POOL),
        "{message}"
    );
    for gone in [fake(3), fake(4), OLD_POOL.to_owned()] {
        assert!(!message.contains(&gone), "still names {gone}: {message}");
    }
    log.note(message);
    assert_daemonset_nodes(&client, NEW_POOL, &[fake(2)], 3).await;

    log.step("delete the pools: the real node's files go");
    Cmd::kubectl([
        "delete",
        "multusconfigs",
        "-l",
        TEST_SELECTOR,
        "--timeout=150s",
    ])
    .ok()
    .await;
    for path in multus_files_on_node() {
        assert!(
            !path.exists(),
            "{} left on the node after its pool was deleted",
            path.display()
        );
    }
    e2e.finish();
}

/// Creates a pool selecting `key=value`, labelled for cleanup.
async fn create_pool(client: &Client, name: &str, key: &str, value: &str, deadline: Option<u32>) {
    let mut spec = json!({"placement": {"nodeSelector": {key: value}}});
    if let Some(seconds) = deadline {
        spec["progressDeadlineSeconds"] = seconds.into();
    }
    let mc: MultusConfig = serde_json::from_value(json!({
        "apiVersion": "multus.dev/v1alpha1",
        "kind": "MultusConfig",
        "metadata": {"name": name, "labels": {TEST_LABEL: "pools"}},
        "spec": spec,
    }))
    .unwrap();
    Api::<MultusConfig>::all(client.clone())
        .create(&PostParams::default(), &mc)
        .await
        .unwrap_or_else(|e| panic!("creating MultusConfig {name}: {e}"));
}

fn assert_nodes(mc: &MultusConfig, desired: i32) {
    let status = mc.status.as_ref().unwrap();
    assert_eq!(status.desired_nodes, desired, "{}", mc_summary(mc));
}

/// Waits until the new pool reports NodeSelectorConflict for its current
/// generation with `desired` nodes of its own; an InvalidSpec (for example
/// the API server refusing the DaemonSet's node affinity) fails at once.
async fn wait_conflict(client: &Client, desired: i32) -> MultusConfig {
    let api: Api<MultusConfig> = Api::all(client.clone());
    wait_until(
        &format!("MultusConfig {NEW_POOL}: Degraded NodeSelectorConflict with {desired} node(s)"),
        2 * MINUTE,
        async || {
            let mc = api.get(NEW_POOL).await.map_err(|e| e.to_string())?;
            let invalid = ["Ready", "Degraded"]
                .iter()
                .any(|t| condition(&mc, t).is_some_and(|c| c.reason == "InvalidSpec"));
            assert!(
                !invalid,
                "a pool with conflicting nodes must stay valid: {}",
                mc_summary(&mc)
            );
            if status_current(&mc)
                && has_condition(&mc, "Degraded", "True", Some("NodeSelectorConflict"))
                && mc
                    .status
                    .as_ref()
                    .is_some_and(|s| s.desired_nodes == desired)
            {
                Ok(mc)
            } else {
                Err(mc_summary(&mc))
            }
        },
    )
    .await
}

/// The pool's DaemonSet runs on `desired` nodes and its required node
/// affinity excludes each of `excluded`.
async fn assert_daemonset_nodes(client: &Client, pool: &str, excluded: &[String], desired: i32) {
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), OP_NS);
    let name = format!("multus-agent-{pool}");
    let ds = wait_until(
        &format!("DaemonSet {OP_NS}/{name} scheduling {desired} node(s)"),
        MINUTE,
        async || {
            let ds = daemonsets.get(&name).await.map_err(|e| e.to_string())?;
            let status = ds.status.clone().unwrap_or_default();
            if status.observed_generation == ds.metadata.generation
                && status.desired_number_scheduled == desired
            {
                Ok(ds)
            } else {
                Err(format!(
                    "generation {:?} observed {:?}, desired {}",
                    ds.metadata.generation,
                    status.observed_generation,
                    status.desired_number_scheduled
                ))
            }
        },
    )
    .await;
    let affinity = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| serde_json::to_string(r).unwrap())
        .unwrap_or_default();
    for node in excluded {
        assert!(
            affinity.contains(&format!(r#""{node}""#)) && affinity.contains("NotIn"),
            "the DaemonSet's node affinity does not exclude {node}: {affinity}"
        );
    }
}
