//! File-system primitives of the node agent: atomic writes that never leave
//! an empty or partial file behind, and the conf-dir listing handed to the
//! pure generator.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use multus_config::ConfFile;
use multus_config::generate::{SkippedFile, hex_sha256, is_candidate_name};

/// Every temporary file the agent creates starts with this (hidden, and
/// never a `*.conf`/`*.conflist` candidate).
pub const TEMP_PREFIX: &str = ".multus-agent.";
/// ... and ends with this.
pub use multus_fsutil::TEMP_SUFFIX;

/// CNI configs larger than this are not read (they are reported unreadable).
pub const MAX_CONF_SIZE: u64 = 4 * 1024 * 1024;

pub use multus_fsutil::{IoError, WriteOutcome, ensure_dir, remove_file, sync_dir};

/// Whether `name` is one of our temporary files.
pub fn is_temp_name(name: &str) -> bool {
    multus_fsutil::is_temp_name(TEMP_PREFIX, name)
}

/// Replaces `path` with `bytes` (file mode `mode`) atomically and durably
/// (temporary file, fsync, rename, directory fsync); skips the write when
/// `path` already holds `bytes`. See [`multus_fsutil::AtomicWrite`].
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<WriteOutcome, IoError> {
    atomic_write(mode).write(path, bytes)
}

/// How the agent writes every file: agent temporary names, unchanged files
/// left alone, directory fsynced.
fn atomic_write(mode: u32) -> multus_fsutil::AtomicWrite<'static> {
    multus_fsutil::AtomicWrite::new(mode)
        .temp_prefix(TEMP_PREFIX)
        .skip_unchanged()
}

/// SHA-256 (hex) of a file's contents; `None` when it does not exist.
pub fn file_hash(path: &Path) -> Result<Option<String>, IoError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(hex_sha256(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("read", path, e)),
    }
}

/// Removes temporary files we left behind (a crash between create and
/// rename). Returns how many were removed; a missing directory is fine.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize, IoError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(IoError::new("list", dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| IoError::new("list", dir, e))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_temp_name) && remove_file(&entry.path())? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The candidate files of a conf dir as the generator wants them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Readable `*.conf`/`*.conflist` regular files (or symlinks to them).
    pub files: Vec<ConfFile>,
    /// Candidates that could not be read, with the reason; they take no part
    /// in the election.
    pub unreadable: Vec<SkippedFile>,
}

impl Listing {
    /// Whether a candidate named `name` exists (readable or not).
    pub fn contains(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.name == name) || self.unreadable.iter().any(|f| f.name == name)
    }
}

/// Lists the election candidates of `dir`: regular files and symlinks to
/// regular files whose names end in `.conf` or `.conflist`. Directories,
/// devices, FIFOs and sockets are skipped; a candidate that cannot be read
/// (dangling symlink, permissions, too large) is reported in
/// [`Listing::unreadable`] and does not stop the listing. Only a failure to
/// list the directory itself is an error.
pub fn read_conf_dir(dir: &Path) -> Result<Listing, IoError> {
    let entries = fs::read_dir(dir).map_err(|e| IoError::new("list", dir, e))?;
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry.map_err(|e| IoError::new("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_candidate_name(&name) {
            continue;
        }
        match read_candidate(&entry.path()) {
            Ok(Some(bytes)) => listing.files.push(ConfFile::new(name, bytes)),
            Ok(None) => {}
            Err(reason) => listing.unreadable.push(SkippedFile { name, reason }),
        }
    }
    listing
        .files
        .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    listing
        .unreadable
        .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(listing)
}

/// The CNI network names of the configs in the Multus conf dir `dir`
/// (where a NetworkAttachmentDefinition with an empty `spec.config` finds
/// its config): the `name` of every `*.conf`, `*.conflist` and `*.json`
/// regular file (or symlink to one) that parses as a CNI config, sorted and
/// without duplicates. A missing directory has no networks; files that
/// cannot be read or parsed, and configs without a name, are left out.
pub fn list_conf_networks(dir: &Path) -> Result<Vec<String>, IoError> {
    const EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IoError::new("list", dir, e)),
    };
    let mut names = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| IoError::new("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_temp_name(&name) || !EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            continue;
        }
        let Ok(Some(bytes)) = read_candidate(&entry.path()) else {
            continue;
        };
        if let Ok(config) = multus_config::cni::netconf::NetworkConfig::parse(&bytes)
            && let Some(network) = config.name().filter(|n| !n.is_empty())
        {
            names.insert(network.to_owned());
        }
    }
    Ok(names.into_iter().collect())
}

