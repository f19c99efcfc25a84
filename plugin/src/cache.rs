//! The per-container cache: what ADD attached, so that DEL, CHECK and GC can
//! act without the API server.
//!
//! File: `<cniDir>/<containerID>`, mode 0600 in a 0700 directory, written
//! with temp file + fsync + rename before the first delegate runs and again
//! once results are known. The format is upstream Multus's (a JSON array of
//! objects with Go field names `Conf`, `ConfList`, `Name`,
//! `IsFilterV4Gateway`, `IsFilterV6Gateway`, `Bytes` (base64 of the delegate
//! config) and `ifnameRequest`), extended with a `multusRs` object that
//! upstream ignores. So both implementations can clean up each other's pods:
//! we read caches upstream left behind, and a rollback to upstream still
//! finds its delegates in ours.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use base64::Engine;
use multus_config::cni::netconf::NetworkConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use multus_config::cni::runtime::{CAP_CNI_DEVICE_INFO_FILE, CAP_DEVICE_ID};
use multus_config::npwg::DeviceInfo;
use multus_config::npwg::device_info::{CNI_SUBDIR, cni_file_name};

use multus_config::cni::netconf::ConfigError;
use multus_config::multus_conf::MultusNetConf;
use multus_fsutil::AtomicWrite;

use crate::attachment::{Attachment, DeviceAttachment, Origin};
use crate::dra::DraDevice;
use crate::env::valid_container_id;

/// How cache files are written: 0600 in a 0700 directory created on
/// demand, fsynced, the directory not fsynced (see [`Cache::save`]).
const CACHE_WRITE: AtomicWrite<'static> = AtomicWrite::new(0o600).create_dir(0o700).sync_dir(false);

/// Why the cache of a container cannot be used. Every message names the
/// file (or the container).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The sandbox's lock cannot be taken.
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another command held the sandbox's lock too long.
    #[error("another Multus command on this sandbox held {} for more than {}s", path.display(), timeout.as_secs())]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// The container ID could escape the cache directory.
    #[error("refusing cache path for invalid container ID {0:?}")]
    InvalidContainerId(String),
    /// The attachments cannot be encoded.
    #[error("cannot encode cache {}: {source}", path.display())]
    Encode {
        /// The cache file.
        path: PathBuf,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The file cannot be written.
    #[error("cannot write cache {}: {source}", path.display())]
    Write {
        /// The cache file.
        path: PathBuf,
        /// The write error.
        #[source]
        source: std::io::Error,
    },
    /// The file cannot be read.
    #[error("cannot read cache {}: {source}", path.display())]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cache we understand.
    #[error("corrupt cache {}: {source}", path.display())]
    Corrupt {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CorruptCache,
    },
    /// The file cannot be removed.
    #[error("cannot remove cache {}: {source}", path.display())]
    Remove {
        /// The cache file.
        path: PathBuf,
        /// The removal error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory cannot be listed.
    #[error("cannot list cache dir {}: {source}", dir.display())]
    List {
        /// The cache directory.
        dir: PathBuf,
        /// The listing error.
        #[source]
        source: std::io::Error,
    },
    /// CHECK of a container ADD did not set up (or DEL already released).
    #[error("CHECK: no cache for container {container_id}: ADD did not run or DEL already ran")]
    NothingToCheck {
        /// The container.
        container_id: String,
    },
    /// CHECK of an attachment whose result was not cached.
    #[error(
        "CHECK: {attachment} has no cached result (set up by an older Multus); cannot check it"
    )]
    NoCachedResult {
        /// The attachment.
        attachment: String,
    },
}

