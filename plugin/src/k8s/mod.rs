//! Kubernetes access of the plugin: read the pod and its NADs (and, for
//! DRA devices, its ResourceClaims and the node's ResourceSlices), write the
//! network-status annotation (and the claims' device status), record events.
//!
//! Every request is bounded by [`K8sSettings::request_timeout`] (both in the
//! HTTP stack and with a `tokio` timeout around the call), transient failures
//! are retried within a fixed total budget, and every error names the object
//! and the operation that failed. kube's own retry layer is switched off so
//! that one API call is exactly one HTTP request: [`K8sClient::request_count`]
//! then tells the real API cost of an invocation (docs/architecture.md, quality bars: 1 GET pod + 1 GET per
//! distinct NAD + 1 status update per ADD).

mod client;
mod connect;
mod error;
mod events;
mod pods;
mod resource_claims;
mod status_patch;

pub use client::{K8sClient, K8sSettings};
pub use error::{InClusterProblem, K8sError, KubeconfigProblem};
pub use events::{
    EVENT_COMPONENT, EventType, REASON_ADDED_INTERFACE, REASON_CLAIM_STATUS_NOT_WRITTEN,
    REASON_NO_NETWORK_FOUND, added_interface_message, build_event, no_network_found_message,
};
pub use pods::{CONFIG_SOURCE_ANNOTATION, PodRef, fetch_pod, is_static_pod};
pub use resource_claims::{ClaimLookup, ClaimStatusWrite, slice_field_selector};
pub use status_patch::network_status_patch;