/// Reads one candidate: `Ok(None)` when it is not a regular file (or vanished
/// meanwhile), `Err(reason)` when it exists but cannot be read.
fn read_candidate(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // `metadata` follows symlinks: a symlink to a regular file counts.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match fs::symlink_metadata(path) {
                Ok(_) => Err(format!("cannot be read: dangling symlink ({e})")),
                Err(_) => Ok(None),
            };
        }
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_CONF_SIZE {
        return Err(format!(
            "cannot be read: larger than {MAX_CONF_SIZE} bytes ({} bytes)",
            meta.len()
        ));
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONF_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_CONF_SIZE {
        return Err(format!("cannot be read: larger than {MAX_CONF_SIZE} bytes"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_atomically_with_the_mode_and_skips_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00-multus.conf");
        assert_eq!(
            write_atomic(&path, b"{}", 0o600).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(
            write_atomic(&path, b"{}", 0o600).unwrap(),
            WriteOutcome::Unchanged
        );
        // same bytes, wrong mode: fixed without a rewrite
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            write_atomic(&path, b"{}", 0o600).unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(
            write_atomic(&path, b"{\"a\":1}", 0o600).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        // no temporary file is left behind
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["00-multus.conf"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub");
        fs::create_dir(&target).unwrap();
        // renaming a file over a non-empty directory fails
        fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"data", 0o600).is_err());
        assert!(target.join("x").exists());
        let temps = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| is_temp_name(e.as_ref().unwrap().file_name().to_str().unwrap()))
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn temp_names_are_recognised_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let temp = atomic_write(0o600)
            .temp_path_for(&dir.path().join("multus"))
            .unwrap();
        let name = temp.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(is_temp_name(&name), "{name}");
        assert!(!is_candidate_name(&name));
        fs::write(&temp, b"partial").unwrap();
        fs::write(dir.path().join("foreign.tmp"), b"x").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert!(!temp.exists());
        assert!(dir.path().join("foreign.tmp").exists());
    }

    #[test]
    fn listing_takes_files_and_symlinks_and_reports_unreadable_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("10-a.conf"), b"{\"a\":1}").unwrap();
        fs::write(d.join("20-b.conflist"), b"{}").unwrap();
        fs::write(d.join("30-c.json"), b"{}").unwrap();
        fs::write(d.join("README"), b"hello").unwrap();
        fs::create_dir(d.join("05-dir.conf")).unwrap();
        symlink(d.join("10-a.conf"), d.join("15-link.conf")).unwrap();
        symlink(d.join("05-dir.conf"), d.join("16-dirlink.conf")).unwrap();
        symlink(d.join("missing"), d.join("01-dangling.conf")).unwrap();
        let listing = read_conf_dir(d).unwrap();
        let names: Vec<_> = listing.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["10-a.conf", "15-link.conf", "20-b.conflist"]);
        assert_eq!(listing.files[1].bytes, b"{\"a\":1}");
        assert_eq!(listing.unreadable.len(), 1);
        assert_eq!(listing.unreadable[0].name, "01-dangling.conf");
        assert!(listing.unreadable[0].reason.contains("dangling"));
        assert!(listing.contains("01-dangling.conf"));
        assert!(!listing.contains("05-dir.conf"));
    }

    #[test]
    fn oversized_candidates_are_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b' '; (MAX_CONF_SIZE + 1) as usize];
        fs::write(dir.path().join("10-big.conf"), big).unwrap();
        let listing = read_conf_dir(dir.path()).unwrap();
        assert!(listing.files.is_empty());
        assert!(listing.unreadable[0].reason.contains("larger than"));
    }

    #[test]
    fn conf_networks_are_the_names_of_the_parsable_configs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            list_conf_networks(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
        let d = dir.path();
        fs::write(
            d.join("10-macvlan.conf"),
            r#"{"name":"macvlan-net","type":"macvlan"}"#,
        )
        .unwrap();
        fs::write(
            d.join("20-list.conflist"),
            r#"{"name":"bridge-net","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        fs::write(
            d.join("30-dup.json"),
            r#"{"name":"macvlan-net","type":"ipvlan"}"#,
        )
        .unwrap();
        fs::write(d.join("40-broken.conf"), "{").unwrap();
        fs::write(d.join("50-untyped.conf"), r#"{"name":"untyped"}"#).unwrap();
        fs::write(d.join("60-nameless.conf"), r#"{"type":"bridge"}"#).unwrap();
        fs::write(d.join("70-other.txt"), r#"{"name":"txt","type":"bridge"}"#).unwrap();
        fs::write(
            d.join(".multus-agent.x.1-1.tmp"),
            r#"{"name":"tmp","type":"bridge"}"#,
        )
        .unwrap();
        fs::create_dir(d.join("80-dir.conf")).unwrap();
        assert_eq!(
            list_conf_networks(d).unwrap(),
            ["bridge-net", "macvlan-net"]
        );
    }

    #[test]
    fn hashes_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(file_hash(&path).unwrap(), None);
        fs::write(&path, b"abc").unwrap();
        assert_eq!(file_hash(&path).unwrap(), Some(hex_sha256(b"abc")));
        assert!(remove_file(&path).unwrap());
        assert!(!remove_file(&path).unwrap());
        assert!(ensure_dir(&dir.path().join("a/b")).unwrap());
        assert!(!ensure_dir(&dir.path().join("a/b")).unwrap());
    }
}
