//! MultusConfig status: conditions, summaries, waits.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use multus_config::crd::MultusConfig;

use super::objects::get_for_poll;
use crate::wait::wait_until;

/// The condition `type_` of a MultusConfig's status.
pub fn condition<'a>(mc: &'a MultusConfig, type_: &str) -> Option<&'a Condition> {
    mc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the condition `type_` has `status` and (when given) `reason`.
pub fn has_condition(mc: &MultusConfig, type_: &str, status: &str, reason: Option<&str>) -> bool {
    condition(mc, type_).is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// Whether the status describes the current generation (the status and
/// each condition).
pub fn status_current(mc: &MultusConfig) -> bool {
    let generation = mc.metadata.generation;
    mc.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && !s.conditions.is_empty()
            && s.conditions
                .iter()
                .all(|c| c.observed_generation == generation)
    })
}

/// One paragraph about a MultusConfig's status.
pub fn mc_summary(mc: &MultusConfig) -> String {
    let name = mc.metadata.name.as_deref().unwrap_or("?");
    let Some(s) = &mc.status else {
        return format!(
            "MultusConfig {name} (generation {:?}): no status",
            mc.metadata.generation
        );
    };
    let conditions: Vec<String> = s
        .conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} {} (gen {:?}): {}",
                c.type_, c.status, c.reason, c.observed_generation, c.message
            )
        })
        .collect();
    format!(
        "MultusConfig {name} generation {:?} observed {:?}, nodes desired {} ready {} updated {}, \
         invalid NADs {}; {}",
        mc.metadata.generation,
        s.observed_generation,
        s.desired_nodes,
        s.ready_nodes,
        s.updated_nodes,
        s.invalid_network_attachment_definitions,
        conditions.join(" | ")
    )
}

/// Waits until the MultusConfig `name` satisfies `done` (`what` says
/// what that means); returns it.
pub async fn wait_mc(
    client: &kube::Client,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&MultusConfig) -> bool,
) -> MultusConfig {
    let api: Api<MultusConfig> = Api::all(client.clone());
    wait_until(
        &format!("MultusConfig {name}: {what}"),
        timeout,
        async || {
            let mc = get_for_poll(&api, name, "it does not exist").await?;
            if done(&mc) {
                Ok(mc)
            } else {
                Err(mc_summary(&mc))
            }
        },
    )
    .await
}

/// Waits until MultusConfig `name` is Ready=True for its current
/// generation.
pub async fn wait_mc_ready(client: &kube::Client, name: &str, timeout: Duration) -> MultusConfig {
    wait_mc(
        client,
        name,
        "Ready=True with status.observedGeneration == metadata.generation",
        timeout,
        |mc| status_current(mc) && has_condition(mc, "Ready", "True", None),
    )
    .await
}

/// The cluster has no MultusConfig: a test that installs Multus itself must
/// not run next to another one. A cluster that does not serve
/// MultusConfigs yet (404) has none.
pub async fn assert_no_multus_configs(client: &kube::Client) {
    let configs: Api<MultusConfig> = Api::all(client.clone());
    let others: Vec<String> = match configs.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().map(|mc| mc.name_any()).collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => panic!("listing MultusConfigs: {e}"),
    };
    assert!(
        others.is_empty(),
        "the cluster already has MultusConfigs {others:?}: this test installs Multus itself and \
         needs a cluster without it (kubectl delete multusconfigs --all)"
    );
}
