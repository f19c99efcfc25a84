//! Network hot-plug (`spec.networkHotplug`): the agent follows the
//! networks annotation of its node's running pods, from the pod cache of
//! the lookup API ([`super::local_api`]), and runs `multus sync-networks`
//! (`multus_config::hotplug`) for a pod whose annotation differs from what
//! was last brought in step. The plugin does the work (CRI lookup of the
//! sandbox, planning, delegates, cache, network-status, Events) in a child
//! process in the host's mount namespace and the runtime's cgroup; the
//! agent only decides when, one child per pod at a time, at most
//! [`MAX_CONCURRENT`] at once, and retries failures with a backoff.
//!
//! After a start every pod is looked at once: a pod whose network-status
//! already lists exactly the annotation's networks is taken as in step
//! without a child (what the runtime's ADD wrote); the others get a sync,
//! whose refusals are then only logged (`quiet`), so a restart does not
//! repeat old Events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use multus_config::hotplug::{SUBCOMMAND, SyncInput, SyncOutcome, SyncState};
use multus_config::npwg::selection::parse_networks_annotation;
use multus_config::npwg::{NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, NetworkStatus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::delegate_api::Delegator;
use super::local_api::Store;
use super::local_api::store::Entry;
use super::metrics::{HotplugChangeLabels, HotplugSyncLabels, Shared};

/// Syncs that may run at once on a node.
pub const MAX_CONCURRENT: usize = 2;
/// Bound of one sync (the plugin bounds each delegate to 90 s).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(200);
/// First pause after a failed sync; doubled per failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest pause between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// How the agent runs `multus sync-networks`.
#[derive(Debug, Clone)]
pub struct NetworkHotplug {
    /// The child runner (binary, host namespaces, CNI_PATH, conf dir).
    pub runner: Delegator,
    /// The runtime's CRI socket (host path).
    pub cri_socket: PathBuf,
    /// Where syncs are counted (`multus_node_agent_hotplug_*`).
    pub shared: Arc<Shared>,
}

/// What the agent reads of a cached pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodView {
    uid: String,
    /// The networks annotation ("" without one).
    annotation: String,
    /// Its sandbox network is up (`status.podIP`) and it is not going.
    running: bool,
    host_network: bool,
    /// Its network-status lists exactly the annotation's networks.
    status_in_step: bool,
}

fn view(body: &[u8]) -> Option<PodView> {
    let pod: Pod = serde_json::from_slice(body).ok()?;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let annotation = annotations
        .get(NETWORKS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let status_in_step = annotations
        .get(NETWORK_STATUS_ANNOTATION)
        .is_some_and(|status| status_lists(&annotation, &namespace, status));
    Some(PodView {
        uid: pod.metadata.uid.clone()?,
        running: pod.metadata.deletion_timestamp.is_none()
            && pod.status.as_ref().is_some_and(|s| {
                s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
                    && !matches!(s.phase.as_deref(), Some("Succeeded" | "Failed"))
            }),
        host_network: pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
        annotation,
        status_in_step,
    })
}

/// Whether the network-status `status` lists, besides the cluster
/// network, exactly the networks of the annotation `networks` (with their
/// requested interfaces).
fn status_lists(networks: &str, namespace: &str, status: &str) -> bool {
    let elements = if networks.trim().is_empty() {
        Vec::new()
    } else {
        match parse_networks_annotation(networks, namespace) {
            Ok(elements) => elements,
            Err(_) => return false,
        }
    };
    let Ok(statuses) = serde_json::from_str::<Vec<NetworkStatus>>(status) else {
        return false;
    };
    let mut rest: Vec<&NetworkStatus> = statuses.iter().filter(|s| !s.default).collect();
    for element in &elements {
        let name = element.namespaced_name();
        let found = rest.iter().position(|s| {
            s.name == name
                && element
                    .interface
                    .as_ref()
                    .is_none_or(|i| s.interface.as_ref() == Some(i))
        });
        match found {
            Some(index) => {
                rest.remove(index);
            }
            None => return false,
        }
    }
    rest.is_empty()
}

/// What the agent knows of one pod.
#[derive(Debug)]
struct Tracked {
    entry: Arc<Entry>,
    view: Option<PodView>,
    /// The annotation last brought in step (or refused); `None` before
    /// the first look since the agent started.
    synced: Option<String>,
    running: bool,
    failures: u32,
    retry_at: Option<Instant>,
    /// The annotation the failures were for: an edit starts afresh.
    failed_for: Option<String>,
}

impl Tracked {
    fn new(entry: Arc<Entry>) -> Self {
        let view = view(&entry.body);
        Self {
            entry,
            view,
            synced: None,
            running: false,
            failures: 0,
            retry_at: None,
            failed_for: None,
        }
    }

    /// Whether a sync is due now; with `quiet` refusals (first look).
    fn due(&mut self, now: Instant) -> Option<bool> {
        let view = self.view.as_ref()?;
        if self.running || !view.running {
            return None;
        }
        if self.synced.is_none() && (view.status_in_step || view.host_network) {
            // What the runtime's ADD attached (or nothing can be).
            self.synced = Some(view.annotation.clone());
        }
        if self.synced.as_deref() == Some(view.annotation.as_str()) {
            return None;
        }
        if self.failed_for.as_deref() != Some(view.annotation.as_str()) {
            // Edited since the last failure: no backoff for the new one.
            self.failures = 0;
            self.retry_at = None;
            self.failed_for = None;
        }
        if self.retry_at.is_some_and(|at| at > now) {
            return None;
        }
        Some(self.synced.is_none())
    }

    fn finished(&mut self, annotation: String, outcome: &Result<SyncOutcome, String>) {
        self.running = false;
        match outcome {
            Ok(SyncOutcome {
                state: SyncState::InStep | SyncState::Refused,
                ..
            }) => {
                self.synced = Some(annotation);
                self.failures = 0;
                self.retry_at = None;
                self.failed_for = None;
            }
            _ => {
                if self.failed_for.as_deref() != Some(annotation.as_str()) {
                    self.failures = 0;
                }
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(Instant::now() + backoff(self.failures));
                self.failed_for = Some(annotation);
            }
        }
    }
}

/// The pause after `failures` failed syncs in a row.
fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    (FIRST_RETRY * factor).min(MAX_RETRY)
}

