//! Exclusive use of the one end-to-end cluster.

use std::fs::{File, OpenOptions, TryLockError};

/// Exclusive use of the end-to-end cluster, held until dropped. The lock is a
/// file lock, so it also orders test binaries and `cargo test` processes that
/// run at the same time.
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
}

/// Waits for and takes the end-to-end cluster lock.
pub fn lock_cluster(test: &str) -> ClusterLock {
    let path = std::env::temp_dir().join("multus-e2e-cluster.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the cluster lock {path:?}: {e}"));
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!("{test}: waiting for another end-to-end test to release {path:?}");
            file.lock()
                .unwrap_or_else(|e| panic!("cannot lock {path:?}: {e}"));
        }
        Err(TryLockError::Error(e)) => panic!("cannot lock {path:?}: {e}"),
    }
    ClusterLock { _file: file }
}
