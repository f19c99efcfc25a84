//! `multus upkeep sandboxes`: the sandboxes the cache knows, whether each
//! still exists, and which secondary attachments it holds.
//!
//! A sandbox exists while its network namespace does: the runtime removes
//! the namespace with the sandbox (containerd and CRI-O bind-mount it
//! under `/var/run/netns`). A cache file without a recorded namespace
//! (upstream Multus, or an older version of ours) is judged by the API
//! server ([`judge_by_the_api`]); one that stays undecided, or whose
//! namespace directory is not visible, is `unknown` and treated as live:
//! its attachments are never released behind the runtime's back.

use std::path::{Path, PathBuf};

use multus_config::cni::args::CniArgs;
use serde::{Deserialize, Serialize};

use crate::attachment::Attachment;
use crate::cache::{Cache, CacheError, CachedAttachments};
use crate::k8s::{K8sClient, K8sError, fetch_pod};
use crate::plan::PodIdentity;

/// Whether a cached sandbox still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SandboxState {
    /// Its network namespace exists.
    Present,
    /// Its network namespace is gone while its directory is there.
    Gone,
    /// Cannot tell; treated as present.
    Unknown,
}

/// One cached sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    /// The runtime's container ID (the cache file's name).
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `namespace/name` of the pod, when the cache records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's UID, when the cache records it.
    #[serde(default, rename = "podUID", skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The recorded network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// Whether the sandbox still exists.
    pub state: SandboxState,
    /// Why the state is `unknown`, or why the cache file is unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The secondary attachments, as `namespace/network@ifname`.
    #[serde(default)]
    pub secondary: Vec<String>,
}

/// The state of a sandbox whose namespace was recorded as `netns`.
pub fn sandbox_state(netns: Option<&Path>) -> (SandboxState, Option<String>) {
    let Some(netns) = netns else {
        return (
            SandboxState::Unknown,
            Some(
                "no network namespace recorded (set up by upstream Multus or an older version)"
                    .into(),
            ),
        );
    };
    if netns.exists() {
        return (SandboxState::Present, None);
    }
    match netns.parent() {
        Some(dir) if dir.is_dir() => (SandboxState::Gone, None),
        _ => (
            SandboxState::Unknown,
            Some(format!(
                "the directory of network namespace {} is not visible",
                netns.display()
            )),
        ),
    }
}

/// `namespace/network@ifname` of an attachment.
pub fn describe(attachment: &Attachment) -> String {
    format!("{}@{}", attachment.name, attachment.ifname)
}

/// The pod of cached attachments, from the `CNI_ARGS` ADD gave them.
pub fn pod_identity(attachments: &[Attachment]) -> PodIdentity {
    attachments
        .iter()
        .find_map(|a| CniArgs::parse(&a.cni_args).ok())
        .map(|args| PodIdentity::from_args(&args))
        .unwrap_or_default()
}

/// What one cache file says.
pub fn sandbox(container_id: &str, cached: &CachedAttachments) -> Sandbox {
    let identity = pod_identity(&cached.attachments);
    let (state, reason) = sandbox_state(cached.netns.as_deref());
    Sandbox {
        container_id: container_id.to_owned(),
        pod: identity
            .is_known()
            .then(|| format!("{}/{}", identity.namespace, identity.name)),
        pod_uid: (!identity.uid.is_empty()).then_some(identity.uid),
        netns: cached.netns.clone(),
        state,
        reason,
        secondary: cached
            .attachments
            .iter()
            .filter(|a| !a.is_cluster_network)
            .map(describe)
            .collect(),
    }
}

/// Whether the API server says pod `identity` is gone: `Some(true)` when
/// it does not exist or has another UID (a new pod of the same name),
/// `Some(false)` when it exists, `None` when the API cannot tell.
pub async fn pod_gone(client: Option<&K8sClient>, identity: &PodIdentity) -> Option<bool> {
    if !identity.is_known() {
        return None;
    }
    match fetch_pod(client, identity).await {
        Ok(Some(_)) => Some(false),
        Ok(None) => client.map(|_| true),
        Err(K8sError::UidMismatch { .. }) => Some(true),
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether the pod still exists");
            None
        }
    }
}

/// The identity of a listed sandbox's pod.
fn identity_of(sandbox: &Sandbox) -> PodIdentity {
    let (namespace, name) = sandbox
        .pod
        .as_deref()
        .and_then(|p| p.split_once('/'))
        .unwrap_or_default();
    PodIdentity {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: sandbox.pod_uid.clone().unwrap_or_default(),
    }
}

