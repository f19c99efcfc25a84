//! The CNI commands. Each takes the validated environment and the Multus
//! config and returns the bytes for stdout.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::NetworkAttachmentDefinition;

use crate::attachment::Attachment;
use crate::delegate::{self, DEFAULT_DELEGATE_TIMEOUT, ExecEnv};
use crate::env::CniEnv;
use crate::error::{PluginError, Result};
use crate::k8s::{K8sClient, K8sError, K8sSettings, PodRef};
use crate::plan::{NadSource, PodIdentity};
use crate::{devices, podresources};

/// How long ADD and STATUS wait for the readiness indicator file.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The per-container cache of `conf`.
pub fn cache(conf: &MultusNetConf) -> crate::cache::Cache {
    crate::cache::Cache::new(&conf.cni_dir).with_device_info_dir(conf.device_info_dir())
}

/// Converts an API error, keeping whether a retry may help.
pub fn k8s_error(e: K8sError) -> PluginError {
    PluginError::Kubernetes {
        transient: e.is_transient(),
        msg: e.to_string(),
    }
}

impl NadSource for K8sClient {
    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>> {
        K8sClient::get_nad(self, namespace, name)
            .await
            .map_err(k8s_error)
    }
}

/// The API client for `conf`, or `None` in delegates-only mode.
pub async fn connect(conf: &MultusNetConf) -> Result<Option<K8sClient>> {
    K8sClient::connect(conf, K8sSettings::default())
        .await
        .map_err(k8s_error)
}

/// The pod of this invocation, when the runtime named one and we have API
/// access. `Ok(None)` when the pod does not exist.
pub async fn fetch_pod(client: Option<&K8sClient>, identity: &PodIdentity) -> Result<Option<Pod>> {
    let (Some(client), true) = (client, identity.is_known()) else {
        return Ok(None);
    };
    client.get_pod(&pod_ref(identity)).await.map_err(k8s_error)
}

/// The API's name for the pod of `identity`.
pub fn pod_ref(identity: &PodIdentity) -> PodRef {
    PodRef {
        namespace: identity.namespace.clone(),
        name: identity.name.clone(),
        uid: (!identity.uid.is_empty()).then(|| identity.uid.clone()),
    }
}

/// The environment a delegate of `attachment` runs with.
pub fn exec_env(env: &CniEnv, conf: &MultusNetConf, attachment: &Attachment) -> ExecEnv {
    ExecEnv {
        container_id: env.container_id.clone(),
        netns: env.netns.clone(),
        ifname: attachment.ifname.clone(),
        args: attachment.cni_args.clone(),
        path: delegate::search_path(Path::new(&conf.bin_dir), &env.path),
        timeout: DEFAULT_DELEGATE_TIMEOUT,
    }
}

/// Asks the kubelet which devices the pod holds and gives every attachment
/// whose NAD names a resource the next unused device of it. Call only when
/// [`devices::needs_kubelet`]: it is the one place the kubelet is contacted.
pub async fn allocate_devices(
    env: &CniEnv,
    conf: &MultusNetConf,
    identity: &PodIdentity,
    attachments: &mut [Attachment],
) -> Result<()> {
    let Some((attachment, resource)) = attachments.iter().find_map(|a| {
        a.device
            .resource_name
            .as_ref()
            .map(|r| (a.name.clone(), r.clone()))
    }) else {
        return Ok(());
    };
    if !identity.is_known() {
        return Err(devices::DeviceError::UnknownPod {
            attachment,
            resource,
        }
        .into());
    }
    let socket = Path::new(conf.pod_resources_socket());
    let pod = podresources::pod_resources(
        socket,
        &identity.namespace,
        &identity.name,
        podresources::KUBELET_TIMEOUT,
    )
    .await
    .map_err(|error| PluginError::Kubelet {
        attachment,
        resource,
        error,
    })?;
    let held = match &pod {
        Some(pod) => devices::PodDevices::from_pod_resources(pod),
        None => {
            tracing::warn!(socket = %socket.display(), pod = %format!("{}/{}", identity.namespace, identity.name), "the kubelet does not list the pod");
            devices::PodDevices::default()
        }
    };
    devices::assign_devices(
        attachments,
        &held,
        identity,
        Path::new(conf.device_info_dir()),
        &env.container_id,
    )?;
    Ok(())
}

/// Waits (bounded) until the readiness indicator file exists.
pub async fn wait_for_readiness(conf: &MultusNetConf, timeout: Duration) -> Result<()> {
    let Some(path) = conf
        .readiness_indicator_file
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    let path = PathBuf::from(path);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if path.exists() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PluginError::Readiness(format!(
                "the default network is not ready: readiness indicator file {} did not appear within {}s",
                path.display(),
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// DELs `attachments` in reverse order, keeping going after failures;
/// returns every failure.
pub async fn del_all(
    env: &CniEnv,
    conf: &MultusNetConf,
    attachments: &[Attachment],
) -> Vec<PluginError> {
    let mut errors = Vec::new();
    for attachment in attachments.iter().rev() {
        let exec = exec_env(env, conf, attachment);
        if let Err(error) = delegate::del_network(
            &attachment.config,
            &attachment.capability_args,
            attachment.result.as_ref(),
            &exec,
        )
        .await
        {
            if attachment.result.is_none()
                && error.error_code()
                    == Some(multus_config::cni::error::ErrorCode::PluginNotAvailable)
            {
                // ADD never completed for it and its plugin is missing, so
                // it cannot hold anything to release.
                tracing::warn!(attachment = %attachment.name, %error, "skipping DEL of a delegate that never ran");
                devices::remove_device_info(attachment);
                continue;
            }
            tracing::warn!(attachment = %attachment.name, %error, "delegate DEL failed");
            errors.push(PluginError::Delegate {
                attachment: attachment.name.clone(),
                error,
            });
        } else {
            // Kept while DEL fails, so a retry still finds it.
            devices::remove_device_info(attachment);
        }
    }
    errors
}
