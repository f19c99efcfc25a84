//! Running `multus delegate` for one request: a child process of the
//! agent that enters the host's mount namespace (and, with
//! `--cgroup-of`, the runtime's cgroup) before anything else, with the
//! node's generated Multus config and the request on stdin.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::http::StatusCode;
use multus_config::cni::error::{CniError, ErrorCode};
use multus_config::delegate_api::{DelegateInput, DelegateRequest};
use multus_config::generate::{OUTPUT_CONF, OUTPUT_CONFLIST};
use tokio::io::AsyncWriteExt;

use super::ApiError;

/// How long one request may take: the plugin bounds each delegate
/// command to 90 s, and a failed ADD runs a DEL as well.
pub const DELEGATE_TIMEOUT: Duration = Duration::from_secs(200);

/// Runs `multus delegate`.
#[derive(Debug, Clone)]
pub struct Delegator {
    /// The plugin binary (as the agent sees it).
    pub binary: PathBuf,
    /// The host's mount namespace to enter (`None`: run where we are).
    pub mount_ns: Option<PathBuf>,
    /// A host process whose cgroup the child joins (the runtime's shim).
    pub cgroup_of: Option<u32>,
    /// `CNI_PATH` of the delegates (the host's CNI bin dir).
    pub cni_path: PathBuf,
    /// The CNI conf dir as the agent sees it (the generated config).
    pub conf_dir: PathBuf,
    /// Bound of one call.
    pub timeout: Duration,
}

/// The HTTP status of a CNI error of the plugin.
pub fn status_of(code: u32) -> StatusCode {
    match code {
        // the request: environment, config, annotation-like attributes
        2 | 4 | 6 | 7 | 103 => StatusCode::BAD_REQUEST,
        3 => StatusCode::NOT_FOUND,
        11 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Delegator {
    /// The node's Multus config, as generated.
    pub fn multus_config(&self) -> Result<serde_json::Value, ApiError> {
        let bytes = [OUTPUT_CONFLIST, OUTPUT_CONF]
            .iter()
            .find_map(|name| std::fs::read(self.conf_dir.join(name)).ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TryAgainLater,
                    format!(
                        "no Multus config in {} yet: the node agent has not generated it",
                        self.conf_dir.display()
                    ),
                )
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InvalidNetworkConfig,
                format!("the node's Multus config is not JSON: {e}"),
            )
        })
    }

    /// Runs `multus <subcommand>` with `stdin`, in the host's mount
    /// namespace and the runtime's cgroup when configured, bounded by the
    /// timeout (the child is killed after it).
    pub async fn run_subcommand(
        &self,
        subcommand: &str,
        stdin: &[u8],
    ) -> Result<std::process::Output, ApiError> {
        let mut command = tokio::process::Command::new(&self.binary);
        command.arg(subcommand);
        if let Some(ns) = &self.mount_ns {
            command.arg(format!("--mount-ns={}", ns.display()));
            if let Some(pid) = self.cgroup_of {
                command.arg(format!("--cgroup-of={pid}"));
            }
        }
        command
            .env("CNI_PATH", &self.cni_path)
            .env_remove("CNI_COMMAND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let failed = |what: &str, e: std::io::Error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::IoFailure,
                format!("{what} {}: {e}", self.binary.display()),
            )
        };
        let mut child = command.spawn().map_err(|e| failed("cannot run", e))?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin)
                .await
                .map_err(|e| failed("cannot write to", e))?;
        }
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::TryAgainLater,
                    format!(
                        "`multus {subcommand}` did not finish within {:?} (killed); the pod's DEL releases what it recorded",
                        self.timeout
                    ),
                )
            })?
            .map_err(|e| failed("cannot wait for", e))?;
        Ok(output)
    }

    /// Runs the request; the plugin's answer for the client.
    pub async fn run(&self, request: &DelegateRequest) -> Result<Vec<u8>, ApiError> {
        let input = DelegateInput {
            multus_config: self.multus_config()?,
            request: request.clone(),
        };
        let stdin = serde_json::to_vec(&input).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::IoFailure,
                format!("cannot encode the request for the plugin: {e}"),
            )
        })?;
        let output = self.run_subcommand("delegate", &stdin).await?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let error = serde_json::from_slice::<CniError>(&output.stdout).unwrap_or_else(|_| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            CniError::new(
                ErrorCode::DelegateFailed,
                format!(
                    "`multus delegate` failed ({}): {}",
                    output.status,
                    stderr.lines().last().unwrap_or("no output").trim()
                ),
                "",
            )
        });
        Err(ApiError {
            status: status_of(error.code),
            error,
        })
    }
}
