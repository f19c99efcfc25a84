//! File-system primitives shared by the `multus` plugin and the node agent:
//! atomic replacement of a file ([`AtomicWrite`]) and an I/O error that
//! names what was attempted and on which path ([`IoError`]).
//!
//! `multus-config` stays free of I/O; this crate is where the two binaries'
//! file writing lives, so both follow the same rules (see
//! docs/architecture.md, "Where each rule lives").

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Every temporary file name ends with this (never a `*.conf`,
/// `*.conflist` or `*.json` candidate of a CNI conf dir).
pub const TEMP_SUFFIX: &str = ".tmp";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An I/O error with the action and the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    /// What was attempted ("write", "rename", ...).
    pub action: &'static str,
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// Wraps `source` with its context.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the underlying error is "not found".
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// What [`AtomicWrite::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already held exactly these bytes (its mode was fixed if
    /// needed); nothing was written. Only with
    /// [`AtomicWrite::skip_unchanged`].
    Unchanged,
    /// The file was replaced.
    Written,
}

/// How to replace a file atomically: the bytes go to a temporary file in
/// the same directory, which is fsynced and renamed over the target, so
/// readers see the old file or the new one, never an empty or partial one,
/// and a running executable is replaced without "text file busy". A failed
/// write removes its temporary file.
///
/// The options say what each caller pays for:
/// - [`skip_unchanged`](Self::skip_unchanged): read the target first and
///   leave it alone when it already holds the bytes (the node agent, which
///   rewrites on every event);
/// - [`sync_dir`](Self::sync_dir): fsync the directory after the rename so
///   the rename survives a power loss (on by default; the plugin's cache
///   turns it off on the per-pod path);
/// - [`sync_file`](Self::sync_file): fsync the data before the rename (on
///   by default);
/// - [`create_dir`](Self::create_dir): create the directory (and its
///   parents) with a mode first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite<'a> {
    mode: u32,
    temp_prefix: &'a str,
    skip_unchanged: bool,
    sync_file: bool,
    sync_dir: bool,
    create_dir: Option<u32>,
}

impl<'a> AtomicWrite<'a> {
    /// Writes files with permission bits `mode` (the umask does not apply),
    /// temporary files named `.multus.<name>.<pid>-<n>.tmp`, the directory
    /// fsynced, nothing skipped and no directory created.
    pub const fn new(mode: u32) -> Self {
        Self {
            mode,
            temp_prefix: ".multus.",
            skip_unchanged: false,
            sync_file: true,
            sync_dir: true,
            create_dir: None,
        }
    }

    /// Temporary files start with `prefix` (hidden when it starts with a
    /// dot), so the caller can recognise and clean up its own leftovers
    /// with [`is_temp_name`].
    pub const fn temp_prefix(mut self, prefix: &'a str) -> Self {
        self.temp_prefix = prefix;
        self
    }

    /// Leaves the file untouched (but fixes its mode) when it already holds
    /// exactly the bytes.
    pub const fn skip_unchanged(mut self) -> Self {
        self.skip_unchanged = true;
        self
    }

    /// Whether to fsync the temporary file before the rename (on by
    /// default). Without it a power loss may leave an empty file behind the
    /// rename; for files that are worthless after a reboot anyway.
    pub const fn sync_file(mut self, sync: bool) -> Self {
        self.sync_file = sync;
        self
    }

    /// Whether to fsync the directory after the rename.
    pub const fn sync_dir(mut self, sync: bool) -> Self {
        self.sync_dir = sync;
        self
    }

    /// Creates the file's directory and its parents with `mode` first.
    pub const fn create_dir(mut self, mode: u32) -> Self {
        self.create_dir = Some(mode);
        self
    }

    /// Replaces `path` with `bytes`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<WriteOutcome, IoError> {
        let (dir, name) = split(path)?;
        if let Some(mode) = self.create_dir {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| IoError::new("create the directory", dir, e))?;
        }
        if self.skip_unchanged && holds(path, bytes)? {
            let perms = fs::metadata(path)
                .map_err(|e| IoError::new("inspect", path, e))?
                .permissions();
            if perms.mode() & 0o7777 != self.mode {
                fs::set_permissions(path, fs::Permissions::from_mode(self.mode))
                    .map_err(|e| IoError::new("set the mode of", path, e))?;
            }
            return Ok(WriteOutcome::Unchanged);
        }
        let temp = self.temp_path(dir, name);
        let result = write_temp(&temp, bytes, self.mode, self.sync_file).and_then(|()| {
            fs::rename(&temp, path).map_err(|e| IoError::new("rename a temporary file to", path, e))
        });
        if let Err(err) = result {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        if self.sync_dir {
            sync_dir(dir)?;
        }
        Ok(WriteOutcome::Written)
    }

    /// A fresh temporary path for writing `path` (in its directory, unique
    /// in this process).
    pub fn temp_path_for(&self, path: &Path) -> Result<PathBuf, IoError> {
        let (dir, name) = split(path)?;
        Ok(self.temp_path(dir, name))
    }

    fn temp_path(&self, dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(
            "{}{}.{}-{n}{TEMP_SUFFIX}",
            self.temp_prefix,
            name.to_string_lossy(),
            std::process::id()
        ))
    }
}

