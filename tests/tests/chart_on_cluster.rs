//! End-to-end: the user story of README.md and docs/quickstart.md, with a
//! real `helm`, real pods and the real node, in order:
//!
//! 1. over the NAD CRD applied first, client-side, from upstream's manifest:
//!    `helm install` with the image of `MULTUS_E2E_IMAGE`; MultusConfig
//!    `default` Ready for its generation (also in `kubectl describe`); the
//!    node's files (`00-multus.conf[list]` electing the node's own network,
//!    the plugin, the kubeconfig and token); a NAD and a pod with `net1`
//!    (address, network-status, AddedInterface event, the IP released on
//!    deletion); a broken NAD (Warning event) and a pod asking for a missing
//!    NAD (NoNetworkFound, not started); `helm upgrade` rolling the agents
//!    while pods keep being created (no FailedCreatePodSandBox); deleting the
//!    MultusConfig removing every file from the node (a plain pod still
//!    starts); `helm uninstall` keeping CRDs and NADs;
//! 2. the same install over an older upstream NAD CRD without the `nad`
//!    short name (used as it is, its NADs work and survive);
//! 3. the same install without any NAD CRD (the operator creates it).
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`). It needs a disposable single-node cluster whose node is this
//! machine (it reads `/etc/cni/net.d`, `/opt/cni/bin` and `/var/lib/cni` on
//! the host and deletes and recreates the NetworkAttachmentDefinition CRD),
//! root, `helm` and `kubectl`, the image of `MULTUS_E2E_IMAGE` (`repo:tag`)
//! on the node, and a pod image with `sleep` and `ip`
//! (`MULTUS_E2E_POD_IMAGE`, default `localhost/busybox:local`).
//! `MULTUS_E2E_KEEP_ON_FAILURE=1` leaves a failed run's objects in place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use multus_config::crd::{MultusConfig, MultusNodeState, NAD_CRD_YAML};
use multus_config::npwg::nad::NetworkAttachmentDefinition;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestPod, create_nad, create_namespace, delete_pod, event_count,
    event_summary, events_with_reason, has_condition, helm_chart, install_privileged, ipv4_in_pod,
    mc_summary, nad_object, pod_ready, pod_summary, pods_summary, remove_release,
    single_node_without_multus, status_current, wait_event, wait_gone, wait_mc, wait_mc_ready,
    wait_operator_available, wait_pod_ready,
};
use multus_e2e::{
    CNI_CONF_DIR, Cmd, E2eSession, MULTUS_PLUGIN, StepLog, file_mode, multus_files_on_node,
    poll_until, remove_link, remove_namespace, remove_path, wait_until, workspace_root,
};
use serde_json::Value;

const TEST: &str = "user_story_with_helm_on_a_real_cluster";
/// Release and namespace of the chart.
const RELEASE: &str = "multus-e2e";
const OP_NS: &str = "multus-e2e";
/// The operator's Deployment (the chart's full name is the release name,
/// which contains "multus").
const OPERATOR: &str = "multus-e2e-operator";
/// MultusConfigs of the release.
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e";
/// Namespace of the test's NADs and pods; no special labels.
const APP_NS: &str = "multus-e2e-story";
const NAD_CRD: &str = "network-attachment-definitions.k8s.cni.cncf.io";
/// The bridge NAD (host-local IPAM) and its CNI network name.
const NAD: &str = "e2e-br";
const NAD_CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"e2e-br","type":"bridge","bridge":"e2ebr0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.251.0.0/24"}]]}}"#;
const BRIDGE: &str = "e2ebr0";
const SUBNET_PREFIX: &str = "10.251.0.";
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks/e2e-br";
const DURING_LABEL: &str = "e2e.multus.dev/during-rollout";

const MINUTE: Duration = Duration::from_secs(60);

fn teardown_namespaces() -> Vec<String> {
    vec![OP_NS.to_owned(), APP_NS.to_owned()]
}

/// Removes everything the story creates (blocking; for the teardown and for
/// leftovers of an earlier failed run): the pods first, while Multus is
/// still installed to DEL their extra networks, then the release, then the
/// test network's traces on the host.
fn remove_story() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    remove_link(BRIDGE);
    remove_path(HOST_LOCAL_DIR);
}

#[tokio::test]
async fn user_story_with_helm_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    e2e.log
        .step("preflight: a single node on this machine, no Multus but ours");
    remove_story();
    let node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &teardown_namespaces(),
        "remove the story's objects",
        remove_story,
    );
    let story = Story {
        client: e2e.client.clone(),
        node,
    };
    let log = &mut e2e.log;

    // 1. Over upstream's NAD CRD, applied client-side before us.
    log.step("1: upstream's NAD CRD applied first with kubectl (client-side)");
    story
        .replace_nad_crd(Some("tests/fixtures/upstream/nad-crd.yaml"))
        .await;
    let crd_before = story.nad_crd().await.expect("the NAD CRD");
    create_namespace(&story.client, APP_NS).await;
    story.create_nad(NAD, NAD_CONFIG).await;
    story.full_story(log).await;
    story.assert_crd_untouched(&crd_before).await;

    // 2. Over an older upstream NAD CRD without the `nad` short name.
    log.step("2: an older upstream NAD CRD (no `nad` short name) applied first");
    story
        .replace_nad_crd(Some("tests/fixtures/e2e/nad-crd-upstream-v3.yaml"))
        .await;
    let crd_before = story.nad_crd().await.expect("the NAD CRD");
    story.create_nad(NAD, NAD_CONFIG).await;
    story.short_story(log, "v3").await;
    story.assert_crd_untouched(&crd_before).await;
    let names = crd_before.spec.names.short_names.clone();
    let now = story.nad_crd().await.expect("the NAD CRD");
    assert_eq!(
        now.spec.names.short_names, names,
        "the operator changed the short names of an existing NAD CRD"
    );

    // 3. Without any NAD CRD: the operator creates upstream's.
    log.step("3: no NAD CRD at all: the operator creates it");
    story.replace_nad_crd(None).await;
    story.short_story(log, "none").await;

    e2e.finish();
}

struct Story {
    client: Client,
    node: String,
}

impl Story {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    fn nads(&self) -> Api<NetworkAttachmentDefinition> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    fn configs(&self) -> Api<MultusConfig> {
        Api::all(self.client.clone())
    }

    async fn nad_crd(&self) -> Option<CustomResourceDefinition> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        crds.get_opt(NAD_CRD).await.expect("reading the NAD CRD")
    }

    /// Deletes the NAD CRD (and so every NAD) and applies `manifest`
    /// client-side, as users of upstream Multus did; `None` leaves it absent.
    async fn replace_nad_crd(&self, manifest: Option<&str>) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        if crds.get_opt(NAD_CRD).await.unwrap().is_some() {
            crds.delete(NAD_CRD, &DeleteParams::default())
                .await
                .unwrap();
            wait_gone(&crds, NAD_CRD, MINUTE).await;
        }
        let Some(manifest) = manifest else {
            return;
        };
        let path = workspace_root().join(manifest);
        Cmd::kubectl(["apply", "-f"]).args([&path]).ok().await;
        self.wait_crd_established().await;
    }

    async fn wait_crd_established(&self) -> CustomResourceDefinition {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        wait_until(&format!("CRD {NAD_CRD} Established"), MINUTE, async || {
            let crd = crds
                .get_opt(NAD_CRD)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("absent")?;
            let conditions = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                Ok(crd)
            } else {
                Err(format!("conditions {conditions:?}"))
            }
        })
        .await
    }

    /// The NAD CRD still is the object the user applied: same uid and
    /// generation, never written by the operator.
    async fn assert_crd_untouched(&self, before: &CustomResourceDefinition) {
        let now = self
            .nad_crd()
            .await
            .expect("helm uninstall (or the operator) deleted the NAD CRD");
        assert_eq!(now.uid(), before.uid(), "the NAD CRD was replaced");
        assert_eq!(
            now.metadata.generation, before.metadata.generation,
            "the NAD CRD's spec was changed: {:?}",
            now.metadata.managed_fields
        );
        let managers: BTreeSet<String> = now
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.subresource.is_none())
            .filter_map(|m| m.manager)
            .collect();
        assert!(
            managers.iter().all(|m| m.starts_with("kubectl")),
            "only kubectl may own the user's NAD CRD, found managers {managers:?}"
        );
    }

    /// Creates a NAD, retrying while the (new) CRD is not served yet.
    async fn create_nad(&self, name: &str, config: &str) {
        create_nad(&self.client, &nad_object(APP_NS, name, config)).await;
    }

    /// A pod in the app namespace, with the `networks` asked for.
    async fn create_pod(&self, name: &str, networks: Option<&str>, labels: &[(&str, &str)]) {
        let mut pod = TestPod::new(APP_NS, name);
        if let Some(networks) = networks {
            pod = pod.networks(networks);
        }
        for (key, value) in labels {
            pod = pod.label(key, value);
        }
        pod.create(&self.client).await;
    }

    async fn delete_pod(&self, name: &str) {
        delete_pod(&self.pods(), name).await;
    }

    async fn install(&self, log: &mut StepLog) {
        install_privileged(&self.client, RELEASE, OP_NS, OPERATOR, &[]).await;
        log.note("the operator is available");
    }

    /// `helm uninstall` (after the MultusConfig was deleted, as documented):
    /// the CRDs and our NAD are still there, the node's MultusNodeState is
    /// gone.
    async fn helm_uninstall(&self, log: &mut StepLog) {
        Cmd::helm(["uninstall", RELEASE, "--namespace", OP_NS, "--wait"])
            .ok()
            .await;
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in [
            "multusconfigs.multus.dev",
            "multusnodestates.multus.dev",
            NAD_CRD,
        ] {
            assert!(
                crds.get_opt(crd).await.unwrap().is_some(),
                "helm uninstall deleted the CRD {crd}"
            );
        }
        assert!(
            self.nads().get_opt(NAD).await.unwrap().is_some(),
            "helm uninstall deleted the NAD {APP_NS}/{NAD}"
        );
        let listed = Cmd::kubectl(["get", "net-attach-def", "-n", APP_NS, "-o", "name"])
            .ok()
            .await;
        assert!(listed.contains(NAD), "kubectl get net-attach-def: {listed}");
        let states: Api<MultusNodeState> = Api::all(self.client.clone());
        assert!(
            states.get_opt(&self.node).await.unwrap().is_none(),
            "MultusNodeState {} left after the MultusConfig was deleted",
            self.node
        );
        log.note("helm uninstall kept the CRDs and the NAD");
    }

    /// Deletes MultusConfig `default` (no pods left that use Multus) and
    /// checks that every file the agents wrote left the node.
    async fn delete_default_config(&self, log: &mut StepLog) {
        let left: Vec<String> = self
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert!(left.is_empty(), "pods left in {APP_NS}: {left:?}");
        self.configs()
            .delete("default", &DeleteParams::default())
            .await
            .expect("deleting MultusConfig default");
        wait_gone(&self.configs(), "default", 3 * MINUTE).await;
        let ours = multus_files_on_node();
        let still: Vec<&PathBuf> = ours.iter().filter(|p| p.exists()).collect();
        assert!(
            still.is_empty(),
            "left on the node after the MultusConfig was deleted: {still:?}"
        );
        log.note("MultusConfig deleted; 00-multus.conf*, multus.d/ and the plugin left the node");
    }

    /// The whole story over the NAD CRD in place.
    async fn full_story(&self, log: &mut StepLog) {
        log.step("1.1: helm install");
        self.install(log).await;

        log.step("1.2: MultusConfig default Ready for its generation");
        let mc = wait_mc_ready(&self.client, "default", 3 * MINUTE).await;
        self.check_ready_status(&mc);
        self.check_describe().await;

        log.step("1.3: the node's files");
        let primary = self.check_node_files().await;
        log.note(&format!("primary network on the node: {primary}"));

        log.step("1.4: a pod with the bridge NAD gets net1");
        self.pod_with_net1(log, &primary).await;

        log.step("1.5: a broken NAD and a missing NAD");
        self.broken_and_missing_nads(log).await;

        log.step("1.6: helm upgrade rolls the agents while pods keep starting");
        self.upgrade_during_pod_creation(log).await;

        log.step("1.7: deleting MultusConfig default removes Multus from the node");
        self.delete_config_cleans_node(log).await;

        log.step("1.8: helm uninstall keeps the CRDs and the NADs");
        self.helm_uninstall(log).await;
    }

    /// Install, Ready, a pod with net1, uninstall: over whatever NAD CRD
    /// there is (none: the operator must create it).
    async fn short_story(&self, log: &mut StepLog, variant: &str) {
        let crd_absent = self.nad_crd().await.is_none();
        self.install(log).await;
        let mc = wait_mc_ready(&self.client, "default", 3 * MINUTE).await;
        self.check_ready_status(&mc);
        if crd_absent {
            let crd = self.wait_crd_established().await;
            let ours: CustomResourceDefinition = serde_yaml::from_str(NAD_CRD_YAML).unwrap();
            // The API server adds defaults (listKind, conversion); compare
            // what the manifest sets.
            let (got, want) = (&crd.spec, &ours.spec);
            assert!(
                got.group == want.group
                    && got.scope == want.scope
                    && got.versions == want.versions
                    && got.names.kind == want.names.kind
                    && got.names.plural == want.names.plural
                    && got.names.singular == want.names.singular
                    && got.names.short_names == want.names.short_names,
                "the NAD CRD the operator created is not upstream's:\n{}",
                serde_yaml::to_string(&crd.spec).unwrap_or_default()
            );
            log.note("the operator created the NAD CRD");
            create_namespace(&self.client, APP_NS).await;
            self.create_nad(NAD, NAD_CONFIG).await;
        }
        let pod = format!("net1-{variant}");
        self.create_pod(&pod, Some(NAD), &[]).await;
        wait_pod_ready(&self.client, APP_NS, &pod, 2 * MINUTE).await;
        let ip = self.net1_address(&pod).await;
        log.note(&format!("pod {pod} has net1 {ip}"));
        self.delete_pod(&pod).await;
        self.delete_default_config(log).await;
        self.helm_uninstall(log).await;
    }

    fn check_ready_status(&self, mc: &MultusConfig) {
        let summary = mc_summary(mc);
        assert!(status_current(mc), "{summary}");
        assert!(
            has_condition(mc, "Progressing", "False", Some("RolloutComplete")),
            "{summary}"
        );
        assert!(has_condition(mc, "Degraded", "False", None), "{summary}");
        let status = mc.status.as_ref().unwrap();
        assert_eq!(
            (
                status.desired_nodes,
                status.ready_nodes,
                status.updated_nodes
            ),
            (1, 1, 1),
            "{summary}"
        );
    }

    /// `kubectl describe multusconfig default` shows the three conditions,
    /// Ready True.
    async fn check_describe(&self) {
        let out = Cmd::kubectl(["describe", "multusconfig", "default"])
            .ok()
            .await;
        // Each condition is printed as fields in name order: ... Status, Type.
        let mut status = None;
        let mut seen = Vec::new();
        for line in out.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("Status:") {
                status = Some(v.trim().to_owned());
            } else if let Some(t) = line.strip_prefix("Type:") {
                seen.push((t.trim().to_owned(), status.take().unwrap_or_default()));
            }
        }
        for t in ["Ready", "Progressing", "Degraded"] {
            assert!(
                seen.iter().any(|(ty, _)| ty == t),
                "describe shows no {t} condition:\n{out}"
            );
        }
        assert!(
            seen.contains(&("Ready".to_owned(), "True".to_owned())),
            "describe does not show Ready True ({seen:?}):\n{out}"
        );
        assert!(out.contains("Conditions:"), "{out}");
        assert!(out.contains("Events:"), "{out}");
    }

    /// The generated config on the node elects the node's own network; the
    /// plugin, kubeconfig and token are in place. Returns the primary
    /// network's name.
    async fn check_node_files(&self) -> String {
        let conf_dir = Path::new(CNI_CONF_DIR);
        let expected = own_primary_network(conf_dir);
        let (path, text) = wait_until("00-multus.conf[list] on the node", MINUTE, async || {
            for name in ["00-multus.conflist", "00-multus.conf"] {
                let path = conf_dir.join(name);
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return Ok((path, text));
                }
            }
            Err(format!("{:?}", list_dir(conf_dir)))
        })
        .await;
        assert_eq!(file_mode(&path), Some(0o600), "mode of {path:?}");
        let conf: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path:?} is not JSON ({e}):\n{text}"));
        let multus = conf.get("plugins").and_then(|p| p.get(0)).unwrap_or(&conf);
        assert_eq!(multus["type"], "multus", "{path:?}:\n{text}");
        let primary = multus["delegates"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no delegate in {path:?}:\n{text}"))
            .to_owned();
        assert_eq!(
            primary, expected,
            "{path:?} elects {primary}, not the node's own network {expected}"
        );
        let kubeconfig = multus["kubeconfig"].as_str().unwrap_or_default();
        assert_eq!(
            kubeconfig, "/etc/cni/net.d/multus.d/multus.kubeconfig",
            "{path:?}"
        );

        let multus_d = conf_dir.join("multus.d");
        for name in ["multus.kubeconfig", "token"] {
            let file = multus_d.join(name);
            assert_eq!(
                file_mode(&file),
                Some(0o600),
                "mode of {file:?} (files: {:?})",
                list_dir(&multus_d)
            );
        }
        let kubeconfig = std::fs::read_to_string(multus_d.join("multus.kubeconfig")).unwrap();
        assert!(
            kubeconfig.contains("/etc/cni/net.d/multus.d/token"),
            "the plugin's kubeconfig does not use the token file:\n{kubeconfig}"
        );
        let token = std::fs::read_to_string(multus_d.join("token")).unwrap();
        assert!(!token.trim().is_empty(), "the token file is empty");

        let plugin = Path::new(MULTUS_PLUGIN);
        assert_eq!(file_mode(plugin), Some(0o755), "mode of {plugin:?}");
        let version = Cmd::new(MULTUS_PLUGIN, ["--version"]).ok().await;
        assert!(
            !version.trim().is_empty(),
            "{MULTUS_PLUGIN} --version printed nothing"
        );

        let states: Api<MultusNodeState> = Api::all(self.client.clone());
        let state = wait_until(
            &format!("MultusNodeState {} ready", self.node),
            MINUTE,
            async || {
                let s = states
                    .get_opt(&self.node)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("absent")?;
                match &s.status {
                    Some(st) if st.ready => Ok(st.clone()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert_eq!(
            state.primary_network_name.as_deref(),
            Some(expected.as_str()),
            "{state:?}"
        );
        assert!(state.cni_plugins.iter().any(|p| p == "multus"), "{state:?}");
        primary
    }

    /// The IPv4 address of net1 as seen inside the pod.
    async fn net1_address(&self, pod: &str) -> String {
        let address = ipv4_in_pod(APP_NS, pod, "net1", 3 * MINUTE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ip = address.split('/').next().unwrap().to_owned();
        assert!(
            ip.starts_with(SUBNET_PREFIX),
            "net1 of {pod} has {address}, not an address of the NAD's subnet"
        );
        ip
    }

    async fn pod_with_net1(&self, log: &mut StepLog, primary: &str) {
        let name = "with-net1";
        self.create_pod(name, Some(NAD), &[]).await;
        let pod = wait_pod_ready(&self.client, APP_NS, name, 2 * MINUTE).await;
        let ip = self.net1_address(name).await;
        log.note(&format!("net1 inside the pod: {ip}"));

        let status = pod
            .annotations()
            .get(NETWORK_STATUS_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| panic!("no network-status annotation: {:?}", pod.annotations()));
        let entries: Vec<Value> = serde_json::from_str(&status)
            .unwrap_or_else(|e| panic!("network-status is not a JSON list ({e}): {status}"));
        let default = entries
            .iter()
            .find(|e| e["interface"] == "eth0")
            .unwrap_or_else(|| panic!("no eth0 in network-status: {status}"));
        assert_eq!(default["name"], primary, "{status}");
        assert_eq!(default["default"], true, "{status}");
        let attached = entries
            .iter()
            .find(|e| e["interface"] == "net1")
            .unwrap_or_else(|| panic!("no net1 in network-status: {status}"));
        assert_eq!(attached["name"], format!("{APP_NS}/{NAD}"), "{status}");
        assert!(
            attached["ips"]
                .as_array()
                .is_some_and(|ips| ips.iter().any(|i| i == ip.as_str())),
            "network-status does not list {ip} on net1: {status}"
        );
        assert_eq!(entries.len(), 2, "{status}");

        let event = wait_event(&self.client, APP_NS, name, "AddedInterface", MINUTE).await;
        let message = event.message.clone().unwrap_or_default();
        assert!(
            message.contains("net1") && message.contains(&ip) && message.contains(NAD),
            "AddedInterface event: {message}"
        );

        let reservation = Path::new(HOST_LOCAL_DIR).join(&ip);
        assert!(
            reservation.exists(),
            "no host-local reservation {reservation:?}: {:?}",
            list_dir(Path::new(HOST_LOCAL_DIR))
        );
        self.delete_pod(name).await;
        wait_until(
            &format!("the NAD's address {ip} released ({reservation:?} removed)"),
            MINUTE,
            async || {
                if reservation.exists() {
                    Err(format!("{:?}", list_dir(Path::new(HOST_LOCAL_DIR))))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        log.note("pod deleted, address released");
    }

    async fn broken_and_missing_nads(&self, log: &mut StepLog) {
        let broken = "e2e-broken";
        self.create_nad(broken, "{not json").await;
        let event = wait_event(&self.client, APP_NS, broken, "InvalidConfig", MINUTE).await;
        assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
        log.note(&format!("broken NAD: {}", event_summary(&event)));
        wait_mc(
            &self.client,
            "default",
            "counts the invalid NAD",
            MINUTE,
            |mc| {
                mc.status
                    .as_ref()
                    .is_some_and(|s| s.invalid_network_attachment_definitions >= 1)
            },
        )
        .await;

        let pod = "wants-missing-nad";
        let missing = "e2e-missing";
        self.create_pod(pod, Some(missing), &[]).await;
        let event = wait_event(&self.client, APP_NS, pod, "NoNetworkFound", 2 * MINUTE).await;
        assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
        assert!(
            event
                .message
                .as_deref()
                .unwrap_or_default()
                .contains(missing),
            "{}",
            event_summary(&event)
        );
        log.note(&format!(
            "pod with a missing NAD: {}",
            event_summary(&event)
        ));
        let got = self.pods().get(pod).await.unwrap();
        let started = got
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
        assert!(
            !started && !pod_ready(&got),
            "a pod asking for a missing NAD started: {}",
            pod_summary(&got)
        );
        self.delete_pod(pod).await;
        self.nads()
            .delete(broken, &DeleteParams::default())
            .await
            .unwrap();
        wait_mc(
            &self.client,
            "default",
            "no invalid NAD counted and Degraded False again",
            MINUTE,
            |mc| {
                mc.status
                    .as_ref()
                    .is_some_and(|s| s.invalid_network_attachment_definitions == 0)
                    && has_condition(mc, "Degraded", "False", None)
            },
        )
        .await;
    }

    /// `helm upgrade` changing the MultusConfig's spec (plugin log level)
    /// and the operator's log level; pods created every few hundred
    /// milliseconds until the new agent is running must all start, without
    /// a single FailedCreatePodSandBox.
    async fn upgrade_during_pod_creation(&self, log: &mut StepLog) {
        let daemonsets: Api<DaemonSet> = Api::namespaced(self.client.clone(), OP_NS);
        let agents: Api<Pod> = Api::namespaced(self.client.clone(), OP_NS);
        let agent_pods = ListParams::default().labels("multus.dev/config=default");
        let ds_name = "multus-agent-default";
        let ds = daemonsets.get(ds_name).await.unwrap();
        let generation_before = ds.metadata.generation.unwrap_or_default();
        let old_agents: BTreeSet<String> = agents
            .list(&agent_pods)
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mc_generation = self
            .configs()
            .get("default")
            .await
            .unwrap()
            .metadata
            .generation;

        let upgrade_start = Instant::now();
        helm_chart(
            "upgrade",
            RELEASE,
            OP_NS,
            &["multusConfig.spec.logLevel=debug", "logLevel=debug"],
        )
        .ok()
        .await;

        let max_pods = 40;
        let mut created: Vec<String> = Vec::new();
        let mut rolled_at: Option<Duration> = None;
        let mut old_gone_at: Option<Duration> = None;
        let mut extra_after_rollout = 0;
        let mut last_seen = String::new();
        while extra_after_rollout < 3 && created.len() < max_pods {
            let name = format!("during-{}", created.len());
            self.create_pod(&name, Some(NAD), &[(DURING_LABEL, "true")])
                .await;
            created.push(name);
            if rolled_at.is_some() {
                extra_after_rollout += 1;
            } else {
                let ds = daemonsets.get(ds_name).await.unwrap();
                let pods = agents.list(&agent_pods).await.unwrap().items;
                let old_left = pods
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .uid
                            .as_ref()
                            .is_some_and(|u| old_agents.contains(u))
                    })
                    .count();
                if old_left == 0 && old_gone_at.is_none() {
                    old_gone_at = Some(upgrade_start.elapsed());
                }
                let status = ds.status.clone().unwrap_or_default();
                let generation = ds.metadata.generation.unwrap_or_default();
                last_seen = format!(
                    "DaemonSet generation {generation} (before {generation_before}) observed {:?}, \
                     desired {} updated {:?} available {:?}; old agent pods left {old_left}; {}",
                    status.observed_generation,
                    status.desired_number_scheduled,
                    status.updated_number_scheduled,
                    status.number_available,
                    pods_summary(&pods)
                );
                if generation > generation_before
                    && status.observed_generation == Some(generation)
                    && status.updated_number_scheduled == Some(status.desired_number_scheduled)
                    && status.number_available == Some(status.desired_number_scheduled)
                    && old_left == 0
                    && pods.iter().all(pod_ready)
                {
                    rolled_at = Some(upgrade_start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let Some(rolled_at) = rolled_at else {
            panic!(
                "the agents did not roll out within {} pods ({:.0?}) after helm upgrade; last seen: \
                 {last_seen}",
                created.len(),
                upgrade_start.elapsed()
            );
        };
        log.note(&format!(
            "rollout: old agent gone after {:.1?}, new agent ready after {rolled_at:.1?}; {} pods \
             created meanwhile (every ~0.4 s)",
            old_gone_at.unwrap_or_default(),
            created.len()
        ));

        let mut not_started = Vec::new();
        for name in &created {
            let pods = self.pods();
            let ready = poll_until(2 * MINUTE, async || {
                let pod = pods.get(name).await.map_err(|e| e.to_string())?;
                if pod_ready(&pod) {
                    Ok(())
                } else {
                    Err(pod_summary(&pod))
                }
            })
            .await;
            if let Err(seen) = ready {
                not_started.push(seen);
            }
        }
        let failures =
            events_with_reason(&self.client, APP_NS, "FailedCreatePodSandBox", "during-").await;
        let failed_pods: BTreeSet<&str> = failures
            .iter()
            .filter_map(|e| e.involved_object.name.as_deref())
            .collect();
        let attempts: i32 = failures.iter().map(event_count).sum();
        log.note(&format!(
            "pods created during the rollout: {}, not started within 2 min: {}, pods with \
             FailedCreatePodSandBox: {} ({attempts} failed sandbox attempts)",
            created.len(),
            not_started.len(),
            failed_pods.len()
        ));
        for e in failures.iter().take(3) {
            log.note(&format!(
                "{}: {}",
                e.involved_object.name.as_deref().unwrap_or("?"),
                event_summary(e)
            ));
        }
        if !failures.is_empty() || !not_started.is_empty() {
            log.fail_later(
                format!(
                    "helm upgrade rolled the agents ({:.1?}): of {} pods created meanwhile, {} got \
                     FailedCreatePodSandBox ({attempts} failed attempts; first: {}) and {} did not \
                     start within 2 minutes ({})",
                    rolled_at,
                    created.len(),
                    failed_pods.len(),
                    failures.first().map(event_summary).unwrap_or_default(),
                    not_started.len(),
                    not_started.join("; ")
                ),
                &teardown_namespaces(),
            );
        }

        // The rollout carried the change: new spec observed, the config on
        // the node has the new log level.
        let mc = wait_mc_ready(&self.client, "default", 3 * MINUTE).await;
        assert!(
            mc.metadata.generation > mc_generation,
            "helm upgrade did not change the MultusConfig's spec: {}",
            mc_summary(&mc)
        );
        let ds = daemonsets.get(ds_name).await.unwrap();
        assert!(
            ds.metadata.generation.unwrap_or_default() > generation_before,
            "the agent DaemonSet did not change"
        );
        wait_until(
            "the node's Multus config with logLevel debug",
            MINUTE,
            async || {
                let text = ["00-multus.conflist", "00-multus.conf"]
                    .iter()
                    .find_map(|n| std::fs::read_to_string(Path::new(CNI_CONF_DIR).join(n)).ok())
                    .ok_or("no 00-multus.conf[list]")?;
                let conf: Value =
                    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
                let multus = conf.get("plugins").and_then(|p| p.get(0)).unwrap_or(&conf);
                if multus["logLevel"] == "debug" {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )
        .await;
        Cmd::kubectl(["delete", "pods", "-n", APP_NS, "-l"])
            .args([format!("{DURING_LABEL}=true"), "--timeout=120s".to_owned()])
            .ok()
            .await;
        wait_until(
            "every address of the NAD released after the pods were deleted",
            MINUTE,
            async || {
                let held = reservations();
                if held.is_empty() {
                    Ok(())
                } else {
                    Err(format!("host-local still holds {held:?}"))
                }
            },
        )
        .await;
        wait_operator_available(&self.client, OP_NS, OPERATOR, 2 * MINUTE).await;
    }

    async fn delete_config_cleans_node(&self, log: &mut StepLog) {
        self.delete_default_config(log).await;
        let name = "plain";
        self.create_pod(name, None, &[]).await;
        let pod = wait_pod_ready(&self.client, APP_NS, name, 2 * MINUTE).await;
        assert!(
            !pod.annotations().contains_key(NETWORK_STATUS_ANNOTATION),
            "a pod started without Multus has a network-status annotation"
        );
        self.delete_pod(name).await;
        log.note("a plain pod started without Multus");
    }
}

/// The name of the network of the node's own CNI config: the first
/// `*.conf`/`*.conflist` of the conf dir by name that is not ours.
fn own_primary_network(conf_dir: &Path) -> String {
    let mut names: Vec<String> = list_dir(conf_dir)
        .into_iter()
        .filter(|n| {
            (n.ends_with(".conf") || n.ends_with(".conflist")) && !n.starts_with("00-multus")
        })
        .collect();
    names.sort();
    let first = names
        .first()
        .unwrap_or_else(|| panic!("the node has no CNI config in {conf_dir:?}"));
    let text = std::fs::read_to_string(conf_dir.join(first)).unwrap();
    let conf: Value = serde_json::from_str(&text).unwrap();
    conf["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{first} has no name"))
        .to_owned()
}

/// The addresses host-local holds for the NAD's network on the node.
fn reservations() -> Vec<String> {
    list_dir(Path::new(HOST_LOCAL_DIR))
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
