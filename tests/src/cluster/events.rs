//! Kubernetes events about the tests' objects.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use crate::wait::wait_until;

/// Events about the object `name` in `namespace` (any kind), oldest
/// first.
pub async fn events(client: &kube::Client, namespace: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let mut events = api.list(&params).await.map(|l| l.items).unwrap_or_default();
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    events
}

/// One line about an event.
pub fn event_summary(e: &Event) -> String {
    format!(
        "{} {} (x{}): {}",
        e.type_.as_deref().unwrap_or("?"),
        e.reason.as_deref().unwrap_or("?"),
        e.count
            .or(e.series.as_ref().and_then(|s| s.count))
            .unwrap_or(1),
        e.message.as_deref().unwrap_or("")
    )
}

/// How many times an event happened (`count`, or the series count).
pub fn event_count(e: &Event) -> i32 {
    e.count
        .or(e.series.as_ref().and_then(|s| s.count))
        .unwrap_or(1)
        .max(1)
}

/// Waits for an event with `reason` about `name`; returns it.
pub async fn wait_event(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> Event {
    wait_event_saying(client, namespace, name, reason, "", timeout).await
}

/// Like [`wait_event`], for an event whose message contains `needle`:
/// events about a cluster-scoped object (a MultusConfig named `default`)
/// outlive the object, so an earlier test's event may have the same
/// reason.
pub async fn wait_event_saying(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    needle: &str,
    timeout: Duration,
) -> Event {
    wait_until(
        &format!("a {reason} event about {namespace}/{name} saying {needle:?}"),
        timeout,
        async || {
            let all = events(client, namespace, name).await;
            all.iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.message.as_deref().unwrap_or_default().contains(needle)
                })
                .cloned()
                .ok_or_else(|| {
                    let seen: Vec<String> = all.iter().map(event_summary).collect();
                    format!("events: [{}]", seen.join(" | "))
                })
        },
    )
    .await
}

/// The events in `namespace` with `reason` about objects whose name starts
/// with `name_prefix` (the pods of one batch, say).
pub async fn events_with_reason(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
    name_prefix: &str,
) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!("reason={reason}")))
        .await
        .unwrap_or_else(|e| panic!("listing the {reason} events of {namespace}: {e}"))
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(name_prefix))
        })
        .collect()
}
