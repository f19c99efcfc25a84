//! `multus upkeep detach <containerID>`: DEL of the secondary attachments
//! of a live sandbox, with the configs the cache holds, keeping the
//! cluster network. The cache then holds the cluster network only, the
//! pod's network-status names only it and an Event on the pod says what
//! went. The node agent asks for it before it removes Multus from a node
//! whose MultusConfig says `attachedPods: Detach`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::UpkeepError;
use super::survey::{SandboxState, describe, pod_identity, sandbox_state};
use crate::cache::Cache;
use crate::commands::Command;
use crate::commands::del::del_all;
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::k8s::{EventType, K8sClient, K8sSettings, PodRef, fetch_pod};
use crate::network_status::network_statuses;
use multus_config::cni::args::CniArgs;
use multus_config::multus_conf::MultusNetConf;

/// The reason of the Event on a pod whose secondary attachments went.
pub const REASON_DETACHED: &str = "RemovedInterface";

/// What a detach did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detached {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `namespace/name` of the pod, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The attachments released, as `namespace/network@ifname`.
    pub detached: Vec<String>,
}

/// The Event message on the pod.
pub fn detached_message(detached: &[String]) -> String {
    format!(
        "Multus is being removed from this node: removed {} and released {} addresses; the \
         pod keeps its cluster network",
        detached.join(", "),
        if detached.len() == 1 { "its" } else { "their" }
    )
}

/// Detaches the secondary attachments of the live sandbox `container_id`.
pub async fn detach(
    conf: &MultusNetConf,
    cni_path: &[PathBuf],
    container_id: &str,
) -> Result<Detached, UpkeepError> {
    let cache = Cache::for_conf(conf);
    // Not while the runtime's ADD/DEL or a hot-plug works on the sandbox.
    let _lock = cache.lock(container_id, crate::commands::SANDBOX_LOCK_TIMEOUT)?;
    let cached = cache
        .load(container_id, "eth0", "")?
        .ok_or_else(|| UpkeepError::NoCache(container_id.to_owned()))?;
    let (state, reason) = sandbox_state(cached.netns.as_deref());
    if state != SandboxState::Present {
        return Err(UpkeepError::NotPresent {
            container_id: container_id.to_owned(),
            reason: reason.unwrap_or_else(|| "its network namespace is gone".into()),
        });
    }
    let identity = pod_identity(&cached.attachments);
    let pod = identity
        .is_known()
        .then(|| format!("{}/{}", identity.namespace, identity.name));
    let (cluster, secondary): (Vec<_>, Vec<_>) = cached
        .attachments
        .into_iter()
        .partition(|a| a.is_cluster_network);
    let detached: Vec<String> = secondary.iter().map(describe).collect();
    if secondary.is_empty() {
        return Ok(Detached {
            container_id: container_id.to_owned(),
            pod,
            detached,
        });
    }
    let runtime_args = cluster
        .first()
        .or(secondary.first())
        .and_then(|a| CniArgs::parse(&a.cni_args).ok())
        .unwrap_or_default();
    let env = CniEnv {
        command: Command::Del,
        container_id: container_id.to_owned(),
        netns: cached.netns.clone(),
        ifname: cluster
            .first()
            .map_or_else(|| "eth0".to_owned(), |a| a.ifname.clone()),
        args: runtime_args,
        path: cni_path.to_vec(),
    };
    let failures = del_all(&env, conf, &secondary).await;
    if !failures.is_empty() {
        // The cache stays as it was: a retry (or the pod's own DEL) DELs
        // them again, which delegates accept.
        return Err(PluginError::Many(failures).into());
    }
    cache.save(container_id, cached.netns.as_deref(), &cluster)?;
    tracing::info!(container = container_id, pod = pod.as_deref().unwrap_or_default(), detached = ?detached, "detached secondary attachments");
    if identity.is_known() && !conf.is_system_namespace(&identity.namespace) {
        tell_the_pod(conf, &identity, &cluster, &detached).await;
    }
    Ok(Detached {
        container_id: container_id.to_owned(),
        pod,
        detached,
    })
}

/// Rewrites the pod's network-status and records the Event; best effort
/// (the addresses are released whatever the API server says).
async fn tell_the_pod(
    conf: &MultusNetConf,
    identity: &crate::plan::PodIdentity,
    cluster: &[crate::attachment::Attachment],
    detached: &[String],
) {
    let client = match K8sClient::connect(conf, K8sSettings::default()).await {
        Ok(Some(client)) => client,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "no API access; the pod's network-status still names the detached networks");
            return;
        }
    };
    let pod = match fetch_pod(Some(&client), identity).await {
        Ok(Some(pod)) => pod,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot read the pod; its network-status still names the detached networks");
            return;
        }
    };
    if let Err(error) = client
        .set_network_status(&PodRef::from(identity), &network_statuses(cluster))
        .await
    {
        tracing::warn!(%error, "cannot rewrite the pod's network-status");
    }
    client
        .record_event(
            &pod,
            EventType::Normal,
            REASON_DETACHED,
            &detached_message(detached),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upkeep::survey::tests::attachment;

    fn conf(cache_dir: &std::path::Path) -> MultusNetConf {
        MultusNetConf::parse(
            serde_json::json!({
                "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
                "cniDir": cache_dir,
                "delegates": [{"cniVersion":"1.0.0","name":"kindnet","type":"ptp"}]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_event_names_what_went() {
        let text = detached_message(&["leak/br@net1".into()]);
        assert!(
            text.contains("removed leak/br@net1 and released its addresses"),
            "{text}"
        );
        assert!(detached_message(&["a@net1".into(), "b@net2".into()]).contains("their"));
    }

    #[tokio::test]
    async fn a_sandbox_that_is_gone_or_unknown_is_not_detached() {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf(&dir.path().join("multus"));
        let cache = Cache::for_conf(&conf);
        let attachments = [attachment("leak/br", "net1", false)];
        cache
            .save("gone", Some(&dir.path().join("cni-gone")), &attachments)
            .unwrap();
        cache.save("unknown", None, &attachments).unwrap();
        for id in ["gone", "unknown"] {
            let err = detach(&conf, &[], id).await.unwrap_err();
            assert!(matches!(err, UpkeepError::NotPresent { .. }), "{err}");
            assert!(cache.load(id, "eth0", "").unwrap().is_some(), "cache kept");
        }
        let err = detach(&conf, &[], "none").await.unwrap_err();
        assert!(matches!(err, UpkeepError::NoCache(_)), "{err}");
    }

    #[tokio::test]
    async fn a_failed_delegate_keeps_the_cache_and_a_cluster_only_sandbox_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf(&dir.path().join("multus"));
        let cache = Cache::for_conf(&conf);
        let netns = dir.path().join("cni-1");
        std::fs::write(&netns, "").unwrap();
        let mut broken = attachment("leak/br", "net1", false);
        // ADD completed, so DEL must run it; the binary is missing.
        broken.result = Some(serde_json::json!({"cniVersion":"1.0.0"}));
        let both = [attachment("kube-system/kindnet", "eth0", true), broken];
        cache.save("c1", Some(&netns), &both).unwrap();
        let err = detach(&conf, &[dir.path().to_path_buf()], "c1")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("leak/br"), "{err}");
        let kept = cache.load("c1", "eth0", "").unwrap().unwrap();
        assert_eq!(kept.attachments.len(), 2);

        cache.save("c2", Some(&netns), &both[..1]).unwrap();
        let done = detach(&conf, &[], "c2").await.unwrap();
        assert!(done.detached.is_empty());
        assert_eq!(done.pod.as_deref(), Some("leak/p1"));
    }
}