/// The directory and file name of `path`.
fn split(path: &Path) -> Result<(&Path, &std::ffi::OsStr), IoError> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(IoError::new(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )),
    }
}

/// Whether `name` is a temporary file that an [`AtomicWrite`] with
/// `prefix` creates.
pub fn is_temp_name(prefix: &str, name: &str) -> bool {
    name.starts_with(prefix) && name.ends_with(TEMP_SUFFIX)
}

/// Whether `path` is a regular file holding exactly `bytes`.
fn holds(path: &Path, bytes: &[u8]) -> Result<bool, IoError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(IoError::new("inspect", path, e)),
    }
    match fs::read(path) {
        Ok(existing) => Ok(existing == bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("read", path, e)),
    }
}

fn write_temp(temp: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<(), IoError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp)
        .map_err(|e| IoError::new("create", temp, e))?;
    file.write_all(bytes)
        .map_err(|e| IoError::new("write", temp, e))?;
    // The umask may have cleared bits of `mode`.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| IoError::new("set the mode of", temp, e))?;
    if sync {
        file.sync_all()
            .map_err(|e| IoError::new("fsync", temp, e))?;
    }
    Ok(())
}

/// Fsyncs a directory so a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IoError::new("fsync the directory", dir, e))
}

/// Removes `path` and fsyncs its directory; `Ok(false)` when it did not
/// exist.
pub fn remove_file(path: &Path) -> Result<bool, IoError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("remove", path, e)),
    }
}

/// Creates `dir` (and its parents); `Ok(true)` when it did not exist before.
pub fn ensure_dir(dir: &Path) -> Result<bool, IoError> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| IoError::new("create the directory", dir, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_with_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00-multus.conf");
        fs::write(&path, b"old").unwrap();
        let outcome = AtomicWrite::new(0o640).write(&path, b"new").unwrap();
        assert_eq!(outcome, WriteOutcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), 0o640);
        assert_eq!(names_in(dir.path()), ["00-multus.conf"]);
    }

    #[test]
    fn skips_identical_bytes_but_fixes_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"same").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
        let write = AtomicWrite::new(0o600).skip_unchanged();
        assert_eq!(
            write.write(&path, b"same").unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            inode,
            "an unchanged file is not replaced"
        );
        assert_eq!(write.write(&path, b"other").unwrap(), WriteOutcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"other");
        // Without skip_unchanged identical bytes are written again.
        assert_eq!(
            AtomicWrite::new(0o600).write(&path, b"other").unwrap(),
            WriteOutcome::Written
        );
    }

    #[test]
    fn creates_the_directory_with_its_mode_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/result");
        let err = AtomicWrite::new(0o600).write(&path, b"x").unwrap_err();
        assert_eq!(err.action, "create");
        assert!(err.is_not_found());
        AtomicWrite::new(0o600)
            .create_dir(0o700)
            .sync_file(false)
            .sync_dir(false)
            .write(&path, b"x")
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
        assert_eq!(mode_of(&dir.path().join("a/b")), 0o700);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file_and_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: rename fails.
        let path = dir.path().join("target");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"keep").unwrap();
        let err = AtomicWrite::new(0o600)
            .temp_prefix(".test.")
            .write(&path, b"x")
            .unwrap_err();
        assert_eq!(err.action, "rename a temporary file to");
        assert_eq!(err.path, path);
        assert!(err.to_string().starts_with(&format!(
            "cannot rename a temporary file to {}: ",
            path.display()
        )));
        assert_eq!(names_in(dir.path()), ["target"]);
    }

    #[test]
    fn temporary_names_carry_the_prefix_and_suffix() {
        let write = AtomicWrite::new(0o600).temp_prefix(".multus-agent.");
        let temp = write.temp_path_for(Path::new("/x/00-multus.conf")).unwrap();
        assert_eq!(temp.parent(), Some(Path::new("/x")));
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".multus-agent.00-multus.conf."), "{name}");
        assert!(is_temp_name(".multus-agent.", name));
        assert!(write.temp_path_for(Path::new("/")).is_err());
        assert!(is_temp_name(
            ".multus-agent.",
            ".multus-agent.00-multus.conf.7-1.tmp"
        ));
        assert!(!is_temp_name(".multus-agent.", "00-multus.conf"));
        assert!(!is_temp_name(".multus-agent.", ".multus-agent.x.conf"));
    }

    #[test]
    fn remove_reports_whether_the_file_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        assert!(remove_file(&path).unwrap());
        assert!(!remove_file(&path).unwrap());
        assert!(ensure_dir(&dir.path().join("d/e")).unwrap());
        assert!(!ensure_dir(&dir.path().join("d/e")).unwrap());
    }
}
