//! Test pods: their image, creation and deletion, one-line summaries,
//! readiness, addresses inside.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::events::{event_summary, events};
use super::objects::{get_for_poll, wait_gone};
use crate::cmd::Cmd;
use crate::wait::wait_until;

/// The pod annotation that asks for networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// The pod annotation where the plugin reports the attached networks.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Environment variable naming the image of the test pods (it must have
/// `sleep` and `ip`); default `localhost/busybox:local`, which the
/// single-node test cluster has without pulling.
pub const POD_IMAGE_ENV: &str = "MULTUS_E2E_POD_IMAGE";
/// Container waiting reasons that never resolve on their own.
const HOPELESS: &[&str] = &[
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// The image of the test pods.
pub fn pod_image() -> String {
    std::env::var(POD_IMAGE_ENV)
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "localhost/busybox:local".to_owned())
}

/// One line about a pod: phase, readiness, container states, node.
pub fn pod_summary(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(status) = &pod.status else {
        return format!("pod {name}: no status");
    };
    let ready = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or("?", |c| c.status.as_str());
    let containers: Vec<String> = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = c.state.as_ref();
            let what = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                format!(
                    "waiting {} {}",
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_deref().unwrap_or("")
                )
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                format!(
                    "terminated {} exit {}",
                    t.reason.as_deref().unwrap_or(""),
                    t.exit_code
                )
            } else if state.and_then(|s| s.running.as_ref()).is_some() {
                "running".to_owned()
            } else {
                "unknown".to_owned()
            };
            format!("{}: {what} (restarts {})", c.name, c.restart_count)
        })
        .collect();
    // A pod the scheduler could not place says why in PodScheduled (e.g.
    // "untolerated taint {node.kubernetes.io/disk-pressure: }").
    let unscheduled = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            format!(
                ", not scheduled: {} {}",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    format!(
        "pod {name}: phase {}, ready {ready}, node {}{unscheduled}, containers [{}]",
        status.phase.as_deref().unwrap_or("?"),
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("-"),
        containers.join("; ")
    )
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A container waiting reason that will not resolve by waiting.
pub fn hopeless_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| HOPELESS.contains(&w.reason.as_deref().unwrap_or("")))
        .map(|w| {
            format!(
                "{}: {}",
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or("")
            )
        })
}

/// Waits for the pod to be Ready; fails at once on an image or config
/// error that waiting cannot fix. The last-seen message has the pod's
/// state and its recent events.
pub async fn wait_pod_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("pod {namespace}/{name} Ready"),
        timeout,
        async || {
            let pod = get_for_poll(&pods, name, "the pod does not exist").await?;
            if pod_ready(&pod) {
                return Ok(pod);
            }
            if let Some(reason) = hopeless_reason(&pod) {
                panic!(
                    "pod {namespace}/{name} cannot start: {reason} ({})",
                    pod_summary(&pod)
                );
            }
            let recent: Vec<String> = events(client, namespace, name)
                .await
                .iter()
                .rev()
                .take(4)
                .map(event_summary)
                .collect();
            Err(format!(
                "{}; latest events: [{}]",
                pod_summary(&pod),
                recent.join(" | ")
            ))
        },
    )
    .await
}

/// [`pod_summary`] of each pod, joined by `; `.
pub fn pods_summary(pods: &[Pod]) -> String {
    pods.iter().map(pod_summary).collect::<Vec<_>>().join("; ")
}

/// A test pod: one container of [`pod_image`] that sleeps for an hour, gone
/// at once when deleted (no grace period), with the networks, labels and
/// resource limits a test asks for.
#[derive(Debug, Clone)]
pub struct TestPod {
    namespace: String,
    name: String,
    labels: serde_json::Map<String, Value>,
    annotations: serde_json::Map<String, Value>,
    resources: Option<Value>,
    /// `spec.resourceClaims` entries (DRA), each used by the container.
    claims: Vec<Value>,
}

