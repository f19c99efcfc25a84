//! The CNI error object a plugin prints on stdout when it fails, and the
//! error codes of the CNI specification plus this project's own (>= 100).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::version::{CniVersion, LATEST};

/// A well-known CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 1: the plugin does not support the requested CNI version.
    IncompatibleCniVersion,
    /// 2: a field of the network config is not supported.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a CNI_* environment variable is invalid.
    InvalidEnvironmentVariables,
    /// 5: an I/O error, e.g. reading stdin.
    IoFailure,
    /// 6: the network config could not be decoded.
    DecodingFailure,
    /// 7: the network config is invalid.
    InvalidNetworkConfig,
    /// 11: a transient failure; the runtime should retry later.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADD requests.
    PluginNotAvailable,
    /// 51: STATUS: the plugin can serve ADD with limited connectivity.
    PluginLimitedConnectivity,
    /// 100: a Kubernetes API request failed.
    KubernetesApi,
    /// 101: a delegate plugin failed.
    DelegateFailed,
    /// 102: the Multus cache could not be read or written.
    CacheFailure,
    /// 103: a pod or NAD annotation is invalid.
    InvalidAnnotation,
    /// 104: a netlink operation in the pod's namespace failed.
    NetlinkFailure,
    /// 105: the readiness indicator did not appear in time.
    ReadinessTimeout,
}

/// Every [`ErrorCode`], in code order.
pub const ALL_ERROR_CODES: [ErrorCode; 16] = [
    ErrorCode::IncompatibleCniVersion,
    ErrorCode::UnsupportedField,
    ErrorCode::UnknownContainer,
    ErrorCode::InvalidEnvironmentVariables,
    ErrorCode::IoFailure,
    ErrorCode::DecodingFailure,
    ErrorCode::InvalidNetworkConfig,
    ErrorCode::TryAgainLater,
    ErrorCode::PluginNotAvailable,
    ErrorCode::PluginLimitedConnectivity,
    ErrorCode::KubernetesApi,
    ErrorCode::DelegateFailed,
    ErrorCode::CacheFailure,
    ErrorCode::InvalidAnnotation,
    ErrorCode::NetlinkFailure,
    ErrorCode::ReadinessTimeout,
];

impl ErrorCode {
    /// The numeric code written in the error JSON.
    pub const fn code(self) -> u32 {
        match self {
            Self::IncompatibleCniVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnvironmentVariables => 4,
            Self::IoFailure => 5,
            Self::DecodingFailure => 6,
            Self::InvalidNetworkConfig => 7,
            Self::TryAgainLater => 11,
            Self::PluginNotAvailable => 50,
            Self::PluginLimitedConnectivity => 51,
            Self::KubernetesApi => 100,
            Self::DelegateFailed => 101,
            Self::CacheFailure => 102,
            Self::InvalidAnnotation => 103,
            Self::NetlinkFailure => 104,
            Self::ReadinessTimeout => 105,
        }
    }

    /// The code with this number, if it is one we know.
    pub fn from_code(code: u32) -> Option<Self> {
        ALL_ERROR_CODES.into_iter().find(|c| c.code() == code)
    }

