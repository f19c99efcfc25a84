//! Running the delegates outside the agent's container cgroup.
//!
//! The node agent starts `multus delegate` as its child, so without more
//! the child (and every delegate it execs) is charged to the agent
//! container's memory limit, which is what upstream's thick daemon does
//! and why it is OOM-killed by bursts. The container runtime execs CNI
//! plugins from its own cgroup; `--cgroup-of PID` puts the child there
//! too: it enters the cgroup namespace of the host process `PID` (the
//! runtime's shim above the agent's container, which the agent sees with
//! the host's PID namespace), then, in the host's mount namespace where
//! `/sys/fs/cgroup` is the host's cgroup2 hierarchy, moves itself into
//! that process's cgroup (cgroup v2 only). Memory the child touched
//! before the move stays charged to the agent (a few hundred KiB).

use std::path::{Path, PathBuf};

use super::HotplugError;

fn enter_error(what: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> HotplugError {
    move |source| HotplugError::Enter { what, path, source }
}

/// Enters the cgroup namespace of process `pid` (before the mount
/// namespace: `/proc/<pid>` is looked up in the agent's `/proc`).
pub fn enter_cgroup_ns(pid: u32) -> Result<(), HotplugError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/cgroup"));
    let file = std::fs::File::open(&path).map_err(enter_error(
        "cannot enter the cgroup namespace",
        path.clone(),
    ))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(|e| {
        enter_error("cannot enter the cgroup namespace", path)(std::io::Error::from(e))
    })
}

/// The cgroup2 path of a process from its `/proc/<pid>/cgroup` text
/// (the `0::` line), relative to the reader's cgroup namespace root.
pub fn cgroup2_path(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
        .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."))
}

/// Moves this process into the cgroup of process `pid`, under the
/// cgroup2 mount `root` (`/sys/fs/cgroup` of the host's mount namespace).
pub fn join_cgroup_in(root: &Path, proc: &Path, pid: u32) -> Result<PathBuf, HotplugError> {
    let file = proc.join(pid.to_string()).join("cgroup");
    let text = std::fs::read_to_string(&file)
        .map_err(enter_error("cannot read the cgroup of", file.clone()))?;
    let relative = cgroup2_path(&text).ok_or_else(|| HotplugError::Enter {
        what: "no cgroup v2 path in",
        path: file.clone(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })?;
    let dir = root.join(relative.trim_start_matches('/'));
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(enter_error("cannot join the cgroup", procs))?;
    Ok(dir)
}

/// [`join_cgroup_in`] with the host's `/sys/fs/cgroup` and `/proc`
/// (called in the host's mount namespace).
pub fn join_cgroup_of(pid: u32) -> Result<(), HotplugError> {
    let dir = join_cgroup_in(Path::new("/sys/fs/cgroup"), Path::new("/proc"), pid)?;
    tracing::debug!(cgroup = %dir.display(), "running in the runtime's cgroup");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_line_gives_the_path() {
        assert_eq!(
            cgroup2_path("0::/system.slice/containerd.service\n"),
            Some("/system.slice/containerd.service")
        );
        assert_eq!(cgroup2_path("12:memory:/x\n0::/a/b\n"), Some("/a/b"));
        assert_eq!(cgroup2_path("12:memory:/x\n"), None, "cgroup v1 only");
        assert_eq!(cgroup2_path("0::/a/../b\n"), None);
    }

    #[test]
    fn joining_writes_our_pid_into_the_processes_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("42")).unwrap();
        std::fs::write(
            proc.join("42/cgroup"),
            "0::/system.slice/containerd.service\n",
        )
        .unwrap();
        let root = dir.path().join("cg");
        let target = root.join("system.slice/containerd.service");
        std::fs::create_dir_all(&target).unwrap();
        let joined = join_cgroup_in(&root, &proc, 42).unwrap();
        assert_eq!(joined, target);
        assert_eq!(
            std::fs::read_to_string(target.join("cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        let err = join_cgroup_in(&root, &proc, 43).unwrap_err();
        assert!(err.to_string().contains("/43/cgroup"), "{err}");
    }
}
