//! Device-aware attachments: a NAD annotated
//! `k8s.v1.cni.cncf.io/resourceName: <resource>` gets one of the devices of
//! that resource the pod holds, its ID passed to the delegate as
//! `deviceID`; device-info files are handed over per the multi-network
//! device-info specification.
//!
//! The pod holds devices through the kubelet's device plugins and through
//! its ResourceClaims (DRA, [`crate::dra`]). [`allocate_devices`] asks the
//! kubelet (the one place it is contacted) and, only for resources the
//! device plugins do not cover, the pod's claims; the matching of both to
//! the attachments is pure ([`PodDevices`], [`assign_devices`]); the file
//! work is small and best effort, as upstream's.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use multus_config::cni::runtime::{CAP_CNI_DEVICE_INFO_FILE, CAP_DEVICE_ID};
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::DeviceInfo;
use multus_config::npwg::device_info::{
    CNI_SUBDIR, DEVICE_PLUGIN_SUBDIR, cni_file_name, device_plugin_file_name, parse_device_info,
};
use serde_json::Value;

use crate::attachment::Attachment;
use crate::dra::{self, ClaimDevices, DraDevice, RESOURCE_NAME_ATTRIBUTE};
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::k8s::K8sClient;
use crate::plan::PodIdentity;
use crate::podresources::{self, api};

/// The devices a pod holds, per resource, in the order attachments take
/// them: first the device plugins' (containers in the kubelet's order;
/// within one container, the IDs of a resource sorted: upstream since
/// #1539, deterministic per container, never reordered across containers,
/// whose devices are theirs; a 1.28 kubelet lists a container's devices of
/// one resource in several entries, one per device, which are merged
/// before sorting), then the devices of the pod's ResourceClaims (claim
/// order, then allocation order, see [`crate::dra::claims`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDevices {
    by_resource: BTreeMap<String, Vec<String>>,
    /// Whether the kubelet listed the pod at all.
    listed: bool,
    /// The devices of the pod's ResourceClaims, when they were read.
    claimed: ClaimDevices,
}

impl PodDevices {
    /// What the kubelet reported for the pod.
    pub fn from_pod_resources(pod: &api::PodResources) -> Self {
        let mut out = Self {
            listed: true,
            ..Self::default()
        };
        for container in &pod.containers {
            let mut held: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for devices in &container.devices {
                held.entry(&devices.resource_name)
                    .or_default()
                    .extend(devices.device_ids.iter().cloned());
            }
            for (resource, mut ids) in held {
                ids.sort();
                out.push(resource, ids);
            }
            for dynamic in &container.dynamic_resources {
                out.add_dynamic(dynamic);
            }
        }
        out
    }

    /// The same devices followed by those of the pod's ResourceClaims.
    pub fn with_claims(mut self, claimed: ClaimDevices) -> Self {
        self.claimed = claimed;
        self
    }

    fn push(&mut self, resource: &str, ids: Vec<String>) {
        if resource.is_empty() || ids.is_empty() {
            return;
        }
        self.by_resource
            .entry(resource.to_owned())
            .or_default()
            .extend(ids);
    }

    /// DRA devices the kubelet reports with a class name (kubelets 1.27 to
    /// 1.30, classic DRA) count as the resource named like the class, each
    /// CDI device `vendor/class=ID` giving `ID`, as upstream v4.1 did.
    /// Kubelets 1.31+ report no class: their claims are read from the API
    /// server instead ([`crate::dra`]).
    fn add_dynamic(&mut self, dynamic: &api::DynamicResource) {
        let claim = format!("{}/{}", dynamic.claim_namespace, dynamic.claim_name);
        if dynamic.class_name.is_empty() {
            tracing::debug!(claim = %claim, "a structured DRA claim: its devices are matched through the API server");
            return;
        }
        let mut ids = Vec::new();
        for resource in &dynamic.claim_resources {
            for cdi in &resource.cdi_devices {
                match cdi.name.split_once('=') {
                    Some((_, id)) if !id.is_empty() && !id.contains('=') => ids.push(id.to_owned()),
                    _ => {
                        tracing::warn!(claim = %claim, device = %cdi.name, "ignoring a CDI device name that is not vendor/class=ID")
                    }
                }
            }
        }
        self.push(&dynamic.class_name, ids);
    }

    /// The device plugins' device IDs of `resource`, in assignment order.
    pub fn ids(&self, resource: &str) -> &[String] {
        self.by_resource.get(resource).map_or(&[], Vec::as_slice)
    }

    /// Every resource of the device plugins and its device IDs.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.by_resource
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// How many devices of `resource` the pod holds, both ways.
    pub fn count(&self, resource: &str) -> usize {
        self.ids(resource).len() + self.claimed.count(resource)
    }

