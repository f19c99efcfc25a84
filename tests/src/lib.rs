//! Shared helpers for the cross-crate and end-to-end tests.
//!
//! Cluster tests run when `MULTUS_E2E_KUBECONFIG` names a kubeconfig and are
//! skipped with a message otherwise. Root-only tests are skipped when not
//! root, except under CI (`CI=true`), where they fail so they cannot
//! silently vanish.

use std::path::PathBuf;

/// Environment variable naming the kubeconfig of the end-to-end cluster.
pub const E2E_KUBECONFIG_ENV: &str = "MULTUS_E2E_KUBECONFIG";

/// Whether we run under CI (`CI=true` or `CI=1`).
pub fn running_in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// The workspace root (the directory holding `crds/`, `docs/`, `charts/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A client for the end-to-end cluster, or `None` (after saying why) when
/// `MULTUS_E2E_KUBECONFIG` is not set. A set but unusable kubeconfig fails
/// the test: the user asked for a cluster run.
pub async fn e2e_client(test: &str) -> Option<kube::Client> {
    let Some(path) = std::env::var_os(E2E_KUBECONFIG_ENV).filter(|p| !p.is_empty()) else {
        eprintln!(
            "SKIPPED {test}: set {E2E_KUBECONFIG_ENV} to a kubeconfig to run it against a real cluster"
        );
        return None;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("{E2E_KUBECONFIG_ENV}={path:?} is not a usable kubeconfig: {e}")
    });
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{E2E_KUBECONFIG_ENV}={path:?}: {e}"));
    Some(kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}")))
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

/// Whether the effective user is root (read from /proc, no libc call).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
