//! The pod's ResourceClaims and which of their allocated devices can serve
//! which resource (pure).
//!
//! Order: claims in the order of the pod's `spec.resourceClaims` (a claim
//! named there directly by `resourceClaimName`, or the claim generated from
//! its `resourceClaimTemplateName`, which only `status.resourceClaimStatuses`
//! names), then the claim of `status.extendedResourceClaimStatus`; within a
//! claim, its allocation results in order (stored in the claim, so stable
//! across retries).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::ResourceClaim;

use super::slices::SliceIndex;
use super::{DEVICE_ID_ATTRIBUTE, DraDevice, RESOURCE_NAME_ATTRIBUTE};

/// The names of the pod's ResourceClaims, each once, in order: per entry of
/// `spec.resourceClaims`, its `resourceClaimName` or, for a template, the
/// generated claim `status.resourceClaimStatuses` names (none yet: skipped);
/// then statuses of entries the spec does not list (defensive), then the
/// extended resource claim.
pub fn pod_claim_names(pod: &Pod) -> Vec<String> {
    let status = pod.status.as_ref();
    let statuses: Vec<(String, Option<String>)> = status
        .and_then(|s| s.resource_claim_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.resource_claim_name.clone()))
        .collect();
    let generated = |entry: &str| {
        statuses
            .iter()
            .find(|(name, _)| name == entry)
            .and_then(|(_, claim)| claim.clone())
    };
    let spec_entries = pod
        .spec
        .as_ref()
        .and_then(|s| s.resource_claims.as_ref())
        .into_iter()
        .flatten();
    let from_spec = spec_entries.filter_map(|entry| {
        entry
            .resource_claim_name
            .clone()
            .or_else(|| generated(&entry.name))
    });
    let unlisted = statuses.iter().filter_map(|(_, claim)| claim.clone());
    let extended = status
        .and_then(|s| s.extended_resource_claim_status.as_ref())
        .map(|s| s.resource_claim_name.clone());
    let mut names: Vec<String> = Vec::new();
    for name in from_spec.chain(unlisted).chain(extended) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A device of a claim that can serve a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDevice {
    /// Its `k8s.cni.cncf.io/deviceID`.
    pub id: String,
    /// Which device of which claim it is.
    pub device: DraDevice,
}

/// Why a claim, or one of its devices, serves no network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimProblem {
    /// The API server has no `resource.k8s.io/v1` (before Kubernetes 1.34).
    #[error(
        "its ResourceClaims {} were not read: the API server does not serve resource.k8s.io/v1 (Kubernetes 1.34 and later)",
        .claims.join(", ")
    )]
    ApiNotServed {
        /// `namespace/name` of each claim.
        claims: Vec<String>,
    },
    /// The claim the pod's status names does not exist.
    #[error("ResourceClaim {claim} does not exist")]
    NotFound {
        /// `namespace/name`.
        claim: String,
    },
    /// The claim has no allocated devices.
    #[error("ResourceClaim {claim} has no allocated device")]
    NotAllocated {
        /// `namespace/name`.
        claim: String,
    },
    /// No ResourceSlice of the node lists an allocated device.
    #[error("ResourceClaim {claim}: device {device} is in no ResourceSlice of node {node}")]
    NotInSlices {
        /// `namespace/name` of the claim.
        claim: String,
        /// `driver/pool/device`.
        device: String,
        /// The pod's node.
        node: String,
    },
    /// An allocated device lacks the attributes that make it a network
    /// device for Multus.
    #[error("ResourceClaim {claim}: device {device} lacks the attribute{} {}", if .missing.len() > 1 { "s" } else { "" }, .missing.join(" and "))]
    MissingAttributes {
        /// `namespace/name` of the claim.
        claim: String,
        /// `driver/pool/device`.
        device: String,
        /// The attribute names it lacks.
        missing: Vec<&'static str>,
    },
    /// The pod has no node, so no node's ResourceSlices can be read.
    #[error("its ResourceClaims' devices were not looked up: the pod is not bound to a node")]
    NoNode,
}

/// The devices of the pod's claims by the resource they serve, and why the
/// others serve none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimDevices {
    by_resource: BTreeMap<String, Vec<ClaimedDevice>>,
    problems: Vec<ClaimProblem>,
}

impl ClaimDevices {
    /// Nothing could be read, for `problem`.
    pub fn unreadable(problem: ClaimProblem) -> Self {
        Self {
            by_resource: BTreeMap::new(),
            problems: vec![problem],
        }
    }

    /// How many devices serve `resource`.
    pub fn count(&self, resource: &str) -> usize {
        self.by_resource.get(resource).map_or(0, Vec::len)
    }

    /// The `index`-th device serving `resource`.
    pub fn get(&self, resource: &str, index: usize) -> Option<&ClaimedDevice> {
        self.by_resource.get(resource)?.get(index)
    }

    /// The resources served.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.by_resource.keys().map(String::as_str)
    }

    /// Why claims or devices serve nothing.
    pub fn problems(&self) -> &[ClaimProblem] {
        &self.problems
    }
}

/// Matches the allocated devices of `claims` (each name with the claim,
/// `None` when it does not exist) in `namespace` with the attributes of
/// node `node`'s devices.
pub fn match_claims(
    namespace: &str,
    node: &str,
    claims: &[(String, Option<ResourceClaim>)],
    slices: &SliceIndex,
) -> ClaimDevices {
    let mut out = ClaimDevices::default();
    for (name, claim) in claims {
        let label = format!("{namespace}/{name}");
        let Some(claim) = claim else {
            out.problems.push(ClaimProblem::NotFound { claim: label });
            continue;
        };
        let results = claim
            .status
            .as_ref()
            .and_then(|s| s.allocation.as_ref())
            .and_then(|a| a.devices.as_ref())
            .and_then(|d| d.results.as_deref())
            .unwrap_or_default();
        if results.is_empty() {
            out.problems
                .push(ClaimProblem::NotAllocated { claim: label });
            continue;
        }
        for result in results {
            let device = DraDevice {
                claim_namespace: namespace.to_owned(),
                claim_name: name.clone(),
                claim_uid: claim.metadata.uid.clone().unwrap_or_default(),
                driver: result.driver.clone(),
                pool: result.pool.clone(),
                device: result.device.clone(),
                share_id: result.share_id.clone(),
            };
            let Some(attributes) = slices.get(&result.driver, &result.pool, &result.device) else {
                out.problems.push(ClaimProblem::NotInSlices {
                    claim: label.clone(),
                    device: device.device_path(),
                    node: node.to_owned(),
                });
                continue;
            };
            match (&attributes.resource_name, &attributes.device_id) {
                (Some(resource), Some(id)) => {
                    out.by_resource
                        .entry(resource.clone())
                        .or_default()
                        .push(ClaimedDevice {
                            id: id.clone(),
                            device,
                        });
                }
                (resource, id) => {
                    let mut missing = Vec::new();
                    if resource.is_none() {
                        missing.push(RESOURCE_NAME_ATTRIBUTE);
                    }
                    if id.is_none() {
                        missing.push(DEVICE_ID_ATTRIBUTE);
                    }
                    out.problems.push(ClaimProblem::MissingAttributes {
                        claim: label.clone(),
                        device: device.device_path(),
                        missing,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
