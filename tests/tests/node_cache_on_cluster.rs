//! End-to-end: the node agent serves the plugin (issue 16), through the
//! chart, on the real node:
//!
//! 1. with the agent up, a pod with 2 NADs is attached (net1, net2) while
//!    the plugin makes **no** GET of the pod or of its NADs (counted in the
//!    API server's audit log); only its writes remain;
//! 2. with the agent unreachable (its socket replaced by a dead one, what
//!    the plugin sees of an agent that is down), the next pod is attached
//!    too, reading the pod and the NADs from the API server as before;
//! 3. after the agent pod is restarted, lookups are served again (0 GETs);
//! 4. bad input on the lookup socket (garbage, a huge body, unknown
//!    versions, a pod of another node, no UID) gets a clear error and the
//!    agent keeps answering.
//!
//! Runs when `MULTUS_E2E_KUBECONFIG` is set (fails without it under
//! `CI=true`); the GET counts need the API server's audit log,
//! `MULTUS_E2E_AUDIT_LOG` (required under `CI=true`, else those checks
//! are skipped with a note). Needs what chart_on_cluster.rs needs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use multus_e2e::cluster::{
    TestPod, create_nad, create_namespace, install_privileged, ipv4_in_pod, nad_object,
    remove_release, single_node_without_multus, wait_mc_ready, wait_pod_ready,
};
use multus_e2e::{E2eSession, StepLog, remove_link, remove_namespace, remove_path, wait_until};
use serde_json::Value;

const TEST: &str = "node_agent_serves_the_plugin_on_a_real_cluster";
const RELEASE: &str = "multus-e2e-cache";
const OP_NS: &str = "multus-e2e-cache";
const OPERATOR: &str = "multus-e2e-cache-operator";
const MC_SELECTOR: &str = "app.kubernetes.io/instance=multus-e2e-cache";
const APP_NS: &str = "multus-e2e-cache-app";
const NADS: [(&str, &str, &str); 2] = [
    (
        "e2e-cache-a",
        "e2ecachea0",
        r#"{"cniVersion":"1.0.0","name":"e2e-cache-a","type":"bridge","bridge":"e2ecachea0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.253.1.0/24"}]]}}"#,
    ),
    (
        "e2e-cache-b",
        "e2ecacheb0",
        r#"{"cniVersion":"1.0.0","name":"e2e-cache-b","type":"bridge","bridge":"e2ecacheb0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.253.2.0/24"}]]}}"#,
    ),
];
const SOCKET: &str = "/run/multus/agent.sock";
const MINUTE: Duration = Duration::from_secs(60);

fn remove_all() {
    remove_namespace(APP_NS, 2 * MINUTE);
    remove_release(RELEASE, OP_NS, MC_SELECTOR);
    for (nad, bridge, _) in NADS {
        remove_link(bridge);
        remove_path(format!("/var/lib/cni/networks/{nad}"));
    }
}

/// The API server's audit log, from an offset on.
struct Audit {
    path: PathBuf,
}

/// What Multus' identities asked about the test's namespace.
#[derive(Debug, Default)]
struct Asked {
    pod_gets: usize,
    nad_gets: usize,
    pod_writes: usize,
    lines: Vec<String>,
}

impl Audit {
    fn from_env() -> Option<Self> {
        let path = std::env::var_os("MULTUS_E2E_AUDIT_LOG").map(PathBuf::from)?;
        Some(Self { path })
    }

    fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests of the release's ServiceAccounts (plugin and agent) about
    /// `pod` and the test's NADs, logged after `offset`.
    fn asked_since(&self, offset: u64, pod: &str) -> Asked {
        self.asked_matching(offset, |name| name == pod)
    }

