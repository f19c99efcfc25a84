//! Whether a cluster or root-only test runs, is skipped (with a message) or,
//! under CI, fails because it would have been skipped.

use std::path::Path;

use crate::env::{E2E_KUBECONFIG_ENV, e2e_kubeconfig, running_in_ci};
use crate::host::is_root;

/// A client for the end-to-end cluster, or `None` (after saying why) when
/// `MULTUS_E2E_KUBECONFIG` is not set. Under CI an unset variable fails the
/// test: CI must run the end-to-end tests, not skip them. A set but unusable
/// kubeconfig always fails the test: the user asked for a cluster run.
pub async fn e2e_client(test: &str) -> Option<kube::Client> {
    let Some(path) = e2e_kubeconfig() else {
        assert!(
            !running_in_ci(),
            "{test}: CI=true but {E2E_KUBECONFIG_ENV} is not set; the end-to-end tests must not be \
             skipped in CI (start a cluster and set {E2E_KUBECONFIG_ENV} to its kubeconfig, as \
             .ci/run does)"
        );
        eprintln!(
            "SKIPPED {test}: set {E2E_KUBECONFIG_ENV} to a kubeconfig to run it against a real cluster"
        );
        return None;
    };
    let config = client_config(&path).await;
    Some(kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}")))
}

/// The client configuration of the kubeconfig at `path` (the one named by
/// `MULTUS_E2E_KUBECONFIG`); fails the test when it is not usable.
pub async fn client_config(path: &Path) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap_or_else(|e| {
        panic!("{E2E_KUBECONFIG_ENV}={path:?} is not a usable kubeconfig: {e}")
    });
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{E2E_KUBECONFIG_ENV}={path:?}: {e}"))
}

/// Whether a root-only test can run. Returns `false` (after saying why) when
/// not root outside CI; panics when not root under CI.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !running_in_ci(),
        "{test} needs root, and CI=true forbids skipping it: run the suite as root"
    );
    eprintln!("SKIPPED {test}: needs root (network namespaces); run the suite as root");
    false
}
