//! `multus upkeep release <containerID>`: DEL of every attachment of a
//! sandbox that no longer exists, from its cache file, then the file goes
//! (CNI GC semantics: the runtime no longer has the attachment). And
//! `multus upkeep forget <containerID>`: removes the cache file of a live
//! sandbox that holds the cluster network only, which the runtime DELs
//! directly once Multus is gone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::UpkeepError;
use super::survey::{SandboxState, describe, pod_gone, pod_identity, sandbox_state};
use crate::cache::Cache;
use crate::commands::Command;
use crate::commands::del::del_all;
use crate::env::CniEnv;
use crate::error::PluginError;
use multus_config::cni::args::CniArgs;
use multus_config::multus_conf::MultusNetConf;

/// What a release or forget did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `namespace/name` of the pod, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The attachments released (empty for forget).
    pub released: Vec<String>,
}

/// Releases every attachment of the sandbox `container_id`, which must be
/// gone, and removes its cache file.
pub async fn release(
    conf: &MultusNetConf,
    cni_path: &[PathBuf],
    container_id: &str,
) -> Result<Released, UpkeepError> {
    let cache = Cache::for_conf(conf);
    // Not while the runtime's ADD/DEL or a hot-plug works on the sandbox.
    let _lock = cache.lock(container_id, crate::commands::SANDBOX_LOCK_TIMEOUT)?;
    let cached = cache
        .load(container_id, "eth0", "")?
        .ok_or_else(|| UpkeepError::NoCache(container_id.to_owned()))?;
    let (state, reason) = sandbox_state(cached.netns.as_deref());
    let identity = pod_identity(&cached.attachments);
    let gone = match state {
        SandboxState::Gone => true,
        // Nothing recorded: the API server's word that the pod is gone.
        SandboxState::Unknown if cached.netns.is_none() && identity.is_known() => {
            let client = super::api_client(conf).await;
            pod_gone(client.as_ref(), &identity).await == Some(true)
        }
        _ => false,
    };
    if !gone {
        return Err(UpkeepError::NotGone {
            container_id: container_id.to_owned(),
            reason: reason.unwrap_or_else(|| "its network namespace exists".into()),
        });
    }
    let env = CniEnv {
        command: Command::Del,
        container_id: container_id.to_owned(),
        netns: None,
        ifname: "eth0".to_owned(),
        args: cached
            .attachments
            .first()
            .and_then(|a| CniArgs::parse(&a.cni_args).ok())
            .unwrap_or_default(),
        path: cni_path.to_vec(),
    };
    let failures = del_all(&env, conf, &cached.attachments).await;
    if !failures.is_empty() {
        return Err(PluginError::Many(failures).into());
    }
    cache.remove(container_id)?;
    let released: Vec<String> = cached.attachments.iter().map(describe).collect();
    tracing::info!(container = container_id, released = ?released, "released the attachments of a sandbox that is gone");
    Ok(Released {
        container_id: container_id.to_owned(),
        pod: identity
            .is_known()
            .then(|| format!("{}/{}", identity.namespace, identity.name)),
        released,
    })
}

/// Removes the cache file of the live sandbox `container_id` when it
/// holds the cluster network only.
pub fn forget(conf: &MultusNetConf, container_id: &str) -> Result<Released, UpkeepError> {
    let cache = Cache::for_conf(conf);
    // Not while the runtime's ADD/DEL or a hot-plug works on the sandbox.
    let _lock = cache.lock(container_id, crate::commands::SANDBOX_LOCK_TIMEOUT)?;
    let cached = cache
        .load(container_id, "eth0", "")?
        .ok_or_else(|| UpkeepError::NoCache(container_id.to_owned()))?;
    let secondary: Vec<String> = cached
        .attachments
        .iter()
        .filter(|a| !a.is_cluster_network)
        .map(describe)
        .collect();
    if !secondary.is_empty() {
        return Err(UpkeepError::StillAttached {
            container_id: container_id.to_owned(),
            attachments: secondary.join(", "),
        });
    }
    cache.remove(container_id)?;
    let identity = pod_identity(&cached.attachments);
    Ok(Released {
        container_id: container_id.to_owned(),
        pod: identity
            .is_known()
            .then(|| format!("{}/{}", identity.namespace, identity.name)),
        released: Vec::new(),
    })
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

    #[tokio::test]
    async fn only_sandboxes_that_are_gone_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf(&dir.path().join("multus"));
        let cache = Cache::for_conf(&conf);
        let live = dir.path().join("cni-live");
        std::fs::write(&live, "").unwrap();
        // Never completed ADD, plugin missing: DEL skips them, so the
        // release succeeds without binaries.
        let attachments = [
            attachment("kube-system/kindnet", "eth0", true),
            attachment("leak/br", "net1", false),
        ];
        cache.save("live", Some(&live), &attachments).unwrap();
        cache.save("unknown", None, &attachments).unwrap();
        cache
            .save("gone", Some(&dir.path().join("cni-gone")), &attachments)
            .unwrap();
        for id in ["live", "unknown"] {
            let err = release(&conf, &[], id).await.unwrap_err();
            assert!(matches!(err, UpkeepError::NotGone { .. }), "{err}");
            assert!(cache.load(id, "eth0", "").unwrap().is_some());
        }
        let done = release(&conf, &[], "gone").await.unwrap();
        assert_eq!(done.released, ["kube-system/kindnet@eth0", "leak/br@net1"]);
        assert!(cache.load("gone", "eth0", "").unwrap().is_none());
    }

    #[test]
    fn forget_removes_only_cluster_only_caches() {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf(&dir.path().join("multus"));
        let cache = Cache::for_conf(&conf);
        let attachments = [
            attachment("kube-system/kindnet", "eth0", true),
            attachment("leak/br", "net1", false),
        ];
        cache.save("both", None, &attachments).unwrap();
        cache.save("cluster", None, &attachments[..1]).unwrap();
        let err = forget(&conf, "both").unwrap_err();
        assert!(err.to_string().contains("leak/br@net1"), "{err}");
        assert!(cache.load("both", "eth0", "").unwrap().is_some());
        forget(&conf, "cluster").unwrap();
        assert!(cache.load("cluster", "eth0", "").unwrap().is_none());
    }
}