impl TestPod {
    /// The pod `namespace/name`, without extra networks.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels: serde_json::Map::new(),
            annotations: serde_json::Map::new(),
            resources: None,
            claims: Vec::new(),
        }
    }

    /// Asks for the extra `networks` ([`NETWORKS_ANNOTATION`]).
    pub fn networks(mut self, networks: &str) -> Self {
        self.annotations
            .insert(NETWORKS_ANNOTATION.to_owned(), networks.into());
        self
    }

    /// Adds the label `key=value`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.into());
        self
    }

    /// Requests `count` of the extended resource `resource` (as limits).
    pub fn limit(mut self, resource: &str, count: u32) -> Self {
        self.resources = Some(json!({"limits": {resource: count.to_string()}}));
        self
    }

    /// Adds the pod claim `name` made from the ResourceClaimTemplate
    /// `template` (DRA), used by the container.
    pub fn claim_from_template(mut self, name: &str, template: &str) -> Self {
        self.claims
            .push(json!({"name": name, "resourceClaimTemplateName": template}));
        self
    }

    /// Adds the pod claim `name` for the existing ResourceClaim `claim`
    /// (DRA), used by the container.
    pub fn claim(mut self, name: &str, claim: &str) -> Self {
        self.claims
            .push(json!({"name": name, "resourceClaimName": claim}));
        self
    }

    /// The Pod object.
    pub fn object(&self) -> Pod {
        let mut container = json!({
            "name": "main",
            "image": pod_image(),
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
        });
        if let Some(resources) = &self.resources {
            container["resources"] = resources.clone();
        }
        let mut spec = json!({"terminationGracePeriodSeconds": 0});
        if !self.claims.is_empty() {
            let used: Vec<Value> = self
                .claims
                .iter()
                .map(|c| json!({"name": c["name"]}))
                .collect();
            container["resources"]["claims"] = Value::Array(used);
            spec["resourceClaims"] = Value::Array(self.claims.clone());
        }
        spec["containers"] = json!([container]);
        serde_json::from_value(json!({
            "metadata": {
                "name": self.name, "namespace": self.namespace,
                "labels": self.labels, "annotations": self.annotations,
            },
            "spec": spec,
        }))
        .unwrap()
    }

    /// Creates the pod; fails the test when the API server refuses it.
    pub async fn create(&self, client: &kube::Client) {
        let (namespace, name) = (&self.namespace, &self.name);
        Api::<Pod>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &self.object())
            .await
            .unwrap_or_else(|e| panic!("creating pod {namespace}/{name}: {e}"));
    }
}

/// Deletes the pod `name` (a missing one is fine) and waits a minute at
/// most until it is gone.
pub async fn delete_pod(pods: &Api<Pod>, name: &str) {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!(
            "deleting pod {}/{name}: {e}",
            pods.namespace().unwrap_or_default()
        ),
    }
    wait_gone(pods, name, Duration::from_secs(60)).await;
}

/// The IPv4 address (with its prefix length, as `ip` shows it) of
/// interface `iface` inside the pod, by `kubectl exec` (bounded by
/// `timeout`).
pub async fn ipv4_in_pod(
    namespace: &str,
    pod: &str,
    iface: &str,
    timeout: Duration,
) -> Result<String, String> {
    let out = Cmd::kubectl(["exec", "-n", namespace, pod, "--", "ip", "-o", "-4", "addr"])
        .args(["show", iface])
        .run_for(timeout)
        .await?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| format!("no IPv4 address on {iface} in pod {pod}: {out}"))
}

/// Sets the networks annotation ([`NETWORKS_ANNOTATION`]) of a pod (a
/// JSON merge patch, what `kubectl annotate --overwrite` sends); fails
/// the test when the API server refuses it.
pub async fn set_networks(client: &kube::Client, namespace: &str, name: &str, networks: &str) {
    let patch = json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: networks}}});
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| {
            panic!("setting the networks of pod {namespace}/{name} to {networks:?}: {e}")
        });
}

