//! The `multus` CNI meta-plugin: what the container runtime executes for
//! every pod sandbox (ADD/DEL/CHECK/STATUS/GC/VERSION).
//!
//! stdout carries only the CNI result or the CNI error object; logs go to
//! stderr (and the configured log file).

pub mod attachment;
pub mod cache;
pub mod commands;
pub mod cri;
pub mod delegate;
pub mod devices;
pub mod dra;
pub mod env;
pub mod error;
pub mod grpc_unix;
pub mod hotplug;
pub mod invocation;
pub mod k8s;
pub mod logging;
pub mod lookup;
pub mod netns;
pub mod network_status;
pub mod node_agent;
pub mod plan;
pub mod podresources;
pub mod readiness;
pub mod report;
pub mod route;
pub mod upkeep;
pub mod version;

pub use commands::Command;
pub use invocation::run;
