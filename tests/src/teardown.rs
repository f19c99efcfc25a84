//! Undoing what an end-to-end test created, also when it fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::cmd::Cmd;
use crate::diagnostics::dump_diagnostics;
use crate::env::{E2E_KEEP_ENV, keep_on_failure};

type CleanupStep = Box<dyn FnOnce()>;

/// Undoes what a test created, in reverse order, when dropped: at the end of
/// the test and when it fails. On failure it first prints diagnostics of the
/// registered namespaces ([`dump_diagnostics`]); with
/// `MULTUS_E2E_KEEP_ON_FAILURE=1` it then leaves everything in place.
pub struct Teardown {
    test: String,
    namespaces: Vec<String>,
    steps: Vec<(String, CleanupStep)>,
}

impl std::fmt::Debug for Teardown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Teardown")
            .field("test", &self.test)
            .field("namespaces", &self.namespaces)
            .field(
                "steps",
                &self.steps.iter().map(|(what, _)| what).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Teardown {
    /// A guard with nothing to undo yet.
    pub fn new(test: &str) -> Self {
        Self {
            test: test.to_owned(),
            namespaces: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Namespaces whose pods' logs are printed when the test fails.
    pub fn diagnose_namespace(&mut self, namespace: &str) {
        self.namespaces.push(namespace.to_owned());
    }

    /// Registers a cleanup step. It must not panic: report problems with
    /// `eprintln!` (a panic is caught and reported too).
    pub fn defer(&mut self, what: &str, step: impl FnOnce() + 'static) {
        self.steps.push((what.to_owned(), Box::new(step)));
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== {} failed; diagnostics follow (the failure itself is printed after them)",
                self.test
            );
            dump_diagnostics(&self.namespaces);
            if keep_on_failure() {
                eprintln!(
                    "==== {E2E_KEEP_ENV}=1: leaving the test's objects in place; the next run removes them"
                );
                return;
            }
        }
        for (what, step) in self.steps.drain(..).rev() {
            let started = Instant::now();
            if catch_unwind(AssertUnwindSafe(step)).is_err() {
                eprintln!("cleanup of {}: `{what}` panicked", self.test);
            } else if started.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "cleanup of {}: `{what}` took {:.1?}",
                    self.test,
                    started.elapsed()
                );
            }
        }
    }
}

/// Runs a cleanup command, printing (not failing on) errors.
pub fn cleanup_cmd(cmd: &Cmd) {
    if let Err(e) = cmd.run_blocking() {
        eprintln!("cleanup: {e}");
    }
}

/// Deletes a namespace (and so everything in it), waiting at most `timeout`,
/// for cleanups (printing, not failing on, errors).
pub fn remove_namespace(namespace: &str, timeout: Duration) {
    cleanup_cmd(&Cmd::kubectl([
        "delete".to_owned(),
        "namespace".to_owned(),
        namespace.to_owned(),
        "--ignore-not-found".to_owned(),
        format!("--timeout={}s", timeout.as_secs()),
    ]));
}
