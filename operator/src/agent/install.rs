//! Installing the `multus` plugin binary into the host's CNI bin dir, asking
//! it for its version, and listing the CNI plugins found there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multus_config::generate::hex_sha256;

use super::fsutil::{self, IoError, WriteOutcome};

/// File name of the plugin in the CNI bin dir.
pub const PLUGIN_FILE: &str = "multus";

/// How long `multus --version` may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the plugin binary to install comes from when `--plugin-binary` is
/// not given: the `multus` file beside the agent's own executable.
pub fn default_plugin_source() -> Result<PathBuf, IoError> {
    let exe = std::env::current_exe()
        .map_err(|e| IoError::new("locate", "the agent's own executable", e))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    Ok(dir.join(PLUGIN_FILE))
}

/// The result of installing the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Path of the installed binary.
    pub path: PathBuf,
    /// SHA-256 (hex) of its contents.
    pub hash: String,
    /// Whether it was (re)written; `false` when it was already identical.
    pub written: bool,
}

/// Copies `source` to `<bin_dir>/multus` (mode 0755) through a temporary file
/// in `bin_dir` and a rename, so a copy that is running right now is
/// replaced, not overwritten ("text file busy"). Skips identical binaries.
pub fn install_plugin(source: &Path, bin_dir: &Path) -> Result<Installed, IoError> {
    let bytes = fs::read(source).map_err(|e| IoError::new("read the plugin binary", source, e))?;
    if bytes.is_empty() {
        return Err(IoError::new(
            "install the plugin binary",
            source,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        ));
    }
    fsutil::ensure_dir(bin_dir)?;
    let path = bin_dir.join(PLUGIN_FILE);
    let outcome = fsutil::write_atomic(&path, &bytes, 0o755)?;
    Ok(Installed {
        path,
        hash: hex_sha256(&bytes),
        written: outcome == WriteOutcome::Written,
    })
}

/// The version from `multus --version` output: the second word of the first
/// line when it reads `multus <version>`, else the whole first line.
pub fn parse_version_output(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("multus"), Some(version)) => Some(version.to_owned()),
        _ => Some(line.to_owned()),
    }
}

/// Runs `<binary> --version` (bounded by [`VERSION_TIMEOUT`]) and returns the
/// version it prints; `None` when it fails, times out or prints nothing.
pub async fn query_plugin_version(binary: &Path) -> Option<String> {
    let mut attempts = 0;
    let child = loop {
        let spawned = tokio::process::Command::new(binary)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => break child,
            // A file just written may briefly be "busy" while a concurrently
            // forked process still holds its write descriptor.
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && attempts < 10 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => return None,
        }
    };
    let output = tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output())
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_version_output(&String::from_utf8_lossy(&output.stdout))
}

/// Names of the executable files (or symlinks to them) in `bin_dir`, sorted;
/// hidden and temporary files are left out. A missing directory is empty.
pub fn list_cni_plugins(bin_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(bin_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            let meta = fs::metadata(entry.path()).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_with_mode_0755_and_skips_identical() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src-multus");
        fs::write(&source, b"#!/bin/sh\necho v1\n").unwrap();
        let bin = dir.path().join("bin");
        let first = install_plugin(&source, &bin).unwrap();
        assert!(first.written);
        assert_eq!(first.path, bin.join("multus"));
        let mode = fs::metadata(&first.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let second = install_plugin(&source, &bin).unwrap();
        assert!(!second.written);
        assert_eq!(first.hash, second.hash);
        fs::write(&source, b"#!/bin/sh\necho v2\n").unwrap();
        assert!(install_plugin(&source, &bin).unwrap().written);
        assert_eq!(
            fs::read(bin.join("multus")).unwrap(),
            b"#!/bin/sh\necho v2\n"
        );
    }

    #[test]
    fn a_missing_or_empty_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = install_plugin(&dir.path().join("nope"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        fs::write(dir.path().join("empty"), b"").unwrap();
        assert!(install_plugin(&dir.path().join("empty"), dir.path()).is_err());
    }

    #[test]
    fn parses_version_output() {
        assert_eq!(
            parse_version_output("multus 0.1.0\nCNI protocol versions: 0.1.0\n").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(
            parse_version_output("\nv4.1.4 (go1.23)\n").as_deref(),
            Some("v4.1.4 (go1.23)")
        );
        assert_eq!(parse_version_output("  \n"), None);
    }

    #[tokio::test]
    async fn queries_the_version_of_a_binary() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        fs::write(&good, "#!/bin/sh\necho 'multus 9.8.7'\n").unwrap();
        fs::set_permissions(&good, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(query_plugin_version(&good).await.as_deref(), Some("9.8.7"));
        let bad = dir.path().join("bad");
        fs::write(&bad, "#!/bin/sh\nexit 3\n").unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(query_plugin_version(&bad).await, None);
        assert_eq!(
            query_plugin_version(&dir.path().join("missing")).await,
            None
        );
    }

    #[test]
    fn lists_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, mode) in [
            ("bridge", 0o755),
            ("macvlan", 0o700),
            ("README", 0o644),
            (".hidden", 0o755),
        ] {
            fs::write(d.join(name), b"x").unwrap();
            fs::set_permissions(d.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::create_dir(d.join("subdir")).unwrap();
        std::os::unix::fs::symlink(d.join("bridge"), d.join("bridge-link")).unwrap();
        assert_eq!(list_cni_plugins(d), ["bridge", "bridge-link", "macvlan"]);
        assert!(list_cni_plugins(&d.join("missing")).is_empty());
    }
}
