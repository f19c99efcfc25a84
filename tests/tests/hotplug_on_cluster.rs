//! End-to-end: network hot-plug (`spec.networkHotplug`) through the
//! chart, on the real node, as the story of one running pod:
//!
//! 1. hot-plug off (the default): the pod gets `net1` from `e2e-hp-a`;
//!    adding `e2e-hp-b` to its networks annotation changes nothing for
//!    10 s (no interface, network-status, Event, lease);
//! 2. turned on by patching the MultusConfig: the agents roll (host PID
//!    namespace, the CRI socket), and the new agent, seeing the annotation
//!    differ from what is attached, attaches `e2e-hp-b` as `net2` at its
//!    start: address, network-status, `AddedInterface` Event, lease,
//!    Multus cache;
//! 3. `e2e-hp-a` removed from the annotation: `net1`, its network-status
//!    entry and its lease go, a `RemovedInterface` Event says so;
//! 4. a NAD that does not exist added: a Warning `NetworkHotplugFailed`
//!    names it and says the networks are unchanged; nothing changes and
//!    the pod keeps running;
//! 5. a NAD whose plugin chain fails (bridge and host-local, then a plugin
//!    that does not exist) added: a Warning `NetworkHotplugFailed` names
//!    it; the rollback leaves no interface, lease or cache entry behind;
//! 6. `e2e-hp-a` added back with a requested interface name (the JSON
//!    form of the annotation): `hp1`;
//! 7. the pod deleted: no lease in any of the networks and no Multus cache
//!    (file or lock) of its sandbox left;
//!
//! then the documented teardown (the app namespace, then the MultusConfig
//! and the chart: `remove_release`).
//!
//! The agent is given a minute for each change; the times it took are
//! logged (`hot-plug timings`). Failed syncs are retried with a growing
//! backoff that a later annotation change also waits out, so step 6's
//! time includes what is left of the backoff of steps 4 and 5.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs what chart_on_cluster.rs needs (a disposable
//! single-node cluster whose node is this machine, root, `helm`,
//! `kubectl`, the image of `MULTUS_E2E_IMAGE` on the node, built with
//! network hot-plug) and containerd's CRI socket at its default path.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use multus_config::crd::MultusConfig;
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, TestPod, agent_pods, create_nad,
    create_namespace, delete_pod, event_summary, events, install_privileged, ipv4_in_pod,
    links_in_pod, mc_summary, metric_sample, nad_object, network_status_of, pod_ready, pod_summary,
    pod_uids, pods_summary, remove_release, restart_count, scrape_agent_metrics, set_networks,
    single_node_without_multus, wait_agents_replaced, wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{
    E2eSession, StepLog, host_local_dir, host_local_leases, poll_until, remove_link,
    remove_namespace, remove_path, wait_until,
};
use multus_operator::controller::render::AGENT_PORT;
use serde_json::{Value, json};

const TEST: &str = "network_hotplug_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-hp";
const OP_NS: &str = "multus-e2e-hp";
const OPERATOR: &str = "multus-e2e-hp-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-hp";
/// The chart's MultusConfig.
const MC: &str = "default";
const APP_NS: &str = "multus-e2e-hp-app";
const POD: &str = "hotplugged";
const NAD_A: &str = "e2e-hp-a";
const NAD_B: &str = "e2e-hp-b";
const NAD_MISSING: &str = "e2e-hp-missing";
const NAD_BAD: &str = "e2e-hp-bad";
// Each NAD's CNI network has the NAD's name: host-local keeps its leases
// in /var/lib/cni/networks/<NAD>. Subnets no other test uses.
const CONFIG_A: &str = r#"{"cniVersion":"1.0.0","name":"e2e-hp-a","type":"bridge","bridge":"e2ehp0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.254.0.0/24"}]]}}"#;
const CONFIG_B: &str = r#"{"cniVersion":"1.0.0","name":"e2e-hp-b","type":"bridge","bridge":"e2ehp1","ipam":{"type":"host-local","ranges":[[{"subnet":"10.254.1.0/24"}]]}}"#;
/// Bridge and host-local succeed (an interface in the pod, a lease), then
/// the chained plugin, which does not exist, fails the ADD: the rollback
/// must undo what the bridge did.
const CONFIG_BAD: &str = r#"{"cniVersion":"1.0.0","name":"e2e-hp-bad","plugins":[{"type":"bridge","bridge":"e2ehp2","ipam":{"type":"host-local","ranges":[[{"subnet":"10.254.2.0/24"}]]}},{"type":"e2e-no-such-plugin"}]}"#;
const BRIDGES: [&str; 3] = ["e2ehp0", "e2ehp1", "e2ehp2"];
const SUBNET_A: &str = "10.254.0.";
const SUBNET_B: &str = "10.254.1.";
const CACHE_DIR: &str = "/var/lib/cni/multus";
/// The agent args of an enabled hot-plug with the default CRI socket.
const CRI_SOCKET_ARG: &str = "--network-hotplug-cri-socket=/run/containerd/containerd.sock";
const MINUTE: Duration = Duration::from_secs(60);
/// How long the agent may take for one change of the annotation.
const HOTPLUG_WAIT: Duration = Duration::from_secs(60);
/// How long nothing may change while hot-plug is off.
const OFF_WATCH: Duration = Duration::from_secs(10);

