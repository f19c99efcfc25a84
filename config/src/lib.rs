//! Shared model of the Rust Multus: CNI and NPWG types, the Multus network
//! configuration, the operator's custom resources and the pure logic that
//! generates `00-multus.conf`.
//!
//! Nothing here performs I/O: callers pass in bytes and directory listings.

pub mod agent_api;
pub mod cni;
pub mod conf_file;
pub mod crd;
pub mod delegate_api;
pub mod generate;
pub mod hotplug;
pub mod multus_conf;
pub mod names;
pub mod npwg;
pub mod text;

pub use conf_file::ConfFile;
