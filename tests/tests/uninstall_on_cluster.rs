//! End-to-end: deleting the MultusConfig while a pod still has a secondary
//! network attached through Multus (issue 20), through the chart, on the
//! real node:
//!
//! 1. `attachedPodsOnRemoval: Wait` (the default): the removal waits, the
//!    MultusConfig's `Ready` condition (`WaitingForPods`), a
//!    `WaitingForPods` Event and `kubectl describe` name the pod per node,
//!    and Multus stays on the node; deleting the pod lets the removal
//!    finish, its NAD address is released and no cache file, file or
//!    lease of ours is left;
//! 2. `attachedPodsOnRemoval: Detach`: the removal finishes at once, the
//!    pod keeps running without `net1` (a `RemovedInterface` Event on it,
//!    network-status with the cluster network only), its address is
//!    released and nothing of ours is left.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs what chart_on_cluster.rs needs (a disposable
//! single-node cluster whose node is this machine, root, `helm`,
//! `kubectl`, the image of `MULTUS_E2E_IMAGE` on the node).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use multus_config::crd::MultusConfig;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestPod, create_nad, create_namespace, delete_pod, has_condition,
    install_privileged, ipv4_in_pod, mc_summary, nad_object, remove_release,
    single_node_without_multus, wait_event, wait_event_saying, wait_gone, wait_mc, wait_mc_ready,
    wait_pod_ready,
};
use multus_e2e::{
    Cmd, E2eSession, StepLog, multus_files_on_node, remove_link, remove_namespace, remove_path,
    wait_until,
};
use serde_json::Value;

const TEST: &str = "uninstall_with_attached_pods_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-uninstall";
const OP_NS: &str = "multus-e2e-uninstall";
const OPERATOR: &str = "multus-e2e-uninstall-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-uninstall";
const APP_NS: &str = "multus-e2e-leak";
const NAD: &str = "e2e-leak-br";
const NAD_CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"e2e-leak-br","type":"bridge","bridge":"e2eleak0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.252.0.0/24"}]]}}"#;
const BRIDGE: &str = "e2eleak0";
const SUBNET_PREFIX: &str = "10.252.0.";
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks/e2e-leak-br";
const CACHE_DIR: &str = "/var/lib/cni/multus";
const MINUTE: Duration = Duration::from_secs(60);

fn remove_all() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    remove_link(BRIDGE);
    remove_path(HOST_LOCAL_DIR);
}

#[tokio::test]
async fn uninstall_with_attached_pods_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    e2e.log
        .step("preflight: a single node on this machine, no Multus");
    remove_all();
    let node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &[OP_NS.to_owned(), APP_NS.to_owned()],
        "remove the test's objects",
        remove_all,
    );
    let t = Leak {
        client: e2e.client.clone(),
        node,
    };
    let log = &mut e2e.log;

    log.step("1: attachedPodsOnRemoval Wait (default): the removal waits for the pod");
    t.install(log, &[]).await;
    create_namespace(&t.client, APP_NS).await;
    create_nad(&t.client, &nad_object(APP_NS, NAD, NAD_CONFIG)).await;
    let (ip, cache) = t.pod_with_net1(log, "p1").await;
    t.delete_config().await;
    t.waits_for(log, "p1").await;
    delete_pod(&t.pods(), "p1").await;
    wait_gone(&t.configs(), "default", 3 * MINUTE).await;
    t.nothing_left(log, &ip, &cache).await;
    Cmd::helm(["uninstall", RELEASE, "--namespace", OP_NS, "--wait"])
        .ok()
        .await;

    log.step("2: attachedPodsOnRemoval Detach: the removal detaches net1 at once");
    t.install(log, &["multusConfig.spec.attachedPodsOnRemoval=Detach"])
        .await;
    let (ip, cache) = t.pod_with_net1(log, "p2").await;
    t.delete_config().await;
    wait_gone(&t.configs(), "default", 2 * MINUTE).await;
    t.detached(log, "p2").await;
    t.nothing_left(log, &ip, &cache).await;
    delete_pod(&t.pods(), "p2").await;
    Cmd::helm(["uninstall", RELEASE, "--namespace", OP_NS, "--wait"])
        .ok()
        .await;

    e2e.finish();
}

struct Leak {
    client: Client,
    node: String,
}

impl Leak {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    fn configs(&self) -> Api<MultusConfig> {
        Api::all(self.client.clone())
    }

    async fn install(&self, log: &mut StepLog, sets: &[&str]) {
        install_privileged(&self.client, RELEASE, OP_NS, OPERATOR, sets).await;
        wait_mc_ready(&self.client, "default", 3 * MINUTE).await;
        log.note("installed; MultusConfig default Ready");
    }

