//! Command lines of `kubectl` and `helm` pointed at the end-to-end cluster,
//! and of any other program, run with or without blocking.

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::env::e2e_kubeconfig;

/// A command line of `kubectl` or `helm` (pointed at the end-to-end cluster)
/// or any other program.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
}

impl Cmd {
    /// `program args...`.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// `kubectl args...` against the end-to-end cluster.
    pub fn kubectl<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::new("kubectl", args).with_kubeconfig()
    }

    /// `helm args...` against the end-to-end cluster.
    pub fn helm<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::new("helm", args).with_kubeconfig()
    }

    fn with_kubeconfig(mut self) -> Self {
        if let Some(path) = e2e_kubeconfig() {
            self.env
                .push(("KUBECONFIG".to_owned(), path.into_os_string()));
        }
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line, for messages.
    pub fn line(&self) -> String {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn std_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    fn outcome(&self, output: std::io::Result<std::process::Output>) -> Result<String, String> {
        let output = output.map_err(|e| format!("`{}` could not run: {e}", self.line()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "`{}` failed ({}): {}{}",
                self.line(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                if stdout.trim().is_empty() {
                    String::new()
                } else {
                    format!("\nstdout: {}", stdout.trim())
                }
            ))
        }
    }

    /// Runs it (blocking) and returns stdout, or the failure with stderr.
    pub fn run_blocking(&self) -> Result<String, String> {
        self.outcome(self.std_command().output())
    }

    /// Runs it without blocking the runtime, bounded by `timeout`; returns
    /// stdout, or the failure with stderr.
    pub async fn run_for(&self, timeout: Duration) -> Result<String, String> {
        let mut cmd = tokio::process::Command::from(self.std_command());
        cmd.kill_on_drop(true);
        match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(output) => self.outcome(output),
            Err(_) => Err(format!(
                "`{}` did not finish within {timeout:?}",
                self.line()
            )),
        }
    }

    /// Runs it (at most 3 minutes) and returns stdout; fails the test when
    /// the command fails.
    pub async fn ok(&self) -> String {
        self.run_for(Duration::from_secs(180))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
