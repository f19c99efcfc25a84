//! End-to-end: "agent down is not node down" (issue 11) on a real cluster.
//! The plugin authenticates with a token of its own ServiceAccount
//! `multus-plugin-<mc>` that the node agent requests with the TokenRequest
//! API, not with the agent pod's projected token, so:
//!
//! - (c) the node's token file (0600) holds a plugin token: its `sub` is
//!   `system:serviceaccount:<ns>:multus-plugin-<mc>`, MultusNodeState
//!   `status.pluginCredential` says `TokenRequest`, expiring in about 24 h;
//! - (e) 24 pods with two NADs each start (timed) without an agent restart,
//!   and (a) again with the agent pod deleted in the middle: all Ready with
//!   both networks, not one FailedCreatePodSandBox (the log counts the
//!   plugin's AddedInterface events, posted with its token, that fall
//!   between the old agent pod's disappearance and the new one's readiness);
//! - (b) with the agents removed from the node for two minutes (the
//!   MultusConfig's node selector matches no node), pods created meanwhile
//!   still get both networks; the agents come back when it is restored;
//! - (d) deleting the MultusConfig deletes the plugin's ServiceAccount, and
//!   the token read from the node before gets 401 from the API server;
//! - (f) node isolation (issue 19), decided by what the server offers:
//!   on Kubernetes 1.33+ the plugin's token is bound to the node's Node and
//!   the chart's admission policy denies it the status of a pod on another
//!   (fake) Node, Events in another node's name and unbound plugin tokens,
//!   while the node's own pods are written as before; on older servers the
//!   token is unbound, the MultusConfig status says why, and the write goes
//!   through as before.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); needs a disposable single-node cluster whose node is this
//! machine (it reads `/etc/cni/net.d/multus.d/token`), root, `helm`,
//! `kubectl` and the image of `MULTUS_E2E_IMAGE` on the node.
//! `MULTUS_E2E_KEEP_ON_FAILURE=1` leaves a failed run's objects in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use multus_config::crd::{CredentialSource, MultusConfig, MultusNodeState, PluginCredential};
use multus_e2e::cluster::{
    NETWORK_STATUS_ANNOTATION, TestPod, create_nad, create_namespace, event_count, event_summary,
    events_with_reason, install_privileged, ipv4_in_pod, mc_summary, nad_object, pod_ready,
    pod_summary, pods_summary, remove_release, single_node_without_multus, wait_gone,
    wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{
    Cmd, E2eSession, StepLog, cleanup_cmd, client_config, e2e_kubeconfig, file_mode,
    host_local_dir, remove_link, remove_namespace, remove_path, wait_until,
};
use multus_operator::controller::server_version;
use serde_json::{Value, json};

const TEST: &str = "plugin_credential_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-cred";
const OP_NS: &str = "multus-e2e-cred";
/// The chart's full name is the release name (it contains "multus").
const OPERATOR: &str = "multus-e2e-cred-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-cred";
/// The release's MultusConfig (cluster-scoped; not `default`, so a leftover
/// of another test is not mistaken for ours).
const MC: &str = "e2e-cred";
const PLUGIN_SA: &str = "multus-plugin-e2e-cred";
const AGENT_LABEL: &str = "multus.dev/config=e2e-cred";
const APP_NS: &str = "multus-e2e-cred-app";
const BATCH_LABEL: &str = "e2e.multus.dev/batch";
const TOKEN_FILE: &str = "/etc/cni/net.d/multus.d/token";
/// Two bridge NADs (host-local IPAM): name, bridge, subnet prefix, the
/// interface the pods get for it.
const NADS: [(&str, &str, &str, &str); 2] = [
    ("cred-a", "credbr1", "10.253.1.", "net1"),
    ("cred-b", "credbr2", "10.253.2.", "net2"),
];
/// Pods per timed batch.
const BATCH: usize = 24;
/// How long the agents stay away from the node.
const AWAY: Duration = Duration::from_secs(120);
/// When, after the agent pod is gone, a pod is created meanwhile.
const AWAY_PODS_AT: [u64; 4] = [0, 35, 70, 105];
/// The default plugin token lifetime (24 h).
const LIFETIME: i64 = 86_400;

const MINUTE: Duration = Duration::from_secs(60);

fn teardown_namespaces() -> Vec<String> {
    vec![OP_NS.to_owned(), APP_NS.to_owned()]
}

fn networks_annotation() -> String {
    NADS.map(|(name, ..)| name).join(",")
}

fn nad_config(name: &str, bridge: &str, prefix: &str) -> String {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("{prefix}0/24")}]]}
    })
    .to_string()
}

