//! The NAD watch: every NAD validated on change and again when the
//! inventory changes, its verdict recorded and its Event published.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use multus_config::npwg::nad::NetworkAttachmentDefinition;
use tokio::sync::{mpsc, watch};

use super::events::{event_for, truncate_note};
use super::inventory::Inventory;
use super::registry::{NadRegistry, key_of};
use super::verdict::{Verdict, validate_nad};
use crate::controller::metrics::Metrics;

/// Validates one NAD, records the verdict and publishes the Event of a
/// change. Returns whether the set of invalid NADs changed.
pub async fn check(
    nad: &NetworkAttachmentDefinition,
    inventory: &Inventory,
    registry: &NadRegistry,
    recorder: &Recorder,
    metrics: &Metrics,
) -> bool {
    let key = key_of(nad);
    let verdict = validate_nad(nad, inventory);
    metrics.nad_validations.inc();
    let previous = registry.set(&key, verdict.clone());
    if let Some(event) = event_for(previous.as_ref(), &verdict) {
        let published = recorder
            .publish(
                &Event {
                    type_: if event.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: event.reason.to_owned(),
                    note: Some(truncate_note(&event.note)),
                    action: "Validate".to_owned(),
                    secondary: None,
                },
                &nad.object_ref(&()),
            )
            .await;
        if let Err(e) = published {
            tracing::warn!(nad = %key, error = %e, "cannot publish an event");
        }
        if event.warning {
            tracing::info!(nad = %key, reason = event.reason, "invalid NetworkAttachmentDefinition");
        }
    }
    previous.as_ref().is_some_and(Verdict::is_invalid) != verdict.is_invalid()
        || (verdict.is_invalid() && previous.as_ref() != Some(&verdict))
}

/// Watches every NAD, validating each on change and all of them again when
/// the plugin inventory changes; `changed` gets a message whenever the set
/// of invalid NADs changes (the MultusConfigs then update their counts).
/// Runs until `shutdown` completes.
pub async fn run(
    client: Client,
    recorder: Recorder,
    registry: Arc<NadRegistry>,
    metrics: Arc<Metrics>,
    mut inventory: watch::Receiver<Arc<Inventory>>,
    changed: mpsc::Sender<()>,
    shutdown: impl Future<Output = ()>,
) {
    let api: Api<NetworkAttachmentDefinition> = Api::all(client);
    let (store, writer): (Store<NetworkAttachmentDefinition>, _) = reflector::store();
    let events =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut listed: Option<HashSet<String>> = None;
    let notify = |dirty: bool| {
        if dirty {
            metrics
                .invalid_nads
                .set(i64::try_from(registry.invalid_count()).unwrap_or(i64::MAX));
            // A full channel already holds a pending notification.
            let _ = changed.try_send(());
        }
    };
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = inventory.changed() => {
                if result.is_err() {
                    return;
                }
                let current = inventory.borrow_and_update().clone();
                let mut dirty = false;
                for nad in store.state() {
                    dirty |= check(&nad, &current, &registry, &recorder, &metrics).await;
                }
                notify(dirty);
            }
            event = events.next() => {
                let Some(event) = event else { return };
                let current = inventory.borrow().clone();
                match event {
                    Ok(watcher::Event::Apply(nad)) => {
                        notify(check(&nad, &current, &registry, &recorder, &metrics).await);
                    }
                    Ok(watcher::Event::InitApply(nad)) => {
                        if let Some(seen) = listed.as_mut() {
                            seen.insert(key_of(&nad));
                        }
                        notify(check(&nad, &current, &registry, &recorder, &metrics).await);
                    }
                    Ok(watcher::Event::Delete(nad)) => {
                        let dropped = registry.remove(&key_of(&nad));
                        notify(dropped.as_ref().is_some_and(Verdict::is_invalid));
                    }
                    Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(seen) = listed.take() {
                            notify(registry.retain(&seen));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "NetworkAttachmentDefinition watch failed; retrying"),
                }
            }
        }
    }
}
