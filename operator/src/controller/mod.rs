//! `multus-operator controller`: reconciles every `MultusConfig` into the
//! node-agent operands (the agents' and the plugin's ServiceAccounts and
//! ClusterRoleBindings, the agents' token Role and RoleBinding, ConfigMap,
//! DaemonSet; [`operand`] is the table of their kinds), reports their state
//! in the MultusConfig's status, validates
//! NetworkAttachmentDefinitions and removes Multus from the nodes when a
//! MultusConfig is deleted ([`uninstall`]).
//!
//! Layout: everything that decides something is a pure function over typed
//! inputs and is unit-tested without a cluster:
//! - [`operand`]: the kinds of objects the controller creates, and what
//!   each one needs (its API, its cache, its version),
//! - [`render`]: the operand objects of one MultusConfig,
//! - [`validate`]: which specs cannot be applied, and why,
//! - [`rbac`]: the ClusterRoles the chart ships and their reasons,
//! - [`pools`]: node-selector matching and node-pool conflicts,
//! - [`conditions`]: `Ready`/`Progressing`/`Degraded` and the events of a
//!   state change,
//! - [`nad`]: NetworkAttachmentDefinition validation,
//! - [`prune`]: which of our objects the spec no longer renders.
//!
//! The I/O:
//! - [`reconcile`]: one reconcile per MultusConfig through kube-runtime's
//!   `Controller` and finalizer helper, as named steps;
//! - [`uninstall`]: everything that happens when a MultusConfig is deleted;
//! - [`apply`]: server-side apply under one field manager, and deletion,
//!   of the operands of every kind;
//! - [`observe`]: the nodes, the agents' reports and the chart's roles as
//!   a reconcile sees them;
//! - [`status`]: the MultusConfig's status and Events;
//! - [`watch`]: the caches and what triggers a reconcile;
//! - [`leader`]: the leader Lease;
//! - [`nad`]'s watcher, [`crds`], [`http`], [`server_version`] (the
//!   supported Kubernetes releases) and [`cli`] (the wiring).

pub mod apply;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod crds;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod nad;
pub mod observe;
pub mod operand;
pub mod pools;
pub mod probe;
pub mod prune;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod server_version;
pub mod status;
pub mod uninstall;
pub mod validate;
pub mod watch;

pub use cli::ControllerArgs;
pub use context::{Context, Settings};
pub use error::Error;

/// Field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "multus-operator";

/// Finalizer that holds a MultusConfig until the agents removed Multus
/// from its nodes.
pub const FINALIZER: &str = "multus.dev/uninstall";

/// Name of the controller in Events (`reportingController`).
pub const REPORTER: &str = "multus-operator";
