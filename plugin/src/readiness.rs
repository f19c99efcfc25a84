//! The readiness indicator file: ADD and STATUS wait (bounded) until the
//! default network has written it.

use std::path::PathBuf;
use std::time::Duration;

use multus_config::multus_conf::MultusNetConf;

/// How long ADD waits for the readiness indicator file.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The readiness indicator file did not appear in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the default network is not ready: readiness indicator file {} did not appear within {}s",
    path.display(),
    timeout.as_secs()
)]
pub struct ReadinessError {
    /// The file waited for.
    pub path: PathBuf,
    /// How long it was waited for.
    pub timeout: Duration,
}

/// Waits (bounded) until the readiness indicator file exists.
pub async fn wait_for_readiness(
    conf: &MultusNetConf,
    timeout: Duration,
) -> Result<(), ReadinessError> {
    let Some(path) = conf
        .readiness_indicator_file
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    let path = PathBuf::from(path);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if path.exists() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ReadinessError { path, timeout });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
