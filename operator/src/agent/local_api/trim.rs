//! What the cache keeps of an object: only the fields the plugin reads,
//! as the JSON it is served as. Everything else (managed fields,
//! `kubectl`'s last-applied copy, container specs, most of the status)
//! would only cost memory.

use std::collections::BTreeMap;

use axum::body::Bytes;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use multus_config::npwg::NetworkAttachmentDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::Entry;

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Anything but `api` marks a static pod (the kubelet's annotation).
const CONFIG_SOURCE: &str = "kubernetes.io/config.source";

/// A kind the cache keeps.
pub trait Cached:
    Resource<DynamicType = ()>
    + DeserializeOwned
    + Serialize
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Name of the kind in logs and errors.
    const KIND: &'static str;

    /// The object reduced to what the plugin reads.
    fn trimmed(self) -> Self;

    /// Whether the object is a static pod's mirror.
    fn is_static_pod(&self) -> bool {
        false
    }
}

fn trimmed_meta(meta: ObjectMeta) -> ObjectMeta {
    let annotations = meta.annotations.map(|mut a| {
        a.remove(LAST_APPLIED);
        a
    });
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        annotations: annotations.filter(|a: &BTreeMap<String, String>| !a.is_empty()),
        deletion_timestamp: meta.deletion_timestamp,
        ..ObjectMeta::default()
    }
}

impl Cached for Pod {
    const KIND: &'static str = "Pod";

    fn trimmed(self) -> Self {
        let spec = self.spec.map(|s| PodSpec {
            node_name: s.node_name,
            host_network: s.host_network,
            resource_claims: s.resource_claims,
            ..PodSpec::default()
        });
        let status = self.status.and_then(|s| {
            let kept = PodStatus {
                // Set once the sandbox's network is up (network hot-plug
                // waits for it).
                pod_ip: s.pod_ip,
                // Only the end states: a completed pod keeps its IP.
                phase: s
                    .phase
                    .filter(|p| matches!(p.as_str(), "Succeeded" | "Failed")),
                resource_claim_statuses: s.resource_claim_statuses,
                extended_resource_claim_status: s.extended_resource_claim_status,
                ..PodStatus::default()
            };
            (kept != PodStatus::default()).then_some(kept)
        });
        Pod {
            metadata: trimmed_meta(self.metadata),
            spec,
            status,
        }
    }

    fn is_static_pod(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_SOURCE))
            .is_some_and(|source| source != "api")
    }
}

impl Cached for NetworkAttachmentDefinition {
    const KIND: &'static str = "NetworkAttachmentDefinition";

    fn trimmed(mut self) -> Self {
        self.metadata = trimmed_meta(self.metadata);
        self
    }
}

/// The cache key and entry of an object; `None` for an object without
/// name (never sent by the API server).
pub fn entry<K: Cached>(object: K) -> Option<(String, Entry)> {
    let object = object.trimmed();
    let meta = object.meta();
    let key = super::store::key(meta.namespace.as_deref()?, meta.name.as_deref()?);
    let uid = meta.uid.clone().unwrap_or_default();
    let static_pod = object.is_static_pod();
    let body = serde_json::to_vec(&object).ok()?;
    Some((
        key,
        Entry {
            uid,
            static_pod,
            body: Bytes::from(body),
        },
    ))
}

/// The cache key of an object.
pub fn key_of<K: Cached>(object: &K) -> Option<String> {
    let meta = object.meta();
    Some(super::store::key(
        meta.namespace.as_deref()?,
        meta.name.as_deref()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_keeps_what_the_plugin_reads() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "app", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {
                    "k8s.v1.cni.cncf.io/networks": "net-a",
                    LAST_APPLIED: "{\"huge\": true}"
                }
            },
            "spec": {
                "nodeName": "vm",
                "containers": [{"name": "c", "image": "busybox"}],
                "resourceClaims": [{"name": "nic", "resourceClaimName": "claim-1"}]
            },
            "status": {"phase": "Pending", "resourceClaimStatuses": [{"name": "nic2", "resourceClaimName": "gen-1"}]}
        }))
        .unwrap();
        let (key, entry) = entry(pod).unwrap();
        assert_eq!(key, "app/web");
        assert_eq!(entry.uid, "u1");
        assert!(!entry.static_pod);
        let served: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(served["kind"], "Pod");
        assert_eq!(served["apiVersion"], "v1");
        assert_eq!(
            served["metadata"]["annotations"],
            json!({"k8s.v1.cni.cncf.io/networks": "net-a"})
        );
        assert!(served["metadata"].get("labels").is_none());
        assert!(served["metadata"].get("managedFields").is_none());
        assert_eq!(served["metadata"]["resourceVersion"], "7");
        assert_eq!(served["spec"]["nodeName"], "vm");
        assert_eq!(served["spec"]["containers"], json!([]));
        assert_eq!(
            served["spec"]["resourceClaims"][0]["resourceClaimName"],
            "claim-1"
        );
        assert!(served["status"].get("phase").is_none());
        assert_eq!(
            served["status"]["resourceClaimStatuses"][0]["resourceClaimName"],
            "gen-1"
        );
        // The plugin reads it back as a Pod.
        let back: Pod = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(back.metadata.uid.as_deref(), Some("u1"));
    }

    #[test]
    fn static_pods_are_marked() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "etcd-vm", "namespace": "kube-system", "uid": "mirror",
                         "annotations": {CONFIG_SOURCE: "file"}}
        }))
        .unwrap();
        assert!(entry(pod).unwrap().1.static_pod);
    }

    #[test]
    fn nad_keeps_config_and_resource_annotation() {
        let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "sriov", "namespace": "app", "uid": "n1",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/vf", LAST_APPLIED: "{}"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"sriov\"}"}
        }))
        .unwrap();
        let (key, entry) = entry(nad).unwrap();
        assert_eq!(key, "app/sriov");
        let served: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(
            served["metadata"]["annotations"],
            json!({"k8s.v1.cni.cncf.io/resourceName": "intel.com/vf"})
        );
        assert_eq!(
            served["spec"]["config"],
            "{\"cniVersion\":\"1.0.0\",\"type\":\"sriov\"}"
        );
        assert_eq!(served["kind"], "NetworkAttachmentDefinition");
        assert!(served["metadata"].get("managedFields").is_none());
    }
}
