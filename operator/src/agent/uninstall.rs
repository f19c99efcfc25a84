//! `node-agent --uninstall`: remove exactly what the agent installed.
//!
//! A file is removed only when its current contents are what we recorded
//! writing (see [`super::manifest`]); the plugin binary also when it is
//! byte-identical to the one we ship. Everything else stays, including a
//! recorded file someone changed since. The binary is removed only once no
//! Multus config is left at our output names: a `00-multus.conf` whose
//! plugin is gone would break every pod on the node.

use std::path::{Path, PathBuf};

use multus_config::generate::{OUTPUT_CONF, OUTPUT_CONFLIST, hex_sha256};

use super::fsutil::{self, IoError};
use super::install::PLUGIN_FILE;
use super::manifest::{Area, Manifest, ManifestStore};
use super::{AgentError, Settings, is_multus_output};

/// What an uninstall did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UninstallReport {
    /// Files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Files left in place, with the reason.
    pub kept: Vec<(PathBuf, String)>,
}

fn dir_of(settings: &Settings, area: Area) -> PathBuf {
    match area {
        Area::ConfDir => settings.cni_conf_dir.clone(),
        Area::MultusD => settings.multus_d(),
        Area::BinDir => settings.cni_bin_dir.clone(),
    }
}

/// Removes `path` if its contents hash to `hash`.
fn remove_if_unchanged(
    path: &Path,
    hash: &str,
    report: &mut UninstallReport,
) -> Result<(), IoError> {
    match fsutil::file_hash(path)? {
        None => {}
        Some(current) if current == hash => {
            let removed = fsutil::remove_file(path)?;
            if removed {
                report.removed.push(path.to_path_buf());
            }
        }
        Some(_) => report.kept.push((
            path.to_path_buf(),
            "changed since the agent wrote it".to_owned(),
        )),
    }
    Ok(())
}

