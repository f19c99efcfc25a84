//! Where the plugin reads the pod and its NADs: the node agent's cache
//! first ([`NodeAgent`]), the API server on any miss.

use k8s_openapi::api::core::v1::Pod;
use multus_config::npwg::NetworkAttachmentDefinition;

use crate::error::Result;
use crate::k8s::{K8sClient, K8sError, PodRef, fetch_pod};
use crate::node_agent::NodeAgent;
use crate::plan::{NadSource, PodIdentity};

/// The node agent (if the config announces one) before the API server.
#[derive(Debug, Clone, Copy)]
pub struct Lookups<'a> {
    /// The node agent's cache.
    pub agent: Option<&'a NodeAgent>,
    /// The API server.
    pub api: &'a K8sClient,
}

impl Lookups<'_> {
    /// The pod of this invocation, `None` when the runtime named none or it
    /// does not exist (as `fetch_pod`).
    pub async fn pod(&self, identity: &PodIdentity) -> Result<Option<Pod>, K8sError> {
        if let Some(agent) = self.agent.filter(|_| identity.is_known())
            && let Some(found) = agent.pod(&PodRef::from(identity)).await
        {
            return Ok(Some(found));
        }
        fetch_pod(Some(self.api), identity).await
    }
}

impl NadSource for Lookups<'_> {
    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>> {
        if let Some(agent) = self.agent
            && let Some(found) = agent.nad(namespace, name).await
        {
            return Ok(Some(found));
        }
        Ok(self.api.get_nad(namespace, name).await?)
    }
}
