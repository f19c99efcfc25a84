//! The test DRA driver (`test-dra-driver`, this crate's binary) as a host
//! process of an end-to-end test.
//!
//! The driver itself applies its DeviceClass (named after the driver,
//! selector `device.driver == "<driver>"`) and its node's ResourceSlice at
//! start and deletes both on SIGTERM, so a test only starts it, waits for
//! the kubelet's registration and drops it at the end:
//!
//! ```no_run
//! # async fn example(kubeconfig: &std::path::Path) {
//! use multus_e2e::cluster::TestDraDriver;
//! let log = std::path::Path::new("target/e2e-test-dra-driver.log");
//! let driver = TestDraDriver::start(
//!     "target/debug/test-dra-driver", // env!("CARGO_BIN_EXE_test-dra-driver") in a test
//!     log,
//!     &["--driver", "e2e-dra.example.com", "--resource", "e2e.example.com/dranic"],
//!     Some(kubeconfig),
//! );
//! driver.wait_registered(std::time::Duration::from_secs(60)).await;
//! // ... pods with ResourceClaims of DeviceClass e2e-dra.example.com ...
//! assert!(driver.log().contains("NodePrepareResources"));
//! drop(driver); // SIGTERM: sockets, ResourceSlice and DeviceClass removed
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::wait_until;

/// The device attribute naming a DRA device's resource, as Multus reads it
/// (upstream Multus and the SR-IOV DRA driver use the same name).
pub const DRA_RESOURCE_NAME_ATTRIBUTE: &str = "k8s.cni.cncf.io/resourceName";
/// The device attribute naming a DRA device's ID (e.g. a PCI address), as
/// Multus reads it.
pub const DRA_DEVICE_ID_ATTRIBUTE: &str = "k8s.cni.cncf.io/deviceID";
/// What the driver logs once the kubelet accepted its registration.
const REGISTERED: &str = "test-dra-driver: registered with the kubelet";
/// How long the driver gets to clean up after SIGTERM (API requests).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The running driver, stopped (SIGTERM, then SIGKILL after a grace
/// period) when dropped.
#[derive(Debug)]
pub struct TestDraDriver {
    child: Child,
    log: PathBuf,
}

impl TestDraDriver {
    /// Starts `exe` with `args` (and `--kubeconfig` when given), its stderr
    /// going to `log`.
    pub fn start(exe: &str, log: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Self {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("DRA driver log {}: {e}", log.display()));
        let mut command = Command::new(exe);
        command.args(args);
        if let Some(kubeconfig) = kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {exe}: {e}"));
        Self {
            child,
            log: log.to_owned(),
        }
    }

    /// What the driver logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the kubelet registered the driver (a registration that
    /// failed once is retried by the kubelet with a growing back-off).
    pub async fn wait_registered(&self, timeout: Duration) {
        wait_until(
            "the kubelet to register the DRA driver",
            timeout,
            async || {
                let log = self.log();
                if log.contains(REGISTERED) {
                    Ok(())
                } else {
                    Err(format!("driver log: {log:?}"))
                }
            },
        )
        .await;
    }
}

impl Drop for TestDraDriver {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let step = Duration::from_millis(100);
        for _ in 0..(STOP_GRACE.as_millis() / step.as_millis()) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(step);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the driver: logs the registration line, then sleeps
    /// until it is stopped.
    #[tokio::test]
    async fn waits_for_the_registration_and_stops_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("driver.log");
        let script = format!("echo '{REGISTERED} (v1.DRAPlugin)' >&2; exec sleep 60");
        let driver = TestDraDriver::start("sh", &log, &["-c", &script], None);
        driver.wait_registered(Duration::from_secs(10)).await;
        assert!(driver.log().contains("(v1.DRAPlugin)"), "{}", driver.log());
        let pid = driver.child.id().to_string();
        drop(driver);
        let alive = Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "process {pid} still running");
    }
}
