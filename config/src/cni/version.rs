//! CNI specification versions and version negotiation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI specification version this project understands.
///
/// Ordered by release, so `CniVersion::V0_4_0 < CniVersion::V1_0_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Every version, oldest first (what `multus` answers to VERSION).
pub const ALL_VERSIONS: [CniVersion; 7] = [
    CniVersion::V0_1_0,
    CniVersion::V0_2_0,
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

/// The version assumed for a config that does not carry `cniVersion`
/// (libcni treats a missing version as 0.1.0; NADs without one get this
/// newer default so that they work with current plugins).
pub const DEFAULT_NAD_VERSION: CniVersion = CniVersion::V0_3_1;

/// The newest version we implement.
pub const LATEST: CniVersion = CniVersion::V1_1_0;

/// A version string that is not one of [`ALL_VERSIONS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI version {0:?} (known: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)")]
pub struct UnknownVersion(pub String);

impl CniVersion {
    /// The version as written in JSON, e.g. `"0.3.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Whether a plugin of this version understands the CHECK command.
    pub fn supports_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// Whether a plugin of this version understands STATUS and GC.
    pub fn supports_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// Whether a config of this version is written as a conflist by Multus
    /// (`00-multus.conflist`).
    pub fn prefers_conflist(self) -> bool {
        self >= Self::V1_0_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_VERSIONS
            .iter()
            .copied()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The answer to the VERSION command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// The VERSION answer of a plugin supporting `supported`, written in
    /// `requested` when the caller named a version we know, else in the latest.
    pub fn new(requested: Option<CniVersion>, supported: &[CniVersion]) -> Self {
        Self {
            cni_version: requested.unwrap_or(LATEST).to_string(),
            supported_versions: supported.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// The versions of this answer that we know, ignoring any we do not.
    pub fn known_versions(&self) -> Vec<CniVersion> {
        self.supported_versions
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

/// No version is supported by both sides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no common CNI version: we want {wanted}, the plugin supports [{}]", .plugin_supports.join(", "))]
pub struct NoCommonVersion {
    pub wanted: CniVersion,
    pub plugin_supports: Vec<String>,
}

/// Checks that a plugin whose VERSION answer is `plugin` can be driven with
/// the config version `wanted`.
pub fn negotiate(wanted: CniVersion, plugin: &VersionInfo) -> Result<CniVersion, NoCommonVersion> {
    if plugin.known_versions().contains(&wanted) {
        Ok(wanted)
    } else {
        Err(NoCommonVersion {
            wanted,
            plugin_supports: plugin.supported_versions.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_version() {
        for v in ALL_VERSIONS {
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
    }

    #[test]
    fn rejects_unknown_versions_naming_them() {
        let err = "0.5.0".parse::<CniVersion>().unwrap_err();
        assert!(err.to_string().contains("\"0.5.0\""), "{err}");
        assert!(serde_json::from_str::<CniVersion>("\"2.0.0\"").is_err());
    }

    #[test]
    fn versions_are_ordered_by_release() {
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
        let mut sorted = ALL_VERSIONS;
        sorted.sort();
        assert_eq!(sorted, ALL_VERSIONS);
    }

    #[test]
    fn feature_gates_follow_the_spec() {
        assert!(!CniVersion::V0_3_1.supports_check());
        assert!(CniVersion::V0_4_0.supports_check());
        assert!(!CniVersion::V1_0_0.supports_status_and_gc());
        assert!(CniVersion::V1_1_0.supports_status_and_gc());
        assert!(!CniVersion::V0_4_0.prefers_conflist());
        assert!(CniVersion::V1_0_0.prefers_conflist());
    }

    #[test]
    fn version_info_lists_all_supported() {
        let info = VersionInfo::new(Some(CniVersion::V0_4_0), &ALL_VERSIONS);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["cniVersion"], "0.4.0");
        assert_eq!(json["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn negotiation_fails_when_the_plugin_lacks_the_version() {
        let plugin = VersionInfo {
            cni_version: "0.4.0".into(),
            supported_versions: vec!["0.3.0".into(), "0.3.1".into(), "0.4.0".into()],
        };
        assert_eq!(
            negotiate(CniVersion::V0_3_1, &plugin),
            Ok(CniVersion::V0_3_1)
        );
        let err = negotiate(CniVersion::V1_0_0, &plugin).unwrap_err();
        assert!(err.to_string().contains("1.0.0"), "{err}");
        assert!(err.to_string().contains("0.3.0, 0.3.1, 0.4.0"), "{err}");
    }
}
