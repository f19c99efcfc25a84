//! CNI specification types: versions, configs, results, errors.

pub mod dns;
pub mod version;

pub use dns::Dns;
pub use version::{CniVersion, VersionInfo, ALL_VERSIONS};
pub mod error;
pub mod ip;
pub mod netconf;
pub mod args;