/// What is wrong with a cache file.
#[derive(Debug, thiserror::Error)]
pub enum CorruptCache {
    /// It is not a JSON array of entries.
    #[error(transparent)]
    NotJson(#[from] serde_json::Error),
    /// One entry holds no usable delegate config.
    #[error("entry {index}: {source}")]
    Entry {
        /// The entry's position.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: EntryError,
    },
}

/// Why an entry of a cache file holds no usable delegate config.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// `Bytes` is not base64.
    #[error("Bytes is not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
    /// `Bytes` does not decode to JSON.
    #[error("Bytes is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The config is not a network config.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Shorthand for results of the cache.
type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Our own data in a cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OurEntry {
    attachment: String,
    ifname: String,
    #[serde(default)]
    capability_args: Map<String, Value>,
    #[serde(default)]
    cni_args: String,
    #[serde(default)]
    cluster_network: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_route: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_info_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_info: Option<DeviceInfo>,
    /// The ResourceClaim device (DRA), so that DEL removes its status
    /// entry without the API telling which it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dra_device: Option<DraDevice>,
    /// The sandbox's network namespace (`CNI_NETNS` of ADD): whether it
    /// still exists tells a live sandbox from a stale cache file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<PathBuf>,
    /// Why the pod has it (network hot-plug detaches only the
    /// annotation's).
    #[serde(default, skip_serializing_if = "is_unrecorded")]
    origin: Origin,
}

fn is_unrecorded(origin: &Origin) -> bool {
    *origin == Origin::Unrecorded
}

/// One element of the cache array (upstream's DelegateNetConf shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Conf", default)]
    conf: Value,
    #[serde(rename = "ConfList", default)]
    conf_list: Value,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "IsFilterV4Gateway", default)]
    filter_v4: bool,
    #[serde(rename = "IsFilterV6Gateway", default)]
    filter_v6: bool,
    #[serde(rename = "Bytes", default)]
    bytes: String,
    #[serde(
        rename = "ifnameRequest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    ifname_request: Option<String>,
    /// Upstream's record of the device given to the delegate.
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    /// Upstream's record of the NAD's resource name.
    #[serde(
        rename = "resourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    resource_name: Option<String>,
    #[serde(rename = "multusRs", default, skip_serializing_if = "Option::is_none")]
    ours: Option<OurEntry>,
}

/// What the cache of one container holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAttachments {
    /// The attachments, in ADD order.
    pub attachments: Vec<Attachment>,
    /// Whether the file was written by upstream Multus.
    pub from_upstream: bool,
    /// The sandbox's network namespace as ADD was given it; `None` for
    /// files of upstream Multus and of versions that did not record it.
    pub netns: Option<PathBuf>,
}

/// Subdirectory of the cache dir holding the sandboxes' lock files.
pub const LOCK_DIR: &str = "locks";
/// How often a busy sandbox lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// The held lock of one sandbox ([`Cache::lock`]).
#[derive(Debug)]
pub struct SandboxLock {
    _lock: Flock<fs::File>,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    device_info_dir: Option<PathBuf>,
}

impl Cache {
    /// The cache of the Multus config: in `cniDir`, device-info files in
    /// `deviceInfoDir`.
    pub fn for_conf(conf: &MultusNetConf) -> Self {
        Self::new(&conf.cni_dir).with_device_info_dir(conf.device_info_dir())
    }