/// Removes what the test creates (blocking; teardown and leftovers): the
/// agents brought back to the node (a MultusConfig whose agents are away
/// cannot uninstall), the pods while Multus still DELs their networks, the
/// release, the test networks' traces on the host.
fn remove_everything() {
    let exists = Cmd::kubectl([
        "get",
        "multusconfig",
        MC,
        "--ignore-not-found",
        "-o",
        "name",
    ])
    .run_blocking()
    .unwrap_or_default();
    if !exists.trim().is_empty() {
        cleanup_cmd(&Cmd::kubectl([
            "patch",
            "multusconfig",
            MC,
            "--type=merge",
            "-p",
            r#"{"spec":{"placement":null}}"#,
        ]));
    }
    remove_namespace(APP_NS, Duration::from_secs(150));
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    for (name, bridge, ..) in NADS {
        remove_link(bridge);
        remove_path(host_local_dir(name));
    }
}

#[tokio::test]
async fn plugin_credential_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    e2e.log
        .step("preflight: a single node on this machine, no Multus but ours");
    remove_everything();
    let node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &teardown_namespaces(),
        "remove the test's objects",
        remove_everything,
    );
    let t = Cred {
        client: e2e.client.clone(),
        node,
    };
    let log = &mut e2e.log;

    log.step("install: helm install with MultusConfig e2e-cred, two bridge NADs");
    let installed_at = unix_now();
    t.install().await;
    create_namespace(&t.client, APP_NS).await;
    for (name, bridge, prefix, _) in NADS {
        create_nad(
            &t.client,
            &nad_object(APP_NS, name, &nad_config(name, bridge, prefix)),
        )
        .await;
    }

    log.step("(c) the node's token is a plugin token (TokenRequest, 24 h, 0600)");
    t.check_plugin_token(log, installed_at).await;
    t.one_pod_with_both_networks(log, "first").await;

    log.step("(f) node isolation: node-bound token and admission policy where offered");
    t.node_isolation(log).await;

    log.step("(e) 24 pods x 2 NADs, agent left alone");
    let quiet = t.batch(log, "quiet", false).await;
    t.delete_batch("quiet").await;

    log.step("(a)+(e) 24 pods x 2 NADs, agent pod deleted after the 12th");
    let killed = t.batch(log, "kill", true).await;
    t.delete_batch("kill").await;
    log.note(&format!(
        "FIGURES 24 pods x 2 NADs: all Ready {:.1?} without an agent restart, {:.1?} with the \
         agent pod deleted in the middle (median pod {:.1?} vs {:.1?})",
        quiet.all_ready, killed.all_ready, quiet.median_ready, killed.median_ready
    ));

    log.step("(b) agents removed from the node for 2 minutes; pods still get their NADs");
    t.agents_away(log).await;

    log.step("(d) uninstall revokes the plugin's token");
    t.uninstall_revokes(log).await;

    e2e.finish();
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Decodes unpadded (or padded) base64url.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The claims of a JWT (the middle part), not verified.
fn jwt_claims(token: &str) -> Result<Value, String> {
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or("not a JWT (no second part)")?;
    let bytes = base64url(payload).ok_or("the payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the payload is not JSON: {e}"))
}

/// The projected ServiceAccount token of the pod `uid`, from the kubelet's
/// volume on this node.
fn projected_token(uid: &str) -> Result<String, String> {
    let dir = Path::new("/var/lib/kubelet/pods")
        .join(uid)
        .join("volumes/kubernetes.io~projected");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    entries
        .filter_map(Result::ok)
        .find_map(|e| std::fs::read_to_string(e.path().join("token")).ok())
        .ok_or_else(|| format!("no projected token under {}", dir.display()))
}

/// A client of the test cluster that authenticates with `token` only.
async fn client_with_token(token: &str) -> Client {
    let path = e2e_kubeconfig().expect("MULTUS_E2E_KUBECONFIG");
    let mut config = client_config(&path).await;
    config.auth_info = serde_json::from_value(json!({"token": token.trim()})).unwrap();
    Client::try_from(config).unwrap()
}

/// Figures of a batch of pods.
struct Batch {
    all_ready: Duration,
    median_ready: Duration,
}

struct Cred {
    client: Client,
    node: String,
}

