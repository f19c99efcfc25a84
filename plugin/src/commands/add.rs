//! ADD: attach the cluster network and every requested network.

use multus_config::cni::CniVersion;
use multus_config::cni::result::CniResult;
use multus_config::multus_conf::MultusNetConf;
use serde_json::Value;

use super::del::del_all;
use crate::attachment::Attachment;
use crate::cache::Cache;
use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::{
    MultusConfigError, PluginError, PodRequestError, Result, ResultConversionError,
};
use crate::k8s::{
    EventType, K8sClient, K8sSettings, PodRef, REASON_ADDED_INTERFACE, REASON_NO_NETWORK_FOUND,
    added_interface_message, no_network_found_message,
};
use crate::lookup::Lookups;
use crate::network_status::{network_statuses, result100};
use crate::node_agent::NodeAgent;
use crate::plan::{ConfDir, NoNads, PlanInput, PodIdentity, gateway_requests, plan};
use crate::readiness::{READINESS_TIMEOUT, wait_for_readiness};
use crate::{devices, dra, netns, route};

/// Runs ADD; returns the cluster network's result in the Multus config's
/// CNI version.
pub async fn add(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    let version = conf.cni_version().map_err(MultusConfigError::from)?;
    wait_for_readiness(conf, READINESS_TIMEOUT).await?;
    let identity = PodIdentity::from_args(&env.args);
    let client = K8sClient::connect(conf, K8sSettings::default()).await?;
    let agent = client.as_ref().and(NodeAgent::from_conf(conf));
    let lookups = client.as_ref().map(|api| Lookups {
        agent: agent.as_ref(),
        api,
    });
    let pod = match &lookups {
        Some(lookups) => lookups.pod(&identity).await?,
        None => None,
    };
    if client.is_some() && identity.is_known() && pod.is_none() {
        return Err(PluginError::PodNotFound {
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
        });
    }
    let conf_dir = ConfDir::new(&conf.conf_dir);
    let input = PlanInput {
        conf,
        env,
        pod: pod.as_ref(),
        conf_dir: &conf_dir,
    };
    let planned = match &lookups {
        Some(lookups) => plan(&input, lookups).await,
        None => plan(&input, &NoNads).await,
    };
    let mut attachments = match planned {
        Ok(p) => p.attachments,
        Err((error, missing)) => {
            if let (Some(client), Some(pod), Some(missing)) = (&client, &pod, missing) {
                client
                    .record_event(
                        pod,
                        EventType::Warning,
                        REASON_NO_NETWORK_FOUND,
                        &no_network_found_message(&missing.namespace, &missing.name),
                    )
                    .await;
            }
            return Err(error);
        }
    };
    if devices::needs_kubelet(&attachments) {
        let api = client.as_ref().zip(pod.as_ref());
        devices::allocate_devices(env, conf, &identity, api, &mut attachments).await?;
    }

    if let Some(netns) = &env.netns {
        let existing = netns::link_names(netns)?;
        if let Some(a) = attachments.iter().find(|a| existing.contains(&a.ifname)) {
            return Err(PodRequestError::InterfaceExists {
                attachment: a.name.clone(),
                ifname: a.ifname.clone(),
            }
            .into());
        }
    }
    let requests = route_requests(&attachments);
    route::check_requests(&requests).map_err(PodRequestError::from)?;

    let cache = Cache::for_conf(conf);
    cache.save(&env.container_id, env.netns.as_deref(), &attachments)?;

    let info_dir = std::path::Path::new(conf.device_info_dir());
    for index in 0..attachments.len() {
        devices::copy_device_plugin_info(&attachments[index], info_dir);
        let exec = ExecEnv::for_attachment(env, conf, &attachments[index]);
        let outcome = delegate::add_network(
            &attachments[index].config,
            &attachments[index].capability_args,
            &exec,
        )
        .await;
        let value = match outcome {
            Ok(result) => result
                .to_value()
                .map_err(|source| PluginError::DelegateResult {
                    attachment: attachments[index].name.clone(),
                    source,
                }),
            Err(error) => Err(PluginError::delegate(&attachments[index].name, error)),
        };
        match value {
            Ok(value) => {
                attachments[index].result = Some(value);
                attachments[index].device.info = devices::read_device_info(&attachments[index]);
            }
            Err(failed) => {
                return Err(rollback(env, conf, &cache, &attachments[..=index], failed).await);
            }
        }
    }

    if let Err(e) = apply_default_routes(env, &mut attachments) {
        return Err(rollback(env, conf, &cache, &attachments, e).await);
    }
    if let Err(e) = cache.save(&env.container_id, env.netns.as_deref(), &attachments) {
        return Err(rollback(env, conf, &cache, &attachments, e.into()).await);
    }

    if let (Some(client), Some(pod)) = (&client, &pod) {
        if !conf.is_system_namespace(&identity.namespace) {
            let statuses = network_statuses(&attachments);
            if let Err(e) = client
                .set_network_status(&PodRef::from(&identity), &statuses)
                .await
            {
                return Err(rollback(env, conf, &cache, &attachments, e.into()).await);
            }
        }
        // Only once nothing can roll back any more; best effort, concurrent.
        let messages: Vec<String> = attachments
            .iter()
            .filter(|a| !a.is_cluster_network)
            .filter_map(|a| {
                let result = result100(a)?;
                let ips: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
                Some(added_interface_message(&a.ifname, &ips, &a.name))
            })
            .collect();
        futures::future::join_all(messages.iter().map(|message| {
            client.record_event(pod, EventType::Normal, REASON_ADDED_INTERFACE, message)
        }))
        .await;
    }

    let cluster = attachments
        .iter()
        .find(|a| a.is_cluster_network)
        .and_then(|a| a.result.clone())
        .ok_or(MultusConfigError::NoClusterNetworkResult)?;
    let bytes = match cluster_result_bytes(cluster, version) {
        Ok(bytes) => bytes,
        Err(e) => return Err(rollback(env, conf, &cache, &attachments, e.into()).await),
    };
    if let (Some(client), Some(pod)) = (&client, &pod) {
        // Attached for good: the claims' network data (never fails ADD).
        dra::publish_network_data(client, pod, &env.container_id, &attachments).await;
    }
    Ok(bytes)
}