/// For sandboxes without a recorded network namespace (upstream Multus,
/// older versions) asks the API server instead: a pod that is gone (or
/// replaced by one with another UID) has no sandbox left here.
pub async fn judge_by_the_api(client: Option<&K8sClient>, sandboxes: &mut [Sandbox]) {
    for sandbox in sandboxes
        .iter_mut()
        .filter(|s| s.state == SandboxState::Unknown && s.netns.is_none())
    {
        if pod_gone(client, &identity_of(sandbox)).await == Some(true) {
            sandbox.state = SandboxState::Gone;
            sandbox.reason =
                Some("no network namespace recorded; the pod is gone from the API server".into());
        }
    }
}

/// Every sandbox of the cache; an unreadable file is an `unknown` sandbox
/// with the error as its reason.
pub fn survey(cache: &Cache) -> Result<Vec<Sandbox>, CacheError> {
    let mut out = Vec::new();
    for id in cache.container_ids()? {
        match cache.load(&id, "eth0", "") {
            Ok(Some(cached)) => out.push(sandbox(&id, &cached)),
            Ok(None) => {}
            Err(error) => out.push(Sandbox {
                container_id: id,
                pod: None,
                pod_uid: None,
                netns: None,
                state: SandboxState::Unknown,
                reason: Some(error.to_string()),
                secondary: Vec::new(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attachment::DeviceAttachment;
    use multus_config::cni::netconf::NetworkConfig;
    use serde_json::{Map, json};

    pub(crate) fn attachment(name: &str, ifname: &str, cluster: bool) -> Attachment {
        Attachment {
            name: name.into(),
            config: NetworkConfig::from_value(
                json!({"cniVersion":"1.0.0","name":name.replace('/', "-"),"type":"bridge"}),
            )
            .unwrap(),
            ifname: ifname.into(),
            capability_args: Map::new(),
            cni_args: "IgnoreUnknown=true;K8S_POD_NAMESPACE=leak;K8S_POD_NAME=p1;K8S_POD_UID=u-1"
                .into(),
            is_cluster_network: cluster,
            default_route: None,
            result: None,
            device: DeviceAttachment::default(),
            origin: Default::default(),
        }
    }

    #[test]
    fn a_sandbox_is_live_while_its_namespace_exists_and_unknown_when_unsure() {
        let dir = tempfile::tempdir().unwrap();
        let netns = dir.path().join("cni-1");
        std::fs::write(&netns, "").unwrap();
        assert_eq!(sandbox_state(Some(&netns)).0, SandboxState::Present);
        std::fs::remove_file(&netns).unwrap();
        assert_eq!(sandbox_state(Some(&netns)).0, SandboxState::Gone);
        let hidden = dir.path().join("missing-dir/cni-1");
        let (state, reason) = sandbox_state(Some(&hidden));
        assert_eq!(state, SandboxState::Unknown);
        assert!(reason.unwrap().contains("not visible"));
        assert_eq!(sandbox_state(None).0, SandboxState::Unknown);
    }

    #[test]
    fn the_survey_names_the_pod_and_its_secondary_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("multus"));
        let netns = dir.path().join("cni-1");
        std::fs::write(&netns, "").unwrap();
        let attachments = [
            attachment("kube-system/kindnet", "eth0", true),
            attachment("leak/br", "net1", false),
        ];
        cache.save("c1", Some(&netns), &attachments).unwrap();
        cache.save("c2", None, &attachments[..1]).unwrap();
        std::fs::write(dir.path().join("multus/c3"), "not json").unwrap();
        let found = survey(&cache).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].pod.as_deref(), Some("leak/p1"));
        assert_eq!(found[0].pod_uid.as_deref(), Some("u-1"));
        assert_eq!(found[0].state, SandboxState::Present);
        assert_eq!(found[0].secondary, ["leak/br@net1"]);
        assert_eq!(found[1].state, SandboxState::Unknown);
        assert!(found[1].secondary.is_empty());
        assert_eq!(found[2].state, SandboxState::Unknown);
        assert!(found[2].reason.as_deref().unwrap().contains("corrupt"));
        let text = serde_json::to_string(&found[0]).unwrap();
        assert!(text.contains(r#""containerID":"c1""#), "{text}");
        assert!(text.contains(r#""state":"present""#), "{text}");
    }

    #[tokio::test]
    async fn without_the_api_an_unrecorded_sandbox_stays_unknown() {
        let mut found = vec![Sandbox {
            container_id: "c1".into(),
            pod: Some("leak/p1".into()),
            pod_uid: Some("u-1".into()),
            netns: None,
            state: SandboxState::Unknown,
            reason: None,
            secondary: vec!["leak/br@net1".into()],
        }];
        judge_by_the_api(None, &mut found).await;
        assert_eq!(found[0].state, SandboxState::Unknown);
        assert_eq!(identity_of(&found[0]).uid, "u-1");
        assert_eq!(identity_of(&found[0]).namespace, "leak");
    }
}