    /// The `index`-th device of `resource` in assignment order: its ID and,
    /// for a claim's device, which one.
    pub fn device(&self, resource: &str, index: usize) -> Option<(&str, Option<&DraDevice>)> {
        let plugins = self.ids(resource);
        match plugins.get(index) {
            Some(id) => Some((id.as_str(), None)),
            None => self
                .claimed
                .get(resource, index - plugins.len())
                .map(|c| (c.id.as_str(), Some(&c.device))),
        }
    }
}

/// Why an attachment gets no device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The pod holds no (more) device of the NAD's resource.
    #[error(
        "{attachment}: the NetworkAttachmentDefinition needs a device of resource {resource} (k8s.v1.cni.cncf.io/resourceName) but pod {pod} {held}{hint}"
    )]
    NoDevice {
        /// The attachment (`namespace/name` of its NAD).
        attachment: String,
        /// The NAD's resource name.
        resource: String,
        /// The pod, `namespace/name`.
        pod: String,
        /// What the pod holds of it.
        held: String,
        /// What else may explain it.
        hint: String,
    },
    /// The runtime did not name the pod, so the kubelet cannot be asked.
    #[error(
        "{attachment}: the NetworkAttachmentDefinition needs a device of resource {resource} but the runtime's CNI_ARGS name no pod (K8S_POD_NAMESPACE, K8S_POD_NAME)"
    )]
    UnknownPod {
        /// The attachment.
        attachment: String,
        /// The NAD's resource name.
        resource: String,
    },
}

/// Whether any attachment needs a device from the kubelet.
pub fn needs_kubelet(attachments: &[Attachment]) -> bool {
    attachments.iter().any(|a| a.device.resource_name.is_some())
}

/// The first attachment (name, resource) that `held` has no device for,
/// counting the devices earlier attachments of its resource take.
pub fn first_unserved(attachments: &[Attachment], held: &PodDevices) -> Option<(String, String)> {
    let mut wanted: BTreeMap<&str, usize> = BTreeMap::new();
    for attachment in attachments {
        let Some(resource) = attachment.device.resource_name.as_deref() else {
            continue;
        };
        let count = wanted.entry(resource).or_default();
        *count += 1;
        if *count > held.count(resource) {
            return Some((attachment.name.clone(), resource.to_owned()));
        }
    }
    None
}

/// The per-attachment device-info file (`CNIDeviceInfoFile`):
/// `<dir>/cni/<network>-<containerID>_<ifname>`.
pub fn cni_info_file(info_dir: &Path, attachment: &Attachment, container_id: &str) -> PathBuf {
    info_dir.join(CNI_SUBDIR).join(cni_file_name(
        &attachment.name,
        container_id,
        &attachment.ifname,
    ))
}

/// The device plugin's device-info file of one device.
pub fn device_plugin_info_file(info_dir: &Path, resource: &str, device_id: &str) -> PathBuf {
    info_dir
        .join(DEVICE_PLUGIN_SUBDIR)
        .join(device_plugin_file_name(resource, device_id))
}

/// Gives `attachment` the device `id`: `deviceID` capability argument,
/// `CNIDeviceInfoFile` pointing to its per-attachment file, and, for a
/// device of the NAD's resource (`in_config`), `deviceID` and `pciBusID`
/// in the delegate's config (every plugin of a list), as upstream does.
pub fn set_device(
    attachment: &mut Attachment,
    id: &str,
    in_config: bool,
    info_dir: &Path,
    container_id: &str,
) {
    attachment.device.id = Some(id.to_owned());
    attachment
        .capability_args
        .insert(CAP_DEVICE_ID.into(), Value::from(id));
    let file = cni_info_file(info_dir, attachment, container_id);
    attachment.capability_args.insert(
        CAP_CNI_DEVICE_INFO_FILE.into(),
        Value::from(file.to_string_lossy().into_owned()),
    );
    attachment.device.info_file = Some(file);
    if in_config {
        let mut value = attachment.config.to_value();
        inject_device_id(&mut value, id);
        match multus_config::cni::netconf::NetworkConfig::from_value(value) {
            Ok(config) => attachment.config = config,
            Err(e) => {
                tracing::warn!(attachment = %attachment.name, error = %e, "cannot add deviceID to the config")
            }
        }
    }
}

/// Adds `deviceID` and `pciBusID` to a config: top level for a single
/// config, every plugin for a list.
pub fn inject_device_id(config: &mut Value, id: &str) {
    let set = |plugin: &mut Value| {
        if let Some(obj) = plugin.as_object_mut() {
            obj.insert("deviceID".into(), Value::from(id));
            obj.insert("pciBusID".into(), Value::from(id));
        }
    };
    match config.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins.iter_mut().for_each(set),
        None => set(config),
    }
}