/// Removes what the agent installed on this node (the Multus config, the
/// kubeconfig and token in `multus.d/`, the plugin binary, our record and
/// `multus.d/` itself when we created it and it is empty). Foreign files
/// are never touched. Run it with the agent stopped.
pub fn uninstall(settings: &Settings) -> Result<UninstallReport, AgentError> {
    let mut report = UninstallReport::default();
    let mut store = ManifestStore::new(&settings.multus_d());
    let manifest = store.load().unwrap_or_else(|err| {
        report.kept.push((
            store.path().to_path_buf(),
            format!("unreadable record of installed files ({err}); nothing recorded is removed"),
        ));
        Manifest::default()
    });

    for dir in [
        &settings.cni_conf_dir,
        &settings.multus_d(),
        &settings.cni_bin_dir,
    ] {
        fsutil::remove_stale_temp_files(dir)?;
    }
    for area in [Area::ConfDir, Area::MultusD] {
        let dir = dir_of(settings, area);
        for (name, hash) in manifest.area(area) {
            remove_if_unchanged(&dir.join(name), hash, &mut report)?;
        }
    }

    // The binary: only when no Multus config would be left without it.
    let remaining: Vec<PathBuf> = [OUTPUT_CONF, OUTPUT_CONFLIST]
        .iter()
        .map(|name| settings.cni_conf_dir.join(name))
        .filter(|path| std::fs::read(path).is_ok_and(|bytes| is_multus_output(&bytes)))
        .collect();
    let binary = settings.cni_bin_dir.join(PLUGIN_FILE);
    let recorded = manifest.area(Area::BinDir).get(PLUGIN_FILE).cloned();
    let shipped = settings
        .plugin_source()
        .ok()
        .and_then(|source| std::fs::read(source).ok())
        .map(|bytes| hex_sha256(&bytes));
    match fsutil::file_hash(&binary)? {
        None => {}
        Some(current)
            if Some(&current) == recorded.as_ref() || Some(&current) == shipped.as_ref() =>
        {
            if remaining.is_empty() {
                if fsutil::remove_file(&binary)? {
                    report.removed.push(binary);
                }
            } else {
                let names: Vec<String> =
                    remaining.iter().map(|p| p.display().to_string()).collect();
                report
                    .kept
                    .push((binary, format!("still used by {}", names.join(", "))));
            }
        }
        Some(_) => report
            .kept
            .push((binary, "not the binary the agent installed".to_owned())),
    }

    if store.remove()? {
        report.removed.push(store.path().to_path_buf());
    }
    if manifest.created_multus_d {
        let dir = settings.multus_d();
        match std::fs::remove_dir(&dir) {
            Ok(()) => report.removed.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => report.kept.push((
                dir,
                "not empty: holds files the agent did not write".to_owned(),
            )),
        }
    }
    for path in &report.removed {
        tracing::info!(path = %path.display(), "removed");
    }
    for (path, reason) in &report.kept {
        tracing::warn!(path = %path.display(), reason = %reason, "left in place");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::manifest::ManifestStore;

    fn settings(dir: &Path) -> Settings {
        Settings {
            plugin_binary: Some(dir.join("src-multus")),
            ..Settings::for_test(dir)
        }
    }

    const OURS: &str = r#"{"name":"multus-cni-network","type":"multus"}"#;

    #[test]
    fn removes_recorded_files_and_keeps_changed_and_foreign_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let md = s.multus_d();
        std::fs::create_dir_all(&md).unwrap();
        std::fs::create_dir_all(&s.cni_bin_dir).unwrap();
        std::fs::write(s.cni_conf_dir.join("00-multus.conf"), OURS).unwrap();
        std::fs::write(s.cni_conf_dir.join("10-calico.conflist"), "{}").unwrap();
        std::fs::write(md.join("token"), "t").unwrap();
        std::fs::write(md.join("multus.kubeconfig"), "edited by hand").unwrap();
        std::fs::write(md.join("daemon-config.json"), "{}").unwrap();
        std::fs::write(s.cni_bin_dir.join("multus"), "bin").unwrap();
        std::fs::write(s.cni_bin_dir.join("bridge"), "bridge").unwrap();
        let mut m = Manifest::default();
        m.record(
            Area::ConfDir,
            "00-multus.conf",
            &hex_sha256(OURS.as_bytes()),
        );
        m.record(Area::MultusD, "token", &hex_sha256(b"t"));
        m.record(Area::MultusD, "multus.kubeconfig", &hex_sha256(b"kc"));
        m.record(Area::BinDir, "multus", &hex_sha256(b"bin"));
        m.created_multus_d = true;
        ManifestStore::new(&md).store(&m).unwrap();

        let report = uninstall(&s).unwrap();
        assert!(!s.cni_conf_dir.join("00-multus.conf").exists());
        assert!(!md.join("token").exists());
        assert!(!s.cni_bin_dir.join("multus").exists());
        assert!(
            md.join("multus.kubeconfig").exists(),
            "changed since written"
        );
        assert!(md.join("daemon-config.json").exists(), "foreign");
        assert!(s.cni_conf_dir.join("10-calico.conflist").exists());
        assert!(s.cni_bin_dir.join("bridge").exists());
        assert!(md.is_dir(), "not empty");
        assert_eq!(report.kept.len(), 2, "{report:?}");
        // idempotent
        let again = uninstall(&s).unwrap();
        assert!(again.removed.is_empty(), "{again:?}");
    }

    #[test]
    fn keeps_the_binary_while_a_multus_config_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        std::fs::create_dir_all(&s.cni_conf_dir).unwrap();
        std::fs::create_dir_all(&s.cni_bin_dir).unwrap();
        // a Multus config we did not record (e.g. changed by someone)
        std::fs::write(s.cni_conf_dir.join("00-multus.conflist"), OURS).unwrap();
        // the binary equals the one we ship, though not recorded
        std::fs::write(dir.path().join("src-multus"), "bin").unwrap();
        std::fs::write(s.cni_bin_dir.join("multus"), "bin").unwrap();
        let report = uninstall(&s).unwrap();
        assert!(s.cni_bin_dir.join("multus").exists());
        assert!(s.cni_conf_dir.join("00-multus.conflist").exists());
        assert!(report.kept[0].1.contains("still used"), "{report:?}");
        std::fs::remove_file(s.cni_conf_dir.join("00-multus.conflist")).unwrap();
        let report = uninstall(&s).unwrap();
        assert!(!s.cni_bin_dir.join("multus").exists(), "{report:?}");
    }
}
