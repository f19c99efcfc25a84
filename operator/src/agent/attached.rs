//! Asking the plugin about the pods attached through Multus on this node:
//! `multus upkeep <task>` (see the plugin's `upkeep` module), run as a
//! child process in the host's mount namespace with the node's Multus
//! config on stdin. The delegates of a detach or release run in that
//! child, exactly as for the runtime's DEL; never in the agent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// How long one upkeep call may take (a detach runs several delegates,
/// each bounded by the plugin).
pub const UPKEEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Finds the host's mount namespace from `/proc` (see
/// [`host_mount_ns_in`]).
pub fn host_mount_ns() -> Option<PathBuf> {
    host_mount_ns_in(Path::new("/proc"), "self")
}

/// The host process whose mount namespace [`host_mount_ns`] names (the
/// runtime's shim), with that namespace's path.
pub fn host_process() -> Option<(u32, PathBuf)> {
    let ns = host_mount_ns()?;
    let pid = ns.parent()?.parent()?.file_name()?.to_str()?.parse().ok()?;
    Some((pid, ns))
}

/// The mount namespace of the nearest ancestor of process `pid` (under
/// the procfs `proc`) that is in another mount namespace than `pid`: for
/// the agent in its container with the host's PID namespace, the
/// runtime's shim, which runs in the host's. `None` when every readable
/// ancestor shares `pid`'s namespace (the agent runs on the host itself,
/// or without the host's PID namespace, where no host process is
/// visible). Ancestors whose namespace cannot be read (pid 1 may not be,
/// e.g. in a VM sandbox) are passed over.
pub fn host_mount_ns_in(proc: &Path, pid: &str) -> Option<PathBuf> {
    let own = std::fs::read_link(proc.join(pid).join("ns/mnt")).ok()?;
    let parent_of = |pid: &str| -> Option<String> {
        let status = std::fs::read_to_string(proc.join(pid).join("status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(|p| p.trim().to_owned())
            .filter(|p| p != "0")
    };
    let mut current = pid.to_owned();
    for _ in 0..64 {
        current = parent_of(&current)?;
        let link = proc.join(&current).join("ns/mnt");
        match std::fs::read_link(&link) {
            Ok(ns) if ns != own => return Some(link),
            _ => {}
        }
    }
    None
}

/// Why an upkeep call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpkeepCallError {
    /// The plugin could not be started.
    #[error("cannot run {}: {source}", binary.display())]
    Spawn {
        /// The plugin binary.
        binary: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not answer in time.
    #[error("`multus upkeep {task}` did not finish within {UPKEEP_TIMEOUT:?}")]
    Timeout {
        /// The task.
        task: String,
    },
    /// The plugin failed.
    #[error("`multus upkeep {task}` failed: {message}")]
    Failed {
        /// The task.
        task: String,
        /// Its error output.
        message: String,
    },
    /// The plugin's answer is not what we expect.
    #[error("`multus upkeep {task}` answered something unexpected: {source}")]
    Answer {
        /// The task.
        task: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// Whether a cached sandbox still exists (the plugin's judgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SandboxState {
    /// It exists.
    Present,
    /// It is gone.
    Gone,
    /// Cannot tell: treated as present.
    Unknown,
}

/// One cached sandbox, as `multus upkeep sandboxes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `namespace/name` of the pod.
    #[serde(default)]
    pub pod: Option<String>,
    /// Whether the sandbox exists.
    pub state: SandboxState,
    /// Why `unknown`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Secondary attachments, `namespace/network@ifname`.
    #[serde(default)]
    pub secondary: Vec<String>,
}

impl Sandbox {
    /// The pod, or the container when the cache does not name one.
    pub fn who(&self) -> String {
        self.pod.clone().unwrap_or_else(|| {
            format!(
                "container {}",
                &self.container_id[..self.container_id.len().min(12)]
            )
        })
    }
}

/// Calls `multus upkeep` with one Multus config.
#[derive(Debug, Clone)]
pub struct Upkeep {
    /// The plugin binary.
    pub binary: PathBuf,
    /// The mount namespace it enters first.
    pub mount_ns: Option<PathBuf>,
    /// The node's Multus config (stdin).
    pub config: Vec<u8>,
    /// `CNI_PATH` for the delegates.
    pub cni_path: PathBuf,
}

impl Upkeep {
    async fn call(&self, task: &[&str]) -> Result<Vec<u8>, UpkeepCallError> {
        let name = task.join(" ");
        let mut command = tokio::process::Command::new(&self.binary);
        command.arg("upkeep");
        if let Some(ns) = &self.mount_ns {
            command.arg(format!("--mount-ns={}", ns.display()));
        }
        command
            .args(task)
            .env("CNI_PATH", &self.cni_path)
            .env_remove("CNI_COMMAND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_error = |source| UpkeepCallError::Spawn {
            binary: self.binary.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&self.config).await.map_err(spawn_error)?;
        }
        let output = tokio::time::timeout(UPKEEP_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| UpkeepCallError::Timeout { task: name.clone() })?
            .map_err(spawn_error)?;
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr);
            let last = message
                .lines()
                .rev()
                .find(|l| l.starts_with("multus upkeep:"))
                .or_else(|| message.lines().last())
                .unwrap_or("no output")
                .trim()
                .to_owned();
            return Err(UpkeepCallError::Failed {
                task: name,
                message: format!("{last} ({})", output.status),
            });
        }
        Ok(output.stdout)
    }

    /// The cached sandboxes.
    pub async fn sandboxes(&self) -> Result<Vec<Sandbox>, UpkeepCallError> {
        let bytes = self.call(&["sandboxes"]).await?;
        serde_json::from_slice(&bytes).map_err(|source| UpkeepCallError::Answer {
            task: "sandboxes".into(),
            source,
        })
    }

    /// DEL of the secondary attachments of a live sandbox.
    pub async fn detach(&self, container_id: &str) -> Result<(), UpkeepCallError> {
        self.call(&["detach", container_id]).await.map(drop)
    }

    /// DEL of every attachment of a sandbox that is gone.
    pub async fn release(&self, container_id: &str) -> Result<(), UpkeepCallError> {
        self.call(&["release", container_id]).await.map(drop)
    }

    /// Removal of the cache file of a live sandbox with the cluster
    /// network only.
    pub async fn forget(&self, container_id: &str) -> Result<(), UpkeepCallError> {
        self.call(&["forget", container_id]).await.map(drop)
    }
}

