//! Writing the network-status annotation of the pod.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use multus_config::npwg::{
    NETWORK_STATUS_ANNOTATION, NetworkStatus, network_status_annotation_value,
};
use tracing::{debug, info};

use super::{K8sClient, K8sError, PodRef};

/// Tries of the network-status PATCH (409 Conflict and transient errors).
const STATUS_PATCH_ATTEMPTS: usize = 5;

/// The merge patch of `set_network_status`: the annotation, plus `metadata.uid`
/// as a precondition when the UID is known.
pub fn network_status_patch(uid: Option<&str>, statuses: &[NetworkStatus]) -> serde_json::Value {
    let mut metadata = serde_json::Map::new();
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        metadata.insert("uid".to_owned(), serde_json::Value::from(uid));
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        NETWORK_STATUS_ANNOTATION.to_owned(),
        serde_json::Value::from(network_status_annotation_value(statuses)),
    );
    metadata.insert(
        "annotations".to_owned(),
        serde_json::Value::Object(annotations),
    );
    let mut root = serde_json::Map::new();
    root.insert("metadata".to_owned(), serde_json::Value::Object(metadata));
    serde_json::Value::Object(root)
}

impl K8sClient {
    /// Writes the network-status annotation with one merge PATCH of the
    /// pods/status subresource. The known UID is a precondition, so a pod
    /// recreated under the same name is left alone. 409 Conflict and transient
    /// errors are retried (5 tries within `pod_wait`); a pod that is gone is
    /// not an error.
    pub async fn set_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let patch = network_status_patch(pod.known_uid(), statuses);
        let op = format!("patching the network-status of pod {pod}");
        let params = PatchParams::default();
        let patch = Patch::Merge(&patch);
        let conflict =
            |e: &K8sError| e.status_code() == Some(409) && !e.is_uid_precondition_failure();
        let result = self
            .retrying(&op, STATUS_PATCH_ATTEMPTS, conflict, || {
                api.patch_status(&pod.name, &params, &patch)
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                debug!(pod = %pod, "pod is gone; network-status not written");
                Ok(())
            }
            Err(e) if e.is_uid_precondition_failure() => {
                info!(
                    pod = %pod,
                    error = %e,
                    "pod was recreated under the same name; network-status not written"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patch_shape() {
        let statuses = vec![NetworkStatus {
            name: "ns/nad".into(),
            interface: Some("net1".into()),
            ips: vec!["10.1.1.5".into()],
            ..NetworkStatus::default()
        }];
        let patch = network_status_patch(Some("u-1"), &statuses);
        assert_eq!(patch["metadata"]["uid"], "u-1");
        let value = patch["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(value, network_status_annotation_value(&statuses));
        let patch = network_status_patch(None, &statuses);
        assert!(patch["metadata"].get("uid").is_none());
        let patch = network_status_patch(Some(""), &statuses);
        assert!(patch["metadata"].get("uid").is_none());
    }
}