/// A finished sync: pod key, UID, the annotation it aimed at, outcome.
type Done = (String, String, String, Result<SyncOutcome, String>);

impl NetworkHotplug {
    /// Runs one sync of the pod `body`.
    async fn sync(&self, body: &[u8], quiet: bool) -> Result<SyncOutcome, String> {
        let input = SyncInput {
            multus_config: self.runner.multus_config().map_err(|e| e.error.msg)?,
            pod: serde_json::from_slice(body).map_err(|e| e.to_string())?,
            cri_socket: self.cri_socket.display().to_string(),
            quiet,
        };
        let stdin = serde_json::to_vec(&input).map_err(|e| e.to_string())?;
        let output = self
            .runner
            .run_subcommand(SUBCOMMAND, &stdin)
            .await
            .map_err(|e| e.error.msg)?;
        if output.status.success()
            && let Ok(outcome) = serde_json::from_slice::<SyncOutcome>(&output.stdout)
        {
            return Ok(outcome);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`multus {SUBCOMMAND}` failed ({}): {}",
            output.status,
            stderr.lines().last().unwrap_or("no output").trim()
        ))
    }

    /// Counts a finished sync in the agent's metrics.
    fn count(&self, outcome: &Result<SyncOutcome, String>, took: Duration) {
        let metrics = &self.shared.metrics;
        metrics.hotplug_sync_duration.observe(took.as_secs_f64());
        metrics
            .hotplug_syncs
            .get_or_create(&HotplugSyncLabels {
                outcome: outcome_label(outcome),
            })
            .inc();
        if let Ok(o) = outcome {
            for (change, n) in [
                ("attached", o.attached.len()),
                ("detached", o.detached.len()),
            ] {
                if n > 0 {
                    metrics
                        .hotplug_interfaces
                        .get_or_create(&HotplugChangeLabels { change })
                        .inc_by(n as u64);
                }
            }
        }
    }

    /// Follows the pods of `pods` until `stop` turns true.
    pub async fn run(self, pods: Arc<Store>, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut changes = pods.subscribe();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut tracked: HashMap<String, Tracked> = HashMap::new();
        let mut running = 0usize;
        tracing::info!(cri_socket = %this.cri_socket.display(), "network hot-plug: following the networks annotation of this node's pods");
        loop {
            if pods.is_synced() {
                refresh(&mut tracked, pods.snapshot());
            }
            let now = Instant::now();
            for (key, pod) in tracked.iter_mut() {
                if running >= MAX_CONCURRENT {
                    break;
                }
                let Some(quiet) = pod.due(now) else {
                    continue;
                };
                let Some(view) = pod.view.clone() else {
                    continue;
                };
                pod.running = true;
                running += 1;
                let (this, done, key, entry) = (
                    Arc::clone(&this),
                    done_tx.clone(),
                    key.clone(),
                    Arc::clone(&pod.entry),
                );
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = this.sync(&entry.body, quiet).await;
                    this.count(&outcome, started.elapsed());
                    let _ = done.send((key, view.uid, view.annotation, outcome));
                });
            }
            // Only future retries wake the loop (a past one whose pod is
            // not due any more must not spin it).
            let wake = tracked
                .values()
                .filter(|t| !t.running)
                .filter_map(|t| t.retry_at)
                .filter(|at| *at > now)
                .min()
                .unwrap_or(now + Duration::from_secs(60));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some((key, uid, annotation, outcome)) = done_rx.recv() => {
                    running = running.saturating_sub(1);
                    log(&key, &outcome);
                    if let Some(pod) = tracked.get_mut(&key)
                        && pod.view.as_ref().is_some_and(|v| v.uid == uid)
                    {
                        pod.finished(annotation, &outcome);
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => break,
            }
        }
    }
}