    /// The cache in `dir` (`cniDir` of the Multus config).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            device_info_dir: None,
        }
    }

    /// Where device-info files live (`deviceInfoDir`): entries upstream
    /// Multus wrote with a device get their device-info file from it.
    pub fn with_device_info_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.device_info_dir = Some(dir.into());
        self
    }

    /// The cache file of a container; the ID must have been validated.
    pub fn path(&self, container_id: &str) -> Result<PathBuf> {
        if !valid_container_id(container_id) {
            return Err(CacheError::InvalidContainerId(container_id.to_owned()));
        }
        Ok(self.dir.join(container_id))
    }

    /// Writes the attachments of a container, set up in the network
    /// namespace `netns`, atomically.
    pub fn save(
        &self,
        container_id: &str,
        netns: Option<&Path>,
        attachments: &[Attachment],
    ) -> Result<()> {
        let path = self.path(container_id)?;
        let entries: Vec<Entry> = attachments
            .iter()
            .enumerate()
            .map(|(index, a)| to_entry(index, a, netns))
            .collect();
        let bytes = match serde_json::to_vec(&entries) {
            Ok(bytes) => bytes,
            Err(source) => return Err(CacheError::Encode { path, source }),
        };
        // The file is fsynced, the directory not: the rename is atomic, a
        // directory fsync cost milliseconds per ADD, and after a power loss
        // the sandboxes are gone too, so DEL falls back to the API.
        match CACHE_WRITE.write(&path, &bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err(CacheError::Write {
                path,
                source: e.source,
            }),
        }
    }

    /// Reads a container's cache; `Ok(None)` when there is none. A corrupt
    /// file is an error (never a silent success that leaks addresses).
    /// `runtime_ifname` and `cni_args` are used for upstream entries, which
    /// do not record them.
    pub fn load(
        &self,
        container_id: &str,
        runtime_ifname: &str,
        cni_args: &str,
    ) -> Result<Option<CachedAttachments>> {
        let path = self.path(container_id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Read { path, source }),
        };
        parse_cache(
            &bytes,
            container_id,
            runtime_ifname,
            cni_args,
            self.device_info_dir.as_deref(),
        )
        .map(Some)
        .map_err(|source| CacheError::Corrupt { path, source })
    }

    /// Takes the sandbox's lock: ADD, DEL and a hot-plug of the same
    /// sandbox never run at once (a hot-plug saving its cache after a DEL
    /// removed it would leak what it attached). Waits up to `timeout`
    /// (polling: a blocking `flock` cannot be bounded), then fails naming
    /// the lock file. The lock lives in `locks/` of the cache dir and is
    /// released when the guard drops.
    pub fn lock(&self, container_id: &str, timeout: Duration) -> Result<SandboxLock> {
        let path = self.lock_path(container_id)?;
        let error = |source| CacheError::Lock {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(error)?;
        }
        let deadline = Instant::now() + timeout;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(error)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(SandboxLock { _lock: lock }),
                Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = back;
                    std::thread::sleep(LOCK_POLL);
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(CacheError::Busy { path, timeout });
                }
                Err((_, errno)) => return Err(error(std::io::Error::from(errno))),
            }
        }
    }

    fn lock_path(&self, container_id: &str) -> Result<PathBuf> {
        self.path(container_id)?;
        Ok(self.dir.join(LOCK_DIR).join(container_id))
    }

    /// Removes a container's cache; a missing file is fine.
    pub fn remove(&self, container_id: &str) -> Result<()> {
        let path = self.path(container_id)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Remove { path, source }),
        }
        // The sandbox is gone: so is its lock file (its holder, the caller,
        // keeps the lock on the unlinked file until it is done).
        let _ = fs::remove_file(self.lock_path(container_id)?);
        Ok(())
    }

    /// The container IDs that have a cache file.
    pub fn container_ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CacheError::List {
                    dir: self.dir.clone(),
                    source,
                });
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| valid_container_id(name))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn to_entry(index: usize, a: &Attachment, netns: Option<&Path>) -> Entry {
    let value = a.config.to_value();
    let (conf, conf_list) = if a.config.is_list() {
        (Value::Object(Map::new()), value)
    } else {
        (value, Value::Object(Map::new()))
    };
    Entry {
        conf,
        conf_list,
        name: a.network_name().to_owned(),
        filter_v4: false,
        filter_v6: false,
        bytes: base64::engine::general_purpose::STANDARD.encode(a.config.to_bytes()),
        // Upstream takes the first entry for the cluster network on the
        // runtime's interface and names the others by this field, so every
        // entry but a first cluster network carries its interface.
        ifname_request: (!a.is_cluster_network || index > 0).then(|| a.ifname.clone()),
        device_id: a.device.id.clone(),
        resource_name: a.device.resource_name.clone(),
        ours: Some(OurEntry {
            attachment: a.name.clone(),
            ifname: a.ifname.clone(),
            capability_args: a.capability_args.clone(),
            cni_args: a.cni_args.clone(),
            cluster_network: a.is_cluster_network,
            default_route: a.default_route.clone(),
            result: a.result.clone(),
            resource_name: a.device.resource_name.clone(),
            device_id: a.device.id.clone(),
            device_info_file: a.device.info_file.clone(),
            device_info: a.device.info.clone(),
            dra_device: a.device.dra.clone(),
            netns: netns.map(Path::to_path_buf),
            origin: a.origin,
        }),
    }
}

