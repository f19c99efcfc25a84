//! Bounded polling: short intervals, and a timeout that says what was
//! awaited and what was seen last.

use std::time::{Duration, Instant};

/// Interval of [`wait_until`]'s polls.
pub const POLL: Duration = Duration::from_millis(300);

/// Polls `probe` every [`POLL`] until it returns `Ok`, and returns that value.
/// `Err` carries a description of what was seen. After `timeout` the test
/// fails with what was awaited and what was seen last.
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    poll_until(timeout, probe).await.unwrap_or_else(|last| {
        panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
    })
}

/// Like [`wait_until`], but returns what was seen last (`Err`) instead of
/// failing when `timeout` passes.
pub async fn poll_until<T>(
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            return Err(last);
        }
        tokio::time::sleep(POLL).await;
    }
}
