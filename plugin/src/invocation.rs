//! One invocation of the plugin by the container runtime: `CNI_COMMAND`,
//! the other `CNI_*` variables and stdin to the bytes for stdout, or the CNI
//! error object.

use multus_config::cni::error::CniError;
use multus_config::multus_conf::MultusNetConf;

use crate::commands::{self, Command};
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::report::Report;
use crate::{logging, version};

/// Runs one invocation. `command` is the raw `CNI_COMMAND` value and
/// `lookup` reads the other `CNI_*` variables.
pub fn run(
    command: Option<&str>,
    stdin: &[u8],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, CniError> {
    let Some(raw) = command.filter(|c| !c.is_empty()) else {
        return Err(PluginError::NoCommand.to_cni_error());
    };
    let Some(command) = Command::parse(raw) else {
        return Err(PluginError::UnknownCommand(raw.to_owned()).to_cni_error());
    };
    if command == Command::Version {
        let info = version::version_info(stdin);
        return serde_json::to_vec(&info).map_err(|e| PluginError::VersionAnswer(e).to_cni_error());
    }
    let mut report = Report::start(command);
    let conf = match MultusNetConf::parse(stdin) {
        Ok(conf) => conf,
        Err(e) => {
            logging::init(None);
            return Err(PluginError::from(crate::error::MultusConfigError::from(e)).to_cni_error());
        }
    };
    logging::init(Some(&conf));
    let version = conf.cni_version.clone().unwrap_or_default();
    let outcome = CniEnv::from_lookup(command, lookup)
        .map_err(PluginError::from)
        .and_then(|env| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(PluginError::Runtime)?;
            runtime.block_on(async {
                tracing::info!(command = raw, container = %env.container_id, ifname = %env.ifname, "invoked");
                report.record(&env, commands::run(command, &env, &conf)).await
            })
        });
    let outcome = outcome.map_err(|e| {
        tracing::error!(command = raw, error = %e, "failed");
        let err = e.to_cni_error();
        if version.is_empty() {
            err
        } else {
            err.with_cni_version(version)
        }
    });
    report.finish(&conf, outcome.as_ref().err().map(|e| e.code));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_command_answers_json() {
        let out = run(Some("VERSION"), br#"{"cniVersion":"1.0.0"}"#, |_| None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(value["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn missing_and_unknown_commands_are_environment_errors() {
        let err = run(None, b"", |_| None).unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_COMMAND"));
        let err = run(Some("FROB"), b"", |_| None).unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("\"FROB\""));
    }
}
