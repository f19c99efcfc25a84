//! The record of what the agent installed on the host, kept in
//! `<cni-conf-dir>/multus.d/node-agent-files.json`. It decides what is "ours"
//! when a stale output file is removed and on `--uninstall`: a file is ours
//! when its current contents hash to what we recorded writing, so a file that
//! someone else replaced or edited is never removed. A stale output may
//! also go when it is another Multus generator's ([`is_multus_output`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use multus_config::multus_conf::{MULTUS_NETWORK_NAME, MULTUS_PLUGIN_TYPE, MULTUS_SHIM_TYPE};
use serde::{Deserialize, Serialize};

use super::fsutil::{self, IoError};

/// File name of the record inside `multus.d/`.
pub const MANIFEST_FILE: &str = "node-agent-files.json";

/// Which directory a recorded file lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The CNI conf dir (`00-multus.conf[list]`).
    ConfDir,
    /// `<cni-conf-dir>/multus.d/` (kubeconfig, token).
    MultusD,
    /// The CNI bin dir (the `multus` binary).
    BinDir,
}

/// Files we wrote, by directory and name, with the SHA-256 (hex) of the
/// contents we wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Files in the CNI conf dir.
    #[serde(default)]
    pub conf_dir: BTreeMap<String, String>,
    /// Files in `multus.d/`.
    #[serde(default)]
    pub multus_d: BTreeMap<String, String>,
    /// Files in the CNI bin dir.
    #[serde(default)]
    pub bin_dir: BTreeMap<String, String>,
    /// Whether we created `multus.d/` (then uninstall removes it when empty).
    #[serde(default)]
    pub created_multus_d: bool,
}

impl Manifest {
    /// The entries of one area.
    pub fn area(&self, area: Area) -> &BTreeMap<String, String> {
        match area {
            Area::ConfDir => &self.conf_dir,
            Area::MultusD => &self.multus_d,
            Area::BinDir => &self.bin_dir,
        }
    }

    fn area_mut(&mut self, area: Area) -> &mut BTreeMap<String, String> {
        match area {
            Area::ConfDir => &mut self.conf_dir,
            Area::MultusD => &mut self.multus_d,
            Area::BinDir => &mut self.bin_dir,
        }
    }

    /// Records that `name` in `area` holds contents hashing to `hash`.
    pub fn record(&mut self, area: Area, name: &str, hash: &str) {
        self.area_mut(area).insert(name.to_owned(), hash.to_owned());
    }

    /// Forgets `name` in `area`.
    pub fn forget(&mut self, area: Area, name: &str) {
        self.area_mut(area).remove(name);
    }

    /// Whether `name` in `area` is recorded with exactly `hash`.
    pub fn owns(&self, area: Area, name: &str, hash: &str) -> bool {
        self.area(area).get(name).is_some_and(|h| h == hash)
    }
}

/// The manifest file and the last state written to it.
#[derive(Debug)]
pub struct ManifestStore {
    path: PathBuf,
    stored: Option<Manifest>,
}

impl ManifestStore {
    /// The record in `multus_d`.
    pub fn new(multus_d: &Path) -> Self {
        Self {
            path: multus_d.join(MANIFEST_FILE),
            stored: None,
        }
    }

    /// Path of the manifest file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the record. A missing file is an empty record; an unreadable or
    /// corrupt one is reported in the `Err` text and treated as empty by the
    /// caller (we then own nothing, which errs on the safe side).
    pub fn load(&mut self) -> Result<Manifest, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stored = Some(Manifest::default());
                return Ok(Manifest::default());
            }
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("cannot parse {}: {e}", self.path.display()))?;
        self.stored = Some(manifest.clone());
        Ok(manifest)
    }

    /// Writes `manifest` (atomically, 0600) unless it equals what is stored.
    pub fn store(&mut self, manifest: &Manifest) -> Result<(), IoError> {
        if self.stored.as_ref() == Some(manifest) {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(manifest).map_err(|e| {
            IoError::new(
                "serialise",
                &self.path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        bytes.push(b'\n');
        if let Some(dir) = self.path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        fsutil::write_atomic(&self.path, &bytes, 0o600)?;
        self.stored = Some(manifest.clone());
        Ok(())
    }

    /// Removes the manifest file.
    pub fn remove(&mut self) -> Result<bool, IoError> {
        self.stored = None;
        fsutil::remove_file(&self.path)
    }
}

/// Whether `bytes` are a config some Multus generator wrote (ours, or
/// upstream's thin or thick output): a JSON object named
/// `multus-cni-network` whose type (or first plugin's type) is `multus` or
/// `multus-shim`. Such a file left under the other extension would shadow
/// or duplicate ours.
pub fn is_multus_output(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    let plugin_type = value
        .get("type")
        .or_else(|| value.get("plugins")?.get(0)?.get("type"))
        .and_then(serde_json::Value::as_str);
    value.get("name").and_then(serde_json::Value::as_str) == Some(MULTUS_NETWORK_NAME)
        && matches!(plugin_type, Some(t) if t == MULTUS_PLUGIN_TYPE || t == MULTUS_SHIM_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_identical_stores() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ManifestStore::new(&dir.path().join("multus.d"));
        let mut manifest = store.load().unwrap();
        assert_eq!(manifest, Manifest::default());
        manifest.record(Area::ConfDir, "00-multus.conf", "abc");
        manifest.record(Area::BinDir, "multus", "def");
        manifest.created_multus_d = true;
        store.store(&manifest).unwrap();
        let written = std::fs::metadata(store.path()).unwrap().modified().unwrap();
        store.store(&manifest).unwrap();
        assert_eq!(
            std::fs::metadata(store.path()).unwrap().modified().unwrap(),
            written
        );
        let mut again = ManifestStore::new(&dir.path().join("multus.d"));
        let loaded = again.load().unwrap();
        assert_eq!(loaded, manifest);
        assert!(loaded.owns(Area::ConfDir, "00-multus.conf", "abc"));
        assert!(!loaded.owns(Area::ConfDir, "00-multus.conf", "xyz"));
        assert!(!loaded.owns(Area::MultusD, "00-multus.conf", "abc"));
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"confDir\""), "{text}");
    }

    #[test]
    fn a_corrupt_manifest_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{not json").unwrap();
        let mut store = ManifestStore::new(dir.path());
        assert!(store.load().unwrap_err().contains("cannot parse"));
    }

    #[test]
    fn recognises_multus_outputs() {
        assert!(is_multus_output(
            br#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}"#
        ));
        assert!(is_multus_output(
            br#"{"name":"multus-cni-network","plugins":[{"type":"multus-shim"}]}"#
        ));
        assert!(!is_multus_output(
            br#"{"name":"k8s-pod-network","type":"multus"}"#
        ));
        assert!(!is_multus_output(
            br#"{"name":"multus-cni-network","type":"calico"}"#
        ));
        assert!(!is_multus_output(b"not json"));
    }
}
