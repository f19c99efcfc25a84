//! The `multus` CNI meta-plugin: what the container runtime executes for
//! every pod sandbox (ADD/DEL/CHECK/STATUS/GC/VERSION).
//!
//! stdout carries only the CNI result or the CNI error object; logs go to
//! stderr (and the configured log file).

pub mod command;
pub mod version;

pub use command::{Command, run};
