//! The kubeconfig the `multus` plugin uses on the host.
//!
//! It references a token file (`tokenFile`) instead of embedding the token, so
//! the node agent can keep the token fresh (bound service-account tokens
//! expire; upstream's embedded token caused "Unauthorized" after an hour).

use base64::Engine;
use serde_json::json;

/// Inputs of the plugin's kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigParams {
    /// API server URL, see [`server_url`].
    pub server: String,
    /// PEM bytes of the cluster CA; `None` leaves TLS verification to the
    /// system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Host path of the token file the agent keeps current.
    pub token_file: String,
}

/// The API server URL from the in-cluster service environment
/// (`KUBERNETES_SERVICE_HOST`/`_PORT`), bracketing IPv6 addresses.
pub fn server_url(host: &str, port: &str) -> String {
    let host = host.trim();
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("https://{bracketed}:{}", port.trim())
}

/// Renders the kubeconfig as YAML text.
pub fn render_kubeconfig(params: &KubeconfigParams) -> String {
    let mut cluster = serde_json::Map::new();
    cluster.insert("server".into(), json!(params.server));
    if let Some(ca) = &params.ca_pem {
        cluster.insert(
            "certificate-authority-data".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(ca)),
        );
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "multus", "user": {"tokenFile": params.token_file}}],
        "contexts": [{"name": "multus-context", "context": {"cluster": "local", "user": "multus"}}],
        "current-context": "multus-context",
    });
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!("# Written by the multus node agent; rewritten on every change.\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_brackets_ipv6() {
        assert_eq!(server_url("10.96.0.1", "443"), "https://10.96.0.1:443");
        assert_eq!(
            server_url("fd00:10:96::1", "6443"),
            "https://[fd00:10:96::1]:6443"
        );
        assert_eq!(server_url("[fd00::1]", "443"), "https://[fd00::1]:443");
        assert_eq!(
            server_url("api.example.com", "443"),
            "https://api.example.com:443"
        );
    }

    #[test]
    fn kubeconfig_references_the_token_file_and_embeds_the_ca() {
        let text = render_kubeconfig(&KubeconfigParams {
            server: "https://[fd00::1]:443".into(),
            ca_pem: Some(
                b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            token_file: "/etc/cni/net.d/multus.d/token".into(),
        });
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["kind"], "Config");
        assert_eq!(doc["current-context"], "multus-context");
        let cluster = &doc["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://[fd00::1]:443");
        let ca = cluster["certificate-authority-data"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap();
        assert!(decoded.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            doc["users"][0]["user"]["tokenFile"],
            "/etc/cni/net.d/multus.d/token"
        );
        assert!(
            doc["users"][0]["user"].get("token").is_none(),
            "never embed the token"
        );
        assert_eq!(doc["contexts"][0]["context"]["user"], "multus");
        assert_eq!(doc["contexts"][0]["context"]["cluster"], "local");
    }

    #[test]
    fn kubeconfig_without_ca_has_no_ca_key() {
        let text = render_kubeconfig(&KubeconfigParams {
            server: "https://10.0.0.1:443".into(),
            ca_pem: None,
            token_file: "/t".into(),
        });
        assert!(!text.contains("certificate-authority-data"));
    }
}
