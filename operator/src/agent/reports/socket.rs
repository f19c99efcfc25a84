//! The report socket: a unix datagram socket (0600) at the path the
//! generated Multus config announces (`nodeAgentReportSocket`), on which
//! the plugin drops one report per CNI command. The agent reads it until
//! shutdown; a socket it cannot bind is logged and the agent goes on
//! without reports (they are best effort on both sides).

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use multus_config::agent_api::report::{MAX_REPORT_BYTES, Rejection, decode};
use tokio::net::UnixDatagram;
use tokio::sync::watch;

use super::ReportMetrics;
use crate::agent::metrics::Shared;

/// Name of the report-fed pod network state file, beside the socket.
pub const STATE_FILE: &str = "pod-networks.json";
/// How often the report-fed entries are checked against the plugin cache.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often changed report-fed entries are saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Something other than a socket is at the path; it is left alone.
    #[error("{} exists and is not a socket; left alone", .0.display())]
    NotASocket(PathBuf),
    /// A system call failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BindError {
    let path = path.to_path_buf();
    move |source| BindError::Io {
        action,
        path,
        source,
    }
}

/// Binds the socket at `path`, mode 0600: bound under a temporary name in
/// the same directory (created when missing), restricted, then renamed
/// over `path`, so a stale socket of a previous run is replaced and no
/// other user can ever connect. Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixDatagram, BindError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        _ => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let socket = std::os::unix::net::UnixDatagram::bind(&temp).map_err(io("bind", &temp))?;
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
        .map_err(io("chmod", &temp))
        .and_then(|()| std::fs::rename(&temp, path).map_err(io("rename", path)));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    socket
        .set_nonblocking(true)
        .map_err(io("configure", path))?;
    UnixDatagram::from_std(socket).map_err(io("register", path))
}

/// Counts and applies one datagram of `len` bytes read into `buf` (whose
/// size is `MAX_REPORT_BYTES + 1`, so a longer datagram fills it).
pub fn handle(metrics: &ReportMetrics, datagram: &[u8]) {
    if datagram.len() > MAX_REPORT_BYTES {
        metrics.reject(Rejection::Oversize);
        return;
    }
    match decode(datagram) {
        Ok(report) => metrics.record(&report),
        Err(why) => {
            tracing::debug!(reason = why.as_label(), "dropped a report datagram");
            metrics.reject(why);
        }
    }
}

/// Binds `path` and reads reports into `shared`'s metrics until `stop`
/// turns true; the report-fed pod networks are saved beside the socket
/// and pruned against the plugin cache in `cache_dir`. A socket that
/// cannot be bound is logged and the task ends (the agent works on).
pub async fn run(
    path: PathBuf,
    cache_dir: PathBuf,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = &shared.metrics.reports;
    if let Some(dir) = path.parent() {
        metrics
            .reported()
            .persist_in(dir.join(STATE_FILE), cache_dir);
    }
    let socket = match bind(&path) {
        Ok(socket) => socket,
        Err(error) => {
            shared.metrics.errors.inc();
            tracing::warn!(%error, "cannot bind the report socket: no per-command metrics from the plugin");
            return;
        }
    };
    tracing::info!(socket = %path.display(), "receiving the plugin's reports");
    let mut buf = vec![0u8; MAX_REPORT_BYTES + 1];
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut save = tokio::time::interval(SAVE_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            received = socket.recv(&mut buf) => match received {
                Ok(n) => handle(metrics, &buf[..n]),
                Err(error) => {
                    tracing::warn!(%error, "report socket read failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = prune.tick() => metrics.reported().prune(),
            _ = save.tick() => metrics.reported().save(),
        }
    }
    metrics.reported().save();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_0600_over_a_stale_socket_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/agent-reports.sock");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        drop(std::os::unix::net::UnixDatagram::bind(&path).unwrap()); // stale
        let socket = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.send_to(b"hi", &path).unwrap();
        let mut buf = [0u8; 8];
        let n = socket.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary left: {names:?}");

        let file = dir.path().join("regular");
        std::fs::write(&file, "keep").unwrap();
        assert!(matches!(bind(&file), Err(BindError::NotASocket(_))));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
        // a missing directory is created
        bind(&dir.path().join("new/dir/r.sock")).unwrap();
    }
}