/// The cluster network's result in the Multus config's CNI version, as the
/// JSON for stdout.
fn cluster_result_bytes(
    cluster: Value,
    version: CniVersion,
) -> Result<Vec<u8>, ResultConversionError> {
    let result =
        CniResult::from_value(cluster, None).map_err(ResultConversionError::ClusterResult)?;
    let converted = result
        .convert_to(version)
        .map_err(|source| ResultConversionError::ClusterVersion { version, source })?;
    Ok(converted.to_json_bytes()?)
}

/// The default-route requests of the attachments.
fn route_requests(attachments: &[Attachment]) -> Vec<route::DefaultRouteRequest> {
    gateway_requests(attachments)
        .into_iter()
        .map(|(ifname, gateways)| route::DefaultRouteRequest { ifname, gateways })
        .collect()
}

/// Applies default-route requests and makes the results agree.
pub(crate) fn apply_default_routes(env: &CniEnv, attachments: &mut [Attachment]) -> Result<()> {
    let requests = route_requests(attachments);
    let (Some(netns), false) = (&env.netns, requests.is_empty()) else {
        return Ok(());
    };
    let applied =
        route::apply_default_routes(netns, &requests).map_err(PluginError::DefaultRoute)?;
    for a in attachments.iter_mut() {
        let Some(mut result) = result100(a) else {
            continue;
        };
        route::update_result(&mut result, &a.ifname, &applied);
        let version = a
            .result
            .as_ref()
            .and_then(|v| v.get("cniVersion"))
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<CniVersion>().ok())
            .unwrap_or(CniVersion::V1_0_0);
        let converted = CniResult::from(result)
            .convert_to(version)
            .map_err(ResultConversionError::from)?;
        a.result = Some(converted.to_value().map_err(ResultConversionError::from)?);
    }
    Ok(())
}

/// DELs what a failed ADD created (reverse order, the failed one too),
/// removes the cache, and returns the original error (with any rollback
/// failures appended).
async fn rollback(
    env: &CniEnv,
    conf: &MultusNetConf,
    cache: &Cache,
    done: &[Attachment],
    error: PluginError,
) -> PluginError {
    tracing::error!(%error, "ADD failed; rolling back");
    let failures = del_all(env, conf, done).await;
    if failures.is_empty() {
        if let Err(e) = cache.remove(&env.container_id) {
            return PluginError::Many(vec![error, e.into()]);
        }
        error
    } else {
        // Keep the cache so the runtime's DEL can finish the cleanup.
        let mut all = vec![error];
        all.extend(failures);
        PluginError::Many(all)
    }
}
