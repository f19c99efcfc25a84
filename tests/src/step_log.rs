//! The steps of an end-to-end test with their times, and the failures
//! reported at its end.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use crate::diagnostics::dump_diagnostics;

/// Seconds since `start`, for step logs.
pub fn secs(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

/// The steps of an end-to-end test with their times, written to stderr and
/// to `<dir>/multus-e2e-<test>.log` (CI prints those files, so the timings
/// of passing tests are visible too), and the failures that are reported at
/// the end so that the later steps still run.
#[derive(Debug)]
pub struct StepLog {
    test: String,
    start: Instant,
    step_start: Instant,
    file: Option<File>,
    failures: Vec<String>,
}

impl StepLog {
    /// A log for `test`, truncating its file in `dir` (usually
    /// `env!("CARGO_TARGET_TMPDIR")`).
    pub fn new(test: &str, dir: &Path) -> Self {
        let path = dir.join(format!("multus-e2e-{test}.log"));
        let file = File::create(&path)
            .map_err(|e| eprintln!("{test}: cannot write the step log {path:?}: {e}"))
            .ok();
        let now = Instant::now();
        Self {
            test: test.to_owned(),
            start: now,
            step_start: now,
            file,
            failures: Vec::new(),
        }
    }

    fn write(&mut self, line: &str) {
        use std::io::Write as _;
        eprintln!("{line}");
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
    }

    /// Starts a step; the previous one's duration is logged.
    pub fn step(&mut self, what: &str) {
        let previous = self.step_start.elapsed();
        self.step_start = Instant::now();
        let line = format!(
            "[{} +{:.1}s] {}: {what}",
            secs(self.start),
            previous.as_secs_f64(),
            self.test
        );
        self.write(&line);
    }

    /// A note (figures, what was seen) under the current step.
    pub fn note(&mut self, text: &str) {
        let line = format!("    {text}");
        self.write(&line);
    }

    /// Records a failure to report at the end ([`StepLog::finish`]), printing
    /// diagnostics of `namespaces` now, while the evidence exists.
    pub fn fail_later(&mut self, failure: String, namespaces: &[String]) {
        self.write(&format!("    FAILURE (reported at the end): {failure}"));
        dump_diagnostics(namespaces);
        self.failures.push(failure);
    }

    /// Logs the total time and fails the test if a failure was recorded.
    pub fn finish(mut self) {
        let line = format!("[{}] {}: done", secs(self.start), self.test);
        self.write(&line);
        assert!(
            self.failures.is_empty(),
            "{} failed:\n- {}",
            self.test,
            self.failures.join("\n- ")
        );
    }
}
