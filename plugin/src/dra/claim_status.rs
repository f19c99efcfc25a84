//! Writes our entries of the claims' `status.devices` after ADD and
//! removes them after DEL: one server-side apply per claim, each bounded
//! like every API call of the plugin. Neither ever fails the command: a
//! refused write leaves the pod attached and is reported once, in a
//! Warning event on the pod; a failed removal is logged (the claim of a
//! deleted pod usually goes with it).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use multus_config::multus_conf::MultusNetConf;
use tracing::{debug, info, warn};

use super::network_data::{ClaimRef, apply_body, by_claim, field_manager, publish_body};
use crate::attachment::Attachment;
use crate::k8s::{
    ClaimStatusWrite, EventType, K8sClient, K8sError, K8sSettings, REASON_CLAIM_STATUS_NOT_WRITTEN,
};

/// Why the network data of a claim's devices was not written.
#[derive(Debug, thiserror::Error)]
pub enum NotWritten {
    /// The claim was deleted in the meantime.
    #[error("ResourceClaim {claim} no longer exists")]
    Gone {
        /// `namespace/name`.
        claim: String,
    },
    /// The claim was deleted and created again (another UID).
    #[error("ResourceClaim {claim} was recreated")]
    Replaced {
        /// `namespace/name`.
        claim: String,
    },
    /// The API server refused or failed the write (names the claim).
    #[error(transparent)]
    Api(#[from] K8sError),
}

fn label(claim: &ClaimRef) -> String {
    format!("{}/{}", claim.namespace, claim.name)
}

/// The Warning event's message for the writes that failed.
pub fn not_written_message(failures: &[(Vec<String>, NotWritten)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(interfaces, error)| format!("{}: {error}", interfaces.join(", ")))
        .collect();
    format!(
        "the pod's networks are attached, but their network data could not be written to the status of their ResourceClaims: {}",
        parts.join("; ")
    )
}

/// After a successful ADD: writes the network data of every attachment
/// with a DRA device to its claim (field manager of sandbox
/// `container_id`). Failures are logged and reported in one Warning event
/// on `pod`; they never fail ADD. Returns them.
pub async fn publish_network_data(
    client: &K8sClient,
    pod: &Pod,
    container_id: &str,
    attachments: &[Attachment],
) -> Vec<(Vec<String>, NotWritten)> {
    let manager = field_manager(container_id);
    let mut failures = Vec::new();
    for (claim, users) in by_claim(attachments) {
        let body = publish_body(&claim, &users, Timestamp::now());
        let interfaces: Vec<String> = users.iter().map(|a| a.ifname.clone()).collect();
        let outcome = client
            .apply_claim_status(&claim.namespace, &claim.name, &manager, &body)
            .await;
        let failure = match outcome {
            Ok(ClaimStatusWrite::Written) => {
                debug!(claim = %label(&claim), ?interfaces, "network data written to the claim");
                continue;
            }
            Ok(ClaimStatusWrite::ClaimGone) => NotWritten::Gone {
                claim: label(&claim),
            },
            Ok(ClaimStatusWrite::ClaimReplaced) => NotWritten::Replaced {
                claim: label(&claim),
            },
            Err(e) => NotWritten::Api(e),
        };
        warn!(error = %failure, ?interfaces, "network data not written to the claim; the pod is attached anyway");
        failures.push((interfaces, failure));
    }
    if !failures.is_empty() {
        client
            .record_event(
                pod,
                EventType::Warning,
                REASON_CLAIM_STATUS_NOT_WRITTEN,
                &not_written_message(&failures),
            )
            .await;
    }
    failures
}

/// After DEL: removes the entries sandbox `container_id` wrote to the
/// claims of the attachments' DRA devices (applies an empty list as its
/// field manager). Best effort: failures are logged.
pub async fn withdraw_network_data(
    client: &K8sClient,
    container_id: &str,
    attachments: &[Attachment],
) {
    let manager = field_manager(container_id);
    for (claim, _) in by_claim(attachments) {
        let body = apply_body(&claim, &[]);
        match client
            .apply_claim_status(&claim.namespace, &claim.name, &manager, &body)
            .await
        {
            Ok(ClaimStatusWrite::Written) => {
                debug!(claim = %label(&claim), "network data removed from the claim")
            }
            Ok(ClaimStatusWrite::ClaimGone | ClaimStatusWrite::ClaimReplaced) => {
                debug!(claim = %label(&claim), "the claim is gone; nothing to remove")
            }
            Err(e) => {
                warn!(error = %e, "cannot remove our network data from the claim's status")
            }
        }
    }
}

/// [`withdraw_network_data`] with a client of the Multus config, made only
/// when an attachment has a DRA device (DEL and GC otherwise need no API).
pub async fn withdraw_with_conf(
    conf: &MultusNetConf,
    container_id: &str,
    attachments: &[Attachment],
) {
    if attachments.iter().all(|a| a.device.dra.is_none()) {
        return;
    }
    match K8sClient::connect(conf, K8sSettings::default()).await {
        Ok(Some(client)) => withdraw_network_data(&client, container_id, attachments).await,
        Ok(None) => info!("no API access: the claims keep our network data"),
        Err(e) => warn!(error = %e, "no API access: the claims keep our network data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_names_interfaces_and_claims() {
        let message = not_written_message(&[
            (
                vec!["net1".into(), "net2".into()],
                NotWritten::Gone {
                    claim: "ns/c1".into(),
                },
            ),
            (
                vec!["net3".into()],
                NotWritten::Replaced {
                    claim: "ns/c2".into(),
                },
            ),
        ]);
        assert_eq!(
            message,
            "the pod's networks are attached, but their network data could not be written to the status of their ResourceClaims: net1, net2: ResourceClaim ns/c1 no longer exists; net3: ResourceClaim ns/c2 was recreated"
        );
    }
}
