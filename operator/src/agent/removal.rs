//! Before `--uninstall` removes Multus from the node: the pods that still
//! have secondary networks attached through it. Once `00-multus.conf` is
//! gone the runtime's DEL reaches only the default network, so those
//! attachments (host-local addresses, links, our cache) would never be
//! released. So, in passes ([`settle_attached_pods`]):
//! - sandboxes that are gone are released (DEL of every attachment from
//!   the cache, then the cache file goes: CNI GC semantics);
//! - live sandboxes with secondary attachments are detached
//!   (`--attached-pods=detach`) or waited for (`wait`, the default):
//!   their pods are reported in `MultusNodeState.status.removal` and the
//!   pass is repeated every [`POLL`] until they are gone;
//! - once none is left, the cache files of live sandboxes that hold the
//!   cluster network only are removed (the runtime DELs the cluster
//!   network directly from then on) and the uninstall goes on.
//!
//! What is attached and whether a sandbox exists is the plugin's
//! judgement ([`super::attached`]); the choice of what to do is
//! [`plan`].

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use multus_config::crd::{MultusNodeState, NodeRemoval};
use serde_json::json;

use super::args::AttachedPods;
use super::attached::{Sandbox, SandboxState, Upkeep, UpkeepCallError};
use super::node_state::{FIELD_MANAGER, REQUEST_TIMEOUT};

/// How often the pods are looked at again while waiting.
pub const POLL: Duration = Duration::from_secs(5);

/// Why the removal did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    /// SIGTERM or SIGINT while pods still held the removal back.
    #[error("stopped while waiting: {0}")]
    Interrupted(String),
    /// The plugin cannot tell which pods are attached: nothing is removed
    /// (exit non-zero; the DaemonSet runs the uninstall again).
    #[error("cannot tell which pods are attached through Multus: {0}")]
    Survey(#[source] UpkeepCallError),
}

/// What one pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalPlan {
    /// Containers whose sandbox is gone: release everything.
    pub release: Vec<String>,
    /// Live containers whose secondary attachments go now.
    pub detach: Vec<String>,
    /// Sandboxes the removal waits for.
    pub waiting: Vec<Sandbox>,
    /// Live containers with the cluster network only: their cache file
    /// goes once nothing is waited for.
    pub forget: Vec<String>,
}

/// Decides what a pass does with `sandboxes` under `policy`. A sandbox
/// whose existence is unknown is never released nor detached; with
/// secondary attachments it is waited for.
pub fn plan(sandboxes: &[Sandbox], policy: AttachedPods) -> RemovalPlan {
    let mut out = RemovalPlan::default();
    for sandbox in sandboxes {
        let id = sandbox.container_id.clone();
        match (sandbox.state, sandbox.secondary.is_empty(), policy) {
            (SandboxState::Gone, _, _) => out.release.push(id),
            (SandboxState::Present, true, _) => out.forget.push(id),
            (SandboxState::Present, false, AttachedPods::Detach) => out.detach.push(id),
            (SandboxState::Unknown, true, _) => {}
            (SandboxState::Present | SandboxState::Unknown, false, _) => {
                out.waiting.push(sandbox.clone());
            }
        }
    }
    out
}

/// The pods of `waiting`, sorted and without duplicates.
pub fn waiting_pods(waiting: &[Sandbox]) -> Vec<String> {
    let mut pods: Vec<String> = waiting.iter().map(Sandbox::who).collect();
    pods.sort();
    pods.dedup();
    pods
}

/// Says whom the removal waits for, and why.
pub fn waiting_message(waiting: &[Sandbox], failures: &[String]) -> String {
    let pods = waiting_pods(waiting);
    let mut parts = Vec::new();
    if !pods.is_empty() {
        let details: Vec<String> = waiting
            .iter()
            .map(|s| {
                let mut text = format!("{} ({})", s.who(), s.secondary.join(", "));
                if let Some(reason) = &s.reason {
                    text.push_str(&format!(": {reason}"));
                }
                text
            })
            .collect();
        parts.push(format!(
            "waiting for {} pod{} with secondary networks: {}",
            pods.len(),
            if pods.len() == 1 { "" } else { "s" },
            details.join("; ")
        ));
    }
    parts.extend(failures.iter().cloned());
    parts.join("; ")
}

/// Where removal reports to: `MultusNodeState/<node>`.
#[derive(Debug, Clone)]
pub struct RemovalReporter {
    api: Api<MultusNodeState>,
    node: String,
    last: Option<Option<NodeRemoval>>,
}

