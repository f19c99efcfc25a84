//! `multus-operator node-agent`: runs on every node and
//! - installs the `multus` plugin binary into the CNI bin dir,
//! - writes the plugin's kubeconfig and keeps its token file fresh: a
//!   token of the plugin's own ServiceAccount ([`credential`]), so pods
//!   keep starting while the agent is down,
//! - elects the primary CNI config and writes `00-multus.conf[list]`,
//!   regenerating on every change of the conf dir (inotify),
//! - reports what it did in `MultusNodeState/<node>`, with the CNI
//!   networks of the Multus conf dir (for NADs without `spec.config`),
//! - receives the plugin's per-command reports on a datagram socket
//!   ([`reports`]) and serves `/healthz`, `/readyz` and `/metrics`.
//!
//! The rules are those of docs/architecture.md, "Node agent rules": never an empty or
//! partial file, no rewrite when nothing changed, keep the last good config
//! when the primary disappears, leave the config in place on shutdown and
//! remove only what we installed on uninstall.
//!
//! Where things are:
//! - [`args`]: the command line, shared with the controller that renders it
//!   into the DaemonSet; [`cli`]: logging, runtime, run / `--once` /
//!   `--uninstall`;
//! - [`settings`]: [`Settings`], fixed names and timings, the `--config`
//!   file; [`error`]: [`AgentError`];
//! - `run`: the event loop ([`run()`], [`run_once`]): what wakes the agent;
//! - `reconcile`: one pass, and the one place deciding **when
//!   `00-multus.conf` is regenerated and rewritten**;
//! - `state`: the agent's state between passes and host upkeep (plugin
//!   binary, temporary files, Multus conf dir); `status`: readiness and
//!   the `MultusNodeState` status; `plugin_credential`: the plugin's
//!   kubeconfig and token file;
//! - [`dirty`]: the "what changed" flags; [`watch`]: inotify and debounce;
//! - building blocks without agent state: [`credential`] (the plugin's
//!   own tokens), [`kubeconfig`], [`install`], [`manifest`] (what is ours),
//!   [`fsutil`], [`node_state`], [`metrics`], [`http`], [`uninstall`](mod@uninstall).

pub mod args;
pub mod attached;
pub mod cli;
pub mod credential;
pub mod delegate_api;
pub mod dirty;
pub mod error;
pub mod fsutil;
pub mod hotplug;
pub mod http;
pub mod install;
pub mod kubeconfig;
pub mod local_api;
pub mod manifest;
pub mod metrics;
pub mod node_state;
mod plugin_credential;
mod reconcile;
pub mod removal;
pub mod reports;
mod run;
pub mod settings;
mod state;
mod status;
pub mod uninstall;
pub mod watch;

pub use args::NodeAgentArgs;
pub use error::AgentError;
pub use manifest::is_multus_output;
pub use run::{KubeAccess, run, run_once, run_once_with_client, run_with, shutdown_signal};
pub use settings::{CONF_MODE, MULTUS_D, POLL, RESYNC, SETTLE, Settings, load_options};
pub use uninstall::{UninstallReport, uninstall};
