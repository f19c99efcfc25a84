//! DEL: release everything ADD attached, from the cache when there is one.

use multus_config::cni::error::ErrorCode;
use multus_config::multus_conf::MultusNetConf;

use crate::attachment::Attachment;
use crate::cache::Cache;
use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::{PluginError, Result};
use crate::k8s::{K8sClient, K8sSettings};
use crate::lookup::Lookups;
use crate::node_agent::NodeAgent;
use crate::plan::{ConfDir, NoNads, PlanInput, PodIdentity, plan, plan_static};
use crate::{devices, dra};

/// Runs DEL. Idempotent: a second DEL finds no cache and DELs again what
/// it can re-derive, which plugins accept.
pub async fn del(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    let cache = Cache::for_conf(conf);
    let cached = cache.load(&env.container_id, &env.ifname, &env.args.to_string())?;
    let attachments = match cached {
        Some(cached) => {
            if cached.from_upstream {
                tracing::info!(container = %env.container_id, "deleting a pod set up by upstream Multus");
            }
            cached.attachments
        }
        None => rederive(env, conf).await?,
    };
    let failures = del_all(env, conf, &attachments).await;
    if !failures.is_empty() {
        // Keep the cache: the runtime retries DEL until everything is gone.
        return Err(PluginError::Many(failures));
    }
    // Best effort: the claims' entries of this sandbox.
    dra::withdraw_with_conf(conf, &env.container_id, &attachments).await;
    cache.remove(&env.container_id)?;
    Ok(Vec::new())
}

/// DELs `attachments` in reverse order, keeping going after failures;
/// returns every failure. ADD's rollback and GC use it too.
pub async fn del_all(
    env: &CniEnv,
    conf: &MultusNetConf,
    attachments: &[Attachment],
) -> Vec<PluginError> {
    let mut errors = Vec::new();
    for attachment in attachments.iter().rev() {
        let exec = ExecEnv::for_attachment(env, conf, attachment);
        if let Err(error) = delegate::del_network(
            &attachment.config,
            &attachment.capability_args,
            attachment.result.as_ref(),
            &exec,
        )
        .await
        {
            let cni_error = error.to_cni_error();
            if attachment.result.is_none()
                && cni_error.error_code() == Some(ErrorCode::PluginNotAvailable)
            {
                // ADD never completed for it and its plugin is missing, so
                // it cannot hold anything to release.
                tracing::warn!(attachment = %attachment.name, error = %cni_error, "skipping DEL of a delegate that never ran");
                devices::remove_device_info(attachment);
                continue;
            }
            tracing::warn!(attachment = %attachment.name, error = %cni_error, "delegate DEL failed");
            errors.push(PluginError::delegate(&attachment.name, error));
        } else {
            // Kept while DEL fails, so a retry still finds it.
            devices::remove_device_info(attachment);
        }
    }
    errors
}

/// Without a cache: the pod's attachments from the API when it can tell us,
/// else what the config alone names (cluster network, inline delegates).
async fn rederive(env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<Attachment>> {
    let identity = PodIdentity::from_args(&env.args);
    let client = match K8sClient::connect(conf, K8sSettings::default()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no API access for DEL; releasing what the config names");
            None
        }
    };
    let agent = client.as_ref().and(NodeAgent::from_conf(conf));
    let lookups = client.as_ref().map(|api| Lookups {
        agent: agent.as_ref(),
        api,
    });
    let fetched = match &lookups {
        Some(lookups) => lookups.pod(&identity).await,
        None => Ok(None),
    };
    let pod = match fetched {
        Ok(pod) => pod,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the pod for DEL; releasing what the config names");
            None
        }
    };
    let conf_dir = ConfDir::new(&conf.conf_dir);
    let input = PlanInput {
        conf,
        env,
        pod: pod.as_ref(),
        conf_dir: &conf_dir,
    };
    let planned = match (&lookups, &pod) {
        (Some(lookups), Some(_)) => plan(&input, lookups).await,
        _ => plan(&input, &NoNads).await,
    };
    match planned {
        Ok(mut p) => {
            if devices::needs_kubelet(&p.attachments) {
                // The delegates' DEL may need their device back; without
                // it they still get DEL, and the device-info files go.
                let api = client.as_ref().zip(pod.as_ref());
                if let Err(error) =
                    devices::allocate_devices(env, conf, &identity, api, &mut p.attachments).await
                {
                    tracing::warn!(%error, "cannot find the pod's devices for DEL");
                }
                let dir = std::path::Path::new(conf.device_info_dir());
                for a in p.attachments.iter_mut() {
                    if a.device.resource_name.is_some() && a.device.info_file.is_none() {
                        a.device.info_file =
                            Some(devices::cni_info_file(dir, a, &env.container_id));
                    }
                }
            }
            Ok(p.attachments)
        }
        Err((error, _)) => {
            // The pod's annotations no longer resolve (NAD deleted, ...):
            // release what we can name for sure, the cluster network and
            // the other inline delegates of the config.
            tracing::warn!(%error, "cannot re-derive the pod's attachments; releasing the cluster network and inline delegates only");
            let static_only = PlanInput { pod: None, ..input };
            plan_static(&static_only, &NoNads)
                .await
                .map(|p| p.attachments)
        }
    }
}
