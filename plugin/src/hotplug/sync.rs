//! `multus sync-networks [--mount-ns FILE] [--cgroup-of PID]`: brings a
//! running pod's interfaces in step with its networks annotation (network
//! hot-plug, asked by the node agent when the annotation changed; see
//! `multus_config::hotplug`).
//!
//! 1. The pod (from the agent's watch, on stdin) must not use the host's
//!    network; its annotation must parse.
//! 2. Its ready sandbox and network namespace come from the container
//!    runtime's CRI API; the sandbox's lock is taken (the runtime's ADD
//!    and DEL wait, and a DEL that came first leaves no cache: nothing is
//!    done).
//! 3. The annotation's elements are matched with the attachments the
//!    cache records after the ones every pod gets: by network and
//!    requested interface, else by network in order. Unmatched elements
//!    are added, unmatched attachments removed.
//! 4. The added ones are planned first (NADs, names, devices): a missing
//!    NAD or a taken name changes nothing. Removed ones are DELed with
//!    their cached config, then the added ones ADDed, each recorded in the
//!    cache before its delegate runs; a failed ADD rolls back every
//!    network added in this sync.
//! 5. network-status is rewritten from the cache, and Events say what was
//!    attached, detached or why nothing could be.
//!
//! New interfaces get the name the plugin would have given at ADD
//! (`net<k>` by position, or the requested one); when that is taken (a
//! network removed before it kept its interface), the lowest free
//! `net<k>`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use multus_config::cni::args::{CniArgs, PodArgs};
use multus_config::hotplug::{
    InterfaceChange, REASON_HOTPLUG_FAILED, REASON_HOTPLUG_REFUSED, REASON_REMOVED_INTERFACE,
    SyncInput, SyncOutcome, SyncState,
};
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::selection::{NetworkSelectionElement, parse_networks_annotation};
use multus_config::npwg::{NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, NetworkStatus};

use super::{AgentChild, HotplugArgs, HotplugError, enter_namespaces, same_file};
use crate::attachment::{Attachment, Origin};
use crate::cache::{Cache, CacheError, CachedAttachments};
use crate::commands::Command;
use crate::commands::add::apply_default_routes;
use crate::commands::del::del_all;
use crate::cri;
use crate::delegate::{self, ExecEnv};
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::k8s::{
    EventType, K8sClient, K8sSettings, PodRef, REASON_ADDED_INTERFACE, added_interface_message,
};
use crate::lookup::Lookups;
use crate::network_status::{network_statuses, result100};
use crate::node_agent::NodeAgent;
use crate::plan::{
    ConfDir, PlanInput, PodIdentity, added_selection_attachments, static_attachment_count,
};
use crate::{devices, netns};

/// How long the runtime's CRI API may take to name the sandbox.
pub const CRI_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sync waits for the runtime's ADD or DEL of the sandbox.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one sync; the [`SyncOutcome`] as JSON for stdout.
pub fn run(
    args: &HotplugArgs,
    stdin: &[u8],
    cni_path: Option<&str>,
) -> Result<Vec<u8>, HotplugError> {
    enter_namespaces(args)?;
    let input: SyncInput = serde_json::from_slice(stdin).map_err(HotplugError::Input)?;
    let child = AgentChild::start(&input.multus_config, cni_path)?;
    let outcome = child
        .runtime
        .block_on(sync(&child.conf, &child.cni_path, &input));
    serde_json::to_vec(&outcome).map_err(HotplugError::Encode)
}

/// Publishes what happened to the pod (Events), best effort.
struct Reporter<'a> {
    client: Option<&'a K8sClient>,
    pod: &'a Pod,
    quiet: bool,
}

impl Reporter<'_> {
    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        if let Some(client) = self.client {
            client.record_event(self.pod, kind, reason, message).await;
        }
    }

    /// Nothing can be done until the annotation changes.
    async fn refuse(&self, message: String) -> SyncOutcome {
        tracing::warn!(%message, "network hot-plug refused");
        if !self.quiet {
            self.event(EventType::Warning, REASON_HOTPLUG_REFUSED, &message)
                .await;
        }
        SyncOutcome::new(SyncState::Refused, Some(message))
    }

    /// Something failed; the agent tries again later.
    async fn fail(&self, message: String, changes: Changes) -> SyncOutcome {
        tracing::error!(%message, "network hot-plug failed");
        self.event(EventType::Warning, REASON_HOTPLUG_FAILED, &message)
            .await;
        SyncOutcome {
            state: SyncState::Failed,
            attached: changes.attached,
            detached: changes.detached,
            message: Some(message),
        }
    }
}

