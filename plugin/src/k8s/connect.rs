//! Building the client of an invocation: from the kubeconfig of the Multus
//! config, else the in-cluster config, else none (delegates-only mode).

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use multus_config::multus_conf::MultusNetConf;
use tracing::debug;

use super::error::{InClusterProblem, KubeconfigProblem};
use super::{K8sClient, K8sError, K8sSettings};

impl K8sClient {
    /// The client of the invocation: from `conf.kubeconfig` when set, else
    /// the in-cluster config when `KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT` are set, else `None` (delegates-only mode).
    pub async fn connect(
        conf: &MultusNetConf,
        settings: K8sSettings,
    ) -> Result<Option<K8sClient>, K8sError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").ok();
        Self::connect_with_env(
            conf.kubeconfig.as_deref(),
            host.as_deref(),
            port.as_deref(),
            settings,
        )
        .await
    }

    /// `connect` with the service environment passed in.
    async fn connect_with_env(
        kubeconfig: Option<&str>,
        service_host: Option<&str>,
        service_port: Option<&str>,
        settings: K8sSettings,
    ) -> Result<Option<K8sClient>, K8sError> {
        if let Some(path) = kubeconfig.filter(|p| !p.is_empty()) {
            let (config, token_file) = kubeconfig_config(path).await?;
            let client = build_client(config, settings).map_err(|e| K8sError::Kubeconfig {
                path: path.to_owned(),
                source: KubeconfigProblem::Client(e),
            })?;
            debug!(kubeconfig = path, "Kubernetes client from kubeconfig");
            let credential = match token_file {
                Some(file) => format!("the token in {file} (named by kubeconfig {path})"),
                None => format!("the credentials of kubeconfig {path}"),
            };
            return Ok(Some(
                Self::from_client(client, settings).with_credential(credential),
            ));
        }
        let host = service_host.filter(|h| !h.is_empty());
        let port = service_port.filter(|p| !p.is_empty());
        let (Some(host), Some(port)) = (host, port) else {
            debug!("no kubeconfig and no in-cluster environment: delegates-only mode");
            return Ok(None);
        };
        let in_cluster_error = |source: InClusterProblem| K8sError::InCluster {
            host: host.to_owned(),
            port: port.to_owned(),
            source,
        };
        let config =
            Config::incluster_env().map_err(|e| in_cluster_error(InClusterProblem::Config(e)))?;
        let client = build_client(config, settings)
            .map_err(|e| in_cluster_error(InClusterProblem::Client(e)))?;
        debug!("Kubernetes client from the in-cluster config");
        Ok(Some(Self::from_client(client, settings).with_credential(
            "the in-cluster service-account token".to_owned(),
        )))
    }
}

/// A kube `Config` from the kubeconfig at `path`, and the token file its
/// current user names (for error messages).
async fn kubeconfig_config(path: &str) -> Result<(Config, Option<String>), K8sError> {
    let kubeconfig_error = |source: KubeconfigProblem| K8sError::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| match e {
        KubeconfigError::ReadConfig(io, _) => kubeconfig_error(KubeconfigProblem::Unreadable(io)),
        other => kubeconfig_error(KubeconfigProblem::Invalid(other)),
    })?;
    let token_file = current_token_file(&kubeconfig);
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(KubeconfigProblem::Invalid(e)))?;
    Ok((config, token_file))
}

/// The `tokenFile` of the current context's user, if any.
fn current_token_file(kubeconfig: &Kubeconfig) -> Option<String> {
    let context_name = kubeconfig.current_context.as_deref()?;
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)?
        .context
        .as_ref()?
        .user
        .clone()?;
    kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)?
        .auth_info
        .as_ref()?
        .token_file
        .clone()
}

/// A client whose HTTP stack enforces the request timeout and does not retry.
fn build_client(mut config: Config, settings: K8sSettings) -> Result<Client, kube::Error> {
    config.connect_timeout = Some(settings.request_timeout);
    config.read_timeout = Some(settings.request_timeout);
    config.write_timeout = Some(settings.request_timeout);
    config.reset_reader_on_write = true;
    config.default_retry = false;
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::k8s::PodRef;

    fn settings() -> K8sSettings {
        K8sSettings {
            request_timeout: Duration::from_millis(200),
            pod_wait: Duration::from_millis(300),
            retry_interval: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn no_kubeconfig_and_no_service_env_is_delegates_only() {
        let client = K8sClient::connect_with_env(None, None, None, settings())
            .await
            .unwrap();
        assert!(client.is_none());
        // One of the two variables is not enough, nor empty values.
        let client = K8sClient::connect_with_env(None, Some("10.0.0.1"), None, settings())
            .await
            .unwrap();
        assert!(client.is_none());
        let client = K8sClient::connect_with_env(Some(""), Some(""), Some(""), settings())
            .await
            .unwrap();
        assert!(client.is_none());
    }

    #[tokio::test]
    async fn missing_kubeconfig_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.d/multus.kubeconfig");
        let path = path.to_str().unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot read kubeconfig {path}: ")),
            "{text}"
        );
        assert!(matches!(err, K8sError::Kubeconfig { .. }));
    }

    #[tokio::test]
    async fn invalid_kubeconfig_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.kubeconfig");
        std::fs::write(&path, "apiVersion: v1\nkind: Config\nclusters: [[[\n").unwrap();
        let path = path.to_str().unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
        // No current context: also named.
        std::fs::write(path, "apiVersion: v1\nkind: Config\n").unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
    }

    fn write_kubeconfig(dir: &std::path::Path, server: &str) -> String {
        let token = dir.join("token");
        std::fs::write(&token, "secret-token").unwrap();
        let path = dir.join("multus.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: multus\n  user:\n    tokenFile: token\ncontexts:\n- name: multus-context\n  context:\n    cluster: local\n    user: multus\ncurrent-context: multus-context\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn kubeconfig_wins_and_unreachable_server_is_a_named_transient_error() {
        let dir = tempfile::tempdir().unwrap();
        // Port 1 on loopback: connection refused.
        let path = write_kubeconfig(dir.path(), "https://127.0.0.1:1");
        let client =
            K8sClient::connect_with_env(Some(&path), Some("10.0.0.1"), Some("443"), settings())
                .await
                .unwrap()
                .expect("a client");
        let err = client
            .get_pod(&PodRef::new("default", "web-1"))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string().contains("getting pod default/web-1"),
            "{err}"
        );
        // Retried within the budget.
        assert!(client.request_count() >= 2, "{}", client.request_count());
    }
}
