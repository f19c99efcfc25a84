//! The DRA API (`resource.k8s.io/v1`): reading a ResourceClaim and the
//! node's ResourceSlices of one driver, writing our entries of a claim's
//! `status.devices`.

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::Value;
use tracing::debug;

use super::{K8sClient, K8sError};

/// Tries of a claim status write (transient errors only).
const CLAIM_STATUS_ATTEMPTS: usize = 3;

/// What the API server says about a ResourceClaim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimLookup {
    /// The claim.
    Found(Box<ResourceClaim>),
    /// No claim of that name.
    NotFound,
    /// The server does not serve `resource.k8s.io/v1` (404 for the path
    /// itself, not for the claim: Kubernetes before 1.34).
    ApiNotServed,
}

/// What became of a claim status write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatusWrite {
    /// Applied.
    Written,
    /// The claim no longer exists.
    ClaimGone,
    /// A claim of that name exists with another UID (recreated); left
    /// alone.
    ClaimReplaced,
}

/// Whether a 404 for claim `name` is about the claim (its message names
/// it: `resourceclaims.resource.k8s.io "name" not found`) rather than
/// about a path the server does not serve (`the server could not find the
/// requested resource`).
fn names_the_claim(error: &K8sError, name: &str) -> bool {
    match error {
        K8sError::Api { message, .. } => message.contains(&format!("\"{name}\"")),
        _ => false,
    }
}

/// The field selector of the ResourceSlices of `driver` on `node`.
pub fn slice_field_selector(node: &str, driver: &str) -> String {
    format!("spec.nodeName={node},spec.driver={driver}")
}

impl K8sClient {
    /// The ResourceClaim `namespace/name`. Transient errors are retried
    /// like `get_pod`.
    pub async fn get_resource_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ClaimLookup, K8sError> {
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("getting ResourceClaim {namespace}/{name}");
        match self
            .retrying(&op, usize::MAX, |_| false, || api.get(name))
            .await
        {
            Ok(claim) => Ok(ClaimLookup::Found(Box::new(claim))),
            Err(e) if e.is_not_found() && names_the_claim(&e, name) => {
                debug!(namespace, name, "ResourceClaim not found");
                Ok(ClaimLookup::NotFound)
            }
            Err(e) if e.is_not_found() => {
                debug!(error = %e, "resource.k8s.io/v1 is not served");
                Ok(ClaimLookup::ApiNotServed)
            }
            Err(e) => Err(e),
        }
    }

    /// The ResourceSlices of `driver` on `node`: one LIST with a field
    /// selector on both, never the whole cluster's slices.
    pub async fn list_resource_slices(
        &self,
        node: &str,
        driver: &str,
    ) -> Result<Vec<ResourceSlice>, K8sError> {
        let api: Api<ResourceSlice> = Api::all(self.client.clone());
        let op = format!("listing the ResourceSlices of driver {driver} on node {node}");
        let params = ListParams::default().fields(&slice_field_selector(node, driver));
        let list = self
            .retrying(&op, usize::MAX, |_| false, || api.list(&params))
            .await?;
        Ok(list.items)
    }

    /// Server-side apply of `body` (our entries of `status.devices`, see
    /// `crate::dra::network_data`) to the status of claim
    /// `namespace/name` as field manager `manager`, without force: fields
    /// another manager owns with other values make it fail (409) rather
    /// than be taken over. Transient errors are retried (3 tries within
    /// `pod_wait`).
    pub async fn apply_claim_status(
        &self,
        namespace: &str,
        name: &str,
        manager: &str,
        body: &Value,
    ) -> Result<ClaimStatusWrite, K8sError> {
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("applying the device status of ResourceClaim {namespace}/{name}");
        let params = PatchParams::apply(manager);
        let patch = Patch::Apply(body);
        match self
            .retrying(
                &op,
                CLAIM_STATUS_ATTEMPTS,
                |_| false,
                || api.patch_status(name, &params, &patch),
            )
            .await
        {
            Ok(_) => Ok(ClaimStatusWrite::Written),
            Err(e) if e.is_not_found() => Ok(ClaimStatusWrite::ClaimGone),
            // The UID in the body is a precondition: a recreated claim
            // answers 422 "metadata.uid: field is immutable".
            Err(K8sError::Api {
                code: 422, message, ..
            }) if message.contains("metadata.uid") => Ok(ClaimStatusWrite::ClaimReplaced),
            Err(e) => Err(e),
        }
    }
}
