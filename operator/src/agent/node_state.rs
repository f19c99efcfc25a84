//! Reporting to `MultusNodeState/<node>` with server-side apply (field
//! manager `multus-node-agent`): the spec once (which creates the object),
//! the status whenever it changes.

use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, Resource};
use multus_config::crd::{MultusNodeState, MultusNodeStateSpec, MultusNodeStateStatus};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::metrics::Shared;

/// Field manager of every apply the agent makes.
pub const FIELD_MANAGER: &str = "multus-node-agent";

/// How long one API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Back-off bounds between failed updates.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeStateError {
    /// The API server refused or could not be reached.
    #[error("cannot update MultusNodeState/{node}: {source}")]
    Api {
        /// Node (object) name.
        node: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("cannot update MultusNodeState/{0}: no answer within {REQUEST_TIMEOUT:?}")]
    Timeout(String),
}

fn object_header(node: &str) -> serde_json::Map<String, Value> {
    let mut doc = serde_json::Map::new();
    doc.insert(
        "apiVersion".into(),
        json!(MultusNodeState::api_version(&()).as_ref()),
    );
    doc.insert("kind".into(), json!(MultusNodeState::kind(&()).as_ref()));
    doc.insert("metadata".into(), json!({ "name": node }));
    doc
}

/// The apply body for the spec.
pub fn spec_patch(node: &str, multus_config: Option<&str>) -> Value {
    let mut doc = object_header(node);
    let spec = MultusNodeStateSpec {
        node_name: node.to_owned(),
        multus_config: multus_config.map(str::to_owned),
    };
    doc.insert("spec".into(), json!(spec));
    Value::Object(doc)
}

/// The apply body for the status. Fields left out (e.g. `message` once
/// ready) are removed by the apply because this manager owned them.
pub fn status_patch(node: &str, status: &MultusNodeStateStatus) -> Value {
    let mut doc = object_header(node);
    doc.insert("status".into(), json!(status));
    Value::Object(doc)
}

/// Applies spec and status of one node's MultusNodeState.
#[derive(Clone)]
pub struct NodeStateReporter {
    /// Untyped, so an answer that does not decode as our type (another
    /// CRD version, a partial object) cannot fail an update that was made.
    api: Api<DynamicObject>,
    node: String,
    multus_config: Option<String>,
    spec_applied: bool,
}

impl std::fmt::Debug for NodeStateReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStateReporter")
            .field("node", &self.node)
            .field("multus_config", &self.multus_config)
            .field("spec_applied", &self.spec_applied)
            .finish_non_exhaustive()
    }
}

impl NodeStateReporter {
    /// A reporter for `node`, naming `multus_config` in the spec.
    pub fn new(client: Client, node: impl Into<String>, multus_config: Option<String>) -> Self {
        Self {
            api: Api::all_with(client, &ApiResource::erase::<MultusNodeState>(&())),
            node: node.into(),
            multus_config,
            spec_applied: false,
        }
    }

    fn params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    fn error(&self, source: kube::Error) -> NodeStateError {
        NodeStateError::Api {
            node: self.node.clone(),
            source,
        }
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, NodeStateError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(_) => Err(NodeStateError::Timeout(self.node.clone())),
        }
    }

    /// Applies the spec (creating the object when it does not exist).
    pub async fn apply_spec(&mut self) -> Result<(), NodeStateError> {
        let body = spec_patch(&self.node, self.multus_config.as_deref());
        self.bounded(
            self.api
                .patch(&self.node, &Self::params(), &Patch::Apply(&body)),
        )
        .await?;
        self.spec_applied = true;
        Ok(())
    }

    /// Applies `status` (the spec first, once; again if the object was
    /// deleted meanwhile).
    pub async fn publish(&mut self, status: &MultusNodeStateStatus) -> Result<(), NodeStateError> {
        if !self.spec_applied {
            self.apply_spec().await?;
        }
        let body = status_patch(&self.node, status);
        let params = Self::params();
        let first = self
            .bounded(
                self.api
                    .patch_status(&self.node, &params, &Patch::Apply(&body)),
            )
            .await;
        match first {
            Err(NodeStateError::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.is_not_found() => {
                self.spec_applied = false;
                self.apply_spec().await?;
                self.bounded(
                    self.api
                        .patch_status(&self.node, &params, &Patch::Apply(&body)),
                )
                .await?;
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Publishes every status sent on `statuses` (the latest one wins when
    /// several arrive during an update), retrying failures with a bounded
    /// exponential back-off, until `shutdown` turns true or the sender is
    /// gone.
    pub async fn run(
        mut self,
        mut statuses: watch::Receiver<Option<MultusNodeStateStatus>>,
        mut shutdown: watch::Receiver<bool>,
        shared: std::sync::Arc<Shared>,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let latest = statuses.borrow_and_update().clone();
            if let Some(status) = latest {
                match self.publish(&status).await {
                    Ok(()) => {
                        backoff = BACKOFF_MIN;
                        tracing::debug!(node = %self.node, ready = status.ready, "updated MultusNodeState");
                    }
                    Err(err) => {
                        shared.metrics.errors.inc();
                        tracing::warn!(error = %err, retry_in = ?backoff, "cannot report the node state");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        // retry with whatever is the latest status now
                        continue;
                    }
                }
            }
            tokio::select! {
                changed = statuses.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_carry_type_and_name() {
        let spec = spec_patch("node-1", Some("default"));
        assert_eq!(spec["apiVersion"], "multus.dev/v1alpha1");
        assert_eq!(spec["kind"], "MultusNodeState");
        assert_eq!(spec["metadata"]["name"], "node-1");
        assert_eq!(spec["spec"]["nodeName"], "node-1");
        assert_eq!(spec["spec"]["multusConfig"], "default");
        let status = status_patch(
            "node-1",
            &MultusNodeStateStatus {
                ready: false,
                message: Some("no primary".into()),
                ..Default::default()
            },
        );
        assert_eq!(status["status"]["ready"], false);
        assert_eq!(status["status"]["message"], "no primary");
        assert!(status["status"].get("primaryConfigFile").is_none());
        assert!(status.get("spec").is_none());
    }
}
