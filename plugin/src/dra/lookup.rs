//! Reads the pod's ResourceClaims and its node's ResourceSlices: one GET
//! per claim, one node-scoped LIST per driver of their allocated devices.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::ResourceClaim;

use super::claims::{ClaimDevices, ClaimProblem, match_claims, pod_claim_names};
use super::slices::SliceIndex;
use crate::k8s::{ClaimLookup, K8sClient, K8sError};

/// The devices of `pod`'s ResourceClaims by the resource they serve. A
/// pod without claims costs no request; a server without
/// `resource.k8s.io/v1` answers the first GET with a 404 for the path,
/// after which nothing more is asked.
pub async fn read_claim_devices(client: &K8sClient, pod: &Pod) -> Result<ClaimDevices, K8sError> {
    let names = pod_claim_names(pod);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut claims: Vec<(String, Option<ResourceClaim>)> = Vec::with_capacity(names.len());
    for name in &names {
        match client.get_resource_claim(namespace, name).await? {
            ClaimLookup::Found(claim) => claims.push((name.clone(), Some(*claim))),
            ClaimLookup::NotFound => claims.push((name.clone(), None)),
            ClaimLookup::ApiNotServed => {
                return Ok(ClaimDevices::unreadable(ClaimProblem::ApiNotServed {
                    claims: names.iter().map(|n| format!("{namespace}/{n}")).collect(),
                }));
            }
        }
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty());
    let Some(node) = node else {
        return Ok(ClaimDevices::unreadable(ClaimProblem::NoNode));
    };
    let mut drivers: Vec<&str> = Vec::new();
    for (_, claim) in &claims {
        let results = claim
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.allocation.as_ref())
            .and_then(|a| a.devices.as_ref())
            .and_then(|d| d.results.as_deref())
            .unwrap_or_default();
        for result in results {
            if !drivers.contains(&result.driver.as_str()) {
                drivers.push(&result.driver);
            }
        }
    }
    let mut slices = Vec::new();
    for driver in drivers {
        slices.extend(client.list_resource_slices(node, driver).await?);
    }
    Ok(match_claims(
        namespace,
        node,
        &claims,
        &SliceIndex::from_slices(&slices),
    ))
}