/// The entries of the pod's network-status annotation
/// ([`NETWORK_STATUS_ANNOTATION`]); none when it is missing or not a JSON
/// array.
pub fn network_status_of(pod: &Pod) -> Vec<Value> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NETWORK_STATUS_ANNOTATION))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// How often the pod's containers restarted, summed.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

/// The names of the network links inside the pod (`ip -o link` by
/// `kubectl exec`, bounded by `timeout`), without the `@peer` suffix of
/// veths, sorted.
pub async fn links_in_pod(
    namespace: &str,
    pod: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let out = Cmd::kubectl(["exec", "-n", namespace, pod, "--", "ip", "-o", "link"])
        .run_for(timeout)
        .await?;
    let mut links = parse_link_names(&out);
    if links.is_empty() {
        return Err(format!("no links in `ip -o link` of pod {pod}: {out:?}"));
    }
    links.sort();
    Ok(links)
}

/// The link names of `ip -o link` output (`2: eth0@if7: <...> ...`).
fn parse_link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|name| name.trim_end_matches(':'))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_pod_says_why_it_is_not_scheduled() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "multus-operator-1"},
            "spec": {"containers": [{"name": "operator"}]},
            "status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }."
            }]}
        }))
        .unwrap();
        assert_eq!(
            pod_summary(&pod),
            "pod multus-operator-1: phase Pending, ready ?, node -, not scheduled: Unschedulable \
             0/1 nodes are available: 1 node(s) had untolerated taint \
             {node.kubernetes.io/disk-pressure: }., containers []"
        );
    }

    #[test]
    fn link_names_lose_their_peer_suffix() {
        let out = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n\
                   2: tunl0@NONE: <NOARP> mtu 1480 qdisc noop qlen 1000\\    link/ipip 0.0.0.0 brd 0.0.0.0\n\
                   3: eth0@if12: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue\\    link/ether 0a:58:0a:f4:00:05 brd ff:ff:ff:ff:ff:ff\n\
                   5: net2@if14: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue\\    link/ether 12:34:56:78:9a:bc brd ff:ff:ff:ff:ff:ff\n";
        assert_eq!(parse_link_names(out), ["lo", "tunl0", "eth0", "net2"]);
        assert!(parse_link_names("").is_empty());
    }

    #[test]
    fn network_status_and_restarts_are_read_from_the_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {
                NETWORK_STATUS_ANNOTATION: r#"[{"name":"cbr0","interface":"eth0","default":true},{"name":"ns/a","interface":"net1"}]"#
            }},
            "status": {"containerStatuses": [
                {"name": "a", "restartCount": 2, "ready": true, "image": "i", "imageID": ""},
                {"name": "b", "restartCount": 1, "ready": true, "image": "i", "imageID": ""}
            ]}
        }))
        .unwrap();
        let status = network_status_of(&pod);
        assert_eq!(status.len(), 2);
        assert_eq!(status[1]["interface"], "net1");
        assert_eq!(restart_count(&pod), 3);
        assert!(network_status_of(&TestPod::new("ns", "q").object()).is_empty());
    }

    #[test]
    fn claims_are_declared_and_used_by_the_container() {
        let pod = TestPod::new("ns", "p")
            .limit("example.com/nic", 1)
            .claim_from_template("nic", "nic-template")
            .claim("shared", "shared-claim")
            .object();
        let spec = serde_json::to_value(pod.spec.unwrap()).unwrap();
        assert_eq!(
            spec["resourceClaims"],
            serde_json::json!([
                {"name": "nic", "resourceClaimTemplateName": "nic-template"},
                {"name": "shared", "resourceClaimName": "shared-claim"}
            ])
        );
        let resources = &spec["containers"][0]["resources"];
        assert_eq!(
            resources["claims"],
            serde_json::json!([{"name": "nic"}, {"name": "shared"}])
        );
        assert_eq!(resources["limits"]["example.com/nic"], "1");
        let plain = serde_json::to_value(TestPod::new("ns", "q").object().spec.unwrap()).unwrap();
        assert!(plain.get("resourceClaims").is_none());
    }
}
