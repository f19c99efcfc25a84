//! This machine, which is also the test cluster's node: who we are, its
//! files where the agents install Multus, and the cleanup of what the tests
//! leave on it (bridges, host-local IPAM state, files).

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::teardown::cleanup_cmd;

/// The node's CNI configuration directory.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// The Multus plugin binary the agents install on the node.
pub const MULTUS_PLUGIN: &str = "/opt/cni/bin/multus";
/// Where host-local IPAM keeps the addresses it handed out, one directory
/// per CNI network name.
pub const HOST_LOCAL_ROOT: &str = "/var/lib/cni/networks";

/// Whether the effective user is root (read from /proc, no libc call).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// This machine's host name (the node name of a kubelet running here).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The permission bits of a file or directory, `None` when it is missing.
pub fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Everything the agents write to the node: `00-multus.conf`,
/// `00-multus.conflist`, `multus.d/` (kubeconfig and token) and the plugin.
pub fn multus_files_on_node() -> [PathBuf; 4] {
    let conf_dir = Path::new(CNI_CONF_DIR);
    [
        conf_dir.join("00-multus.conf"),
        conf_dir.join("00-multus.conflist"),
        conf_dir.join("multus.d"),
        PathBuf::from(MULTUS_PLUGIN),
    ]
}

/// The node has no Multus configuration (`00-multus.conf[list]`): a test
/// that installs Multus must not start over one it did not write.
pub fn assert_no_multus_conf_on_node() {
    for name in ["00-multus.conf", "00-multus.conflist"] {
        let path = Path::new(CNI_CONF_DIR).join(name);
        assert!(
            !path.exists(),
            "{path:?} exists although no MultusConfig does: remove it (and {CNI_CONF_DIR}/multus.d) \
             by hand before running this suite"
        );
    }
}

/// The host-local IPAM directory of the CNI network `network`.
pub fn host_local_dir(network: &str) -> PathBuf {
    Path::new(HOST_LOCAL_ROOT).join(network)
}

/// The addresses host-local holds on this node for the CNI network
/// `network` (the files of its directory named by an IP address; not its
/// `lock` and `last_reserved_ip.*`), sorted; none when the directory is
/// missing.
pub fn host_local_leases(network: &str) -> Vec<String> {
    let mut leases: Vec<String> = std::fs::read_dir(host_local_dir(network))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    leases.sort();
    leases
}

/// Deletes the network link `name` (a test bridge) when it exists, for
/// cleanups (printing, not failing on, errors).
pub fn remove_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        cleanup_cmd(&Cmd::new("ip", ["link", "delete", name]));
    }
}

/// Removes a file or a directory tree, for cleanups (a missing one is fine).
pub fn remove_path(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}