fn remove_all() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    for bridge in BRIDGES {
        remove_link(bridge);
    }
    for nad in [NAD_A, NAD_B, NAD_BAD] {
        remove_path(host_local_dir(nad));
    }
}

/// Fails the test with the message and the pod's state
/// ([`Story::state`]) unless the condition holds.
macro_rules! ensure {
    ($story:expr, $cond:expr, $($message:tt)+) => {
        if !$cond {
            let message = format!($($message)+);
            panic!("{}", $story.failure(&message).await);
        }
    };
}

#[tokio::test]
async fn network_hotplug_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    e2e.log
        .step("preflight: a single node on this machine, no Multus");
    remove_all();
    let _node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &[OP_NS.to_owned(), APP_NS.to_owned()],
        "remove the test's objects",
        remove_all,
    );
    let client = e2e.client.clone();
    let log = &mut e2e.log;

    log.step("install without spec.networkHotplug (off by default)");
    install_privileged(&client, RELEASE, OP_NS, OPERATOR, &[]).await;
    wait_mc_ready(&client, MC, 3 * MINUTE).await;
    let agents = agent_pods(&client, OP_NS, MC).await;
    assert!(
        !agents.is_empty()
            && agents
                .iter()
                .all(|a| hotplug_rendering(a) == (false, false)),
        "with hot-plug off the agents must not run in the host's PID namespace nor get a CRI \
         socket: {}",
        pods_summary(&agents)
    );
    create_namespace(&client, APP_NS).await;
    for (nad, config) in [(NAD_A, CONFIG_A), (NAD_B, CONFIG_B)] {
        create_nad(&client, &nad_object(APP_NS, nad, config)).await;
    }

    log.step("1: a pod with e2e-hp-a gets net1");
    TestPod::new(APP_NS, POD)
        .networks(NAD_A)
        .create(&client)
        .await;
    let pod = wait_pod_ready(&client, APP_NS, POD, 2 * MINUTE).await;
    let mut s = Story::new(&client, &pod).await;
    let net1 = s.ipv4("net1").await;
    ensure!(s, net1.starts_with(SUBNET_A), "net1: {net1}");
    s.expect_leases(NAD_A, &[&net1]).await;
    s.wait_status("network-status with e2e-hp-a on net1", &[(NAD_A, "net1")])
        .await;
    s.expect_cache(&[(NAD_A, "net1")]).await;
    log.note(&format!(
        "sandbox {}, net1 {net1}, other links {:?}",
        s.sandbox, s.base_links
    ));

    log.step("1: hot-plug off: e2e-hp-b added to the annotation changes nothing");
    s.hotplug_off(&format!("{NAD_A},{NAD_B}")).await;
    log.note(&format!(
        "{} s later: still only net1, network-status and cache as before, no Event",
        OFF_WATCH.as_secs()
    ));

    log.step("2: hot-plug on: the agents roll; the new one attaches e2e-hp-b as net2 at its start");
    s.turn_on(log).await;
    let net2 = s.ipv4("net2").await;
    ensure!(s, net2.starts_with(SUBNET_B), "net2: {net2}");
    ensure!(
        s,
        s.ipv4("net1").await == net1,
        "net1 must keep its address {net1}"
    );
    s.wait_status(
        "network-status with e2e-hp-a on net1 and e2e-hp-b on net2",
        &[(NAD_A, "net1"), (NAD_B, "net2")],
    )
    .await;
    let (added, _) = s
        .wait_event("AddedInterface", &format!("from {APP_NS}/{NAD_B}"))
        .await;
    let message = added.message.clone().unwrap_or_default();
    ensure!(
        s,
        message.starts_with("Add net2 [") && message.contains(&net2),
        "the AddedInterface Event of e2e-hp-b must name net2 and {net2}: {message:?}"
    );
    s.expect_leases(NAD_B, &[&net2]).await;
    s.expect_cache(&[(NAD_A, "net1"), (NAD_B, "net2")]).await;
    s.expect_intact().await;
    log.note(&format!("net2 {net2}; Event: {message}"));

    log.step("3: e2e-hp-a removed from the annotation: net1 and its lease go");
    set_networks(&client, APP_NS, POD, NAD_B).await;
    let took = s
        .wait_links("net1 detached", &s.links_with(&["net2"]))
        .await;
    s.timing(log, format!("detach of net1: {:.1} s", took.as_secs_f64()));
    s.wait_status("network-status without e2e-hp-a", &[(NAD_B, "net2")])
        .await;
    let (removed, _) = s
        .wait_event(
            "RemovedInterface",
            &format!("Removed interface net1 of network {APP_NS}/{NAD_A}"),
        )
        .await;
    s.wait_for(
        &format!("the lease of {net1} released"),
        Duration::from_secs(10),
        async || match host_local_leases(NAD_A) {
            leases if leases.is_empty() => Ok(()),
            leases => Err(format!("{NAD_A} leases {leases:?}")),
        },
    )
    .await;
    s.expect_leases(NAD_B, &[&net2]).await;
    s.expect_cache(&[(NAD_B, "net2")]).await;
    ensure!(
        s,
        s.ipv4("net2").await == net2,
        "net2 must keep its address {net2}"
    );
    s.expect_intact().await;
    log.note(&format!("Event: {}", event_summary(&removed)));

    log.step("4: a NAD that does not exist added: a Warning, nothing changes");
    set_networks(&client, APP_NS, POD, &format!("{NAD_B},{NAD_MISSING}")).await;
    let (failed, took) = s.wait_event("NetworkHotplugFailed", NAD_MISSING).await;
    s.timing(
        log,
        format!(
            "NetworkHotplugFailed for a missing NAD: {:.1} s",
            took.as_secs_f64()
        ),
    );
    let message = failed.message.clone().unwrap_or_default();
    ensure!(
        s,
        failed.type_.as_deref() == Some("Warning") && message.contains("unchanged"),
        "a Warning saying the networks are unchanged: {}",
        event_summary(&failed)
    );
    // The plan fails before anything is done: nothing to wait out.
    s.expect_net2_only().await;
    s.expect_kept(&net2).await;
    log.note(&format!("Event: {}", event_summary(&failed)));

    log.step("5: a NAD whose plugin fails added: a Warning, nothing left behind");
    create_nad(&client, &nad_object(APP_NS, NAD_BAD, CONFIG_BAD)).await;
    set_networks(&client, APP_NS, POD, &format!("{NAD_B},{NAD_BAD}")).await;
    let (failed, took) = s.wait_event("NetworkHotplugFailed", NAD_BAD).await;
    s.timing(
        log,
        format!(
            "NetworkHotplugFailed for a failing plugin: {:.1} s",
            took.as_secs_f64()
        ),
    );
    ensure!(
        s,
        failed.type_.as_deref() == Some("Warning"),
        "{}",
        event_summary(&failed)
    );
    // The agent retries with a backoff: an attempt may be under way (its
    // interface and lease there for a moment); what must not stay is a
    // leftover of one.
    s.wait_for(
        "no interface, lease or cache entry of e2e-hp-bad left",
        Duration::from_secs(30),
        async || {
            let links = s.links().await?;
            let leases = host_local_leases(NAD_BAD);
            let cache = cached_attachments(&s.sandbox)?;
            if links == s.links_with(&["net2"])
                && leases.is_empty()
                && cache == [pair(NAD_B, "net2")]
            {
                Ok(())
            } else {
                Err(format!(
                    "links {links:?}, {NAD_BAD} leases {leases:?}, cache {cache:?}"
                ))
            }
        },
    )
    .await;
    s.expect_kept(&net2).await;
    let reserved = host_local_dir(NAD_BAD).join("last_reserved_ip.0");
    log.note(&format!(
        "Event: {}; {}",
        event_summary(&failed),
        if reserved.exists() {
            "host-local had handed out an address on e2e-hp-bad (last_reserved_ip.0): the rollback released it"
        } else {
            "host-local never ran for e2e-hp-bad (the attach failed before the bridge)"
        }
    ));

    log.step("6: e2e-hp-a added back with interface hp1 (JSON annotation)");
    set_networks(
        &client,
        APP_NS,
        POD,
        &format!(r#"[{{"name":"{NAD_B}"}},{{"name":"{NAD_A}","interface":"hp1"}}]"#),
    )
    .await;
    let took = s
        .wait_links("hp1 attached", &s.links_with(&["net2", "hp1"]))
        .await;
    s.timing(
        log,
        format!(
            "attach of hp1 after two failing annotations: {:.1} s (backoff included)",
            took.as_secs_f64()
        ),
    );
    let hp1 = s.ipv4("hp1").await;
    ensure!(s, hp1.starts_with(SUBNET_A), "hp1: {hp1}");
    s.wait_status(
        "network-status with e2e-hp-b on net2 and e2e-hp-a on hp1",
        &[(NAD_B, "net2"), (NAD_A, "hp1")],
    )
    .await;
    let (added, _) = s.wait_event("AddedInterface", "Add hp1 [").await;
    let message = added.message.clone().unwrap_or_default();
    ensure!(
        s,
        message.contains(&hp1) && message.ends_with(&format!("from {APP_NS}/{NAD_A}")),
        "the AddedInterface Event of hp1: {message:?}"
    );
    s.expect_leases(NAD_A, &[&hp1]).await;
    s.expect_leases(NAD_B, &[&net2]).await;
    s.expect_cache(&[(NAD_B, "net2"), (NAD_A, "hp1")]).await;
    let refused: Vec<String> = events(&client, APP_NS, POD)
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some("NetworkHotplugRefused"))
        .map(event_summary)
        .collect();
    ensure!(
        s,
        refused.is_empty(),
        "an ordinary pod must never be refused hot-plug: {refused:?}"
    );
    s.expect_intact().await;
    log.note(&format!("hp1 {hp1}; Event: {message}"));

    log.step("6b: two edits in quick succession: the pod ends as the last one says");
    set_networks(&client, APP_NS, POD, &format!(r#"[{{"name":"{NAD_B}"}}]"#)).await;
    set_networks(
        &client,
        APP_NS,
        POD,
        &format!(r#"[{{"name":"{NAD_B}"}},{{"name":"{NAD_A}"}}]"#),
    )
    .await;
    // Whichever edit the agent sees first: e2e-hp-a stays on hp1 (the
    // second edit only), or goes and comes back on net1 (both edits).
    let started = std::time::Instant::now();
    let a_on = s
        .wait_for(
            "e2e-hp-b on net2 and e2e-hp-a on hp1 or net1, everywhere",
            MINUTE,
            async || {
                let pod = s.pods.get(POD).await.map_err(|e| e.to_string())?;
                let found = secondary_networks(&network_status_of(&pod));
                let links = s.links().await?;
                let cache = cached_attachments(&s.sandbox)?;
                let leases_a = host_local_leases(NAD_A);
                for a_on in ["hp1", "net1"] {
                    let mut want = vec![pair(NAD_B, "net2"), pair(NAD_A, a_on)];
                    want.sort();
                    let mut cached = cache.clone();
                    cached.sort();
                    if found == want
                        && cached == want
                        && links == s.links_with(&["net2", a_on])
                        && leases_a.len() == 1
                    {
                        return Ok(a_on);
                    }
                }
                Err(format!(
                    "network-status {found:?}, links {links:?}, cache {cache:?}, {NAD_A} leases {leases_a:?}"
                ))
            },
        )
        .await;
    s.expect_leases(NAD_B, &[&net2]).await;
    s.expect_intact().await;
    s.timing(
        log,
        format!(
            "two edits in quick succession settled in {:.1} s (e2e-hp-a on {a_on})",
            started.elapsed().as_secs_f64()
        ),
    );

    log.step("6c: the agent counts what it did in its metrics");
    // Since the agent restarted with the feature on: net2, net1's
    // detach, hp1 and the quick edits changed the pod; the missing NAD
    // and the failing plugin failed at least once each.
    let text = s
        .wait_for("the hot-plug metrics of the agent", MINUTE, async || {
            let text = scrape_agent_metrics(AGENT_PORT)?;
            let at_least = |series: &str, min: f64| match metric_sample(&text, series) {
                Some(v) if v >= min => Ok(()),
                other => Err(format!("{series} = {other:?}, want at least {min}")),
            };
            at_least(
                r#"multus_node_agent_hotplug_syncs_total{outcome="changed"}"#,
                4.0,
            )?;
            at_least(
                r#"multus_node_agent_hotplug_syncs_total{outcome="failed"}"#,
                2.0,
            )?;
            at_least(
                r#"multus_node_agent_hotplug_interfaces_total{change="attached"}"#,
                3.0,
            )?;
            at_least(
                r#"multus_node_agent_hotplug_interfaces_total{change="detached"}"#,
                1.0,
            )?;
            at_least("multus_node_agent_hotplug_sync_duration_seconds_count", 6.0)?;
            Ok(text)
        })
        .await;
    let hotplug_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("multus_node_agent_hotplug_") && !l.contains("_bucket"))
        .collect();
    log.note(&hotplug_lines.join("; "));

    log.step("7: the pod deleted: no lease and no Multus cache left");
    delete_pod(&s.pods, POD).await;
    wait_until("every lease of the pod released", MINUTE, async || {
        let left: Vec<(&str, Vec<String>)> = [NAD_A, NAD_B, NAD_BAD]
            .into_iter()
            .map(|nad| (nad, host_local_leases(nad)))
            .filter(|(_, leases)| !leases.is_empty())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("leases left: {left:?}"))
        }
    })
    .await;
    // The plugin removes the cache file after every delegate's DEL, so
    // after the leases.
    let cache = Path::new(CACHE_DIR).join(&s.sandbox);
    let lock = Path::new(CACHE_DIR).join("locks").join(&s.sandbox);
    wait_until(
        &format!("the Multus cache of sandbox {} removed", s.sandbox),
        2 * MINUTE,
        async || {
            let left: Vec<String> = [&cache, &lock]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        },
    )
    .await;
    log.note("the pod's DEL released every network; no cache file or lock left");
    log.note(&format!("hot-plug timings: {}", s.timings.join("; ")));

    // The documented order, via the teardown: the app namespace, then
    // the MultusConfig (its agents remove Multus from the node while the
    // operator runs), then the chart.
    e2e.finish();
}