/// Gives every attachment whose NAD names a resource the next unused
/// device of it, in attachment order (the device plugins' first, then the
/// claims'). Fails for the first that gets none.
pub fn assign_devices(
    attachments: &mut [Attachment],
    devices: &PodDevices,
    pod: &PodIdentity,
    info_dir: &Path,
    container_id: &str,
) -> Result<(), DeviceError> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attachment in attachments.iter_mut() {
        let Some(resource) = attachment.device.resource_name.clone() else {
            continue;
        };
        let taken = used.entry(resource.clone()).or_default();
        let Some((id, claimed)) = devices.device(&resource, taken.len()) else {
            return Err(no_device(attachment, &resource, devices, pod, taken));
        };
        if attachment.device.id.as_deref().is_some_and(|own| own != id) {
            tracing::debug!(attachment = %attachment.name, "the annotation's deviceID is replaced by the pod's device of the NAD's resource");
        }
        taken.push(attachment.name.clone());
        set_device(attachment, id, true, info_dir, container_id);
        attachment.device.dra = claimed.cloned();
        match claimed {
            Some(d) => {
                tracing::debug!(attachment = %attachment.name, resource = %resource, device = %id, claim = %d.claim(), claim_device = %d.device_path(), "claim device assigned")
            }
            None => {
                tracing::debug!(attachment = %attachment.name, resource = %resource, device = %id, "device assigned")
            }
        }
    }
    Ok(())
}

/// Finds the devices the pod holds and gives every attachment whose NAD
/// names a resource the next unused device of it. Call only when
/// [`needs_kubelet`]: it is the one place the kubelet is contacted. The
/// pod's ResourceClaims (with `api`: the client and the pod) are read only
/// when the device plugins leave an attachment without a device and the
/// pod has claims.
pub async fn allocate_devices(
    env: &CniEnv,
    conf: &MultusNetConf,
    identity: &PodIdentity,
    api: Option<(&K8sClient, &Pod)>,
    attachments: &mut [Attachment],
) -> Result<(), PluginError> {
    let Some(held) = held_devices(conf, identity, api, attachments).await? else {
        return Ok(());
    };
    assign_devices(
        attachments,
        &held,
        identity,
        Path::new(conf.device_info_dir()),
        &env.container_id,
    )?;
    Ok(())
}

