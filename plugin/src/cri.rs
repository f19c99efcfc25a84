//! TEMPORARY STUB (replaced by the cri-client branch).
use std::path::{Path, PathBuf};
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub netns: Option<PathBuf>,
    pub runtime: String,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct CriError;
pub async fn find_sandbox(
    _socket: &Path,
    _uid: &str,
    _t: Duration,
) -> Result<Option<Sandbox>, CriError> {
    Err(CriError)
}
