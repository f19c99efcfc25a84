//! What the environment asks of the end-to-end tests: which cluster, which
//! image, whether CI runs them, whether to keep a failed run's objects.

use std::path::PathBuf;

/// Environment variable naming the kubeconfig of the end-to-end cluster.
pub const E2E_KUBECONFIG_ENV: &str = "MULTUS_E2E_KUBECONFIG";
/// Environment variable naming the image (`repo:tag`) the end-to-end tests
/// install; unset means the chart's default image.
pub const E2E_IMAGE_ENV: &str = "MULTUS_E2E_IMAGE";
/// Environment variable that, set to `1`, keeps what a failed end-to-end test
/// created (for a look at the cluster); the next run removes it first.
pub const E2E_KEEP_ENV: &str = "MULTUS_E2E_KEEP_ON_FAILURE";

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

/// The kubeconfig of the end-to-end cluster, when `MULTUS_E2E_KUBECONFIG` is
/// set and not empty.
pub fn e2e_kubeconfig() -> Option<PathBuf> {
    std::env::var_os(E2E_KUBECONFIG_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The image the end-to-end tests install, split into repository and tag,
/// from `MULTUS_E2E_IMAGE` (`None`: the chart's default image).
pub fn e2e_image() -> Option<(String, String)> {
    let image = std::env::var(E2E_IMAGE_ENV)
        .ok()
        .filter(|i| !i.is_empty())?;
    let (repo, tag) = image
        .rsplit_once(':')
        .filter(|(repo, tag)| !repo.is_empty() && !tag.is_empty() && !tag.contains('/'))
        .unwrap_or_else(|| panic!("{E2E_IMAGE_ENV}={image:?}: expected repository:tag"));
    Some((repo.to_owned(), tag.to_owned()))
}

/// Whether a failed test's objects stay in place (`MULTUS_E2E_KEEP_ON_FAILURE=1`).
pub fn keep_on_failure() -> bool {
    std::env::var(E2E_KEEP_ENV).as_deref() == Ok("1")
}