    /// Whether the code is reserved by the CNI spec (below 100) rather than
    /// defined by this project.
    pub const fn is_spec_defined(self) -> bool {
        self.code() < 100
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

/// The CNI error object: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniError {
    /// The CNI version of the request the error answers.
    #[serde(default)]
    pub cni_version: String,
    /// The error code (see [`ErrorCode`]).
    #[serde(default)]
    pub code: u32,
    /// A short message.
    #[serde(default)]
    pub msg: String,
    /// Longer details; omitted from the JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// Plugin output that is not a CNI error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorParseError {
    /// The bytes are not JSON.
    #[error("plugin error output is not valid JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object with `code` or `msg`.
    #[error("plugin error output is not a CNI error object (no \"code\" or \"msg\")")]
    NotAnErrorObject,
    /// A field has the wrong type.
    #[error("plugin error output has an invalid {field:?}: {message}")]
    InvalidField {
        /// The JSON key.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl CniError {
    /// An error with a known code, labelled with the latest CNI version
    /// (change it with [`CniError::with_cni_version`]).
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            cni_version: LATEST.to_string(),
            code: code.code(),
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The same error labelled with another CNI version (any string, so the
    /// version of an unparseable request can be echoed).
    pub fn with_cni_version(mut self, version: impl Into<String>) -> Self {
        self.cni_version = version.into();
        self
    }

    /// The same error labelled with a known CNI version.
    pub fn with_version(self, version: CniVersion) -> Self {
        self.with_cni_version(version.as_str())
    }

    /// The code as a known [`ErrorCode`], if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// Whether the runtime may retry (code 11, "try again later").
    pub fn is_retryable(&self) -> bool {
        self.code == ErrorCode::TryAgainLater.code()
    }

    /// Parses the error JSON a failed plugin printed on stdout. Tolerates
    /// missing fields (like Go plugins do) but requires `code` or `msg`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ErrorParseError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ErrorParseError::NotJson(e.to_string()))?;
        let Value::Object(map) = &value else {
            return Err(ErrorParseError::NotAnErrorObject);
        };
        if !map.contains_key("code") && !map.contains_key("msg") {
            return Err(ErrorParseError::NotAnErrorObject);
        }
        let code = match map.get("code") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| ErrorParseError::InvalidField {
                    field: "code",
                    message: format!("expected a non-negative integer, found {v}"),
                })?,
        };
        let text = |field: &'static str| -> Result<String, ErrorParseError> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(ErrorParseError::InvalidField {
                    field,
                    message: format!("expected a string, found {v}"),
                }),
            }
        };
        Ok(Self {
            cni_version: text("cniVersion")?,
            code,
            msg: text("msg")?,
            details: text("details")?,
        })
    }

    /// The error to report for a delegate that exited unsuccessfully: its own
    /// error object when stdout holds one, else a [`ErrorCode::DelegateFailed`]
    /// error quoting what it printed.
    pub fn from_plugin_failure(plugin: &str, stdout: &[u8], stderr: &[u8]) -> Self {
        if let Ok(err) = Self::parse(stdout) {
            return err;
        }
        let out = String::from_utf8_lossy(stdout);
        let errs = String::from_utf8_lossy(stderr);
        let details = match (out.trim(), errs.trim()) {
            ("", "") => String::new(),
            (o, "") => format!("stdout: {o}"),
            ("", e) => format!("stderr: {e}"),
            (o, e) => format!("stdout: {o}; stderr: {e}"),
        };
        Self::new(
            ErrorCode::DelegateFailed,
            format!("plugin {plugin:?} failed without a CNI error object"),
            details,
        )
    }

    /// The JSON bytes to print on stdout.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        map.insert("cniVersion".into(), Value::from(self.cni_version.as_str()));
        map.insert("code".into(), Value::from(self.code));
        map.insert("msg".into(), Value::from(self.msg.as_str()));
        if !self.details.is_empty() {
            map.insert("details".into(), Value::from(self.details.as_str()));
        }
        Value::Object(map).to_string().into_bytes()
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec_and_round_trip() {
        let expected = [
            1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103, 104, 105,
        ];
        let codes: Vec<u32> = ALL_ERROR_CODES.iter().map(|c| c.code()).collect();
        assert_eq!(codes, expected);
        for c in ALL_ERROR_CODES {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        for unknown in [0, 8, 10, 12, 49, 52, 99, 106, 999] {
            assert_eq!(ErrorCode::from_code(unknown), None, "{unknown}");
        }
        assert!(ErrorCode::TryAgainLater.is_spec_defined());
        assert!(!ErrorCode::KubernetesApi.is_spec_defined());
        assert_eq!(
            ErrorCode::DelegateFailed.to_string(),
            "DelegateFailed (101)"
        );
    }

    #[test]
    fn serialises_with_spec_keys_and_omits_empty_details() {
        let err = CniError::new(ErrorCode::InvalidNetworkConfig, "bad config", "");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"cniVersion":"1.1.0","code":7,"msg":"bad config"}"#
        );
        assert_eq!(
            String::from_utf8(err.to_json_bytes()).unwrap(),
            r#"{"cniVersion":"1.1.0","code":7,"msg":"bad config"}"#
        );
        let err = CniError::new(ErrorCode::KubernetesApi, "get pod", "timeout")
            .with_version(CniVersion::V0_3_1);
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"cniVersion":"0.3.1","code":100,"msg":"get pod","details":"timeout"}"#
        );
        assert_eq!(
            err.to_json_bytes(),
            serde_json::to_vec(&err).unwrap(),
            "to_json_bytes matches serde"
        );
    }

    #[test]
    fn display_joins_msg_and_details() {
        let err = CniError::new(ErrorCode::IoFailure, "read stdin", "broken pipe");
        assert_eq!(err.to_string(), "read stdin: broken pipe");
        let err = CniError::new(ErrorCode::IoFailure, "read stdin", "");
        assert_eq!(err.to_string(), "read stdin");
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(boxed.to_string(), "read stdin");
    }

    #[test]
    fn parses_a_delegate_error() {
        let out = br#"{"cniVersion":"0.4.0","code":11,"msg":"busy","details":"lock held"}"#;
        let err = CniError::parse(out).unwrap();
        assert_eq!(err.cni_version, "0.4.0");
        assert_eq!(err.code, 11);
        assert_eq!(err.msg, "busy");
        assert_eq!(err.details, "lock held");
        assert_eq!(err.error_code(), Some(ErrorCode::TryAgainLater));
        assert!(err.is_retryable());

        let err = CniError::parse(br#"{"code":999,"msg":"custom"}"#).unwrap();
        assert_eq!(err.error_code(), None);
        assert_eq!(err.cni_version, "");
        assert_eq!(err.details, "");
        assert!(!err.is_retryable());

        let err = CniError::parse(br#"{"msg":"no code"}"#).unwrap();
        assert_eq!(err.code, 0);
    }

    #[test]
    fn rejects_output_that_is_not_an_error_object() {
        assert!(matches!(
            CniError::parse(b"panic: runtime error"),
            Err(ErrorParseError::NotJson(_))
        ));
        assert_eq!(
            CniError::parse(br#"{"cniVersion":"1.0.0","ips":[]}"#),
            Err(ErrorParseError::NotAnErrorObject)
        );
        assert_eq!(
            CniError::parse(b"[1]"),
            Err(ErrorParseError::NotAnErrorObject)
        );
        let err = CniError::parse(br#"{"code":"7","msg":"x"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin error output has an invalid \"code\": expected a non-negative integer, found \"7\""
        );
        let err = CniError::parse(br#"{"code":-1}"#).unwrap_err();
        assert!(matches!(
            err,
            ErrorParseError::InvalidField { field: "code", .. }
        ));
        let err = CniError::parse(br#"{"code":1,"msg":5}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin error output has an invalid \"msg\": expected a string, found 5"
        );
    }

    #[test]
    fn plugin_failure_falls_back_to_delegate_failed() {
        let err = CniError::from_plugin_failure(
            "macvlan",
            br#"{"code":7,"msg":"master not found"}"#,
            b"",
        );
        assert_eq!(err.code, 7);
        assert_eq!(err.msg, "master not found");

        let err = CniError::from_plugin_failure("macvlan", b"", b"segfault\n");
        assert_eq!(err.error_code(), Some(ErrorCode::DelegateFailed));
        assert_eq!(
            err.msg,
            "plugin \"macvlan\" failed without a CNI error object"
        );
        assert_eq!(err.details, "stderr: segfault");

        let err = CniError::from_plugin_failure("x", b"oops", b"trace");
        assert_eq!(err.details, "stdout: oops; stderr: trace");
        let err = CniError::from_plugin_failure("x", b"oops", b"");
        assert_eq!(err.details, "stdout: oops");
        let err = CniError::from_plugin_failure("x", b"", b"");
        assert_eq!(err.details, "");
    }

    #[test]
    fn deserialises_with_serde() {
        let err: CniError = serde_json::from_str(r#"{"code":3,"msg":"gone"}"#).unwrap();
        assert_eq!(
            err,
            CniError {
                cni_version: String::new(),
                code: 3,
                msg: "gone".into(),
                details: String::new()
            }
        );
    }
}