/// The node's Multus config as the agent generated it: the first of
/// `names` in `conf_dir` that exists. `None` when there is none (nothing
/// can have been attached through it since).
pub fn generated_config(conf_dir: &Path, names: &[&str]) -> Option<Vec<u8>> {
    names
        .iter()
        .find_map(|name| std::fs::read(conf_dir.join(name)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in plugin: prints `stdout` (after checking its stdin and
    /// arguments) or fails.
    fn fake_plugin(dir: &Path, script: &str) -> PathBuf {
        let path = dir.join("multus");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn upkeep(binary: PathBuf) -> Upkeep {
        Upkeep {
            binary,
            mount_ns: Some("/proc/1/ns/mnt".into()),
            config: br#"{"type":"multus"}"#.to_vec(),
            cni_path: "/opt/cni/bin".into(),
        }
    }

    /// A fake /proc: `pid -> (ppid, mount namespace or None when
    /// unreadable)`.
    fn fake_proc(dir: &Path, procs: &[(&str, &str, Option<&str>)]) {
        for (pid, ppid, ns) in procs {
            let d = dir.join(pid);
            std::fs::create_dir_all(d.join("ns")).unwrap();
            std::fs::write(d.join("status"), format!("Name:\tx\nPPid:\t{ppid}\n")).unwrap();
            if let Some(ns) = ns {
                std::os::unix::fs::symlink(ns, d.join("ns/mnt")).unwrap();
            }
        }
    }

    #[test]
    fn the_host_namespace_is_the_nearest_ancestor_outside_the_container() {
        let dir = tempfile::tempdir().unwrap();
        // host init (unreadable) <- shim (host ns) <- container init <- agent
        fake_proc(
            dir.path(),
            &[
                ("1", "0", None),
                ("50", "1", Some("mnt:[1]")),
                ("60", "50", Some("mnt:[2]")),
                ("61", "60", Some("mnt:[2]")),
            ],
        );
        assert_eq!(
            host_mount_ns_in(dir.path(), "61"),
            Some(dir.path().join("50/ns/mnt"))
        );
        // on the host itself (or without the host's PIDs): nothing to enter
        assert_eq!(host_mount_ns_in(dir.path(), "50"), None);
        assert_eq!(host_mount_ns_in(dir.path(), "404"), None);
    }

    #[tokio::test]
    async fn the_plugin_gets_the_task_the_config_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_plugin(
            dir.path(),
            r#"[ "$1 $2 $3" = "upkeep --mount-ns=/proc/1/ns/mnt sandboxes" ] || exit 3
[ "$(cat)" = '{"type":"multus"}' ] || exit 4
[ "$CNI_PATH" = /opt/cni/bin ] || exit 5
echo '[{"containerID":"c1","pod":"leak/p1","state":"present","secondary":["leak/br@net1"]}]'"#,
        );
        let found = upkeep(binary).sandboxes().await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state, SandboxState::Present);
        assert_eq!(found[0].who(), "leak/p1");
        assert_eq!(found[0].secondary, ["leak/br@net1"]);
    }

    #[tokio::test]
    async fn a_failure_carries_the_plugins_message() {
        let dir = tempfile::tempdir().unwrap();
        let binary = fake_plugin(
            dir.path(),
            "cat >/dev/null; echo 'log line' >&2; echo 'multus upkeep: no cache for container c9' >&2; exit 1",
        );
        let err = upkeep(binary).detach("c9").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("upkeep detach c9"), "{text}");
        assert!(text.contains("no cache for container c9"), "{text}");
        let missing = upkeep(dir.path().join("nope")).release("c1").await;
        assert!(matches!(missing, Err(UpkeepCallError::Spawn { .. })));
    }
}
