//! Shared helpers for the cross-crate and end-to-end tests.
//!
//! Cluster tests run when `MULTUS_E2E_KUBECONFIG` names a kubeconfig and are
//! skipped with a message otherwise; under CI (`CI=true`) a missing
//! `MULTUS_E2E_KUBECONFIG` fails them instead, so CI can never silently skip
//! the end-to-end suite. Root-only tests are skipped when not root, except
//! under CI, where they fail for the same reason.
//!
//! The end-to-end tests share one cluster. Each runs in an [`E2eSession`]:
//! it holds [`lock_cluster`] for its whole run (also across test binaries
//! and processes), logs its steps ([`StepLog`]), polls with [`wait_until`]
//! (short intervals, bounded timeouts that say what was awaited and what was
//! seen last) and undoes what it created with a [`Teardown`] guard, which
//! also runs when the test fails and then first prints what a person needs
//! to find the cause ([`dump_diagnostics`]).
//!
//! Modules, one job each: `env` (the variables that configure a run), `gate`
//! (run, skip or fail), `lock` (the cluster lock), `session` (the frame of a
//! cluster test), `step_log`, `teardown`, `diagnostics`, `wait` (bounded
//! polling), `cmd` (`kubectl`, `helm` and other commands), `host` (this
//! machine, the cluster's node) and [`cluster`] (the chart, the node, pods,
//! NADs, events, MultusConfig status). Their items are re-exported here.
//!
//! [`mock_api`] is the mock Kubernetes API server of the crates' in-process
//! tests (kube's client over tower-test).

mod cmd;
mod diagnostics;
mod env;
mod gate;
mod host;
mod lock;
mod session;
mod step_log;
mod teardown;
mod wait;

pub mod cluster;
pub mod mock_api;

pub use cmd::Cmd;
pub use diagnostics::{dump_diagnostics, tail};
pub use env::{
    E2E_IMAGE_ENV, E2E_KEEP_ENV, E2E_KUBECONFIG_ENV, e2e_image, e2e_kubeconfig, keep_on_failure,
    running_in_ci, workspace_root,
};
pub use gate::{client_config, e2e_client, root_or_skip};
pub use host::{
    CNI_CONF_DIR, HOST_LOCAL_ROOT, MULTUS_PLUGIN, assert_no_multus_conf_on_node, file_mode,
    host_local_dir, host_local_leases, host_name, is_root, multus_files_on_node, remove_link,
    remove_path,
};
pub use lock::{ClusterLock, lock_cluster};
pub use session::E2eSession;
pub use step_log::{StepLog, secs};
pub use teardown::{Teardown, cleanup_cmd, remove_namespace};
pub use wait::{POLL, poll_until, wait_until};