    /// A pod with `net1` from the NAD; its address and its cache file.
    async fn pod_with_net1(&self, log: &mut StepLog, name: &str) -> (String, PathBuf) {
        TestPod::new(APP_NS, name)
            .networks(NAD)
            .create(&self.client)
            .await;
        wait_pod_ready(&self.client, APP_NS, name, 2 * MINUTE).await;
        let address = ipv4_in_pod(APP_NS, name, "net1", 2 * MINUTE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ip = address.split('/').next().unwrap().to_owned();
        assert!(ip.starts_with(SUBNET_PREFIX), "net1 of {name}: {address}");
        assert!(
            Path::new(HOST_LOCAL_DIR).join(&ip).exists(),
            "no lease {ip}"
        );
        let cache = cache_file_of(name)
            .unwrap_or_else(|| panic!("no Multus cache file names pod {APP_NS}/{name}"));
        let text = std::fs::read_to_string(&cache).unwrap();
        assert!(
            text.contains("\"netns\""),
            "the cache records no netns: {text}"
        );
        log.note(&format!("{name} has net1 {ip}; cache {}", cache.display()));
        (ip, cache)
    }

    async fn delete_config(&self) {
        self.configs()
            .delete("default", &DeleteParams::default())
            .await
            .expect("deleting MultusConfig default");
    }

    /// The removal waits for `pod`, says so, and leaves Multus in place.
    async fn waits_for(&self, log: &mut StepLog, pod: &str) {
        // "waiting for 1 pod with secondary networks on node vm: ns/p1"; a
        // shared node may hold other tests' pods too, so the count and
        // the list are not pinned here (unit tests pin the wording).
        let on_node = format!("with secondary networks on node {}: ", self.node);
        let expect = format!("{APP_NS}/{pod}");
        let mc = wait_mc(
            &self.client,
            "default",
            "Ready False WaitingForPods naming the pod",
            3 * MINUTE,
            |mc| {
                has_condition(mc, "Ready", "False", Some("WaitingForPods"))
                    && mc
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                        .is_some_and(|c| {
                            c.message.contains(&on_node) && c.message.contains(&expect)
                        })
            },
        )
        .await;
        log.note(&format!("status: {}", mc_summary(&mc)));
        let event = wait_event_saying(
            &self.client,
            "default",
            "default",
            "WaitingForPods",
            &expect,
            MINUTE,
        )
        .await;
        let note = event.message.clone().unwrap_or_default();
        assert!(
            note.contains(&on_node) && note.contains(&expect),
            "WaitingForPods event: {note}"
        );
        let described = Cmd::kubectl(["describe", "multusconfig", "default"])
            .ok()
            .await;
        assert!(
            described.contains("WaitingForPods") && described.contains(&format!("{APP_NS}/{pod}")),
            "kubectl describe does not say why: {described}"
        );
        // Still waiting some seconds later: nothing was removed meanwhile.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ours = multus_files_on_node();
        assert!(
            ours.iter().any(|p| p.exists()),
            "Multus left the node while a pod was attached: {ours:?}"
        );
        assert!(
            self.configs().get_opt("default").await.unwrap().is_some(),
            "the MultusConfig went while a pod was attached"
        );
        log.note("the removal waits and names the pod");
    }

    /// `pod` runs on without net1, told so, with the cluster network only.
    async fn detached(&self, log: &mut StepLog, pod: &str) {
        let event = wait_event(&self.client, APP_NS, pod, "RemovedInterface", MINUTE).await;
        let note = event.message.clone().unwrap_or_default();
        assert!(
            note.contains("net1") && note.contains(NAD),
            "RemovedInterface: {note}"
        );
        let links = Cmd::kubectl(["exec", "-n", APP_NS, pod, "--", "ip", "-o", "link"])
            .ok()
            .await;
        assert!(!links.contains("net1"), "net1 still in {pod}: {links}");
        let p = self.pods().get(pod).await.unwrap();
        let status = p
            .annotations()
            .get(NETWORK_STATUS_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let entries: Vec<Value> = serde_json::from_str(&status).unwrap_or_default();
        assert!(
            !entries.is_empty() && entries.iter().all(|e| e["interface"] != "net1"),
            "network-status after detach: {status}"
        );
        let running = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        assert_eq!(running, "Running", "{pod} after detach");
        log.note("net1 detached; the pod runs on with its cluster network");
    }

    /// No lease, cache file or file of ours is left on the node.
    async fn nothing_left(&self, log: &mut StepLog, ip: &str, cache: &Path) {
        let lease = Path::new(HOST_LOCAL_DIR).join(ip);
        wait_until(&format!("lease {ip} released"), MINUTE, async || {
            if lease.exists() {
                Err(format!("{lease:?} exists"))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(!cache.exists(), "cache file {} left", cache.display());
        let ours = multus_files_on_node();
        let still: Vec<&PathBuf> = ours.iter().filter(|p| p.exists()).collect();
        assert!(still.is_empty(), "left on the node: {still:?}");
        let leftovers: Vec<String> = std::fs::read_dir(CACHE_DIR)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(APP_NS)))
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "cache files of {APP_NS} left: {leftovers:?}"
        );
        let pods = self.pods().list(&ListParams::default()).await.unwrap();
        log.note(&format!(
            "lease {ip}, cache file and Multus files gone ({} pod(s) in {APP_NS})",
            pods.items.len()
        ));
    }
}

/// The Multus cache file of pod `name` in the test's namespace.
fn cache_file_of(name: &str) -> Option<PathBuf> {
    let namespace = format!("K8S_POD_NAMESPACE={APP_NS};");
    let pod = format!("K8S_POD_NAME={name};");
    std::fs::read_dir(CACHE_DIR)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.contains(&namespace) && t.contains(&pod))
        })
}