/// Takes in the pods of a store snapshot: new ones tracked, changed ones
/// read again (a new UID starts over), gone ones dropped.
fn refresh(tracked: &mut HashMap<String, Tracked>, snapshot: Vec<(String, Arc<Entry>)>) {
    let mut seen = std::collections::HashSet::with_capacity(snapshot.len());
    for (key, entry) in snapshot {
        seen.insert(key.clone());
        match tracked.get_mut(&key) {
            Some(pod) if Arc::ptr_eq(&pod.entry, &entry) => {}
            Some(pod) if pod.entry.uid == entry.uid => {
                pod.view = view(&entry.body);
                pod.entry = entry;
            }
            _ => {
                let running = tracked.get(&key).is_some_and(|p| p.running);
                let mut pod = Tracked::new(entry);
                // A sync of the old pod may still run: its result is
                // dropped (UID), this one waits for it.
                pod.running = running;
                tracked.insert(key, pod);
            }
        }
    }
    tracked.retain(|key, pod| seen.contains(key) || pod.running);
}

/// The `outcome` label of a sync.
fn outcome_label(outcome: &Result<SyncOutcome, String>) -> &'static str {
    match outcome {
        Ok(o) => match o.state {
            SyncState::InStep if o.attached.is_empty() && o.detached.is_empty() => "in_step",
            SyncState::InStep => "changed",
            SyncState::NoSandbox => "no_sandbox",
            SyncState::Refused => "refused",
            SyncState::Failed => "failed",
        },
        Err(_) => "error",
    }
}

