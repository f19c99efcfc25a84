//! core/v1 Events about the pod: `AddedInterface`, `NoNetworkFound`,
//! `ClaimStatusNotWritten`.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use multus_config::text::prefix_on_char_boundary;
use tracing::warn;

use super::K8sClient;

/// Event reason for an interface added to a pod (type Normal).
pub const REASON_ADDED_INTERFACE: &str = "AddedInterface";

/// Event reason for a NetworkAttachmentDefinition that does not exist (type Warning).
pub const REASON_NO_NETWORK_FOUND: &str = "NoNetworkFound";

/// Event reason for network data of DRA devices the API server did not let
/// us write to their ResourceClaims (type Warning; the pod is attached
/// anyway).
pub const REASON_CLAIM_STATUS_NOT_WRITTEN: &str = "ClaimStatusNotWritten";

/// Component name used in events (`source.component`, `reportingComponent`).
pub const EVENT_COMPONENT: &str = "multus";

/// Limits of core/v1 Event fields enforced by the API server.
const EVENT_NAME_MAX: usize = 253;
const EVENT_REASON_MAX: usize = 128;
const EVENT_MESSAGE_MAX: usize = 1024;
const EVENT_INSTANCE_MAX: usize = 128;

/// Event type of core/v1 Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The API value (`Normal` / `Warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Upstream's `AddedInterface` message: `Add net1 [10.1.1.5/24] from ns/nad`.
pub fn added_interface_message(ifname: &str, ips: &[String], network: &str) -> String {
    format!("Add {ifname} [{}] from {network}", ips.join(" "))
}

/// Upstream's `NoNetworkFound` message for a missing NAD.
pub fn no_network_found_message(namespace: &str, name: &str) -> String {
    format!(
        "cannot find a network-attachment-definition ({name}) in namespace ({namespace}): \
         NetworkAttachmentDefinition {namespace}/{name} not found"
    )
}

/// Builds the core/v1 Event about `pod` (pure; `record_event` sends it).
/// `unique` makes the name unique among events created in the same
/// nanosecond.
pub fn build_event(
    pod: &Pod,
    event_type: EventType,
    reason: &str,
    message: &str,
    now: Timestamp,
    unique: u64,
) -> Event {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone();
    let nanos = u64::try_from(now.as_nanosecond()).unwrap_or_default();
    let suffix = format!("{:x}", nanos.wrapping_add(unique));
    let keep = EVENT_NAME_MAX.saturating_sub(suffix.len() + 1);
    let name = format!(
        "{}.{suffix}",
        prefix_on_char_boundary(&pod_name, keep).trim_end_matches('.')
    );
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let instance = prefix_on_char_boundary(
        node.as_deref().unwrap_or(EVENT_COMPONENT),
        EVENT_INSTANCE_MAX,
    )
    .to_owned();
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(pod_name),
            namespace,
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(prefix_on_char_boundary(reason, EVENT_REASON_MAX).to_owned()),
        message: Some(prefix_on_char_boundary(message, EVENT_MESSAGE_MAX).to_owned()),
        type_: Some(event_type.as_str().to_owned()),
        source: Some(EventSource {
            component: Some(EVENT_COMPONENT.to_owned()),
            host: node,
        }),
        reporting_component: Some(EVENT_COMPONENT.to_owned()),
        reporting_instance: Some(instance),
        // Required by the API server once eventTime is set.
        action: Some(prefix_on_char_boundary(reason, EVENT_REASON_MAX).to_owned()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Event::default()
    }
}

/// Sequence mixed into event names created by this process.
static EVENT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl K8sClient {
    /// Records a core/v1 Event about `pod`. Best effort: one bounded request,
    /// a failure is logged as a warning and never returned.
    pub async fn record_event(
        &self,
        pod: &Pod,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(namespace) = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()) else {
            warn!(
                pod = pod_name,
                reason, "pod has no namespace; event not recorded"
            );
            return;
        };
        let unique = EVENT_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let event = build_event(pod, event_type, reason, message, Timestamp::now(), unique);
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("creating event {reason} for pod {namespace}/{pod_name}");
        let timeout = self.settings.request_timeout;
        let params = PostParams::default();
        if let Err(e) = self
            .attempt(&op, timeout, api.create(&params, &event))
            .await
        {
            warn!(error = %e, "event not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape_and_limits() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-1".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("u-1".into());
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("node-a".into()),
            ..Default::default()
        });
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let long = "é".repeat(2000);
        let event = build_event(
            &pod,
            EventType::Warning,
            REASON_NO_NETWORK_FOUND,
            &long,
            now,
            1,
        );
        let name = event.metadata.name.unwrap();
        assert!(name.starts_with("web-1."), "{name}");
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.message.unwrap().len(), 1024);
        assert_eq!(event.reporting_instance.as_deref(), Some("node-a"));
        assert_eq!(event.source.unwrap().host.as_deref(), Some("node-a"));
        // A 253-character pod name still yields a valid event name.
        pod.metadata.name = Some("a".repeat(253));
        let event = build_event(&pod, EventType::Normal, REASON_ADDED_INTERFACE, "m", now, 0);
        assert!(event.metadata.name.unwrap().len() <= 253);
    }

    #[test]
    fn upstream_messages() {
        assert_eq!(
            added_interface_message("net1", &["10.1.1.5/24".into()], "ns/nad"),
            "Add net1 [10.1.1.5/24] from ns/nad"
        );
        assert_eq!(
            added_interface_message(
                "net1",
                &["10.1.1.5/24".into(), "fd00::5/64".into()],
                "ns/nad"
            ),
            "Add net1 [10.1.1.5/24 fd00::5/64] from ns/nad"
        );
        assert!(no_network_found_message("ns", "nad").contains("(nad) in namespace (ns)"));
    }
}