impl Cred {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    fn agents(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), OP_NS)
    }

    fn configs(&self) -> Api<MultusConfig> {
        Api::all(self.client.clone())
    }

    async fn install(&self) {
        let sets: &[&str] = &[&format!("multusConfig.name={MC}")];
        install_privileged(&self.client, RELEASE, OP_NS, OPERATOR, sets).await;
        wait_mc_ready(&self.client, MC, 3 * MINUTE).await;
    }

    /// A pod of `batch` with both NADs.
    async fn create_pod(&self, name: &str, batch: &str) {
        TestPod::new(APP_NS, name)
            .label(BATCH_LABEL, batch)
            .networks(&networks_annotation())
            .create(&self.client)
            .await;
    }

    /// Both networks inside the pod (`ip addr`), each with an address of
    /// its NAD's subnet; returns them.
    async fn check_networks_inside(&self, pod: &str) -> Result<Vec<String>, String> {
        let mut found = Vec::new();
        for (name, _, prefix, iface) in NADS {
            let address = ipv4_in_pod(APP_NS, pod, iface, MINUTE).await?;
            let ip = address.split('/').next().unwrap_or_default();
            if !ip.starts_with(prefix) {
                return Err(format!(
                    "{iface} of {pod} has {ip}, not an address of NAD {name} ({prefix}0/24)"
                ));
            }
            found.push(format!("{iface} {ip}"));
        }
        Ok(found)
    }

    /// Both networks in the pod's network-status annotation, with
    /// addresses of their subnets.
    fn check_network_status(pod: &Pod) -> Result<(), String> {
        let name = pod.name_any();
        let status = pod
            .annotations()
            .get(NETWORK_STATUS_ANNOTATION)
            .ok_or_else(|| format!("{name}: no network-status annotation"))?;
        let entries: Vec<Value> = serde_json::from_str(status)
            .map_err(|e| format!("{name}: network-status is not a JSON list ({e}): {status}"))?;
        for (nad, _, prefix, iface) in NADS {
            let ok = entries.iter().any(|e| {
                e["interface"] == iface
                    && e["name"] == format!("{APP_NS}/{nad}")
                    && e["ips"].as_array().is_some_and(|ips| {
                        ips.iter()
                            .any(|i| i.as_str().is_some_and(|i| i.starts_with(prefix)))
                    })
            });
            if !ok {
                return Err(format!(
                    "{name}: no {iface} of {nad} with an address in network-status {status}"
                ));
            }
        }
        Ok(())
    }

    async fn node_credential(&self) -> Result<PluginCredential, String> {
        let states: Api<MultusNodeState> = Api::all(self.client.clone());
        states
            .get_opt(&self.node)
            .await
            .map_err(|e| format!("GET MultusNodeState: {e}"))?
            .ok_or("no MultusNodeState for the node")?
            .status
            .and_then(|s| s.plugin_credential)
            .ok_or_else(|| "no status.pluginCredential".to_owned())
    }

    /// Waits until the node reports a TokenRequest credential and the
    /// token file holds a token of the plugin's ServiceAccount; returns
    /// the credential, the token and its claims.
    async fn wait_plugin_token(&self) -> (PluginCredential, String, Value) {
        let subject = format!("system:serviceaccount:{OP_NS}:{PLUGIN_SA}");
        wait_until(
            &format!(
                "pluginCredential.source TokenRequest on MultusNodeState {} and a token of {subject} in {TOKEN_FILE}",
                self.node
            ),
            2 * MINUTE,
            async || {
                let credential = self.node_credential().await?;
                if credential.source != CredentialSource::TokenRequest {
                    return Err(format!("pluginCredential {credential:?}"));
                }
                let token = std::fs::read_to_string(TOKEN_FILE)
                    .map_err(|e| format!("reading {TOKEN_FILE}: {e}"))?;
                let claims = jwt_claims(&token)?;
                if claims["sub"] != subject.as_str() {
                    return Err(format!(
                        "token sub {} (credential {credential:?})",
                        claims["sub"]
                    ));
                }
                Ok((credential, token, claims))
            },
        )
        .await
    }

    /// (c): mode, subject, source, lifetime.
    async fn check_plugin_token(&self, log: &mut StepLog, installed_at: i64) {
        let (credential, _token, claims) = self.wait_plugin_token().await;
        assert_eq!(
            file_mode(Path::new(TOKEN_FILE)),
            Some(0o600),
            "mode of {TOKEN_FILE}"
        );
        assert!(
            credential.service_account.ends_with(PLUGIN_SA),
            "pluginCredential.serviceAccount {credential:?}"
        );
        let now = unix_now();
        let issued = credential
            .issued_at
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_else(|| panic!("no issuedAt: {credential:?}"));
        let expires = credential
            .expires_at
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_else(|| panic!("no expiresAt: {credential:?}"));
        assert!(
            (installed_at - 60..=now + 60).contains(&issued),
            "issuedAt {issued} is not between the install ({installed_at}) and now ({now}): \
             {credential:?}"
        );
        assert!(
            (expires - issued - LIFETIME).abs() <= 60,
            "the token lives {} s, not 24 h: {credential:?}",
            expires - issued
        );
        let left = expires - now;
        assert!(
            (LIFETIME - 900..=LIFETIME + 60).contains(&left),
            "expiresAt is {left} s from now, not about 24 h: {credential:?}"
        );
        let exp = claims["exp"].as_i64().unwrap_or_default();
        assert!(
            (exp - expires).abs() <= 2,
            "the token's exp {exp} is not the reported expiresAt {expires}: {claims}"
        );
        assert!(
            claims["kubernetes.io"].get("pod").is_none(),
            "the plugin's token is bound to a pod: {claims}"
        );
        log.note(&format!(
            "{TOKEN_FILE}: 0600, sub {}, source {}, serviceAccount {}, expires in {}h{:02}m \
             (issued {} s after the install began)",
            claims["sub"],
            credential.source.as_str(),
            credential.service_account,
            left / 3600,
            left % 3600 / 60,
            issued - installed_at
        ));
    }

    async fn one_pod_with_both_networks(&self, log: &mut StepLog, name: &str) {
        self.create_pod(name, "single").await;
        let pod = wait_pod_ready(&self.client, APP_NS, name, 2 * MINUTE).await;
        Self::check_network_status(&pod).unwrap_or_else(|e| panic!("{e}"));
        let found = self
            .check_networks_inside(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        log.note(&format!("pod {name}: {}", found.join(", ")));
    }

    /// The agent pods of the MultusConfig.
    async fn agent_pods(&self) -> Vec<Pod> {
        self.agents()
            .list(&ListParams::default().labels(AGENT_LABEL))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// Creates `BATCH` pods with both NADs (deleting the agent pod after
    /// the 12th when `kill`), waits for all to be Ready and checks their
    /// networks and that none had a FailedCreatePodSandBox; returns the
    /// figures.
    async fn batch(&self, log: &mut StepLog, batch: &str, kill: bool) -> Batch {
        let old_agents: BTreeSet<String> = self
            .agent_pods()
            .await
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let token_before = std::fs::read_to_string(TOKEN_FILE).unwrap_or_default();
        let start = Instant::now();
        let mut killed_at = None;
        // Wall clock (µs) of: the agent pod's deletion, the old pod gone,
        // the new agent Ready; compared with the plugin's event times.
        let mut wall = (0i64, 0i64, 0i64);
        for i in 0..BATCH {
            self.create_pod(&format!("{batch}-{i}"), batch).await;
            if kill && i + 1 == BATCH / 2 {
                for agent in self.agent_pods().await {
                    self.agents()
                        .delete(&agent.name_any(), &DeleteParams::default())
                        .await
                        .unwrap_or_else(|e| panic!("deleting agent pod {}: {e}", agent.name_any()));
                }
                killed_at = Some(start.elapsed());
                wall.0 = unix_micros();
            }
        }
        let created_in = start.elapsed();

        let selector = ListParams::default().labels(&format!("{BATCH_LABEL}={batch}"));
        let mut ready_at: BTreeMap<String, Duration> = BTreeMap::new();
        let mut old_gone: Option<(Duration, usize)> = None;
        let mut new_ready: Option<(Duration, usize)> = None;
        let timeout = 4 * MINUTE;
        let mut last_seen;
        loop {
            let now = start.elapsed();
            let pods = self.pods().list(&selector).await.unwrap().items;
            for pod in pods.iter().filter(|p| pod_ready(p)) {
                ready_at.entry(pod.name_any()).or_insert(now);
            }
            let agents = self.agent_pods().await;
            if kill {
                let old_left = agents.iter().any(|p| {
                    p.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| old_agents.contains(u))
                });
                if !old_left && old_gone.is_none() {
                    old_gone = Some((now, ready_at.len()));
                    wall.1 = unix_micros();
                }
                let new_up = agents.iter().any(|p| {
                    p.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| !old_agents.contains(u))
                        && pod_ready(p)
                });
                if old_gone.is_some() && new_up && new_ready.is_none() {
                    new_ready = Some((now, ready_at.len()));
                    wall.2 = unix_micros();
                }
            }
            last_seen = format!(
                "{} of {BATCH} Ready; not Ready: {}; agents: {}",
                ready_at.len(),
                pods.iter()
                    .filter(|p| !pod_ready(p))
                    .take(4)
                    .map(pod_summary)
                    .collect::<Vec<_>>()
                    .join("; "),
                pods_summary(&agents)
            );
            if ready_at.len() == BATCH && (!kill || new_ready.is_some()) {
                break;
            }
            if now > timeout {
                break;
            }
            tokio::time::sleep(multus_e2e::POLL).await;
        }
        let mut times: Vec<Duration> = ready_at.values().copied().collect();
        times.sort();
        let figures = Batch {
            all_ready: times.last().copied().unwrap_or_default(),
            median_ready: times.get(times.len() / 2).copied().unwrap_or_default(),
        };
        log.note(&format!(
            "batch {batch}: {BATCH} pods created in {created_in:.1?}, {} Ready, all Ready after \
             {:.1?} (median pod {:.1?}, first {:.1?})",
            ready_at.len(),
            figures.all_ready,
            figures.median_ready,
            times.first().copied().unwrap_or_default()
        ));
        if kill {
            log.note(&format!(
                "agent pod deleted at {:.1?} (after pod {}); old agent pod gone at {} ; new agent \
                 Ready at {}; token file unchanged across the restart: {}",
                killed_at.unwrap_or_default(),
                BATCH / 2,
                old_gone.map_or("never".to_owned(), |(t, n)| format!(
                    "{t:.1?} ({n}/{BATCH} pods Ready then)"
                )),
                new_ready.map_or("never".to_owned(), |(t, n)| format!(
                    "{t:.1?} ({n}/{BATCH} pods Ready then)"
                )),
                std::fs::read_to_string(TOKEN_FILE).unwrap_or_default() == token_before
            ));
        }

        // A failed sandbox is reported before its retry; give the events a
        // moment to land.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if kill {
            // The plugin posts AddedInterface with its own token at the end
            // of each ADD (eventTime in µs): those between the agent pod's
            // deletion and the new agent's readiness ran with the agent down.
            let added: Vec<i64> =
                events_with_reason(&self.client, APP_NS, "AddedInterface", &format!("{batch}-"))
                    .await
                    .iter()
                    .filter_map(|e| e.event_time.as_ref().map(|t| t.0.as_microsecond()))
                    .collect();
            let down = added
                .iter()
                .filter(|t| (wall.0..wall.2).contains(t))
                .count();
            let no_pod = added
                .iter()
                .filter(|t| (wall.1..wall.2).contains(t))
                .count();
            log.note(&format!(
                "AddedInterface events (posted by the plugin with its token): {} in all, {down} \
                 between the agent pod's deletion and the new agent's readiness, {no_pod} while \
                 no agent pod existed (the old agent's token was already invalid)",
                added.len()
            ));
        }
        let failures = events_with_reason(
            &self.client,
            APP_NS,
            "FailedCreatePodSandBox",
            &format!("{batch}-"),
        )
        .await;
        let failed_pods: BTreeSet<&str> = failures
            .iter()
            .filter_map(|e| e.involved_object.name.as_deref())
            .collect();
        let attempts: i32 = failures.iter().map(event_count).sum();
        let pods = self.pods().list(&selector).await.unwrap().items;
        let bad_networks: Vec<String> = pods
            .iter()
            .filter_map(|p| Self::check_network_status(p).err())
            .collect();
        let inside = match self
            .check_networks_inside(&format!("{batch}-{}", BATCH - 1))
            .await
        {
            Ok(found) => found.join(", "),
            Err(e) => e,
        };
        log.note(&format!(
            "batch {batch}: pods with FailedCreatePodSandBox {} ({attempts} failed attempts); \
             network-status without both networks: {}; inside {batch}-{}: {inside}",
            failed_pods.len(),
            bad_networks.len(),
            BATCH - 1
        ));
        for e in failures.iter().take(5) {
            log.note(&format!(
                "{}: {}",
                e.involved_object.name.as_deref().unwrap_or("?"),
                event_summary(e)
            ));
        }
        let not_ready = BATCH - ready_at.len();
        if !failures.is_empty()
            || not_ready > 0
            || !bad_networks.is_empty()
            || (kill && new_ready.is_none())
        {
            let agent_logs = Cmd::kubectl(["logs", "-n", OP_NS, "-l", AGENT_LABEL])
                .args(["--tail=60", "--all-containers", "--prefix"])
                .run_for(MINUTE)
                .await
                .unwrap_or_else(|e| e);
            log.note(&format!("agent logs:\n{agent_logs}"));
            log.fail_later(
                format!(
                    "batch {batch} (agent pod deleted: {kill}): {not_ready} of {BATCH} pods not \
                     Ready within {timeout:?}, {} pods with FailedCreatePodSandBox ({attempts} \
                     attempts; first: {}), {} without both networks ({}); last seen: {last_seen}",
                    failed_pods.len(),
                    failures.first().map(event_summary).unwrap_or_default(),
                    bad_networks.len(),
                    bad_networks.join("; ")
                ),
                &teardown_namespaces(),
            );
        }
        figures
    }

    async fn delete_batch(&self, batch: &str) {
        Cmd::kubectl(["delete", "pods", "-n", APP_NS, "-l"])
            .args([
                format!("{BATCH_LABEL}={batch}"),
                "--timeout=150s".to_owned(),
            ])
            .ok()
            .await;
    }

    async fn set_placement(&self, placement: Value) {
        self.configs()
            .patch(
                MC,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"placement": placement}})),
            )
            .await
            .unwrap_or_else(|e| panic!("patching MultusConfig {MC}: {e}"));
    }

    /// No agent pod of the MultusConfig is on the node while its node
    /// selector excludes the node.
    async fn assert_agents_away(&self) {
        let agents = self.agent_pods().await;
        assert!(
            agents.is_empty(),
            "an agent pod came back while the node selector excludes the node: {}",
            pods_summary(&agents)
        );
    }

    /// (b): the agents leave the node for `AWAY`; pods created meanwhile
    /// get both networks; then they come back.
    async fn agents_away(&self, log: &mut StepLog) {
        self.set_placement(json!({"nodeSelector": {"e2e.multus.dev/no-such-node": "true"}}))
            .await;
        let patched = Instant::now();
        wait_until(
            "the agent pods gone from the node",
            2 * MINUTE,
            async || {
                let agents = self.agent_pods().await;
                if agents.is_empty() {
                    Ok(())
                } else {
                    Err(pods_summary(&agents))
                }
            },
        )
        .await;
        let gone = Instant::now();
        log.note(&format!(
            "agent pod gone {:.1?} after the node selector changed; token file still there: {}",
            patched.elapsed(),
            Path::new(TOKEN_FILE).exists()
        ));
        let mut created = Vec::new();
        for (i, at) in AWAY_PODS_AT.iter().enumerate() {
            let at = Duration::from_secs(*at);
            if let Some(wait) = at.checked_sub(gone.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            self.assert_agents_away().await;
            let name = format!("away-{i}");
            let created_at = gone.elapsed();
            self.create_pod(&name, "away").await;
            let pod = wait_pod_ready(&self.client, APP_NS, &name, 2 * MINUTE).await;
            let ready_in = gone.elapsed() - created_at;
            let status = Self::check_network_status(&pod);
            let inside = self.check_networks_inside(&name).await;
            let found = match (&status, &inside) {
                (Ok(()), Ok(found)) => found.join(", "),
                _ => {
                    let failure = format!(
                        "pod {name} created {created_at:.1?} after the agent left: {:?} / {:?}",
                        status.err(),
                        inside.err()
                    );
                    log.fail_later(failure.clone(), &teardown_namespaces());
                    failure
                }
            };
            log.note(&format!(
                "{name}: created {created_at:.1?} after the agent left, Ready in {ready_in:.1?}: \
                 {found}"
            ));
            created.push(name);
        }
        if let Some(wait) = AWAY.checked_sub(gone.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        self.assert_agents_away().await;
        let failures =
            events_with_reason(&self.client, APP_NS, "FailedCreatePodSandBox", "away-").await;
        log.note(&format!(
            "agents away {:.1?}: {} pods created meanwhile, all Ready with both networks; \
             FailedCreatePodSandBox events: {}",
            gone.elapsed(),
            created.len(),
            failures.len()
        ));
        if !failures.is_empty() {
            log.fail_later(
                format!(
                    "pods created while the agents were away had FailedCreatePodSandBox: {}",
                    failures
                        .iter()
                        .map(event_summary)
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
                &teardown_namespaces(),
            );
        }

        log.note("restoring the node selector");
        self.set_placement(Value::Null).await;
        let restored = Instant::now();
        wait_until(
            "an agent pod Ready on the node again",
            2 * MINUTE,
            async || {
                let agents = self.agent_pods().await;
                if agents.iter().any(pod_ready) {
                    Ok(())
                } else {
                    Err(format!("agents: [{}]", pods_summary(&agents)))
                }
            },
        )
        .await;
        let mc = wait_mc_ready(&self.client, MC, 3 * MINUTE).await;
        self.wait_plugin_token().await;
        log.note(&format!(
            "agent back and MultusConfig Ready {:.1?} after the restore ({})",
            restored.elapsed(),
            mc_summary(&mc)
        ));
    }

    /// (d): delete the MultusConfig; the plugin's ServiceAccount goes and
    /// the token read from the node before gets 401.
    /// Whether the server is Kubernetes 1.33 or newer (node-bound tokens
    /// GA; the chart installs the admission policy there).
    async fn isolation_expected(&self) -> bool {
        let info = self.client.apiserver_version().await.expect("GET /version");
        let version = server_version::parse(&info).expect("a readable server version");
        version >= (1, 33)
    }

    /// The MultusConfig's `status.clusterFeatures` as `name=state`, once
    /// both features are reported with `want` states.
    async fn wait_features(&self, want: [(&str, &str); 2]) -> Vec<(String, String, String)> {
        wait_until(
            &format!("MultusConfig {MC} status.clusterFeatures {want:?}"),
            3 * MINUTE,
            async || {
                let mc = self
                    .configs()
                    .get(MC)
                    .await
                    .map_err(|e| format!("GET MultusConfig: {e}"))?;
                let features: Vec<(String, String, String)> = mc
                    .status
                    .as_ref()
                    .map(|s| {
                        s.cluster_features
                            .iter()
                            .map(|f| {
                                (
                                    f.name.clone(),
                                    f.state.as_str().to_owned(),
                                    f.message.clone(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let matches = want
                    .iter()
                    .all(|(name, state)| features.iter().any(|(n, s, _)| n == name && s == state));
                if matches {
                    Ok(features)
                } else {
                    Err(format!("{features:?}"))
                }
            },
        )
        .await
    }

    /// (f): see the module doc.
    async fn node_isolation(&self, log: &mut StepLog) {
        const FAKE_NODE: &str = "multus-e2e-cred-fake-node";
        let expected = self.isolation_expected().await;
        let (credential, token, claims) = self.wait_plugin_token().await;
        let token_node = claims["kubernetes.io"]["node"]["name"]
            .as_str()
            .map(str::to_owned);
        if expected {
            // the agent asks for the binding; a token of before (none here)
            // would be replaced at once
            let (credential, claims) =
                wait_until("a plugin token bound to the node", 2 * MINUTE, async || {
                    let (credential, _, claims) = self.wait_plugin_token().await;
                    if credential.bound_node.as_deref() == Some(self.node.as_str()) {
                        Ok((credential, claims))
                    } else {
                        Err(format!("{credential:?}"))
                    }
                })
                .await;
            assert_eq!(
                claims["kubernetes.io"]["node"]["name"].as_str(),
                Some(self.node.as_str()),
                "the token's node claim: {claims}"
            );
            log.note(&format!(
                "plugin token bound to Node {} (credential {:?})",
                self.node, credential.bound_node
            ));
            let features = self
                .wait_features([
                    ("NodeBoundPluginTokens", "Active"),
                    ("PluginAdmissionPolicy", "Active"),
                ])
                .await;
            log.note(&format!("status.clusterFeatures: {features:?}"));
        } else {
            assert_eq!(credential.bound_node, None, "{credential:?}");
            assert_eq!(
                token_node, None,
                "an unbound token has no node claim: {claims}"
            );
            let why = credential
                .node_binding_unavailable
                .clone()
                .unwrap_or_else(|| panic!("no nodeBindingUnavailable: {credential:?}"));
            assert!(why.contains(&format!("Node {}", self.node)), "{why}");
            let features = self
                .wait_features([
                    ("NodeBoundPluginTokens", "Unavailable"),
                    ("PluginAdmissionPolicy", "Unavailable"),
                ])
                .await;
            log.note(&format!(
                "no node binding on this server ({why}); status.clusterFeatures: {features:?}"
            ));
        }

        // a pod bound to a Node without a kubelet, and one of this node
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let _ = nodes.delete(FAKE_NODE, &DeleteParams::default()).await;
        nodes
            .create(
                &Default::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": FAKE_NODE, "labels": {"e2e.multus.dev/fake": "true"}},
                }))
                .unwrap(),
            )
            .await
            .expect("creating the fake Node");
        let far: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "far", "namespace": APP_NS},
            "spec": {
                "nodeName": FAKE_NODE,
                "containers": [{"name": "c", "image": "localhost/busybox:local"}],
            },
        }))
        .unwrap();
        self.pods()
            .create(&Default::default(), &far)
            .await
            .expect("creating a pod on the fake Node");
        let with_token = client_with_token(&token).await;
        let pods: Api<Pod> = Api::namespaced(with_token.clone(), APP_NS);
        let status_patch = json!({"metadata": {"annotations": {
            "e2e.multus.dev/written-by": "the plugin's token"}}});
        let far_result = pods
            .patch_status("far", &PatchParams::default(), &Patch::Merge(&status_patch))
            .await;
        let near_result = pods
            .patch_status(
                "first",
                &PatchParams::default(),
                &Patch::Merge(&status_patch),
            )
            .await;
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(with_token.clone(), APP_NS);
        let event = |host: &str| -> k8s_openapi::api::core::v1::Event {
            serde_json::from_value(json!({
                "metadata": {"generateName": "e2e-isolation-"},
                "involvedObject": {"kind": "Pod", "namespace": APP_NS, "name": "first"},
                "reason": "E2eIsolation", "message": "test", "type": "Normal",
                "source": {"component": "multus", "host": host},
                "reportingComponent": "multus", "reportingInstance": host,
            }))
            .unwrap()
        };
        let foreign_event = events.create(&Default::default(), &event(FAKE_NODE)).await;
        let own_event = events.create(&Default::default(), &event(&self.node)).await;
        let _ = self
            .pods()
            .delete("far", &DeleteParams::default().grace_period(0))
            .await;
        let _ = nodes.delete(FAKE_NODE, &DeleteParams::default()).await;

        near_result.unwrap_or_else(|e| {
            panic!("the plugin's token may no longer write a pod of its own node: {e}")
        });
        own_event.unwrap_or_else(|e| panic!("an Event in the node's own name was refused: {e}"));
        if expected {
            match far_result {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    assert!(
                        s.message.contains(&format!(
                            "the token of node {} may only write pods of that node; pod {APP_NS}/far is on node {FAKE_NODE}",
                            self.node
                        )),
                        "the denial does not carry the policy's message: {s:?}"
                    );
                    log.note(&format!("pod on another node: denied, {:?}", s.message));
                }
                other => panic!(
                    "writing the status of a pod on another node with the plugin's token: {other:?}"
                ),
            }
            match foreign_event {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    assert!(s.message.contains("may only record Events"), "{s:?}");
                }
                other => panic!("an Event in another node's name: {other:?}"),
            }
            // the agents may not mint unbound plugin tokens: the request
            // is made with the agent pod's own projected token, read on the
            // node as root could
            let agent_token = wait_until(
                "the projected token of a ready agent pod, on this node",
                MINUTE,
                async || {
                    let pods = self.agent_pods().await;
                    let live: Vec<&Pod> = pods
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                        .collect();
                    let agent = live
                        .first()
                        .ok_or_else(|| format!("no ready agent pod: {}", pods_summary(&pods)))?;
                    projected_token(agent.metadata.uid.as_deref().unwrap_or_default())
                },
            )
            .await;
            let as_agent = client_with_token(&agent_token).await;
            let sas: Api<ServiceAccount> = Api::namespaced(as_agent, OP_NS);
            let unbound = sas
                .create_token_request(PLUGIN_SA, &Default::default(), &Default::default())
                .await;
            match unbound {
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    assert!(
                        s.message
                            .contains("may only request plugin tokens bound to its own Node"),
                        "{s:?}"
                    );
                    log.note("an unbound plugin token requested with the agent's token: denied");
                }
                other => panic!("an unbound plugin token with the agent's token: {other:?}"),
            }
        } else {
            far_result.unwrap_or_else(|e| {
                panic!("without node binding, the write should go through as before: {e}")
            });
            foreign_event.unwrap_or_else(|e| panic!("without the policy, events go through: {e}"));
            log.note("no admission policy on this server: the write to a pod of another node went through, as before issue 19");
        }
    }

    async fn uninstall_revokes(&self, log: &mut StepLog) {
        let (_, token, _) = self.wait_plugin_token().await;
        let with_token = client_with_token(&token).await;
        with_token
            .list_core_api_versions()
            .await
            .unwrap_or_else(|e| panic!("GET /api with the plugin's token before uninstall: {e}"));
        log.note("GET /api with the node's plugin token: 200 before the uninstall");

        Cmd::kubectl(["delete", "pods", "-n", APP_NS, "--all", "--timeout=150s"])
            .ok()
            .await;
        let deleted = Instant::now();
        self.configs()
            .delete(MC, &DeleteParams::default())
            .await
            .expect("deleting the MultusConfig");
        wait_gone(&self.configs(), MC, 3 * MINUTE).await;
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), OP_NS);
        wait_gone(&sas, PLUGIN_SA, MINUTE).await;
        log.note(&format!(
            "MultusConfig and ServiceAccount {PLUGIN_SA} gone {:.1?} after the delete; token file \
             left on the node: {}",
            deleted.elapsed(),
            Path::new(TOKEN_FILE).exists()
        ));
        let gone = Instant::now();
        let answer = wait_until(
            "GET /api with the old plugin token answered 401",
            MINUTE,
            async || match with_token.list_core_api_versions().await {
                Err(kube::Error::Api(s)) if s.code == 401 => Ok(format!("{s:?}")),
                Ok(v) => Err(format!("still authenticated: {v:?}")),
                Err(e) => Err(format!("other error: {e}")),
            },
        )
        .await;
        log.note(&format!(
            "old token: 401 {:.1?} after the ServiceAccount was gone ({answer})",
            gone.elapsed()
        ));
    }
}
