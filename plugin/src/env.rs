//! The CNI environment of one invocation, validated.

use std::path::PathBuf;

use multus_config::cni::args::{ArgsError, CniArgs};
pub use multus_config::npwg::interface_name_problem;

use crate::commands::Command;

/// What the runtime told us through `CNI_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (validated: safe to use in a file name).
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, split.
    pub path: Vec<PathBuf>,
}

/// Why the runtime's `CNI_*` variables cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// ADD, DEL and CHECK need `CNI_CONTAINERID`.
    #[error("CNI_CONTAINERID is not set")]
    NoContainerId,
    /// `CNI_CONTAINERID` could escape the cache directory.
    #[error(
        "CNI_CONTAINERID {0:?} is invalid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
    )]
    InvalidContainerId(String),
    /// `CNI_IFNAME` is not a valid interface name.
    #[error("CNI_IFNAME {ifname:?} is invalid: {problem}")]
    InvalidIfname {
        /// The name.
        ifname: String,
        /// What is wrong with it.
        problem: String,
    },
    /// ADD and CHECK need `CNI_NETNS`.
    #[error("CNI_NETNS is not set")]
    NoNetns,
    /// `CNI_ARGS` does not parse.
    #[error("CNI_ARGS: {0}")]
    Args(#[source] ArgsError),
}

/// Whether `id` is a valid container ID: starts with an alphanumeric and
/// holds only alphanumerics, `_`, `.` and `-` (as libcni checks), so it can
/// never escape the cache directory.
pub fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.len() <= 256
}

impl CniEnv {
    /// Reads and validates the environment through `lookup` (the process
    /// environment in production, a map in tests).
    pub fn from_lookup(
        command: Command,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        let get = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        if needs_container {
            if container_id.is_empty() {
                return Err(EnvError::NoContainerId);
            }
            if !valid_container_id(&container_id) {
                return Err(EnvError::InvalidContainerId(container_id));
            }
        }
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        if needs_container && let Some(problem) = interface_name_problem(&ifname) {
            return Err(EnvError::InvalidIfname { ifname, problem });
        }
        let netns = get("CNI_NETNS").map(PathBuf::from);
        if matches!(command, Command::Add | Command::Check) && netns.is_none() {
            return Err(EnvError::NoNetns);
        }
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default()).map_err(EnvError::Args)?;
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)], command: Command) -> Result<CniEnv, EnvError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CniEnv::from_lookup(command, |k| map.get(k).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn reads_a_complete_add_environment() {
        let e = env(GOOD, Command::Add).unwrap();
        assert_eq!(e.container_id, "abc123");
        assert_eq!(e.ifname, "eth0");
        assert_eq!(e.args.get("K8S_POD_NAME"), Some("web"));
        assert_eq!(
            e.path,
            [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn container_ids_cannot_escape_the_cache_dir() {
        for bad in ["../../etc/passwd", "a/b", ".hidden", "", "a b"] {
            let mut pairs = GOOD.to_vec();
            pairs[0] = ("CNI_CONTAINERID", bad);
            assert!(env(&pairs, Command::Add).is_err(), "{bad:?} accepted");
        }
        assert!(valid_container_id("0123abcdef_x.y-z"));
    }

    #[test]
    fn missing_variables_are_named() {
        let err = env(&GOOD[1..], Command::Add).unwrap_err();
        assert!(err.to_string().contains("CNI_CONTAINERID"), "{err}");
        let pairs: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        let err = env(&pairs, Command::Add).unwrap_err();
        assert!(err.to_string().contains("CNI_NETNS"), "{err}");
        // DEL may come without a netns (the sandbox may be gone)
        assert!(env(&pairs, Command::Del).is_ok());
        // STATUS and GC need nothing
        assert!(env(&[], Command::Status).is_ok());
    }

    #[test]
    fn bad_interface_names_are_refused() {
        let mut pairs = GOOD.to_vec();
        pairs[2] = ("CNI_IFNAME", "a-very-long-name0");
        let err = env(&pairs, Command::Add).unwrap_err();
        assert!(err.to_string().contains("15 bytes"), "{err}");
    }
}