    /// Like [`Audit::asked_since`] for every pod whose name `is_ours`.
    fn asked_matching(&self, offset: u64, is_ours: impl Fn(&str) -> bool) -> Asked {
        let mut file = std::fs::File::open(&self.path)
            .unwrap_or_else(|e| panic!("audit log {}: {e}", self.path.display()));
        file.seek(SeekFrom::Start(offset)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let ours = format!("system:serviceaccount:{OP_NS}:");
        let mut asked = Asked::default();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let user = entry["user"]["username"].as_str().unwrap_or_default();
            let object = &entry["objectRef"];
            if !user.starts_with(&ours) || object["namespace"] != APP_NS {
                continue;
            }
            let verb = entry["verb"].as_str().unwrap_or_default();
            let resource = object["resource"].as_str().unwrap_or_default();
            let name = object["name"].as_str().unwrap_or_default();
            let sub = object["subresource"].as_str().unwrap_or_default();
            match (verb, resource) {
                ("get", "pods") if is_ours(name) && sub.is_empty() => asked.pod_gets += 1,
                ("get", "network-attachment-definitions") => asked.nad_gets += 1,
                ("patch" | "update", "pods") if is_ours(name) => asked.pod_writes += 1,
                _ => continue,
            }
            asked
                .lines
                .push(format!("{user} {verb} {resource}/{name} {sub}"));
        }
        asked
    }
}

#[tokio::test]
async fn node_agent_serves_the_plugin_on_a_real_cluster() {
    let Some(mut e2e) = E2eSession::start(TEST, env!("CARGO_TARGET_TMPDIR")).await else {
        return;
    };
    let audit = Audit::from_env();
    if audit.is_none() {
        assert!(
            !multus_e2e::running_in_ci(),
            "MULTUS_E2E_AUDIT_LOG is not set: under CI the API server's audit log must be given"
        );
    }
    e2e.log
        .step("preflight: a single node on this machine, no Multus");
    remove_all();
    let node = single_node_without_multus(&e2e.client).await;
    e2e.arm_teardown(
        &[OP_NS.to_owned(), APP_NS.to_owned()],
        "remove the test's objects",
        remove_all,
    );
    let t = Cache {
        client: e2e.client.clone(),
        node,
        audit,
    };
    let log = &mut e2e.log;

    log.step("install; the agent serves its caches on the lookup socket");
    install_privileged(&t.client, RELEASE, OP_NS, OPERATOR, &[]).await;
    wait_mc_ready(&t.client, "default", 3 * MINUTE).await;
    create_namespace(&t.client, APP_NS).await;
    for (nad, _, config) in NADS {
        create_nad(&t.client, &nad_object(APP_NS, nad, config)).await;
    }
    t.agent_answers(log, NADS[0].0).await;

    log.step("1: agent up: a pod with 2 NADs, no GET by the plugin");
    let asked = t.attach(log, "c1").await;
    t.expect_cached(log, "c1", &asked);

    log.step("1b: a burst of 48 pods with 2 NADs each, agent up");
    let cached = t.burst(log, "hot").await;

    log.step("2: agent unreachable: the plugin reads from the API server");
    let kept = Path::new(SOCKET).with_extension("sock.e2e-kept");
    std::fs::rename(SOCKET, &kept).expect("moving the agent's socket aside");
    let dead = Path::new(SOCKET).with_extension("sock.e2e-dead");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("binding a dead socket"));
    std::fs::rename(&dead, SOCKET).unwrap();
    let asked = t.attach(log, "c2").await;
    if t.audit.is_some() {
        assert!(
            asked.pod_gets >= 1 && asked.nad_gets >= 2,
            "without the agent the plugin must read the pod and both NADs from the API server: {asked:#?}"
        );
        log.note(&format!(
            "agent unreachable: {} GET pod, {} GET NAD, {} pod writes",
            asked.pod_gets, asked.nad_gets, asked.pod_writes
        ));
    }
    log.step("2b: the same burst, agent unreachable");
    let uncached = t.burst(log, "cold").await;
    log.note(&format!(
        "side by side: all 48 Ready after {:.1} s with the cache, {:.1} s without; median pod {:.1} s / {:.1} s",
        cached.all_ready.as_secs_f64(),
        uncached.all_ready.as_secs_f64(),
        cached.median.as_secs_f64(),
        uncached.median.as_secs_f64()
    ));
    let _ = std::fs::remove_file(&kept);

    log.step("3: agent restarted: lookups served again");
    t.restart_agent().await;
    t.agent_answers(log, NADS[1].0).await;
    let asked = t.attach(log, "c3").await;
    t.expect_cached(log, "c3", &asked);

    log.step("4: bad input on the lookup socket");
    t.bad_input(log).await;

    e2e.finish();
}

/// How a burst went.
struct Burst {
    all_ready: Duration,
    median: Duration,
}

const BURST: usize = 48;

struct Cache {
    client: Client,
    node: String,
    audit: Option<Audit>,
}

