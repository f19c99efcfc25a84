//! CNI specification types: versions, configs, results, errors.

pub mod args;
pub mod dns;
pub mod error;
pub mod ip;
pub mod netconf;
pub mod result;
pub mod runtime;
pub mod version;

pub use args::{ArgsError, CniArgs, PodArgs};
pub use dns::Dns;
pub use error::{CniError, ErrorCode, ErrorParseError};
pub use ip::{Cidr, CidrError, IpFamily, parse_ip_or_cidr};
pub use netconf::{ConfList, ConfigError, KeyOrder, NetConf, NetworkConfig};
pub use result::{
    CniResult, ConvertError, Interface, Ip020, Ip040, IpConfig, Result020, Result040, Result100,
    ResultError, Route,
};
pub use runtime::{
    Bandwidth, PortMapping, RuntimeConfig, RuntimeConfigError, filter_for_capabilities,
    inject_capability_args, undeclared_requested,
};
pub use version::{ALL_VERSIONS, CniVersion, VersionInfo};
