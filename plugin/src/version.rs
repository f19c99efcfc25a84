//! The VERSION command and `multus --version`.

use multus_config::cni::version::{ALL_VERSIONS, CniVersion, VersionInfo};
use serde::Deserialize;

/// The plugin's own release.
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Deserialize)]
struct VersionRequest {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
}

/// The VERSION answer for the config the runtime passed on stdin (which
/// names the version the runtime speaks; it may be empty).
pub fn version_info(stdin: &[u8]) -> VersionInfo {
    let requested = serde_json::from_slice::<VersionRequest>(stdin)
        .ok()
        .and_then(|r| r.cni_version)
        .and_then(|v| v.parse::<CniVersion>().ok());
    VersionInfo::new(requested, &ALL_VERSIONS)
}

/// The text of `multus --version`.
pub fn version_text() -> String {
    let versions: Vec<_> = ALL_VERSIONS.iter().map(|v| v.as_str()).collect();
    format!(
        "multus {PLUGIN_VERSION}\nCNI protocol versions: {}\n",
        versions.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_the_requested_version_listing_all() {
        let info = version_info(br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(info.cni_version, "0.4.0");
        assert_eq!(
            info.supported_versions,
            [
                "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"
            ]
        );
    }

    #[test]
    fn empty_or_unknown_requests_get_the_latest() {
        assert_eq!(version_info(b"").cni_version, "1.1.0");
        assert_eq!(
            version_info(br#"{"cniVersion":"9.9.9"}"#).cni_version,
            "1.1.0"
        );
    }

    #[test]
    fn version_text_names_the_release_and_protocols() {
        let text = version_text();
        assert!(text.starts_with(&format!("multus {PLUGIN_VERSION}\n")));
        assert!(text.contains("0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"));
    }
}
