//! Reading the pod of an invocation and its NetworkAttachmentDefinitions.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use multus_config::npwg::NetworkAttachmentDefinition;
use tracing::debug;

use super::{K8sClient, K8sError};
use crate::error::Result;
use crate::plan::{NadSource, PodIdentity};

/// Annotation the kubelet sets on pods; anything but `api` marks a static pod.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// The pod a CNI invocation is for (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
/// `K8S_POD_UID` of `CNI_ARGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// UID the runtime created the sandbox for; `None` or empty = unknown.
    pub uid: Option<String>,
}

impl PodRef {
    /// A reference without UID.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: None,
        }
    }

    /// The same reference with a UID.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    pub(super) fn known_uid(&self) -> Option<&str> {
        self.uid.as_deref().filter(|u| !u.is_empty())
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whether the pod is a static pod (its API object is a mirror pod whose UID
/// differs from the one the kubelet uses for the sandbox).
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|source| source != "api")
}

impl From<&PodIdentity> for PodRef {
    /// The API's name for the pod the runtime named in `CNI_ARGS`.
    fn from(identity: &PodIdentity) -> Self {
        Self {
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
            uid: (!identity.uid.is_empty()).then(|| identity.uid.clone()),
        }
    }
}

impl K8sClient {
    /// The pod, `None` when it does not exist. Transient errors are retried
    /// every `retry_interval` until `pod_wait` has elapsed. When `pod.uid` is
    /// given it must match the API's UID, except for static pods.
    pub async fn get_pod(&self, pod: &PodRef) -> Result<Option<Pod>, K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let op = format!("getting pod {pod}");
        let found = match self
            .retrying(&op, usize::MAX, |_| false, || api.get(&pod.name))
            .await
        {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                debug!(pod = %pod, "pod not found");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(expected) = pod.known_uid() {
            let actual = found.metadata.uid.as_deref().unwrap_or_default();
            if actual != expected {
                if is_static_pod(&found) {
                    debug!(
                        pod = %pod, expected, actual,
                        "static pod: the mirror pod's UID differs from the runtime's"
                    );
                } else {
                    return Err(K8sError::UidMismatch {
                        pod: pod.to_string(),
                        actual: actual.to_owned(),
                        expected: expected.to_owned(),
                    });
                }
            }
        }
        Ok(Some(found))
    }

    /// The NetworkAttachmentDefinition, `None` when it does not exist.
    /// Transient errors are retried like `get_pod`. A 404 that is not an API
    /// `NotFound` status (the CRD is not served) is an error.
    pub async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>, K8sError> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("getting NetworkAttachmentDefinition {namespace}/{name}");
        match self
            .retrying(&op, usize::MAX, |_| false, || api.get(name))
            .await
        {
            Ok(nad) => Ok(Some(nad)),
            Err(K8sError::Api {
                code: 404, reason, ..
            }) if reason == "NotFound" => {
                debug!(namespace, name, "NetworkAttachmentDefinition not found");
                Ok(None)
            }
            Err(K8sError::Api {
                op,
                code: 404,
                reason,
                message,
            }) => Err(K8sError::Api {
                op,
                code: 404,
                reason,
                message: format!(
                    "{message} (is the network-attachment-definitions.k8s.cni.cncf.io CRD installed?)"
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

/// The pod of this invocation, when the runtime named one and we have API
/// access. `Ok(None)` when the pod does not exist.
pub async fn fetch_pod(
    client: Option<&K8sClient>,
    identity: &PodIdentity,
) -> Result<Option<Pod>, K8sError> {
    let (Some(client), true) = (client, identity.is_known()) else {
        return Ok(None);
    };
    client.get_pod(&PodRef::from(identity)).await
}

impl NadSource for K8sClient {
    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>> {
        Ok(K8sClient::get_nad(self, namespace, name).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn static_pod_detection() {
        let mut pod = Pod::default();
        assert!(!is_static_pod(&pod));
        let mut annotations = BTreeMap::new();
        annotations.insert(CONFIG_SOURCE_ANNOTATION.to_owned(), "api".to_owned());
        pod.metadata.annotations = Some(annotations.clone());
        assert!(!is_static_pod(&pod));
        annotations.insert(CONFIG_SOURCE_ANNOTATION.to_owned(), "file".to_owned());
        pod.metadata.annotations = Some(annotations);
        assert!(is_static_pod(&pod));
    }
}
