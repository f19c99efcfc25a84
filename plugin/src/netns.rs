//! Running code inside a pod's network namespace.
//!
//! A network namespace is a property of a thread, so [`run_in_netns`] never
//! moves the caller's thread: it opens the namespace file, spawns a dedicated
//! thread, enters the namespace there with `setns(CLONE_NEWNET)`, runs the
//! closure and joins. The thread ends with the closure, so nothing has to be
//! switched back.
//!
//! Inside that thread, [`Netlink::connect`] opens an rtnetlink socket (a
//! netlink socket stays bound to the namespace it was created in) on a
//! current-thread tokio runtime. Every request made through
//! [`Netlink::request`] is bounded by [`NETLINK_TIMEOUT`].

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};
use rtnetlink::packet_route::link::LinkAttribute;

/// How long one netlink request (including a whole dump) may take.
pub const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why work inside a network namespace failed. Every variant names the
/// namespace path.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file does not exist.
    #[error("network namespace {netns:?} does not exist")]
    NotFound {
        /// The namespace path.
        netns: PathBuf,
    },
    /// Opening or entering the namespace was refused.
    #[error("permission denied for network namespace {netns:?} (needs CAP_SYS_ADMIN): {source}")]
    PermissionDenied {
        /// The namespace path.
        netns: PathBuf,
        /// The refusal.
        #[source]
        source: io::Error,
    },
    /// The namespace file could not be opened for another reason.
    #[error("cannot open network namespace {netns:?}: {source}")]
    Open {
        /// The namespace path.
        netns: PathBuf,
        /// The open error.
        #[source]
        source: io::Error,
    },
    /// The path is not a network namespace.
    #[error("{netns:?} is not a network namespace: {reason}")]
    NotANetns {
        /// The path.
        netns: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// `setns` failed for another reason.
    #[error("cannot enter network namespace {netns:?}: {source}")]
    Enter {
        /// The namespace path.
        netns: PathBuf,
        /// The error of `setns`.
        #[source]
        source: io::Error,
    },
    /// The worker thread could not be started.
    #[error("cannot start a thread for network namespace {netns:?}: {source}")]
    Thread {
        /// The namespace path.
        netns: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// The code run inside the namespace panicked.
    #[error("the work in network namespace {netns:?} panicked: {message}")]
    Panicked {
        /// The namespace path.
        netns: PathBuf,
        /// The panic message.
        message: String,
    },
    /// The tokio runtime or the netlink socket could not be created.
    #[error("cannot open a netlink socket in network namespace {netns:?}: {source}")]
    Socket {
        /// The namespace path.
        netns: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A netlink request did not finish within its time limit.
    #[error("netlink request {what:?} in network namespace {netns:?} timed out after {timeout:?}")]
    Timeout {
        /// The namespace path.
        netns: PathBuf,
        /// What was asked of the kernel.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// The kernel (or rtnetlink) refused a netlink request.
    #[error("netlink request {what:?} in network namespace {netns:?} failed: {}", describe_netlink_error(.source))]
    Netlink {
        /// The namespace path.
        netns: PathBuf,
        /// What was asked of the kernel.
        what: String,
        /// The error.
        #[source]
        source: rtnetlink::Error,
    },
}

impl NetnsError {
    /// The errno of a kernel refusal ([`NetnsError::Netlink`] carrying a
    /// netlink error message), as a positive number.
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            Self::Netlink {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => Some(msg.raw_code().abs()).filter(|code| *code != 0),
            _ => None,
        }
    }
}

/// The text of an rtnetlink error: the OS error for kernel refusals (e.g.
/// "Network is unreachable (os error 101)"), rtnetlink's text otherwise.
fn describe_netlink_error(error: &rtnetlink::Error) -> String {
    match error {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().to_string(),
        other => other.to_string(),
    }
}

/// Opens a namespace file and checks that it is a namespace (nsfs, or proc on
/// kernels before 3.19).
fn open_netns(netns: &Path) -> Result<File, NetnsError> {
    let file = File::open(netns).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => NetnsError::NotFound {
            netns: netns.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => NetnsError::PermissionDenied {
            netns: netns.to_path_buf(),
            source,
        },
        _ => NetnsError::Open {
            netns: netns.to_path_buf(),
            source,
        },
    })?;
    let stat = fstatfs(&file).map_err(|errno| NetnsError::Open {
        netns: netns.to_path_buf(),
        source: io::Error::from(errno),
    })?;
    let fs_type = stat.filesystem_type();
    if fs_type != NSFS_MAGIC && fs_type != PROC_SUPER_MAGIC {
        return Err(NetnsError::NotANetns {
            netns: netns.to_path_buf(),
            reason: format!(
                "not a namespace file (filesystem type {:#x}; a left-over file of a deleted namespace?)",
                fs_type.0
            ),
        });
    }
    Ok(file)
}

/// Enters the namespace `file` on the current thread.
fn enter(netns: &Path, file: &File) -> Result<(), NetnsError> {
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
        Errno::EINVAL => NetnsError::NotANetns {
            netns: netns.to_path_buf(),
            reason: "a namespace of another kind (setns with CLONE_NEWNET: EINVAL)".to_owned(),
        },
        Errno::EPERM => NetnsError::PermissionDenied {
            netns: netns.to_path_buf(),
            source: io::Error::from(errno),
        },
        _ => NetnsError::Enter {
            netns: netns.to_path_buf(),
            source: io::Error::from(errno),
        },
    })
}