/// Parses a cache file (ours or upstream's).
fn parse_cache(
    bytes: &[u8],
    container_id: &str,
    runtime_ifname: &str,
    cni_args: &str,
    device_info_dir: Option<&Path>,
) -> Result<CachedAttachments, CorruptCache> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes)?;
    let mut from_upstream = false;
    let mut netns = None;
    let mut attachments = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let config =
            entry_config(&entry).map_err(|source| CorruptCache::Entry { index, source })?;
        let attachment = match entry.ours {
            Some(ours) => {
                if netns.is_none() {
                    netns = ours.netns;
                }
                Attachment {
                    name: ours.attachment,
                    config,
                    ifname: ours.ifname,
                    capability_args: ours.capability_args,
                    cni_args: ours.cni_args,
                    is_cluster_network: ours.cluster_network,
                    default_route: ours.default_route,
                    result: ours.result,
                    device: DeviceAttachment {
                        resource_name: ours.resource_name,
                        id: ours.device_id,
                        info_file: ours.device_info_file,
                        info: ours.device_info,
                        dra: ours.dra_device,
                    },
                    origin: ours.origin,
                }
            }
            None => {
                from_upstream = true;
                // Upstream: an entry's interface is its request; without
                // one the first delegate (the cluster network) is on the
                // runtime's interface and the others on net<i>.
                let ifname = match entry.ifname_request.filter(|s| !s.is_empty()) {
                    Some(requested) => requested,
                    None if index == 0 => runtime_ifname.to_owned(),
                    None => format!("net{index}"),
                };
                let name = if entry.name.is_empty() {
                    config.name().unwrap_or_default().to_owned()
                } else {
                    entry.name
                };
                // Upstream passed its device as runtimeConfig and named the
                // device-info file after the delegate, container and
                // interface; DEL needs both.
                let mut capability_args = Map::new();
                let info_file = entry.device_id.as_ref().and_then(|id| {
                    capability_args.insert(CAP_DEVICE_ID.into(), Value::from(id.clone()));
                    let dir = device_info_dir?;
                    let file =
                        dir.join(CNI_SUBDIR)
                            .join(cni_file_name(&name, container_id, &ifname));
                    capability_args.insert(
                        CAP_CNI_DEVICE_INFO_FILE.into(),
                        Value::from(file.to_string_lossy().into_owned()),
                    );
                    Some(file)
                });
                Attachment {
                    name,
                    config,
                    ifname,
                    capability_args,
                    cni_args: cni_args.to_owned(),
                    is_cluster_network: index == 0,
                    default_route: None,
                    result: None,
                    device: DeviceAttachment {
                        resource_name: entry.resource_name,
                        id: entry.device_id,
                        info_file,
                        info: None,
                        dra: None,
                    },
                    origin: Origin::Unrecorded,
                }
            }
        };
        attachments.push(attachment);
    }
    Ok(CachedAttachments {
        attachments,
        from_upstream,
        netns,
    })
}