fn log(key: &str, outcome: &Result<SyncOutcome, String>) {
    match outcome {
        Ok(o) if o.state == SyncState::InStep && o.attached.is_empty() && o.detached.is_empty() => {
            tracing::debug!(pod = key, "network hot-plug: in step")
        }
        Ok(o) if o.state == SyncState::InStep => {
            tracing::info!(pod = key, attached = ?o.attached, detached = ?o.detached, "network hot-plug: the pod's networks follow its annotation")
        }
        Ok(o) => {
            tracing::warn!(pod = key, state = ?o.state, message = o.message.as_deref().unwrap_or(""), attached = ?o.attached, detached = ?o.detached, "network hot-plug not done")
        }
        Err(e) => tracing::warn!(pod = key, error = %e, "network hot-plug: the plugin failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use serde_json::json;

    fn entry(pod: serde_json::Value) -> Arc<Entry> {
        Arc::new(Entry {
            uid: pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
            static_pod: false,
            body: Bytes::from(serde_json::to_vec(&pod).unwrap()),
        })
    }

    fn pod(networks: Option<&str>, status: Option<&str>, ip: Option<&str>) -> serde_json::Value {
        let mut annotations = serde_json::Map::new();
        if let Some(n) = networks {
            annotations.insert(NETWORKS_ANNOTATION.into(), n.into());
        }
        if let Some(s) = status {
            annotations.insert(NETWORK_STATUS_ANNOTATION.into(), s.into());
        }
        json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "annotations": annotations},
            "spec": {"nodeName": "vm"},
            "status": ip.map(|ip| json!({"podIP": ip})).unwrap_or(json!({})),
        })
    }

    const STATUS_A: &str =
        r#"[{"name":"cbr0","interface":"eth0","default":true},{"name":"ns/a","interface":"net1"}]"#;

    #[test]
    fn network_status_matching_the_annotation_needs_no_sync() {
        assert!(status_lists("a", "ns", STATUS_A));
        assert!(status_lists(
            r#"[{"name":"a","interface":"net1"}]"#,
            "ns",
            STATUS_A
        ));
        assert!(!status_lists(
            r#"[{"name":"a","interface":"x"}]"#,
            "ns",
            STATUS_A
        ));
        assert!(!status_lists("a,b", "ns", STATUS_A));
        assert!(
            !status_lists("", "ns", STATUS_A),
            "a is attached, not asked for"
        );
        assert!(status_lists(
            "",
            "ns",
            r#"[{"name":"cbr0","default":true}]"#
        ));
        assert!(!status_lists("a", "ns", "garbage"));
        assert!(!status_lists("[garbage", "ns", STATUS_A));
    }

    #[test]
    fn a_pod_is_synced_once_running_and_again_when_its_annotation_changes() {
        let now = Instant::now();
        // Before its sandbox is up: nothing.
        let mut t = Tracked::new(entry(pod(Some("a"), None, None)));
        assert_eq!(t.due(now), None);
        // Up, network-status as ADD wrote it: in step without a child.
        let mut t = Tracked::new(entry(pod(Some("a"), Some(STATUS_A), Some("10.0.0.5"))));
        assert_eq!(t.due(now), None);
        assert_eq!(t.synced.as_deref(), Some("a"));
        // The annotation changes: a sync, not quiet.
        t.view = view(&entry(pod(Some("a,b"), Some(STATUS_A), Some("10.0.0.5"))).body);
        assert_eq!(t.due(now), Some(false));
        t.running = true;
        assert_eq!(t.due(now), None, "one sync per pod at a time");
        // It fails: retried after the backoff only.
        t.finished("a,b".into(), &Ok(SyncOutcome::new(SyncState::Failed, None)));
        assert_eq!(t.due(Instant::now()), None);
        assert_eq!(
            t.due(Instant::now() + FIRST_RETRY + Duration::from_millis(1)),
            Some(false)
        );
        // It succeeds: nothing more until the next change.
        t.finished("a,b".into(), &Ok(SyncOutcome::new(SyncState::InStep, None)));
        assert_eq!(t.due(Instant::now() + MAX_RETRY), None);
        // Going away: nothing.
        let mut gone = pod(Some("c"), Some(STATUS_A), Some("10.0.0.5"));
        gone["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        t.view = view(&entry(gone).body);
        assert_eq!(t.due(Instant::now()), None);
    }

    #[test]
    fn an_edit_after_a_failure_is_synced_at_once() {
        let mut t = Tracked::new(entry(pod(Some("a"), Some(STATUS_A), Some("10.0.0.5"))));
        assert_eq!(t.due(Instant::now()), None);
        t.view = view(&entry(pod(Some("a,missing"), Some(STATUS_A), Some("10.0.0.5"))).body);
        assert_eq!(t.due(Instant::now()), Some(false));
        t.running = true;
        for _ in 0..6 {
            t.finished(
                "a,missing".into(),
                &Ok(SyncOutcome::new(SyncState::Failed, None)),
            );
        }
        assert!(t.retry_at.unwrap() > Instant::now() + Duration::from_secs(60));
        assert_eq!(t.due(Instant::now()), None, "backing off");
        // Fixed by the user: no wait for the old backoff.
        t.view = view(&entry(pod(Some("a,b"), Some(STATUS_A), Some("10.0.0.5"))).body);
        assert_eq!(t.due(Instant::now()), Some(false));
        // Its first failure starts the backoff afresh.
        t.running = true;
        t.finished("a,b".into(), &Ok(SyncOutcome::new(SyncState::Failed, None)));
        assert_eq!(t.failures, 1);
    }

    #[test]
    fn completed_pods_are_left_alone() {
        let mut p = pod(Some("a,b"), Some(STATUS_A), Some("10.0.0.5"));
        p["status"]["phase"] = json!("Succeeded");
        let mut t = Tracked::new(entry(p));
        assert_eq!(t.due(Instant::now()), None);
    }

    #[test]
    fn first_look_at_a_pod_out_of_step_is_a_quiet_sync() {
        let mut t = Tracked::new(entry(pod(Some("a,b"), Some(STATUS_A), Some("10.0.0.5"))));
        assert_eq!(t.due(Instant::now()), Some(true));
        // A refusal counts as done until the annotation changes.
        t.running = true;
        t.finished(
            "a,b".into(),
            &Ok(SyncOutcome::new(SyncState::Refused, None)),
        );
        assert_eq!(t.due(Instant::now() + MAX_RETRY), None);
    }

    #[test]
    fn host_network_pods_are_taken_as_they_are_until_edited() {
        let mut p = pod(Some("a"), None, Some("192.168.1.10"));
        p["spec"]["hostNetwork"] = json!(true);
        let mut t = Tracked::new(entry(p.clone()));
        assert_eq!(t.due(Instant::now()), None);
        p["metadata"]["annotations"][NETWORKS_ANNOTATION] = json!("a,b");
        t.view = view(&entry(p).body);
        assert_eq!(
            t.due(Instant::now()),
            Some(false),
            "the plugin refuses it with an Event"
        );
    }

    #[test]
    fn syncs_are_counted_by_outcome_and_interfaces_by_change() {
        use multus_config::hotplug::InterfaceChange;
        let change = |i: &str| InterfaceChange {
            network: "ns/a".into(),
            interface: i.into(),
        };
        let shared = Arc::new(Shared::default());
        let hotplug = NetworkHotplug {
            runner: Delegator {
                binary: "/nonexistent/multus".into(),
                mount_ns: None,
                cgroup_of: None,
                cni_path: "/opt/cni/bin".into(),
                conf_dir: "/nonexistent".into(),
                timeout: SYNC_TIMEOUT,
            },
            cri_socket: "/run/containerd/containerd.sock".into(),
            shared: Arc::clone(&shared),
        };
        let mut changed = SyncOutcome::new(SyncState::InStep, None);
        changed.attached = vec![change("net2"), change("net3")];
        changed.detached = vec![change("net1")];
        hotplug.count(&Ok(changed), Duration::from_millis(300));
        hotplug.count(
            &Ok(SyncOutcome::new(SyncState::InStep, None)),
            Duration::from_millis(6),
        );
        hotplug.count(&Err("no binary".into()), Duration::from_millis(1));
        let text = shared.metrics.encode();
        for line in [
            r#"multus_node_agent_hotplug_syncs_total{outcome="changed"} 1"#,
            r#"multus_node_agent_hotplug_syncs_total{outcome="in_step"} 1"#,
            r#"multus_node_agent_hotplug_syncs_total{outcome="error"} 1"#,
            r#"multus_node_agent_hotplug_interfaces_total{change="attached"} 2"#,
            r#"multus_node_agent_hotplug_interfaces_total{change="detached"} 1"#,
            "multus_node_agent_hotplug_sync_duration_seconds_count 3",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), FIRST_RETRY);
        assert_eq!(backoff(2), FIRST_RETRY * 2);
        assert_eq!(backoff(30), MAX_RETRY);
    }

    #[test]
    fn refresh_tracks_new_changed_and_gone_pods() {
        let mut tracked = HashMap::new();
        let a = entry(pod(Some("a"), None, Some("10.0.0.5")));
        refresh(&mut tracked, vec![("ns/p".into(), Arc::clone(&a))]);
        tracked.get_mut("ns/p").unwrap().synced = Some("a".into());
        // Same object: kept as is.
        refresh(&mut tracked, vec![("ns/p".into(), Arc::clone(&a))]);
        assert_eq!(tracked["ns/p"].synced.as_deref(), Some("a"));
        // Changed object, same UID: read again, what was synced kept.
        let b = entry(pod(Some("a,b"), None, Some("10.0.0.5")));
        refresh(&mut tracked, vec![("ns/p".into(), b)]);
        assert_eq!(tracked["ns/p"].view.as_ref().unwrap().annotation, "a,b");
        assert_eq!(tracked["ns/p"].synced.as_deref(), Some("a"));
        // A new pod of the same name: starts over.
        let mut other = pod(Some("a"), None, Some("10.0.0.6"));
        other["metadata"]["uid"] = json!("u2");
        refresh(&mut tracked, vec![("ns/p".into(), entry(other))]);
        assert_eq!(tracked["ns/p"].synced, None);
        refresh(&mut tracked, Vec::new());
        assert!(tracked.is_empty());
    }
}
