//! The frame of an end-to-end test on the cluster: run or skip, exclusive
//! use of the cluster, the step log, and the teardown once armed.

use std::path::Path;

use crate::gate::{e2e_client, root_or_skip};
use crate::lock::{ClusterLock, lock_cluster};
use crate::step_log::StepLog;
use crate::teardown::Teardown;

/// What an end-to-end test holds for its whole run on the cluster.
///
/// [`E2eSession::start`] skips the test (or fails it under CI) without a
/// cluster or root, then takes the cluster lock and opens the step log. The
/// test removes what an earlier run may have left, checks the cluster and
/// then arms the teardown ([`E2eSession::arm_teardown`]), which undoes what
/// it creates at the end and when it fails. [`E2eSession::finish`] runs the
/// teardown, then reports the time and the failures recorded in the log.
pub struct E2eSession {
    // Fields drop in this order when the test fails: the teardown first,
    // while the cluster lock is still held.
    teardown: Option<Teardown>,
    test: String,
    /// The test's steps and the failures reported at the end.
    pub log: StepLog,
    /// A client of the end-to-end cluster.
    pub client: kube::Client,
    _lock: ClusterLock,
}

impl std::fmt::Debug for E2eSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eSession")
            .field("test", &self.test)
            .field("teardown", &self.teardown)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl E2eSession {
    /// Starts `test` when it can run ([`e2e_client`], [`root_or_skip`]):
    /// waits for the cluster lock and opens the step log in `log_dir`
    /// (usually `env!("CARGO_TARGET_TMPDIR")`). `None`: the test was
    /// skipped and returns.
    pub async fn start(test: &str, log_dir: impl AsRef<Path>) -> Option<Self> {
        let client = e2e_client(test).await?;
        if !root_or_skip(test) {
            return None;
        }
        let lock = lock_cluster(test);
        let log = StepLog::new(test, log_dir.as_ref());
        Some(Self {
            teardown: None,
            test: test.to_owned(),
            log,
            client,
            _lock: lock,
        })
    }

    /// From now on `cleanup` (`what` names it) undoes the test's work at its
    /// end and when it fails; on failure the pods of `namespaces` are
    /// diagnosed first ([`Teardown`]).
    pub fn arm_teardown(
        &mut self,
        namespaces: &[impl AsRef<str>],
        what: &str,
        cleanup: impl FnOnce() + 'static,
    ) {
        let teardown = self
            .teardown
            .get_or_insert_with(|| Teardown::new(&self.test));
        for namespace in namespaces {
            teardown.diagnose_namespace(namespace.as_ref());
        }
        teardown.defer(what, cleanup);
    }

    /// Runs the teardown now, for a test that has more to stop after it and
    /// before [`E2eSession::finish`].
    pub fn tear_down(&mut self) {
        drop(self.teardown.take());
    }

    /// Ends the test: the teardown, then the total time, failing the test if
    /// a failure was recorded ([`StepLog::finish`]).
    pub fn finish(mut self) {
        self.tear_down();
        let Self { log, _lock, .. } = self;
        log.finish();
    }
}