/// The devices the pod holds (the kubelet's, then its claims' when the
/// kubelet's leave one of `attachments` without), or `None` when none of
/// `attachments` names a resource.
pub async fn held_devices(
    conf: &MultusNetConf,
    identity: &PodIdentity,
    api: Option<(&K8sClient, &Pod)>,
    attachments: &[Attachment],
) -> Result<Option<PodDevices>, PluginError> {
    let Some((attachment, resource)) = attachments.iter().find_map(|a| {
        a.device
            .resource_name
            .as_ref()
            .map(|r| (a.name.clone(), r.clone()))
    }) else {
        return Ok(None);
    };
    if !identity.is_known() {
        return Err(DeviceError::UnknownPod {
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
    let mut held = match &pod {
        Some(pod) => PodDevices::from_pod_resources(pod),
        None => {
            tracing::warn!(socket = %socket.display(), pod = %format!("{}/{}", identity.namespace, identity.name), "the kubelet does not list the pod");
            PodDevices::default()
        }
    };
    if let Some((attachment, resource)) = first_unserved(attachments, &held)
        && let Some((client, pod)) = api
        && !dra::pod_claim_names(pod).is_empty()
    {
        let claimed = dra::read_claim_devices(client, pod)
            .await
            .map_err(|error| PluginError::ResourceClaims {
                attachment,
                resource,
                error: Box::new(error),
            })?;
        held = held.with_claims(claimed);
    }
    Ok(Some(held))
}

/// Gives every attachment of `added` whose NAD names a resource a device
/// of it the pod holds that no attachment in `in_use` has (a network
/// hot-plugged into a running pod gets a free device or fails).
pub fn assign_free_devices(
    added: &mut [Attachment],
    devices: &PodDevices,
    in_use: &[Attachment],
    pod: &PodIdentity,
    info_dir: &Path,
    container_id: &str,
) -> Result<(), DeviceError> {
    let mut taken: Vec<(String, String)> = in_use
        .iter()
        .filter_map(|a| Some((a.device.id.clone()?, a.name.clone())))
        .collect();
    for attachment in added.iter_mut() {
        let Some(resource) = attachment.device.resource_name.clone() else {
            continue;
        };
        let free = (0..devices.count(&resource))
            .filter_map(|index| devices.device(&resource, index))
            .find(|(id, _)| !taken.iter().any(|(used, _)| used == id));
        let Some((id, claimed)) = free else {
            let users: Vec<String> = (0..devices.count(&resource))
                .filter_map(|index| devices.device(&resource, index))
                .filter_map(|(id, _)| {
                    taken
                        .iter()
                        .find(|(used, _)| used == id)
                        .map(|(_, by)| by.clone())
                })
                .collect();
            return Err(no_device(attachment, &resource, devices, pod, &users));
        };
        let (id, claimed) = (id.to_owned(), claimed.cloned());
        taken.push((id.clone(), attachment.name.clone()));
        set_device(attachment, &id, true, info_dir, container_id);
        attachment.device.dra = claimed;
    }
    Ok(())
}

fn no_device(
    attachment: &Attachment,
    resource: &str,
    devices: &PodDevices,
    pod: &PodIdentity,
    taken: &[String],
) -> DeviceError {
    let held = if taken.is_empty() {
        format!(
            "holds none: request {resource} in the resources of one of its containers, or a device with the attribute {RESOURCE_NAME_ATTRIBUTE}={resource} in a ResourceClaim"
        )
    } else {
        format!(
            "holds only {} and {} to earlier networks ({}): request one {resource} per network that uses it",
            taken.len(),
            if taken.len() == 1 {
                "it went"
            } else {
                "they went"
            },
            taken.join(", ")
        )
    };
    let mut hint = String::new();
    if !devices.listed {
        hint.push_str("; the kubelet does not list the pod");
    }
    if taken.is_empty() {
        let mut others: Vec<&str> = devices.resources().map(|(r, _)| r).collect();
        for claimed in devices.claimed.resources() {
            if !others.contains(&claimed) {
                others.push(claimed);
            }
        }
        if !others.is_empty() {
            hint.push_str(&format!("; it holds {}", others.join(", ")));
        }
    }
    for problem in devices.claimed.problems() {
        hint.push_str("; ");
        hint.push_str(&problem.to_string());
    }
    DeviceError::NoDevice {
        attachment: attachment.name.clone(),
        resource: resource.to_owned(),
        pod: format!("{}/{}", pod.namespace, pod.name),
        held,
        hint,
    }
}

/// Before the delegate's ADD: copies the device plugin's device-info file
/// of the attachment's device to its per-attachment file. Best effort (a
/// device plugin need not write one): failures are logged, as upstream.
pub fn copy_device_plugin_info(attachment: &Attachment, info_dir: &Path) {
    let (Some(resource), Some(id), Some(target)) = (
        &attachment.device.resource_name,
        &attachment.device.id,
        &attachment.device.info_file,
    ) else {
        return;
    };
    let source = device_plugin_info_file(info_dir, resource, id);
    let bytes = match fs::read(&source) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(file = %source.display(), "the device plugin left no device-info file");
            return;
        }
        Err(e) => {
            tracing::warn!(file = %source.display(), error = %e, "cannot read the device plugin's device-info file");
            return;
        }
    };
    if let Err(e) = parse_device_info(&bytes) {
        tracing::warn!(file = %source.display(), error = %e, "the device plugin's device-info file is not valid; not passed on");
        return;
    }
    if let Err(e) = write_read_only(target, &bytes) {
        tracing::warn!(file = %target.display(), error = %e, "cannot write the attachment's device-info file");
    }
}

/// Writes `bytes` to `path` (mode 0444, as upstream) through a temp file
/// and a rename, creating the directory; not fsynced (device-info files
/// describe a sandbox that a reboot ends anyway).
fn write_read_only(path: &Path, bytes: &[u8]) -> Result<(), multus_fsutil::IoError> {
    multus_fsutil::AtomicWrite::new(0o444)
        .create_dir(0o777)
        .sync_file(false)
        .sync_dir(false)
        .write(path, bytes)
        .map(drop)
}

/// After the delegate's ADD: the attachment's device information (copied
/// from the device plugin, or written by the CNI plugin itself), for the
/// network-status. Best effort.
pub fn read_device_info(attachment: &Attachment) -> Option<DeviceInfo> {
    let path = attachment.device.info_file.as_ref()?;
    match fs::read(path) {
        Ok(bytes) => parse_device_info(&bytes)
            .inspect_err(|e| tracing::warn!(file = %path.display(), error = %e, "ignoring an invalid device-info file"))
            .ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the device-info file");
            None
        }
    }
}

/// After the delegate's DEL: removes the attachment's device-info file.
/// Best effort.
pub fn remove_device_info(attachment: &Attachment) {
    let Some(path) = &attachment.device.info_file else {
        return;
    };
    match fs::remove_file(path) {
        Ok(()) => tracing::debug!(file = %path.display(), "device-info file removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove the device-info file")
        }
    }
}

#[cfg(test)]
mod tests;
