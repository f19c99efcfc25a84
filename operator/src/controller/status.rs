//! What the controller tells users about a MultusConfig: its status
//! (server-side apply on the status subresource, only when it changed)
//! and its Events (the state changes [`conditions::transition_events`]
//! names, and the controller's own actions).

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use multus_config::crd::MultusConfig;
use serde_json::json;

use super::Error;
use super::apply::apply_params;
use super::conditions::{self, Assessment, Severity, StateEvent};
use super::context::Context;
use super::nad::truncate_note;

/// `t` to the second, as the API server stores condition times.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Publishes an Event on the MultusConfig (best effort).
pub async fn publish(
    ctx: &Context,
    config: &MultusConfig,
    severity: Severity,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_: match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: reason.to_owned(),
        note: Some(truncate_note(note)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &config.object_ref(&())).await {
        tracing::warn!(multusconfig = %config.name_any(), reason, error = %e, "cannot publish an event");
    }
}

/// Writes the status when it changed, and the Events of the change.
pub async fn publish_status(
    ctx: &Context,
    config: &MultusConfig,
    assessment: &Assessment,
    invalid_nads: usize,
    now: Timestamp,
) -> Result<(), Error> {
    let name = config.name_any();
    let previous = config.status.as_ref();
    let status = conditions::status(
        previous,
        assessment,
        config.metadata.generation,
        invalid_nads,
        now,
    );
    if previous == Some(&status) {
        return Ok(());
    }
    let body = json!({
        "apiVersion": MultusConfig::api_version(&()),
        "kind": MultusConfig::kind(&()),
        "metadata": { "name": name },
        "status": status,
    });
    Api::<MultusConfig>::all(ctx.client.clone())
        .patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|e| Error::api("apply", format!("status of MultusConfig {name}"), e))?;
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for StateEvent {
        severity,
        reason,
        note,
    } in conditions::transition_events(before, &status.conditions)
    {
        publish(ctx, config, severity, &reason, &note).await;
    }
    Ok(())
}
