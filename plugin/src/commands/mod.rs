//! The CNI commands, one module each holding its entry point. Every entry
//! point takes the validated environment and the Multus config and returns
//! the bytes for stdout.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;

use multus_config::multus_conf::MultusNetConf;

use crate::cache::{Cache, SandboxLock};
use crate::env::CniEnv;
use crate::error::Result;

/// How long ADD and DEL wait for a hot-plug of the same sandbox to finish.
pub const SANDBOX_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The sandbox's lock, held for the whole ADD or DEL (a hot-plug of the
/// same pod waits, and sees what they did).
fn lock_sandbox(env: &CniEnv, conf: &MultusNetConf) -> Result<SandboxLock> {
    Ok(Cache::for_conf(conf).lock(&env.container_id, SANDBOX_LOCK_TIMEOUT)?)
}

/// The CNI commands of spec 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }
}

/// Runs `command`'s entry point. VERSION needs neither environment nor
/// config and is answered before (`crate::invocation`); here it prints
/// nothing.
pub async fn run(command: Command, env: &CniEnv, conf: &MultusNetConf) -> Result<Vec<u8>> {
    match command {
        Command::Add => {
            let _lock = lock_sandbox(env, conf)?;
            add::add(env, conf).await
        }
        Command::Del => {
            let _lock = lock_sandbox(env, conf)?;
            del::del(env, conf).await
        }
        Command::Check => check::check(env, conf).await,
        Command::Status => status::status(env, conf).await,
        Command::Gc => gc::gc(env, conf).await,
        Command::Version => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_command_is_recognised() {
        for name in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
            assert!(Command::parse(name).is_some(), "{name}");
        }
        assert_eq!(Command::parse("add"), None, "commands are case-sensitive");
    }
}