/// How an agent pod is rendered for network hot-plug: whether it runs in
/// the host's PID namespace, whether its arguments name the CRI socket.
fn hotplug_rendering(agent: &Pod) -> (bool, bool) {
    let Some(spec) = &agent.spec else {
        return (false, false);
    };
    let cri_socket = spec.containers.iter().any(|c| {
        c.args
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|a| a.starts_with("--network-hotplug-cri-socket"))
    });
    (spec.host_pid == Some(true), cri_socket)
}

/// Whether an agent pod is rendered for network hot-plug with the default
/// CRI socket.
fn hotplug_agent(agent: &Pod) -> bool {
    hotplug_rendering(agent).0
        && agent.spec.as_ref().is_some_and(|s| {
            s.containers.iter().any(|c| {
                c.args
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|a| a == CRI_SOCKET_ARG)
            })
        })
}

/// `(namespace/network, interface)`.
fn pair(nad: &str, interface: &str) -> (String, String) {
    (format!("{APP_NS}/{nad}"), interface.to_owned())
}

/// The address without its prefix length.
fn ip(address: &str) -> &str {
    address.split('/').next().unwrap_or(address)
}

/// The sandbox (container ID) of the pod with UID `uid`: the Multus cache
/// file the runtime's ADD wrote for it (its CNI_ARGS name the pod's UID;
/// else the one file naming the pod).
fn sandbox_of(uid: &str) -> Option<String> {
    let files: Vec<(String, String)> = std::fs::read_dir(CACHE_DIR)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.file_name().into_string().ok()?, text))
        })
        .collect();
    let by_uid = format!("K8S_POD_UID={uid}");
    if let Some((id, _)) = files.iter().find(|(_, text)| text.contains(&by_uid)) {
        return Some(id.clone());
    }
    let namespace = format!("K8S_POD_NAMESPACE={APP_NS};");
    let name = format!("K8S_POD_NAME={POD};");
    let named: Vec<&String> = files
        .iter()
        .filter(|(_, text)| text.contains(&namespace) && text.contains(&name))
        .map(|(id, _)| id)
        .collect();
    match named[..] {
        [id] => Some(id.clone()),
        _ => None,
    }
}