/// One HTTP/1.1 exchange on the lookup socket: status line and body.
fn exchange(request: &[u8]) -> (String, String) {
    try_exchange(request).unwrap_or_else(|e| panic!("connecting to the agent's socket: {e}"))
}

fn try_exchange(request: &[u8]) -> std::io::Result<(String, String)> {
    let mut stream = UnixStream::connect(SOCKET)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn get(path: &str) -> (String, String) {
    exchange(format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes())
}

impl Cache {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    /// The agent's socket answers a NAD lookup from its cache.
    async fn agent_answers(&self, log: &mut StepLog, nad: &str) {
        let path = format!("/v1/nads/{APP_NS}/{nad}");
        wait_until(
            &format!("the agent answers {path}"),
            2 * MINUTE,
            async || {
                if !Path::new(SOCKET).exists() {
                    return Err(format!("{SOCKET} does not exist"));
                }
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
                let (status, body) = try_exchange(request.as_bytes())
                    .map_err(|e| format!("connecting to {SOCKET}: {e}"))?;
                if status.contains(" 200 ") && body.contains(nad) {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}"))
                }
            },
        )
        .await;
        let conf = [
            "/etc/cni/net.d/00-multus.conflist",
            "/etc/cni/net.d/00-multus.conf",
        ]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .expect("no 00-multus.conf[list] on the node");
        assert!(
            conf.contains(&format!("\"nodeAgentSocket\": \"{SOCKET}\""))
                || conf.contains(&format!("\"nodeAgentSocket\":\"{SOCKET}\"")),
            "00-multus.conf does not announce the socket: {conf}"
        );
        log.note(&format!(
            "{SOCKET} answers {path}; 00-multus.conf announces it"
        ));
    }

    /// A pod with both NADs, Ready with net1 and net2; what Multus asked.
    async fn attach(&self, log: &mut StepLog, name: &str) -> Asked {
        let offset = self.audit.as_ref().map(Audit::offset).unwrap_or(0);
        TestPod::new(APP_NS, name)
            .networks(&format!("{},{}", NADS[0].0, NADS[1].0))
            .create(&self.client)
            .await;
        wait_pod_ready(&self.client, APP_NS, name, 2 * MINUTE).await;
        for (ifname, subnet) in [("net1", "10.253.1."), ("net2", "10.253.2.")] {
            let address = ipv4_in_pod(APP_NS, name, ifname, MINUTE)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(address.starts_with(subnet), "{ifname} of {name}: {address}");
        }
        log.note(&format!("{name} Ready with net1 and net2"));
        match &self.audit {
            Some(audit) => {
                // The audit backend writes before answering; the status
                // patch came before Ready.
                audit.asked_since(offset, name)
            }
            None => Asked::default(),
        }
    }

    fn expect_cached(&self, log: &mut StepLog, pod: &str, asked: &Asked) {
        let Some(audit) = &self.audit else {
            log.note("no audit log (MULTUS_E2E_AUDIT_LOG): GET counts not checked");
            return;
        };
        assert!(
            asked.pod_writes >= 1,
            "no network-status write of {pod} found in {}: the audit log is not read right ({asked:#?})",
            audit.path.display()
        );
        assert_eq!(
            (asked.pod_gets, asked.nad_gets),
            (0, 0),
            "with the agent up the plugin must not GET the pod or its NADs: {asked:#?}"
        );
        log.note(&format!(
            "agent up: 0 GET pod, 0 GET NAD, {} pod write(s)",
            asked.pod_writes
        ));
    }

    /// Creates [`BURST`] pods with both NADs at once; all must become
    /// Ready with no failed sandbox. The pods are deleted afterwards.
    async fn burst(&self, log: &mut StepLog, batch: &str) -> Burst {
        let offset = self.audit.as_ref().map(Audit::offset).unwrap_or(0);
        let start = std::time::Instant::now();
        for i in 0..BURST {
            TestPod::new(APP_NS, &format!("{batch}-{i}"))
                .networks(&format!("{},{}", NADS[0].0, NADS[1].0))
                .label("burst", batch)
                .create(&self.client)
                .await;
        }
        let selector = ListParams::default().labels(&format!("burst={batch}"));
        let mut ready_at: Vec<Duration> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let pods = self.pods().list(&selector).await.unwrap().items;
            let now = start.elapsed();
            for pod in pods.iter().filter(|p| multus_e2e::cluster::pod_ready(p)) {
                if seen.insert(pod.name_any()) {
                    ready_at.push(now);
                }
            }
            if ready_at.len() == BURST {
                break;
            }
            assert!(
                now < 5 * MINUTE,
                "{batch}: only {} of {BURST} pods Ready after 5 minutes: {}",
                ready_at.len(),
                multus_e2e::cluster::pods_summary(&pods)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let failed = multus_e2e::cluster::events_with_reason(
            &self.client,
            APP_NS,
            "FailedCreatePodSandBox",
            &format!("{batch}-"),
        )
        .await;
        assert!(
            failed.is_empty(),
            "{batch}: {} FailedCreatePodSandBox events: {:?}",
            failed.len(),
            failed.iter().map(|e| e.message.clone()).collect::<Vec<_>>()
        );
        ready_at.sort();
        let burst = Burst {
            all_ready: ready_at[BURST - 1],
            median: ready_at[BURST / 2],
        };
        let prefix = format!("{batch}-");
        let asked = self
            .audit
            .as_ref()
            .map(|a| a.asked_matching(offset, |name| name.starts_with(&prefix)))
            .unwrap_or_default();
        log.note(&format!(
            "{batch}: {BURST} pods Ready after {:.1} s (median {:.1} s), 0 failed sandboxes; \
             Multus asked {} GET pod, {} GET NAD, {} pod writes",
            burst.all_ready.as_secs_f64(),
            burst.median.as_secs_f64(),
            asked.pod_gets,
            asked.nad_gets,
            asked.pod_writes
        ));
        let label = format!("burst={batch}");
        multus_e2e::Cmd::kubectl(["delete", "pods", "-n", APP_NS, "-l"])
            .args([label.as_str(), "--wait=true", "--timeout=180s"])
            .ok()
            .await;
        burst
    }

    async fn restart_agent(&self) {
        let agents: Api<Pod> = Api::namespaced(self.client.clone(), OP_NS);
        let list = agents
            .list(&ListParams::default().labels("app.kubernetes.io/component=node-agent"))
            .await
            .unwrap();
        assert!(!list.items.is_empty(), "no agent pod in {OP_NS}");
        for pod in list.items {
            agents
                .delete(&pod.name_any(), &DeleteParams::default())
                .await
                .unwrap();
        }
    }

    async fn bad_input(&self, log: &mut StepLog) {
        let (status, _) = exchange(b"\x00\x01garbage that is not HTTP\r\n\r\n");
        assert!(
            status.is_empty() || status.contains(" 400 "),
            "garbage: {status}"
        );
        let mut huge = b"POST /v1/nads/x/y HTTP/1.1\r\nHost: agent\r\nContent-Length: 67108864\r\nConnection: close\r\n\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        let (status, body) = exchange(&huge);
        assert!(
            status.is_empty() || status.contains(" 404 ") || status.contains(" 413 "),
            "huge POST: {status} {body}"
        );
        let (status, body) = get(&format!("/v2/nads/{APP_NS}/{}", NADS[0].0));
        assert!(
            status.contains(" 404 ") && body.contains("NotServed"),
            "v2: {status} {body}"
        );
        let (status, body) = get(&format!("/v1/pods/{APP_NS}/c1"));
        assert!(
            status.contains(" 400 ") && body.contains("uid"),
            "no uid: {status} {body}"
        );
        // A pod of another node: the API has it, the agent does not serve it.
        let mut far = TestPod::new(APP_NS, "far").object();
        far.spec.as_mut().unwrap().node_name = Some("e2e-cache-elsewhere".into());
        let far = self
            .pods()
            .create(&Default::default(), &far)
            .await
            .expect("creating a pod bound to another node");
        let uid = far.uid().unwrap_or_default();
        let (status, body) = get(&format!("/v1/pods/{APP_NS}/far?uid={uid}"));
        assert!(
            status.contains(" 404 ") && body.contains(&format!("node {}", self.node)),
            "pod not on the node: {status} {body}"
        );
        // Still answering after all that.
        let (status, body) = get(&format!("/v1/nads/{APP_NS}/{}", NADS[0].0));
        assert!(status.contains(" 200 "), "after bad input: {status} {body}");
        log.note("garbage, huge body, /v2, missing uid and foreign pod refused; still answering");
    }
}