/// Runs `f` on a dedicated thread inside the network namespace `netns` (a
/// `/var/run/netns/<name>` bind mount or `/proc/<pid>/ns/net`) and returns
/// what it returns. The caller's thread never changes namespace.
///
/// `f` itself must be bounded in time; netlink requests made through
/// [`Netlink`] are.
pub fn run_in_netns<T, F>(netns: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, NetnsError> + Send + 'static,
{
    let file = open_netns(netns)?;
    let path = netns.to_path_buf();
    let worker = std::thread::Builder::new()
        .name("multus-netns".to_owned())
        .spawn(move || {
            enter(&path, &file)?;
            drop(file);
            f()
        })
        .map_err(|source| NetnsError::Thread {
            netns: netns.to_path_buf(),
            source,
        })?;
    worker.join().map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        NetnsError::Panicked {
            netns: netns.to_path_buf(),
            message,
        }
    })?
}

/// A link of a namespace: its index and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
}

/// An rtnetlink connection bound to the network namespace of the thread that
/// created it. Create it inside [`run_in_netns`]; every request is bounded by
/// [`NETLINK_TIMEOUT`].
pub struct Netlink {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    netns: PathBuf,
    timeout: Duration,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a netlink connection in the current thread's network namespace;
    /// `netns` only names it in errors.
    pub fn connect(netns: &Path) -> Result<Self, NetnsError> {
        let socket_error = |source: io::Error| NetnsError::Socket {
            netns: netns.to_path_buf(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(socket_error)?;
        let (connection, handle, _messages) = {
            let _context = runtime.enter();
            rtnetlink::new_connection().map_err(socket_error)?
        };
        // Driven whenever `request` blocks on the runtime; dropped with it.
        drop(runtime.spawn(connection));
        Ok(Self {
            runtime,
            handle,
            netns: netns.to_path_buf(),
            timeout: NETLINK_TIMEOUT,
        })
    }

    /// The rtnetlink handle, to build requests for [`Netlink::request`].
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// The namespace path this connection works in (for messages).
    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// Runs one netlink request to completion, bounded by the time limit.
    /// `what` describes the request in errors ("add route default via ...").
    pub fn request<T, Fut>(&self, what: &str, request: Fut) -> Result<T, NetnsError>
    where
        Fut: Future<Output = Result<T, rtnetlink::Error>>,
    {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, request).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(NetnsError::Netlink {
                netns: self.netns.clone(),
                what: what.to_owned(),
                source,
            }),
            Err(_elapsed) => Err(NetnsError::Timeout {
                netns: self.netns.clone(),
                what: what.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    /// All links of the namespace, in kernel order.
    pub fn links(&self) -> Result<Vec<Link>, NetnsError> {
        let messages = self.request(
            "list links",
            self.handle.link().get().execute().try_collect::<Vec<_>>(),
        )?;
        Ok(messages
            .into_iter()
            .filter_map(|msg| {
                let index = msg.header.index;
                msg.attributes.into_iter().find_map(|attr| match attr {
                    LinkAttribute::IfName(name) => Some(Link { index, name }),
                    _ => None,
                })
            })
            .collect())
    }
}

/// The names of all links in the network namespace `netns`.
pub fn link_names(netns: &Path) -> Result<Vec<String>, NetnsError> {
    let path = netns.to_path_buf();
    run_in_netns(netns, move || {
        let netlink = Netlink::connect(&path)?;
        Ok(netlink.links()?.into_iter().map(|l| l.name).collect())
    })
}

/// Whether the network namespace `netns` has a link named `ifname`.
pub fn link_exists(netns: &Path, ifname: &str) -> Result<bool, NetnsError> {
    Ok(link_names(netns)?.iter().any(|name| name == ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_netns_is_named() {
        let path = Path::new("/nonexistent/multus-netns-test");
        let err = run_in_netns(path, || Ok(())).unwrap_err();
        assert!(matches!(err, NetnsError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/multus-netns-test"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = link_exists(file.path(), "eth0").unwrap_err();
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&file.path().display().to_string()),
            "{msg} should name the path"
        );
        assert!(msg.contains("not a network namespace"), "{msg}");
    }

    #[test]
    fn directory_is_not_a_netns() {
        let dir = tempfile::tempdir().unwrap();
        let err = link_names(dir.path()).unwrap_err();
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
    }

    #[test]
    fn other_namespace_kind_is_not_a_netns() {
        // Entering needs CAP_SYS_ADMIN; without it the error is a permission one.
        let err = run_in_netns(Path::new("/proc/self/ns/uts"), || Ok(())).unwrap_err();
        assert!(
            matches!(
                err,
                NetnsError::NotANetns { .. } | NetnsError::PermissionDenied { .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("/proc/self/ns/uts"));
    }
}
