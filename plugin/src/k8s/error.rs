//! Errors of the Kubernetes client, classified (transient, not found, 401)
//! from kube's errors.

use std::time::Duration;

use kube::config::{InClusterError, KubeconfigError};

/// Errors of the Kubernetes client. Every message names the object and the
/// operation (`getting pod default/web-1`).
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig file could not be read or is invalid.
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: KubeconfigProblem,
    },
    /// The in-cluster configuration could not be loaded.
    #[error(
        "cannot load the in-cluster Kubernetes configuration (KUBERNETES_SERVICE_HOST={host}, KUBERNETES_SERVICE_PORT={port}): {source}"
    )]
    InCluster {
        host: String,
        port: String,
        #[source]
        source: InClusterProblem,
    },
    /// The request did not complete within the request timeout.
    #[error("timed out after {} {op}", fmt_duration(.after))]
    Timeout { op: String, after: Duration },
    /// The API server could not be reached (connect, TLS, reset connection).
    #[error("cannot reach the API server while {op}: {}", error_chain(.source))]
    Connection {
        op: String,
        #[source]
        source: kube::Error,
    },
    /// The client could not authenticate (token file unreadable, exec plugin).
    #[error("cannot authenticate to the API server while {op}: {}", error_chain(.source))]
    Auth {
        op: String,
        #[source]
        source: kube::Error,
    },
    /// The API server rejected the credential (HTTP 401): names the token
    /// and what usually causes it.
    #[error(
        "API error {op}: 401 Unauthorized: the API server rejected {credential} ({message}); \
         the token has expired or its ServiceAccount was deleted (Multus uninstalled). \
         The Multus node agent renews it: check the agent pod on this node and \
         `kubectl get multusnodestate <node> -o yaml` (status.pluginCredential)"
    )]
    Unauthorized {
        op: String,
        credential: String,
        message: String,
    },
    /// The API server answered with an error status.
    #[error("API error {op}: {code} {reason}: {message}{}", api_hint(*.code))]
    Api {
        op: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The pod exists under another UID than the one the runtime set up.
    #[error("pod {pod} has UID {actual} but the runtime asked for {expected}")]
    UidMismatch {
        pod: String,
        actual: String,
        expected: String,
    },
    /// Anything else (undecodable answer, request building).
    #[error("error {op}: {}", error_chain(.source))]
    Other {
        op: String,
        #[source]
        source: kube::Error,
    },
}

/// Why the kubeconfig gives no client. Shown with its sources, on one line.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigProblem {
    /// The file cannot be read (kube's own text repeats the path; the I/O
    /// error alone reads better).
    #[error(transparent)]
    Unreadable(std::io::Error),
    /// The file is not a usable kubeconfig.
    #[error("{}", error_chain(.0))]
    Invalid(#[source] KubeconfigError),
    /// No client can be built from it.
    #[error("{}", error_chain(.0))]
    Client(#[source] kube::Error),
}

/// Why the in-cluster configuration gives no client. Shown with its
/// sources, on one line.
#[derive(Debug, thiserror::Error)]
pub enum InClusterProblem {
    /// The service-account files or the service environment are unusable.
    #[error("{}", error_chain(.0))]
    Config(#[source] InClusterError),
    /// No client can be built from it.
    #[error("{}", error_chain(.0))]
    Client(#[source] kube::Error),
}

impl K8sError {
    /// Whether retrying later may succeed: timeouts, connection errors and
    /// HTTP 429, 500, 502, 503, 504.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Whether the API answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// HTTP status of an API error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => Some(*code),
            Self::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// Classifies a kube error of the operation `op`.
    pub(super) fn from_kube(op: &str, after: Duration, err: kube::Error) -> Self {
        let op = op.to_owned();
        match err {
            kube::Error::Api(status) => {
                let code = status.code;
                let canonical = canonical_reason(code);
                // kube fills `reason` with its own text when the body was not a
                // Status (proxies, a path the server does not serve).
                let reason =
                    if status.reason.is_empty() || status.reason == "Failed to parse error data" {
                        canonical.to_owned()
                    } else {
                        status.reason.clone()
                    };
                let message = if status.message.is_empty() {
                    canonical.to_owned()
                } else {
                    status.message.clone()
                };
                Self::Api {
                    op,
                    code,
                    reason,
                    message,
                }
            }
            source @ kube::Error::Auth(_) => Self::Auth { op, source },
            source @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
                if chain_has_timeout(&source) {
                    Self::Timeout { op, after }
                } else {
                    Self::Connection { op, source }
                }
            }
            source => Self::Other { op, source },
        }
    }

    /// 409 or 422 caused by the UID precondition of the status patch: the pod
    /// was deleted and recreated under the same name.
    pub(super) fn is_uid_precondition_failure(&self) -> bool {
        match self {
            Self::Api { code, message, .. } => {
                let lower = message.to_ascii_lowercase();
                (*code == 409 && lower.contains("uid"))
                    || (*code == 422 && lower.contains("metadata.uid"))
            }
            _ => false,
        }
    }
}

/// Reason phrases of the statuses the API server and proxies commonly return.
fn canonical_reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn api_hint(code: u16) -> &'static str {
    match code {
        401 => {
            " (the API server rejected the credentials; check the kubeconfig and its token file)"
        }
        _ => "",
    }
}

/// `5s`, `250ms`, `1.5s`.
fn fmt_duration(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else {
            format!("{d:?}")
        }
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The error and its sources, without repeating text a source already shows.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

fn chain_has_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        let api = |code| K8sError::Api {
            op: "getting pod a/b".into(),
            code,
            reason: String::new(),
            message: String::new(),
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(api(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!api(code).is_transient(), "{code}");
        }
        let timeout = K8sError::Timeout {
            op: "getting pod a/b".into(),
            after: Duration::from_secs(5),
        };
        assert!(timeout.is_transient());
        assert_eq!(timeout.to_string(), "timed out after 5s getting pod a/b");
        let uid = K8sError::UidMismatch {
            pod: "default/web-1".into(),
            actual: "X".into(),
            expected: "Y".into(),
        };
        assert!(!uid.is_transient());
        assert_eq!(
            uid.to_string(),
            "pod default/web-1 has UID X but the runtime asked for Y"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(&Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(&Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(&Duration::from_millis(1500)), "1.5s");
    }
}