/// What the Multus cache of `sandbox` records besides the cluster
/// network: `(namespace/network, interface)` in order.
fn cached_attachments(sandbox: &str) -> Result<Vec<(String, String)>, String> {
    let path = Path::new(CACHE_DIR).join(sandbox);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(entries
        .iter()
        .map(|e| &e["multusRs"])
        .filter(|ours| ours["clusterNetwork"] != true)
        .map(|ours| {
            (
                ours["attachment"].as_str().unwrap_or("?").to_owned(),
                ours["ifname"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect())
}

/// `(network, interface)` of the network-status entries but the cluster
/// network's, sorted.
fn secondary_networks(status: &[Value]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = status
        .iter()
        .filter(|e| e["default"] != true)
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("?").to_owned(),
                e["interface"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The pod of the story and what the test knows of it.
struct Story {
    client: Client,
    pods: Api<Pod>,
    uid: String,
    /// Its sandbox (container ID), from the Multus cache.
    sandbox: String,
    /// `status.podIP` at the start: a new sandbox would change it.
    pod_ip: String,
    restarts: i32,
    /// Its links but Multus' interfaces at the start: `lo`, `eth0` and
    /// any the kernel gives every network namespace.
    base_links: BTreeSet<String>,
    /// The hot-plug times measured, for the summary.
    timings: Vec<String>,
}

impl Story {
    /// The running pod with `net1`.
    async fn new(client: &Client, pod: &Pod) -> Self {
        let uid = pod.uid().expect("the pod has a UID");
        let sandbox = wait_until("the Multus cache of the pod", MINUTE, async || {
            sandbox_of(&uid).ok_or_else(|| format!("no file in {CACHE_DIR} names pod UID {uid}"))
        })
        .await;
        let links: BTreeSet<String> = links_in_pod(APP_NS, POD, MINUTE)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .collect();
        assert!(
            ["lo", "eth0", "net1"].iter().all(|l| links.contains(*l))
                && !links.contains("net2")
                && !links.contains("hp1"),
            "pod {POD} at the start: links {links:?}, want lo, eth0, net1 and no net2 or hp1 ({})",
            pod_summary(pod)
        );
        let mut base_links = links;
        base_links.remove("net1");
        Self {
            client: client.clone(),
            pods: Api::namespaced(client.clone(), APP_NS),
            uid,
            sandbox,
            pod_ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
            restarts: restart_count(pod),
            base_links,
            timings: Vec::new(),
        }
    }

    /// The base links plus `extra`.
    fn links_with(&self, extra: &[&str]) -> BTreeSet<String> {
        let mut links = self.base_links.clone();
        links.extend(extra.iter().map(|l| (*l).to_owned()));
        links
    }

    async fn links(&self) -> Result<BTreeSet<String>, String> {
        links_in_pod(APP_NS, POD, Duration::from_secs(20))
            .await
            .map(|l| l.into_iter().collect())
    }

    async fn pod(&self) -> Pod {
        self.pods
            .get(POD)
            .await
            .unwrap_or_else(|e| panic!("GET pod {APP_NS}/{POD}: {e}"))
    }

    /// A line of the timings summary, logged now too.
    fn timing(&mut self, log: &mut StepLog, line: String) {
        log.note(&line);
        self.timings.push(line);
    }

    /// What a person needs to see when a check fails: the pod, its
    /// annotations, links, Multus cache, the networks' leases and its
    /// Events.
    async fn state(&self) -> String {
        let mut lines = Vec::new();
        match self.pods.get_opt(POD).await {
            Ok(Some(pod)) => {
                lines.push(pod_summary(&pod));
                let annotations = pod.annotations();
                for key in [NETWORKS_ANNOTATION, NETWORK_STATUS_ANNOTATION] {
                    lines.push(format!(
                        "{key}: {}",
                        annotations.get(key).map_or("(none)", String::as_str)
                    ));
                }
            }
            Ok(None) => lines.push(format!("pod {APP_NS}/{POD} does not exist")),
            Err(e) => lines.push(format!("GET pod {APP_NS}/{POD} failed: {e}")),
        }
        lines.push(match self.links().await {
            Ok(links) => format!("links in the pod: {links:?}"),
            Err(e) => format!("links in the pod: {e}"),
        });
        lines.push(format!(
            "Multus cache of sandbox {}: {:?}",
            self.sandbox,
            cached_attachments(&self.sandbox)
        ));
        for nad in [NAD_A, NAD_B, NAD_BAD] {
            lines.push(format!(
                "host-local leases of {nad}: {:?}",
                host_local_leases(nad)
            ));
        }
        lines.push("events about the pod:".to_owned());
        for event in events(&self.client, APP_NS, POD).await {
            lines.push(format!("  {}", event_summary(&event)));
        }
        lines.join("\n")
    }

    /// `what` followed by the pod's state, for a panic.
    async fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n---- pod {APP_NS}/{POD} (uid {}):\n{}",
            self.uid,
            self.state().await
        )
    }

    /// [`wait_until`] failing with the pod's state.
    async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        match poll_until(timeout, probe).await {
            Ok(value) => value,
            Err(last) => {
                let what =
                    format!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
                panic!("{}", self.failure(&what).await)
            }
        }
    }

    /// Waits (at most [`HOTPLUG_WAIT`]) until the pod's links are `want`;
    /// how long that took.
    async fn wait_links(&self, what: &str, want: &BTreeSet<String>) -> Duration {
        let start = Instant::now();
        self.wait_for(what, HOTPLUG_WAIT, async || {
            let links = self.links().await?;
            if links == *want {
                Ok(())
            } else {
                Err(format!("links {links:?}, want {want:?}"))
            }
        })
        .await;
        start.elapsed()
    }

    /// Waits (30 s at most) until the network-status lists exactly `want`
    /// (NAD, interface) besides the cluster network.
    async fn wait_status(&self, what: &str, want: &[(&str, &str)]) {
        let mut want: Vec<(String, String)> = want.iter().map(|(n, i)| pair(n, i)).collect();
        want.sort();
        self.wait_for(what, Duration::from_secs(30), async || {
            let pod = self.pods.get(POD).await.map_err(|e| e.to_string())?;
            let status = network_status_of(&pod);
            let found = secondary_networks(&status);
            if status.iter().any(|e| e["default"] == true) && found == want {
                Ok(())
            } else {
                Err(format!(
                    "network-status {found:?} (cluster network listed: {}), want {want:?}",
                    status.iter().any(|e| e["default"] == true)
                ))
            }
        })
        .await;
    }

    /// Waits (at most [`HOTPLUG_WAIT`]) for an Event about the pod with
    /// `reason` whose message contains `needle`; it and how long it took.
    async fn wait_event(&self, reason: &str, needle: &str) -> (Event, Duration) {
        let start = Instant::now();
        let event = self
            .wait_for(
                &format!("a {reason} Event saying {needle:?}"),
                HOTPLUG_WAIT,
                async || {
                    events(&self.client, APP_NS, POD)
                        .await
                        .into_iter()
                        .find(|e| {
                            e.reason.as_deref() == Some(reason)
                                && e.message.as_deref().unwrap_or_default().contains(needle)
                        })
                        .ok_or_else(|| "no such Event yet".to_owned())
                },
            )
            .await;
        (event, start.elapsed())
    }

    /// The address of `iface` in the pod, with its prefix length.
    async fn ipv4(&self, iface: &str) -> String {
        match ipv4_in_pod(APP_NS, POD, iface, MINUTE).await {
            Ok(address) => address,
            Err(e) => panic!("{}", self.failure(&e).await),
        }
    }

    /// host-local holds exactly the addresses `want` for `nad`.
    async fn expect_leases(&self, nad: &str, want: &[&str]) {
        let leases = host_local_leases(nad);
        let mut want: Vec<String> = want.iter().map(|a| ip(a).to_owned()).collect();
        want.sort();
        ensure!(
            self,
            leases == want,
            "host-local leases of {nad}: {leases:?}, want {want:?}"
        );
    }

    /// The sandbox's Multus cache records exactly `want` (NAD, interface)
    /// besides the cluster network, in order.
    async fn expect_cache(&self, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want.iter().map(|(n, i)| pair(n, i)).collect();
        let cached = cached_attachments(&self.sandbox);
        ensure!(
            self,
            cached.as_ref() == Ok(&want),
            "the Multus cache of sandbox {}: {cached:?}, want {want:?}",
            self.sandbox
        );
    }

    /// Still the same running pod: Ready, no restart, its podIP and
    /// sandbox as at the start.
    async fn expect_intact(&self) {
        let pod = self.pod().await;
        ensure!(self, pod_ready(&pod), "the pod is not Ready any more");
        ensure!(
            self,
            restart_count(&pod) == self.restarts,
            "the pod's containers restarted ({} restarts, {} at the start)",
            restart_count(&pod),
            self.restarts
        );
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        ensure!(
            self,
            pod_ip.as_deref() == Some(self.pod_ip.as_str()),
            "podIP {pod_ip:?}, at the start {}: a new sandbox?",
            self.pod_ip
        );
        ensure!(
            self,
            Path::new(CACHE_DIR).join(&self.sandbox).exists(),
            "the Multus cache of sandbox {} is gone: a new sandbox?",
            self.sandbox
        );
    }

    /// The pod's links and Multus cache: e2e-hp-b on net2 only (besides
    /// the base links and the cluster network).
    async fn expect_net2_only(&self) {
        let want = self.links_with(&["net2"]);
        let links = self.links().await;
        ensure!(
            self,
            links.as_ref() == Ok(&want),
            "links {links:?}, want {want:?}"
        );
        self.expect_cache(&[(NAD_B, "net2")]).await;
    }

    /// After a failed sync, what no attempt touches (a retry may be under
    /// way): network-status with e2e-hp-b on net2 only, net2's address
    /// `address` and its lease, no lease of e2e-hp-a, the pod running.
    async fn expect_kept(&self, address: &str) {
        let found = secondary_networks(&network_status_of(&self.pod().await));
        ensure!(
            self,
            found == [pair(NAD_B, "net2")],
            "network-status {found:?}, want only e2e-hp-b on net2"
        );
        ensure!(
            self,
            self.ipv4("net2").await == address,
            "net2 must keep {address}"
        );
        self.expect_leases(NAD_B, &[address]).await;
        self.expect_leases(NAD_A, &[]).await;
        self.expect_intact().await;
    }

    /// Hot-plug off: the annotation set to `networks` changes nothing for
    /// [`OFF_WATCH`] (checked every second: no interface, the same
    /// network-status, cache and leases, no Event of hot-plug).
    async fn hotplug_off(&self, networks: &str) {
        let status_before = self
            .pod()
            .await
            .annotations()
            .get(NETWORK_STATUS_ANNOTATION)
            .cloned();
        set_networks(&self.client, APP_NS, POD, networks).await;
        let want = self.links_with(&["net1"]);
        let until = Instant::now() + OFF_WATCH;
        while Instant::now() < until {
            let links = self.links().await;
            ensure!(
                self,
                links.as_ref() == Ok(&want),
                "with hot-plug off the pod's links changed: {links:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let status_after = self
            .pod()
            .await
            .annotations()
            .get(NETWORK_STATUS_ANNOTATION)
            .cloned();
        ensure!(
            self,
            status_after == status_before,
            "with hot-plug off the network-status changed from {status_before:?}"
        );
        let hotplug_events: Vec<String> = events(&self.client, APP_NS, POD)
            .await
            .iter()
            .filter(|e| {
                let reason = e.reason.as_deref().unwrap_or_default();
                let message = e.message.as_deref().unwrap_or_default();
                reason.starts_with("NetworkHotplug")
                    || reason == "RemovedInterface"
                    || (reason == "AddedInterface"
                        && (message.starts_with("Add net2 ") || message.contains(NAD_B)))
            })
            .map(event_summary)
            .collect();
        ensure!(
            self,
            hotplug_events.is_empty(),
            "with hot-plug off there must be no hot-plug Event: {hotplug_events:?}"
        );
        self.expect_leases(NAD_B, &[]).await;
        self.expect_cache(&[(NAD_A, "net1")]).await;
    }

    /// Turns hot-plug on (a merge patch of the MultusConfig's spec), waits
    /// for the agents to roll and for the new agent to attach net2 at its
    /// start (the annotation asks for e2e-hp-a and e2e-hp-b, only net1 is
    /// attached); logs the times.
    async fn turn_on(&mut self, log: &mut StepLog) {
        let configs: Api<MultusConfig> = Api::all(self.client.clone());
        let before = configs
            .get(MC)
            .await
            .unwrap_or_else(|e| panic!("GET MultusConfig {MC}: {e}"));
        let old = pod_uids(&agent_pods(&self.client, OP_NS, MC).await);
        let patched = Instant::now();
        let mc = configs
            .patch(
                MC,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"networkHotplug": {"enabled": true}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("patching MultusConfig {MC}: {e}"));
        assert!(
            mc.spec.network_hotplug_cri_socket().is_some(),
            "the API server dropped spec.networkHotplug of MultusConfig {MC} (a CRD without the \
             field: is {} an image with network hot-plug?): {:?}",
            multus_e2e::E2E_IMAGE_ENV,
            mc.spec.network_hotplug
        );
        let agents = wait_agents_replaced(&self.client, OP_NS, MC, &old, 3 * MINUTE).await;
        assert!(
            agents.iter().all(hotplug_agent),
            "the new agents must run in the host's PID namespace with {CRI_SOCKET_ARG}: {:?}",
            agents
                .iter()
                .map(|a| (
                    a.name_any(),
                    a.spec.as_ref().and_then(|s| s.host_pid),
                    a.spec.as_ref().map(|s| s
                        .containers
                        .iter()
                        .map(|c| c.args.clone())
                        .collect::<Vec<_>>())
                ))
                .collect::<Vec<_>>()
        );
        let rolled = patched.elapsed();
        let took = self
            .wait_links(
                "net2 attached by the new agent at its start",
                &self.links_with(&["net1", "net2"]),
            )
            .await;
        self.timing(
            log,
            format!(
                "attach at the agent's start: net2 {:.1} s after the new agent was Ready ({:.1} s \
                 after the patch; the agents rolled in {:.1} s)",
                took.as_secs_f64(),
                patched.elapsed().as_secs_f64(),
                rolled.as_secs_f64()
            ),
        );
        let mc = wait_mc_ready(&self.client, MC, 3 * MINUTE).await;
        assert!(
            mc.metadata.generation > before.metadata.generation,
            "the patch did not change MultusConfig {MC}: {}",
            mc_summary(&mc)
        );
    }
}