/// What a sync changed so far.
#[derive(Debug, Default)]
struct Changes {
    attached: Vec<InterfaceChange>,
    detached: Vec<InterfaceChange>,
}

fn change(attachment: &Attachment) -> InterfaceChange {
    InterfaceChange {
        network: attachment.name.clone(),
        interface: attachment.ifname.clone(),
    }
}

fn pod_identity(pod: &Pod) -> PodIdentity {
    PodIdentity {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

fn annotation<'p>(pod: &'p Pod, key: &str) -> Option<&'p str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The CNI environment of the sandbox, as the runtime gave it at ADD.
fn sandbox_env(
    command: Command,
    identity: &PodIdentity,
    sandbox: &str,
    netns: &Path,
    cni_path: &[PathBuf],
) -> CniEnv {
    let args = CniArgs::for_delegate(
        PodArgs {
            namespace: &identity.namespace,
            name: &identity.name,
            infra_container_id: sandbox,
            uid: &identity.uid,
        },
        &CniArgs::default(),
    );
    CniEnv {
        command,
        container_id: sandbox.to_owned(),
        netns: Some(netns.to_path_buf()),
        ifname: "eth0".into(),
        args,
        path: cni_path.to_vec(),
    }
}

/// Which cached attachments (indices into `current`) the elements keep;
/// `None` for an element to add.
fn match_elements(
    elements: &[NetworkSelectionElement],
    current: &[Attachment],
) -> Vec<Option<usize>> {
    let mut used = vec![false; current.len()];
    let mut matched = vec![None; elements.len()];
    // Requested interfaces first: they name exactly one attachment.
    for (i, element) in elements.iter().enumerate() {
        let Some(ifname) = &element.interface else {
            continue;
        };
        let network = element.namespaced_name();
        if let Some(j) = (0..current.len())
            .find(|&j| !used[j] && current[j].ifname == *ifname && current[j].name == network)
        {
            used[j] = true;
            matched[i] = Some(j);
        }
    }
    for (i, element) in elements.iter().enumerate() {
        if element.interface.is_some() {
            continue;
        }
        let network = element.namespaced_name();
        if let Some(j) = (0..current.len()).find(|&j| !used[j] && current[j].name == network) {
            used[j] = true;
            matched[i] = Some(j);
        }
    }
    matched
}

/// The interface of each added element: the requested one, else the one
/// ADD would have given at its position when free, else the lowest free
/// `net<k>`. Fails naming the network whose requested name is taken.
fn added_names(
    elements: &[NetworkSelectionElement],
    matched: &[Option<usize>],
    static_count: usize,
    taken: &mut BTreeSet<String>,
) -> Result<Vec<(NetworkSelectionElement, String)>, String> {
    let mut added = Vec::new();
    for (i, element) in elements.iter().enumerate() {
        if matched[i].is_some() {
            continue;
        }
        let ifname = match &element.interface {
            Some(requested) => {
                if taken.contains(requested) {
                    return Err(format!(
                        "interface {requested} requested for network {} is already in use in the pod",
                        element.namespaced_name()
                    ));
                }
                requested.clone()
            }
            None => {
                let positional = format!("net{}", static_count + i);
                if taken.contains(&positional) {
                    (1..)
                        .map(|k| format!("net{k}"))
                        .find(|name| !taken.contains(name))
                        .unwrap_or(positional)
                } else {
                    positional
                }
            }
        };
        taken.insert(ifname.clone());
        added.push((element.clone(), ifname));
    }
    Ok(added)
}

/// Whether the pod's network-status already lists exactly these
/// interfaces.
fn status_in_step(pod: &Pod, statuses: &[NetworkStatus]) -> bool {
    let Some(text) = annotation(pod, NETWORK_STATUS_ANNOTATION) else {
        return false;
    };
    let Ok(published) = serde_json::from_str::<Vec<NetworkStatus>>(text) else {
        return false;
    };
    let key = |s: &NetworkStatus| (s.name.clone(), s.interface.clone());
    published.iter().map(key).collect::<Vec<_>>() == statuses.iter().map(key).collect::<Vec<_>>()
}

async fn sync(conf: &MultusNetConf, cni_path: &[PathBuf], input: &SyncInput) -> SyncOutcome {
    let pod: Pod = match serde_json::from_value(input.pod.clone()) {
        Ok(pod) => pod,
        Err(e) => {
            return SyncOutcome::new(
                SyncState::Refused,
                Some(format!("the pod given by the node agent is not a Pod: {e}")),
            );
        }
    };
    let identity = pod_identity(&pod);
    let client = match K8sClient::connect(conf, K8sSettings::default()).await {
        Ok(client) => client,
        Err(e) => {
            return SyncOutcome::new(
                SyncState::Failed,
                Some(format!("no access to the API server: {e}")),
            );
        }
    };
    let reporter = Reporter {
        client: client.as_ref(),
        pod: &pod,
        quiet: input.quiet,
    };
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return reporter
            .refuse(format!(
                "pod {}/{} uses the host's network: networks cannot be attached to it",
                identity.namespace, identity.name
            ))
            .await;
    }
    let elements = match annotation(&pod, NETWORKS_ANNOTATION) {
        None => Vec::new(),
        Some(text) => match parse_networks_annotation(text, &identity.namespace) {
            Ok(elements) => elements,
            Err(e) => {
                return reporter
                    .refuse(format!(
                        "the {NETWORKS_ANNOTATION} annotation cannot be used, so the pod's networks stay as they are: {e}"
                    ))
                    .await;
            }
        },
    };
    let socket = Path::new(&input.cri_socket);
    let sandbox = match cri::find_sandbox(socket, &identity.uid, CRI_TIMEOUT).await {
        Ok(Some(sandbox)) => sandbox,
        Ok(None) => return SyncOutcome::new(SyncState::NoSandbox, None),
        Err(e) => {
            let message =
                format!("cannot find the pod's sandbox, so its networks cannot be changed: {e}");
            tracing::warn!(%message, "network hot-plug");
            if !input.quiet {
                reporter
                    .event(EventType::Warning, REASON_HOTPLUG_REFUSED, &message)
                    .await;
            }
            return SyncOutcome::new(SyncState::Failed, Some(message));
        }
    };
    let Some(netns) = sandbox.netns.clone() else {
        return reporter
            .refuse(format!(
                "sandbox {} of pod {}/{} has no network namespace of its own (host network): networks cannot be attached to it",
                sandbox.id, identity.namespace, identity.name
            ))
            .await;
    };
    let cache = Cache::for_conf(conf);
    let _lock = match cache.lock(&sandbox.id, LOCK_TIMEOUT) {
        Ok(lock) => lock,
        Err(e) => return SyncOutcome::new(SyncState::Failed, Some(e.to_string())),
    };
    let cached = match cache.load(&sandbox.id, "eth0", "") {
        Ok(Some(cached)) => cached,
        Ok(None) => {
            // Ours, created by the lock: nothing of this sandbox is left
            // (or ever was) to guard.
            if let Err(e) = cache.remove(&sandbox.id) {
                tracing::debug!(error = %e, "cannot remove the sandbox's lock file");
            }
            if !netns.exists() {
                return SyncOutcome::new(SyncState::NoSandbox, None);
            }
            return reporter
                .refuse(format!(
                    "sandbox {} of pod {}/{} was not set up through Multus on this node (it has no Multus cache): its networks cannot be changed",
                    sandbox.id, identity.namespace, identity.name
                ))
                .await;
        }
        Err(e) => {
            return reporter
                .fail(
                    format!("the pod's networks cannot be changed: {e}"),
                    Changes::default(),
                )
                .await;
        }
    };
    if let Some(recorded) = &cached.netns
        && !same_file(recorded, &netns)
    {
        return SyncOutcome::new(
            SyncState::NoSandbox,
            Some(format!(
                "the runtime names network namespace {} for sandbox {}, its Multus cache {}: waiting for the sandbox to settle",
                netns.display(),
                sandbox.id,
                recorded.display()
            )),
        );
    }
    let sandbox_ctx = Sandbox {
        conf,
        cni_path,
        identity: &identity,
        id: &sandbox.id,
        netns: &netns,
        cache: &cache,
    };
    sandbox_ctx
        .reconcile(&elements, cached, client.as_ref(), &pod, &reporter)
        .await
}