impl RemovalReporter {
    /// Reports for `node` through `client`.
    pub fn new(client: kube::Client, node: String) -> Self {
        Self {
            api: Api::all(client),
            node,
            last: None,
        }
    }

    /// Sets (or with `None` clears) `status.removal`, when it changed.
    /// Best effort: a failure is logged.
    pub async fn report(&mut self, removal: Option<NodeRemoval>) {
        if self.last.as_ref() == Some(&removal) {
            return;
        }
        let patch = json!({ "status": { "removal": removal } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let outcome = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.api
                .patch_status(&self.node, &params, &Patch::Merge(&patch)),
        )
        .await;
        match outcome {
            Ok(Ok(_)) => self.last = Some(removal),
            Ok(Err(kube::Error::Api(s))) if s.is_not_found() => self.last = Some(removal),
            Ok(Err(error)) => {
                tracing::warn!(%error, node = %self.node, "cannot report the removal in MultusNodeState");
            }
            Err(_) => {
                tracing::warn!(node = %self.node, "cannot report the removal in MultusNodeState: no answer in time")
            }
        }
    }
}

/// Settles the attachments of the node's pods under `policy` (see the
/// module documentation); returns once nothing holds the removal back.
/// `shutdown` ends the wait with [`RemovalError::Interrupted`].
pub async fn settle_attached_pods(
    upkeep: &Upkeep,
    policy: AttachedPods,
    mut reporter: Option<RemovalReporter>,
    poll: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RemovalError> {
    tokio::pin!(shutdown);
    // Releases that failed are not tried again in this run (the sandbox
    // is gone either way; its cache file stays, logged).
    let mut unreleasable = std::collections::BTreeSet::new();
    loop {
        let mut detached_any = false;
        let (waiting, failures, forget) = match upkeep.sandboxes().await {
            Ok(sandboxes) => {
                let plan = plan(&sandboxes, policy);
                let mut failures = Vec::new();
                for id in &plan.release {
                    if unreleasable.contains(id) {
                        continue;
                    }
                    if let Err(error) = upkeep.release(id).await {
                        tracing::warn!(%error, container = %id, "cannot release the attachments of a sandbox that is gone; its cache file stays");
                        unreleasable.insert(id.clone());
                    }
                }
                let mut waiting = plan.waiting.clone();
                for id in &plan.detach {
                    match upkeep.detach(id).await {
                        Ok(()) => detached_any = true,
                        Err(error) => {
                            tracing::warn!(%error, container = %id, "cannot detach");
                            failures.push(error.to_string());
                            if let Some(s) = sandboxes.iter().find(|s| &s.container_id == id) {
                                waiting.push(s.clone());
                            }
                        }
                    }
                }
                (waiting, failures, plan.forget)
            }
            Err(error) => return Err(RemovalError::Survey(error)),
        };
        if detached_any {
            // Look again at once: the detached sandboxes now hold the
            // cluster network only, and new pods may have come.
            continue;
        }
        if waiting.is_empty() && failures.is_empty() {
            for id in &forget {
                if let Err(error) = upkeep.forget(id).await {
                    tracing::warn!(%error, container = %id, "cannot remove the cache file");
                }
            }
            if let Some(r) = reporter.as_mut() {
                r.report(None).await;
            }
            return Ok(());
        }
        let message = waiting_message(&waiting, &failures);
        tracing::info!(%message, "Multus stays on the node for now");
        if let Some(r) = reporter.as_mut() {
            r.report(Some(NodeRemoval {
                waiting_for_pods: waiting_pods(&waiting),
                message: Some(message.clone()),
            }))
            .await;
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = &mut shutdown => return Err(RemovalError::Interrupted(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn sandbox(id: &str, state: SandboxState, secondary: &[&str]) -> Sandbox {
        Sandbox {
            container_id: id.into(),
            pod: Some(format!("leak/{id}")),
            state,
            reason: None,
            secondary: secondary.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_plan_releases_gone_sandboxes_and_waits_or_detaches_live_ones() {
        let all = [
            sandbox("gone", SandboxState::Gone, &["leak/br@net1"]),
            sandbox("live", SandboxState::Present, &["leak/br@net1"]),
            sandbox("plain", SandboxState::Present, &[]),
            sandbox("unsure", SandboxState::Unknown, &["leak/br@net1"]),
            sandbox("unsure-plain", SandboxState::Unknown, &[]),
        ];
        let wait = plan(&all, AttachedPods::Wait);
        assert_eq!(wait.release, ["gone"]);
        assert!(wait.detach.is_empty());
        assert_eq!(waiting_pods(&wait.waiting), ["leak/live", "leak/unsure"]);
        assert_eq!(wait.forget, ["plain"]);
        let detach = plan(&all, AttachedPods::Detach);
        assert_eq!(detach.detach, ["live"]);
        assert_eq!(
            waiting_pods(&detach.waiting),
            ["leak/unsure"],
            "never detached without knowing its sandbox exists"
        );
    }

    #[test]
    fn the_message_names_pods_and_networks() {
        let text = waiting_message(
            &[sandbox("p1", SandboxState::Present, &["leak/br@net1"])],
            &[],
        );
        assert_eq!(
            text,
            "waiting for 1 pod with secondary networks: leak/p1 (leak/br@net1)"
        );
        let two = waiting_message(
            &[
                sandbox("p1", SandboxState::Present, &["a@net1"]),
                sandbox("p2", SandboxState::Present, &["b@net1"]),
            ],
            &["detach failed".into()],
        );
        assert!(two.starts_with("waiting for 2 pods"), "{two}");
        assert!(two.ends_with("; detach failed"), "{two}");
    }

    /// A plugin whose cache is a directory of files `<id>` holding
    /// `state secondary`; detach empties the secondary, release and
    /// forget remove the file; each call is logged.
    fn fake_plugin(dir: &Path) -> Upkeep {
        let path = dir.join("multus");
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let script = format!(
            r#"#!/bin/sh
cat >/dev/null
shift 2
cd {cache}
echo "$@" >> ../calls
case "$1" in
sandboxes)
  printf '['; sep=''
  for f in *; do [ -f "$f" ] || continue; read state net < "$f"
    if [ -n "$net" ]; then sec="\"$net\""; else sec=''; fi
    printf '%s{{"containerID":"%s","pod":"leak/%s","state":"%s","secondary":[%s]}}' "$sep" "$f" "$f" "$state" "$sec"; sep=','
  done; echo ']';;
detach) read state net < "$2"; echo "$state" > "$2";;
release|forget) rm "$2";;
esac
"#,
            cache = cache.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Upkeep {
            binary: path,
            mount_ns: Some("/proc/1/ns/mnt".into()),
            config: b"{}".to_vec(),
            cni_path: "/opt/cni/bin".into(),
        }
    }

    #[tokio::test]
    async fn detach_settles_at_once_and_leaves_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let upkeep = fake_plugin(dir.path());
        std::fs::write(dir.path().join("cache/live"), "present leak/br@net1\n").unwrap();
        std::fs::write(dir.path().join("cache/gone"), "gone leak/br@net1\n").unwrap();
        settle_attached_pods(
            &upkeep,
            AttachedPods::Detach,
            None,
            Duration::from_millis(10),
            std::future::pending(),
        )
        .await
        .unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(
            calls,
            "sandboxes\nrelease gone\ndetach live\nsandboxes\nforget live\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn wait_goes_on_once_the_pod_is_gone_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let upkeep = fake_plugin(dir.path());
        let pod = dir.path().join("cache/live");
        std::fs::write(&pod, "present leak/br@net1\n").unwrap();
        let err = settle_attached_pods(
            &upkeep,
            AttachedPods::Wait,
            None,
            Duration::from_secs(60),
            async {},
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("leak/live (leak/br@net1)"),
            "{err}"
        );
        assert!(pod.exists(), "a live pod is never touched while waiting");

        let remover = {
            let pod = pod.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // The pod's DEL went through Multus: the cache is gone.
                std::fs::remove_file(pod).unwrap();
            })
        };
        settle_attached_pods(
            &upkeep,
            AttachedPods::Wait,
            None,
            Duration::from_millis(10),
            std::future::pending(),
        )
        .await
        .unwrap();
        remover.await.unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert!(!calls.contains("detach"), "{calls}");
    }

    #[tokio::test]
    async fn a_plugin_that_cannot_answer_stops_the_uninstall() {
        let dir = tempfile::tempdir().unwrap();
        let upkeep = Upkeep {
            binary: dir.path().join("missing"),
            mount_ns: None,
            config: b"{}".to_vec(),
            cni_path: "/opt/cni/bin".into(),
        };
        let err = settle_attached_pods(
            &upkeep,
            AttachedPods::Wait,
            None,
            Duration::from_millis(10),
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RemovalError::Survey(_)), "{err}");
    }
}