/// The delegate config of an entry: `Bytes` when present (upstream's
/// authoritative copy), else `ConfList`/`Conf`.
fn entry_config(entry: &Entry) -> Result<NetworkConfig, EntryError> {
    if !entry.bytes.is_empty() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry.bytes.trim())
            .map_err(EntryError::NotBase64)?;
        let mut value: Value = serde_json::from_slice(&raw).map_err(EntryError::NotJson)?;
        // Upstream before #1521 lost a conflist's cniVersion in Bytes; take it
        // from the decoded ConfList then.
        if value.get("cniVersion").is_none()
            && let Some(v) = entry
                .conf_list
                .get("cniVersion")
                .or_else(|| entry.conf.get("cniVersion"))
            && let Some(obj) = value.as_object_mut()
        {
            obj.insert("cniVersion".into(), v.clone());
        }
        return Ok(NetworkConfig::from_value(value)?);
    }
    let candidate = if entry.conf_list.get("plugins").is_some() {
        &entry.conf_list
    } else {
        &entry.conf
    };
    Ok(NetworkConfig::from_value(candidate.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sandbox_lock_excludes_others_until_dropped_and_goes_with_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let held = cache.lock("c1", Duration::from_secs(1)).unwrap();
        let lock_file = dir.path().join(LOCK_DIR).join("c1");
        assert_eq!(
            fs::metadata(&lock_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Another sandbox is not held up.
        drop(cache.lock("c2", Duration::from_millis(10)).unwrap());
        let busy = cache.lock("c1", Duration::from_millis(60)).unwrap_err();
        assert!(matches!(busy, CacheError::Busy { .. }), "{busy}");
        assert!(busy.to_string().contains("locks/c1"), "{busy}");
        drop(held);
        let again = cache.lock("c1", Duration::from_millis(60)).unwrap();
        cache.remove("c1").unwrap();
        assert!(!lock_file.exists(), "removed with the cache");
        drop(again);
        assert!(matches!(
            cache.lock("../x", Duration::from_millis(1)),
            Err(CacheError::InvalidContainerId(_))
        ));
    }

    fn attachment(name: &str, ifname: &str, config: Value, cluster: bool) -> Attachment {
        Attachment {
            name: name.into(),
            config: NetworkConfig::from_value(config).unwrap(),
            ifname: ifname.into(),
            capability_args: Map::new(),
            cni_args: "IgnoreUnknown=true".into(),
            is_cluster_network: cluster,
            default_route: None,
            result: None,
            device: DeviceAttachment::default(),
            origin: Default::default(),
        }
    }

    #[test]
    fn round_trips_our_attachments_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("multus"));
        let mut a = vec![
            attachment(
                "k8s-pod-network",
                "eth0",
                json!({"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"bridge"}]}),
                true,
            ),
            attachment(
                "default/macvlan",
                "net1",
                json!({"cniVersion":"1.0.0","name":"macvlan","type":"macvlan","master":"eth0"}),
                false,
            ),
        ];
        a[1].result = Some(json!({"cniVersion":"1.0.0","ips":[]}));
        a[1].default_route = Some(vec!["10.1.1.1".parse().unwrap()]);
        cache.save("c1", None, &a).unwrap();
        let path = cache.path("c1").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(dir.path().join("multus"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let loaded = cache.load("c1", "eth0", "").unwrap().unwrap();
        assert!(!loaded.from_upstream);
        assert_eq!(loaded.attachments, a);
        assert_eq!(loaded.netns, None);
        cache
            .save("c1", Some(Path::new("/var/run/netns/cni-1")), &a)
            .unwrap();
        let loaded = cache.load("c1", "eth0", "").unwrap().unwrap();
        assert_eq!(
            loaded.netns.as_deref(),
            Some(Path::new("/var/run/netns/cni-1"))
        );
        assert_eq!(loaded.attachments, a);
        assert_eq!(cache.container_ids().unwrap(), ["c1"]);
        cache.remove("c1").unwrap();
        cache.remove("c1").unwrap();
        assert!(cache.load("c1", "eth0", "").unwrap().is_none());
    }

    #[test]
    fn round_trips_the_device_and_writes_it_for_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let mut a = attachment(
            "default/sriov",
            "net1",
            json!({"cniVersion":"1.0.0","name":"sriov","type":"sriov","deviceID":"0000:af:06.0"}),
            false,
        );
        a.device = DeviceAttachment {
            resource_name: Some("intel.com/sriov".into()),
            id: Some("0000:af:06.0".into()),
            info_file: Some("/run/devinfo/cni/default-sriov-c6_net1".into()),
            info: multus_config::npwg::device_info::parse_device_info(
                br#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.0"}}"#,
            )
            .ok(),
            dra: None,
        };
        cache.save("c6", None, std::slice::from_ref(&a)).unwrap();
        let raw: Value = serde_json::from_slice(&fs::read(dir.path().join("c6")).unwrap()).unwrap();
        assert_eq!(raw[0]["deviceID"], "0000:af:06.0");
        assert_eq!(raw[0]["resourceName"], "intel.com/sriov");
        let loaded = cache.load("c6", "eth0", "").unwrap().unwrap();
        assert_eq!(loaded.attachments, [a]);
    }

    #[test]
    fn round_trips_a_claim_device_in_our_object_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let mut a = attachment(
            "default/nic",
            "net1",
            json!({"cniVersion":"1.0.0","name":"nic","type":"sriov","deviceID":"0000:00:01.0"}),
            false,
        );
        a.device = DeviceAttachment {
            resource_name: Some("example.com/nic".into()),
            id: Some("0000:00:01.0".into()),
            dra: Some(DraDevice {
                claim_namespace: "default".into(),
                claim_name: "web-nic-x7k2p".into(),
                claim_uid: "c-uid".into(),
                driver: "nic.example.com".into(),
                pool: "node-a".into(),
                device: "nic-0".into(),
                share_id: None,
            }),
            ..DeviceAttachment::default()
        };
        cache.save("c8", None, std::slice::from_ref(&a)).unwrap();
        let raw: Value = serde_json::from_slice(&fs::read(dir.path().join("c8")).unwrap()).unwrap();
        assert_eq!(
            raw[0]["multusRs"]["draDevice"],
            json!({"claimNamespace": "default", "claimName": "web-nic-x7k2p", "claimUid": "c-uid",
                "driver": "nic.example.com", "pool": "node-a", "device": "nic-0"})
        );
        // Upstream's own fields are as for a device plugin's device.
        assert_eq!(raw[0]["deviceID"], "0000:00:01.0");
        assert_eq!(raw[0]["resourceName"], "example.com/nic");
        let loaded = cache.load("c8", "eth0", "").unwrap().unwrap();
        assert_eq!(loaded.attachments, [a]);
        // Upstream's reading of it (no multusRs) still has the device.
        let mut stripped = raw.clone();
        stripped[0].as_object_mut().unwrap().remove("multusRs");
        let parsed = parse_cache(stripped.to_string().as_bytes(), "c8", "eth0", "", None).unwrap();
        assert_eq!(
            parsed.attachments[0].device.id.as_deref(),
            Some("0000:00:01.0")
        );
        assert_eq!(parsed.attachments[0].device.dra, None);
    }

    #[test]
    fn an_upstream_entry_with_a_device_gets_its_device_info_file_back() {
        let conf = json!({"cniVersion":"0.3.1","name":"sriov-net","type":"sriov","deviceID":"0000:af:06.0"});
        let b64 = base64::engine::general_purpose::STANDARD.encode(conf.to_string());
        let upstream = json!([
            {"Conf":{"type":"bridge"},"Name":"cbr0","Bytes":base64::engine::general_purpose::STANDARD.encode(r#"{"cniVersion":"0.3.1","name":"cbr0","type":"bridge"}"#)},
            {"Conf":conf,"Name":"default/sriov-net","Bytes":b64,"deviceID":"0000:af:06.0","resourceName":"intel.com/sriov"}
        ]);
        let parsed = parse_cache(
            upstream.to_string().as_bytes(),
            "c7",
            "eth0",
            "",
            Some(Path::new("/run/devinfo")),
        )
        .unwrap();
        let a = &parsed.attachments[1];
        assert_eq!(a.device.id.as_deref(), Some("0000:af:06.0"));
        assert_eq!(a.device.resource_name.as_deref(), Some("intel.com/sriov"));
        let file = "/run/devinfo/cni/default-sriov-net-c7_net1";
        assert_eq!(a.device.info_file.as_deref(), Some(Path::new(file)));
        assert_eq!(a.capability_args["deviceID"], "0000:af:06.0");
        assert_eq!(a.capability_args["CNIDeviceInfoFile"], file);
        assert_eq!(parsed.attachments[0].device, DeviceAttachment::default());
    }

    #[test]
    fn writes_upstream_readable_fields() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let a = [attachment(
            "default/macvlan",
            "net1",
            json!({"cniVersion":"0.3.1","name":"macvlan","type":"macvlan"}),
            false,
        )];
        cache.save("c2", None, &a).unwrap();
        let raw: Value = serde_json::from_slice(&fs::read(dir.path().join("c2")).unwrap()).unwrap();
        let entry = &raw[0];
        assert_eq!(entry["Name"], "macvlan");
        assert_eq!(entry["ifnameRequest"], "net1");
        assert_eq!(entry["Conf"]["type"], "macvlan");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(entry["Bytes"].as_str().unwrap())
            .unwrap();
        let decoded: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded["master"], Value::Null);
        assert_eq!(decoded["type"], "macvlan");
    }

    #[test]
    fn a_cluster_network_after_other_delegates_keeps_its_interface_for_upstream() {
        // masterplugin on the second inline delegate: upstream reading our
        // cache must still find every interface.
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let conf = |name: &str| json!({"cniVersion":"1.0.0","name":name,"type":"bridge"});
        let a = [
            attachment("a", "net1", conf("a"), false),
            attachment("b", "eth0", conf("b"), true),
            attachment("c", "net2", conf("c"), false),
        ];
        cache.save("c5", None, &a).unwrap();
        let mut raw: Value =
            serde_json::from_slice(&fs::read(dir.path().join("c5")).unwrap()).unwrap();
        let requests: Vec<&Value> = raw
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["ifnameRequest"])
            .collect();
        assert_eq!(requests, [&json!("net1"), &json!("eth0"), &json!("net2")]);
        // Read back as upstream would have left it (no multusRs).
        for e in raw.as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("multusRs");
        }
        let parsed = parse_cache(raw.to_string().as_bytes(), "c5", "eth0", "", None).unwrap();
        let ifnames: Vec<&str> = parsed
            .attachments
            .iter()
            .map(|a| a.ifname.as_str())
            .collect();
        assert_eq!(ifnames, ["net1", "eth0", "net2"]);
        // Ours round-trip unchanged, the cluster flag included.
        let loaded = cache.load("c5", "eth0", "").unwrap().unwrap();
        assert_eq!(loaded.attachments, a);
    }

    #[test]
    fn reads_a_cache_written_by_upstream_multus() {
        let calico = json!({"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"portmap"}]});
        let macvlan =
            json!({"cniVersion":"0.3.0","name":"macvlan-conf","type":"macvlan","master":"eth0"});
        let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
        let upstream = json!([
            {"Conf":{"cniVersion":"","type":""},"ConfList":{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]},
             "Name":"k8s-pod-network","IsFilterV4Gateway":true,"IsFilterV6Gateway":true,"Bytes":b64(&calico)},
            {"Conf":{"cniVersion":"0.3.0","name":"macvlan-conf","type":"macvlan"},"ConfList":{"cniVersion":"","name":"","plugins":null},
             "Name":"macvlan-conf","IsFilterV4Gateway":true,"IsFilterV6Gateway":true,"Bytes":b64(&macvlan)},
            {"Conf":{"cniVersion":"0.3.0","name":"macvlan-conf","type":"macvlan"},"ConfList":{},
             "Name":"macvlan-conf","ifnameRequest":"data0","IsFilterV4Gateway":true,"IsFilterV6Gateway":true,"Bytes":b64(&macvlan)}
        ]);
        let parsed = parse_cache(
            upstream.to_string().as_bytes(),
            "c3",
            "eth0",
            "K8S_POD_NAME=p",
            None,
        )
        .unwrap();
        assert!(parsed.from_upstream);
        let a = &parsed.attachments;
        assert_eq!(a.len(), 3);
        assert!(a[0].is_cluster_network);
        assert_eq!(a[0].ifname, "eth0");
        assert!(a[0].config.is_list());
        assert_eq!(a[0].config.plugin_types(), ["calico", "portmap"]);
        assert_eq!(a[1].ifname, "net1");
        assert_eq!(a[2].ifname, "data0");
        assert_eq!(a[1].cni_args, "K8S_POD_NAME=p");
        assert_eq!(a[1].config.to_value()["master"], "eth0");
    }

    #[test]
    fn backfills_a_lost_conflist_version() {
        let bytes = base64::engine::general_purpose::STANDARD
            .encode(json!({"name":"k","plugins":[{"type":"calico"}]}).to_string());
        let upstream = json!([{"Conf":{},"ConfList":{"cniVersion":"0.3.1","name":"k"},"Name":"k","Bytes":bytes}]);
        let parsed = parse_cache(upstream.to_string().as_bytes(), "c4", "eth0", "", None).unwrap();
        assert_eq!(
            parsed.attachments[0].config.cni_version_str(),
            Some("0.3.1")
        );
    }

    #[test]
    fn corrupt_caches_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad"), b"{not json").unwrap();
        let cache = Cache::new(dir.path());
        let err = cache.load("bad", "eth0", "").unwrap_err();
        assert!(err.to_string().contains("corrupt cache"), "{err}");
        assert!(err.to_string().contains("bad"), "{err}");
        fs::write(dir.path().join("bad2"), br#"[{"Bytes":"%%%"}]"#).unwrap();
        let err = cache.load("bad2", "eth0", "").unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn refuses_paths_outside_the_dir() {
        let cache = Cache::new("/var/lib/cni/multus");
        assert!(cache.path("../etc").is_err());
        assert!(cache.path("a/b").is_err());
    }
}