/// The pod's sandbox, locked.
struct Sandbox<'a> {
    conf: &'a MultusNetConf,
    cni_path: &'a [PathBuf],
    identity: &'a PodIdentity,
    id: &'a str,
    netns: &'a Path,
    cache: &'a Cache,
}

impl Sandbox<'_> {
    fn env(&self, command: Command) -> CniEnv {
        sandbox_env(command, self.identity, self.id, self.netns, self.cni_path)
    }

    fn save(&self, attachments: &[Attachment]) -> Result<(), CacheError> {
        self.cache.save(self.id, Some(self.netns), attachments)
    }

    async fn reconcile(
        &self,
        elements: &[NetworkSelectionElement],
        cached: CachedAttachments,
        client: Option<&K8sClient>,
        pod: &Pod,
        reporter: &Reporter<'_>,
    ) -> SyncOutcome {
        let conf = self.conf;
        let from_upstream = cached.from_upstream;
        let mut all = cached.attachments;
        // Which attachments the annotation governs: those recorded as
        // its own; in caches that do not record it (older versions,
        // upstream's), those after the ones every pod gets, as today's
        // config counts them.
        let computed = static_attachment_count(conf, self.identity).min(all.len());
        let recorded_static = all.iter().filter(|a| a.origin == Origin::Static).count();
        let static_count = if recorded_static > 0 {
            recorded_static
        } else {
            computed
        };
        let governed: Vec<usize> = (0..all.len())
            .filter(|&j| match all[j].origin {
                Origin::Annotation => true,
                Origin::Static | Origin::DelegateApi => false,
                Origin::Unrecorded => j >= computed && !all[j].is_cluster_network,
            })
            .collect();
        // An attachment recorded without a result was being added when its
        // sync was killed (agent restart): DEL it and add it again.
        let unfinished = |a: &Attachment| a.result.is_none() && !from_upstream;
        let mut candidates: Vec<Attachment> = governed.iter().map(|&j| all[j].clone()).collect();
        for candidate in candidates.iter_mut().filter(|a| unfinished(a)) {
            candidate.name.clear();
        }
        let matched = match_elements(elements, &candidates);
        let kept: BTreeSet<usize> = matched.iter().flatten().map(|&k| governed[k]).collect();
        let removed: Vec<usize> = governed
            .iter()
            .copied()
            .filter(|j| !kept.contains(j))
            .collect();
        let to_add = matched.iter().filter(|m| m.is_none()).count();
        let system = conf.is_system_namespace(&self.identity.namespace);
        if removed.is_empty() && to_add == 0 {
            // Nothing to change; heal a network-status an earlier sync
            // could not write.
            let statuses = network_statuses(&all);
            if let Some(client) = client
                && !system
                && !status_in_step(pod, &statuses)
                && let Err(e) = client
                    .set_network_status(&PodRef::from(self.identity), &statuses)
                    .await
            {
                return SyncOutcome::new(
                    SyncState::Failed,
                    Some(format!("cannot rewrite the pod's network-status: {e}")),
                );
            }
            return SyncOutcome::new(SyncState::InStep, None);
        }

        // 1. Plan the added networks: a bad one changes nothing.
        let mut taken: BTreeSet<String> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| !removed.contains(j))
            .map(|(_, a)| a.ifname.clone())
            .collect();
        match netns::link_names(self.netns) {
            Ok(links) => {
                // Links of removed attachments go with their DEL.
                let removed_names: Vec<&str> =
                    removed.iter().map(|&j| all[j].ifname.as_str()).collect();
                taken.extend(
                    links
                        .into_iter()
                        .filter(|l| !removed_names.contains(&l.as_str())),
                );
            }
            Err(e) => {
                return reporter
                    .fail(
                        format!("cannot list the pod's interfaces: {e}"),
                        Changes::default(),
                    )
                    .await;
            }
        }
        let added = match added_names(elements, &matched, static_count, &mut taken) {
            Ok(added) => added,
            Err(message) => {
                return reporter
                    .fail(
                        format!("{message}; the pod's networks are unchanged"),
                        Changes::default(),
                    )
                    .await;
            }
        };
        let env = self.env(Command::Add);
        let conf_dir = ConfDir::new(&conf.conf_dir);
        let input = PlanInput {
            conf,
            env: &env,
            pod: Some(pod),
            conf_dir: &conf_dir,
        };
        let mut new = if added.is_empty() {
            Vec::new()
        } else {
            let Some(api) = client else {
                return reporter
                    .fail(
                        "no API access: the added networks' NADs cannot be read".into(),
                        Changes::default(),
                    )
                    .await;
            };
            let agent = NodeAgent::from_conf(conf);
            let lookups = Lookups {
                agent: agent.as_ref(),
                api,
            };
            match added_selection_attachments(&input, &added, &lookups).await {
                Ok(new) => new,
                Err((e, _)) => {
                    return reporter
                        .fail(
                            format!("cannot attach the networks added to the pod's annotation, so its networks are unchanged: {e}"),
                            Changes::default(),
                        )
                        .await;
                }
            }
        };
        if new.iter().any(|a| a.device.resource_name.is_some()) {
            let remaining: Vec<Attachment> = all
                .iter()
                .enumerate()
                .filter(|(j, _)| !removed.contains(j))
                .map(|(_, a)| a.clone())
                .collect();
            let held = match devices::held_devices(conf, self.identity, client.zip(Some(pod)), &new)
                .await
            {
                Ok(held) => held.unwrap_or_default(),
                Err(e) => {
                    return reporter
                        .fail(
                            format!("cannot attach the networks added to the pod's annotation, so its networks are unchanged: {e}"),
                            Changes::default(),
                        )
                        .await;
                }
            };
            if let Err(e) = devices::assign_free_devices(
                &mut new,
                &held,
                &remaining,
                self.identity,
                Path::new(conf.device_info_dir()),
                self.id,
            ) {
                return reporter
                    .fail(
                        format!("cannot attach the networks added to the pod's annotation, so its networks are unchanged: {e}"),
                        Changes::default(),
                    )
                    .await;
            }
        }

        // 2. Detach, last attached first.
        let mut changes = Changes::default();
        let del_env = self.env(Command::Del);
        let mut failures = Vec::new();
        for &j in removed.iter().rev() {
            let attachment = all[j].clone();
            let errors = del_all(&del_env, conf, std::slice::from_ref(&attachment)).await;
            if errors.is_empty() {
                all.remove(j);
                if let Err(e) = self.save(&all) {
                    failures.push(PluginError::from(e));
                }
                changes.detached.push(change(&attachment));
                tracing::info!(network = %attachment.name, ifname = %attachment.ifname, "detached (annotation changed)");
            } else {
                failures.extend(errors);
            }
        }

        // 3. Attach, each recorded before its delegate runs.
        let before = all.clone();
        let mut attach_error = None;
        if !new.is_empty() {
            all.extend(new.iter().cloned());
            if let Err(e) = self.save(&all) {
                attach_error = Some(PluginError::from(e));
            }
        }
        let first_new = before.len();
        let info_dir = Path::new(conf.device_info_dir());
        let mut done = 0;
        while attach_error.is_none() && done < new.len() {
            let index = first_new + done;
            devices::copy_device_plugin_info(&all[index], info_dir);
            let exec = ExecEnv::for_attachment(&env, conf, &all[index]);
            let outcome =
                delegate::add_network(&all[index].config, &all[index].capability_args, &exec)
                    .await
                    .map_err(|e| PluginError::delegate(&all[index].name, e))
                    .and_then(|result| {
                        result
                            .to_value()
                            .map_err(|source| PluginError::DelegateResult {
                                attachment: all[index].name.clone(),
                                source,
                            })
                    });
            done += 1;
            match outcome {
                Ok(value) => {
                    all[index].result = Some(value);
                    all[index].device.info = devices::read_device_info(&all[index]);
                }
                Err(e) => attach_error = Some(e),
            }
        }
        if attach_error.is_none()
            && !new.is_empty()
            && let Err(e) = apply_default_routes(&env, &mut all[first_new..])
        {
            attach_error = Some(e);
        }
        if attach_error.is_none()
            && !new.is_empty()
            && let Err(e) = self.save(&all)
        {
            attach_error = Some(e.into());
        }
        if let Some(error) = attach_error {
            // Undo every network added in this sync (the failed one too).
            let undone = &all[first_new..first_new + done];
            let rollback = del_all(&del_env, conf, undone).await;
            if rollback.is_empty() {
                if let Err(e) = self.save(&before) {
                    failures.push(e.into());
                }
                all = before;
            } else {
                // Keep them recorded: the pod's DEL releases them.
                failures.extend(rollback);
            }
            failures.insert(0, error);
        } else {
            changes.attached = all[first_new..].iter().map(change).collect();
        }

        // 4. Publish.
        if let Some(client) = client
            && !system
            && let Err(e) = client
                .set_network_status(&PodRef::from(self.identity), &network_statuses(&all))
                .await
        {
            failures.push(e.into());
        }
        for attachment in &all[first_new.min(all.len())..] {
            if !changes
                .attached
                .iter()
                .any(|c| c.interface == attachment.ifname)
            {
                continue;
            }
            let ips: Vec<String> = result100(attachment)
                .map(|r| r.ips.iter().map(|ip| ip.address.to_string()).collect())
                .unwrap_or_default();
            reporter
                .event(
                    EventType::Normal,
                    REASON_ADDED_INTERFACE,
                    &added_interface_message(&attachment.ifname, &ips, &attachment.name),
                )
                .await;
        }
        for detached in &changes.detached {
            reporter
                .event(
                    EventType::Normal,
                    REASON_REMOVED_INTERFACE,
                    &format!(
                        "Removed interface {} of network {}",
                        detached.interface, detached.network
                    ),
                )
                .await;
        }
        if failures.is_empty() {
            tracing::info!(pod = %format!("{}/{}", self.identity.namespace, self.identity.name), attached = changes.attached.len(), detached = changes.detached.len(), "the pod's networks follow its annotation");
            return SyncOutcome {
                state: SyncState::InStep,
                attached: changes.attached,
                detached: changes.detached,
                message: None,
            };
        }
        let error = if failures.len() == 1 {
            failures.remove(0)
        } else {
            PluginError::Many(failures)
        };
        let message = if new.is_empty() {
            format!("cannot change the pod's networks: {error}")
        } else {
            format!(
                "cannot attach the networks added to the pod's annotation ({}); what was attached was undone: {error}",
                new.iter()
                    .map(|a| format!("{} on {}", a.name, a.ifname))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        reporter.fail(message, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(name: &str, interface: Option<&str>) -> NetworkSelectionElement {
        NetworkSelectionElement {
            name: name.into(),
            namespace: "ns".into(),
            interface: interface.map(str::to_owned),
            ..NetworkSelectionElement::default()
        }
    }

    fn attached(name: &str, ifname: &str) -> Attachment {
        Attachment {
            name: format!("ns/{name}"),
            config: multus_config::cni::netconf::NetworkConfig::parse(
                br#"{"cniVersion":"1.0.0","name":"x","type":"bridge"}"#,
            )
            .unwrap(),
            ifname: ifname.into(),
            capability_args: Default::default(),
            cni_args: String::new(),
            is_cluster_network: false,
            default_route: None,
            result: None,
            device: Default::default(),
            origin: Default::default(),
        }
    }

    #[test]
    fn elements_keep_their_attachments_by_interface_then_by_network_in_order() {
        let current = [
            attached("a", "net1"),
            attached("b", "net2"),
            attached("a", "x"),
        ];
        let elements = [
            element("a", Some("x")),
            element("a", None),
            element("c", None),
        ];
        assert_eq!(
            match_elements(&elements, &current),
            vec![Some(2), Some(0), None]
        );
        // b is no longer asked for: index 1 is not kept.
    }

    #[test]
    fn added_networks_get_the_positional_name_or_the_lowest_free_one() {
        let elements = [
            element("b", None),
            element("c", None),
            element("d", Some("fast0")),
        ];
        // b kept on net2 (a was removed from position 1), c and d added.
        let matched = [Some(0), None, None];
        let mut taken: BTreeSet<String> = ["eth0", "lo", "net2"].map(String::from).into();
        let added = added_names(&elements, &matched, 1, &mut taken).unwrap();
        assert_eq!(
            added[0].1, "net1",
            "position 2 is taken: the lowest free name"
        );
        assert_eq!(added[1].1, "fast0");

        let elements = [element("a", None), element("b", None), element("c", None)];
        let matched = [Some(0), Some(1), None];
        let mut taken: BTreeSet<String> = ["eth0", "net1", "net2"].map(String::from).into();
        let added = added_names(&elements, &matched, 1, &mut taken).unwrap();
        assert_eq!(added[0].1, "net3", "net3 after net1 and net2");
    }

    #[test]
    fn a_requested_interface_in_use_names_the_network() {
        let elements = [element("c", Some("net1"))];
        let mut taken: BTreeSet<String> = ["eth0", "net1"].map(String::from).into();
        let error = added_names(&elements, &[None], 1, &mut taken).unwrap_err();
        assert!(error.contains("net1") && error.contains("ns/c"), "{error}");
    }
}
