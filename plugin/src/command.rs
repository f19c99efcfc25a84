//! Dispatch of a CNI invocation: `CNI_COMMAND` plus stdin to the bytes for
//! stdout, or a CNI error.

use multus_config::cni::error::{CniError, ErrorCode};

use crate::version;

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

/// Runs one invocation. `command` is the raw `CNI_COMMAND` value.
pub fn run(command: Option<&str>, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let Some(raw) = command.filter(|c| !c.is_empty()) else {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironmentVariables,
            "CNI_COMMAND is not set",
            "the multus CNI plugin is executed by the container runtime; run `multus --version` to see its version",
        ));
    };
    let Some(command) = Command::parse(raw) else {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironmentVariables,
            format!("unknown CNI_COMMAND {raw:?}"),
            "expected one of ADD, DEL, CHECK, STATUS, GC, VERSION",
        ));
    };
    match command {
        Command::Version => {
            let info = version::version_info(stdin);
            serde_json::to_vec(&info).map_err(|e| {
                CniError::new(
                    ErrorCode::IoFailure,
                    "cannot encode the VERSION answer",
                    e.to_string(),
                )
            })
        }
        other => Err(CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("CNI_COMMAND {raw} is not implemented by this build of multus"),
            format!("{other:?} arrives with the plugin milestone"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_command_answers_json() {
        let out = run(Some("VERSION"), br#"{"cniVersion":"1.0.0"}"#).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(value["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn missing_and_unknown_commands_are_environment_errors() {
        let err = run(None, b"").unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_COMMAND"));
        let err = run(Some("FROB"), b"").unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("\"FROB\""));
    }

    #[test]
    fn every_spec_command_is_recognised() {
        for name in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
            assert!(Command::parse(name).is_some(), "{name}");
        }
        assert_eq!(Command::parse("add"), None, "commands are case-sensitive");
    }
}
