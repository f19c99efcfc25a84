//! Shared helpers for the cross-crate and end-to-end tests.
//!
//! Cluster tests run when `MULTUS_E2E_KUBECONFIG` names a kubeconfig and are
//! skipped with a message otherwise; under CI (`CI=true`) a missing
//! `MULTUS_E2E_KUBECONFIG` fails them instead, so CI can never silently skip
//! the end-to-end suite. Root-only tests are skipped when not root, except
//! under CI, where they fail for the same reason.
//!
//! The end-to-end tests share one cluster: each holds [`lock_cluster`] for its
//! whole run (also across test binaries and processes), polls with
//! [`wait_until`] (short intervals, bounded timeouts that say what was awaited
//! and what was seen last) and undoes what it created with a [`Teardown`]
//! guard, which also runs when the test fails and then first prints what a
//! person needs to find the cause ([`dump_diagnostics`]).

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the kubeconfig of the end-to-end cluster.
pub const E2E_KUBECONFIG_ENV: &str = "MULTUS_E2E_KUBECONFIG";
/// Environment variable naming the image (`repo:tag`) the end-to-end tests
/// install; unset means the chart's default image.
pub const E2E_IMAGE_ENV: &str = "MULTUS_E2E_IMAGE";
/// Environment variable that, set to `1`, keeps what a failed end-to-end test
/// created (for a look at the cluster); the next run removes it first.
pub const E2E_KEEP_ENV: &str = "MULTUS_E2E_KEEP_ON_FAILURE";

/// Interval of [`wait_until`]'s polls.
pub const POLL: Duration = Duration::from_millis(300);

/// Whether we run under CI (`CI=true` or `CI=1`).
pub fn running_in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// The workspace root (the directory holding `crds/`, `docs/`, `charts/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The kubeconfig of the end-to-end cluster, when `MULTUS_E2E_KUBECONFIG` is
/// set and not empty.
pub fn e2e_kubeconfig() -> Option<PathBuf> {
    std::env::var_os(E2E_KUBECONFIG_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// A client for the end-to-end cluster, or `None` (after saying why) when
/// `MULTUS_E2E_KUBECONFIG` is not set. Under CI an unset variable fails the
/// test: CI must run the end-to-end tests, not skip them. A set but unusable
/// kubeconfig always fails the test: the user asked for a cluster run.
pub async fn e2e_client(test: &str) -> Option<kube::Client> {
    let Some(path) = e2e_kubeconfig() else {
        assert!(
            !running_in_ci(),
            "{test}: CI=true but {E2E_KUBECONFIG_ENV} is not set; the end-to-end tests must not be \
             skipped in CI (start a cluster and set {E2E_KUBECONFIG_ENV} to its kubeconfig, as \
             .ci/run does)"
        );
        eprintln!(
            "SKIPPED {test}: set {E2E_KUBECONFIG_ENV} to a kubeconfig to run it against a real cluster"
        );
        return None;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("{E2E_KUBECONFIG_ENV}={path:?} is not a usable kubeconfig: {e}")
    });
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{E2E_KUBECONFIG_ENV}={path:?}: {e}"));
    Some(kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}")))
}

/// Whether a root-only test can run. Returns `false` (after saying why) when
/// not root outside CI; panics when not root under CI.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !running_in_ci(),
        "{test} needs root, and CI=true forbids skipping it: run the suite as root"
    );
    eprintln!("SKIPPED {test}: needs root (network namespaces); run the suite as root");
    false
}

/// Whether the effective user is root (read from /proc, no libc call).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The image the end-to-end tests install, split into repository and tag,
/// from `MULTUS_E2E_IMAGE` (`None`: the chart's default image).
pub fn e2e_image() -> Option<(String, String)> {
    let image = std::env::var(E2E_IMAGE_ENV)
        .ok()
        .filter(|i| !i.is_empty())?;
    let (repo, tag) = image
        .rsplit_once(':')
        .filter(|(repo, tag)| !repo.is_empty() && !tag.is_empty() && !tag.contains('/'))
        .unwrap_or_else(|| panic!("{E2E_IMAGE_ENV}={image:?}: expected repository:tag"));
    Some((repo.to_owned(), tag.to_owned()))
}

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

/// Polls `probe` every [`POLL`] until it returns `Ok`, and returns that value.
/// `Err` carries a description of what was seen. After `timeout` the test
/// fails with what was awaited and what was seen last.
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

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
            if std::env::var(E2E_KEEP_ENV).as_deref() == Ok("1") {
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

/// Prints what a person needs to find why an end-to-end test failed: pods,
/// the logs of the pods in `namespaces` (all containers, the previous ones
/// too), events of all namespaces (sorted), MultusConfigs (status, describe),
/// MultusNodeStates, the node's CNI directories.
pub fn dump_diagnostics(namespaces: &[String]) {
    let show = |title: &str, cmd: Cmd| {
        let out = match cmd.run_blocking() {
            Ok(out) => out,
            Err(e) => e,
        };
        eprintln!("---- {title}: {}\n{}", cmd.line(), tail(&out, 300));
    };
    show("pods", Cmd::kubectl(["get", "pods", "-A", "-o", "wide"]));
    for ns in namespaces {
        let names = Cmd::kubectl(["get", "pods", "-n", ns, "-o", "name"])
            .run_blocking()
            .unwrap_or_default();
        for pod in names.lines().filter(|l| !l.is_empty()) {
            show(
                "logs",
                Cmd::kubectl(["logs", "-n", ns, pod, "--all-containers", "--prefix"])
                    .args(["--tail=200"]),
            );
            show(
                "previous logs",
                Cmd::kubectl(["logs", "-n", ns, pod, "--all-containers", "--prefix"])
                    .args(["--previous", "--tail=100"]),
            );
        }
    }
    show(
        "events",
        Cmd::kubectl(["get", "events", "-A", "--sort-by=.lastTimestamp"]),
    );
    show(
        "MultusConfigs",
        Cmd::kubectl(["get", "multusconfigs", "-o", "yaml"]),
    );
    show(
        "MultusConfigs described",
        Cmd::kubectl(["describe", "multusconfigs"]),
    );
    show(
        "MultusNodeStates",
        Cmd::kubectl(["get", "multusnodestates", "-o", "yaml"]),
    );
    show(
        "DaemonSets",
        Cmd::kubectl(["get", "daemonsets", "-A", "-o", "wide"]),
    );
    show(
        "node files",
        Cmd::new(
            "ls",
            [
                "-la",
                "/etc/cni/net.d",
                "/etc/cni/net.d/multus.d",
                "/opt/cni/bin",
            ],
        ),
    );
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} lines left out]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

/// The permission bits of a file or directory, `None` when it is missing.
pub fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// This machine's host name (the node name of a kubelet running here).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

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

/// Kubernetes helpers of the end-to-end tests: the chart, pods, events and
/// MultusConfig status, each wait bounded and saying what it saw last.
pub mod cluster {
    use std::fmt::Debug;
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Event, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use kube::api::{Api, ListParams};
    use multus_config::crd::MultusConfig;
    use serde::de::DeserializeOwned;

    use super::{Cmd, e2e_image, wait_until, workspace_root};

    /// The pod annotation that asks for networks.
    pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
    /// The pod annotation where the plugin reports the attached networks.
    pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
    /// Environment variable naming the image of the test pods (it must have
    /// `sleep` and `ip`); default `localhost/busybox:local`, which the
    /// single-node test cluster has without pulling.
    pub const POD_IMAGE_ENV: &str = "MULTUS_E2E_POD_IMAGE";
    /// Container waiting reasons that never resolve on their own.
    const HOPELESS: &[&str] = &[
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
    ];

    /// The image of the test pods.
    pub fn pod_image() -> String {
        std::env::var(POD_IMAGE_ENV)
            .ok()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "localhost/busybox:local".to_owned())
    }

    /// `helm install|upgrade RELEASE charts/multus -n NAMESPACE` with the
    /// end-to-end image (`MULTUS_E2E_IMAGE`) and the extra `--set`s.
    pub fn helm_chart(verb: &str, release: &str, namespace: &str, sets: &[&str]) -> Cmd {
        let chart = workspace_root().join("charts/multus");
        let mut cmd = Cmd::helm([verb, release])
            .args([chart.as_os_str()])
            .args(["--namespace", namespace]);
        if verb == "install" {
            cmd = cmd.args(["--create-namespace"]);
        }
        if let Some((repo, tag)) = e2e_image() {
            cmd = cmd.args([
                "--set".to_owned(),
                format!("image.repository={repo}"),
                "--set".to_owned(),
                format!("image.tag={tag}"),
                "--set".to_owned(),
                "image.pullPolicy=IfNotPresent".to_owned(),
            ]);
        }
        for set in sets {
            cmd = cmd.args(["--set", set]);
        }
        cmd
    }

    /// One line about a pod: phase, readiness, container states, node.
    pub fn pod_summary(pod: &Pod) -> String {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let Some(status) = &pod.status else {
            return format!("pod {name}: no status");
        };
        let ready = status
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == "Ready")
            .map_or("?", |c| c.status.as_str());
        let containers: Vec<String> = status
            .container_statuses
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let state = c.state.as_ref();
                let what = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                    format!(
                        "waiting {} {}",
                        w.reason.as_deref().unwrap_or(""),
                        w.message.as_deref().unwrap_or("")
                    )
                } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                    format!(
                        "terminated {} exit {}",
                        t.reason.as_deref().unwrap_or(""),
                        t.exit_code
                    )
                } else if state.and_then(|s| s.running.as_ref()).is_some() {
                    "running".to_owned()
                } else {
                    "unknown".to_owned()
                };
                format!("{}: {what} (restarts {})", c.name, c.restart_count)
            })
            .collect();
        format!(
            "pod {name}: phase {}, ready {ready}, node {}, containers [{}]",
            status.phase.as_deref().unwrap_or("?"),
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("-"),
            containers.join("; ")
        )
    }

    /// Whether the pod's Ready condition is True.
    pub fn pod_ready(pod: &Pod) -> bool {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// A container waiting reason that will not resolve by waiting.
    pub fn hopeless_reason(pod: &Pod) -> Option<String> {
        pod.status
            .as_ref()?
            .container_statuses
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .find(|w| HOPELESS.contains(&w.reason.as_deref().unwrap_or("")))
            .map(|w| {
                format!(
                    "{}: {}",
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_deref().unwrap_or("")
                )
            })
    }

    /// Events about the object `name` in `namespace` (any kind), oldest
    /// first.
    pub async fn events(client: &kube::Client, namespace: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(client.clone(), namespace);
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        let mut events = api.list(&params).await.map(|l| l.items).unwrap_or_default();
        events.sort_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        events
    }

    /// One line about an event.
    pub fn event_summary(e: &Event) -> String {
        format!(
            "{} {} (x{}): {}",
            e.type_.as_deref().unwrap_or("?"),
            e.reason.as_deref().unwrap_or("?"),
            e.count
                .or(e.series.as_ref().and_then(|s| s.count))
                .unwrap_or(1),
            e.message.as_deref().unwrap_or("")
        )
    }

    /// How many times an event happened (`count`, or the series count).
    pub fn event_count(e: &Event) -> i32 {
        e.count
            .or(e.series.as_ref().and_then(|s| s.count))
            .unwrap_or(1)
            .max(1)
    }

    /// Waits for an event with `reason` about `name`; returns it.
    pub async fn wait_event(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> Event {
        wait_until(
            &format!("a {reason} event about {namespace}/{name}"),
            timeout,
            async || {
                let all = events(client, namespace, name).await;
                all.iter()
                    .find(|e| e.reason.as_deref() == Some(reason))
                    .cloned()
                    .ok_or_else(|| {
                        let seen: Vec<String> = all.iter().map(event_summary).collect();
                        format!("events: [{}]", seen.join(" | "))
                    })
            },
        )
        .await
    }

    /// Waits for the pod to be Ready; fails at once on an image or config
    /// error that waiting cannot fix. The last-seen message has the pod's
    /// state and its recent events.
    pub async fn wait_pod_ready(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Pod {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        wait_until(
            &format!("pod {namespace}/{name} Ready"),
            timeout,
            async || {
                let pod = pods
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("GET failed: {e}"))?
                    .ok_or("the pod does not exist")?;
                if pod_ready(&pod) {
                    return Ok(pod);
                }
                if let Some(reason) = hopeless_reason(&pod) {
                    panic!(
                        "pod {namespace}/{name} cannot start: {reason} ({})",
                        pod_summary(&pod)
                    );
                }
                let recent: Vec<String> = events(client, namespace, name)
                    .await
                    .iter()
                    .rev()
                    .take(4)
                    .map(event_summary)
                    .collect();
                Err(format!(
                    "{}; latest events: [{}]",
                    pod_summary(&pod),
                    recent.join(" | ")
                ))
            },
        )
        .await
    }

    /// Waits until `name` no longer exists.
    pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        wait_until(
            &format!("{} {name} to be deleted", K::kind(&())),
            timeout,
            async || match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(o)) => Err(format!(
                    "still there (deletionTimestamp {:?}, finalizers {:?})",
                    o.meta()
                        .deletion_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string()),
                    o.meta().finalizers
                )),
                Err(e) => Err(format!("GET failed: {e}")),
            },
        )
        .await;
    }

    /// Waits until the operator's Deployment (`<fullname>-operator`) has an
    /// available replica of its latest generation; fails at once when its
    /// image cannot be used (not imported into the node, wrong name).
    pub async fn wait_operator_available(
        client: &kube::Client,
        namespace: &str,
        deployment: &str,
        timeout: Duration,
    ) {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        wait_until(
            &format!("Deployment {namespace}/{deployment} available"),
            timeout,
            async || {
                let d = deployments
                    .get_opt(deployment)
                    .await
                    .map_err(|e| format!("GET failed: {e}"))?
                    .ok_or("no Deployment")?;
                let status = d.status.clone().unwrap_or_default();
                let current = status.observed_generation == d.metadata.generation;
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if current
                    && status.updated_replicas.unwrap_or(0) >= replicas
                    && status.available_replicas.unwrap_or(0) >= replicas
                    && status.replicas.unwrap_or(0) == replicas
                {
                    return Ok(());
                }
                let params = ListParams::default().labels("app.kubernetes.io/component=operator");
                let list = pods
                    .list(&params)
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                for pod in &list {
                    let restarts = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum::<i32>());
                    if restarts >= 3 {
                        let name = pod.metadata.name.as_deref().unwrap_or_default();
                        let logs = Cmd::kubectl(["logs", "-n", namespace, name, "--previous"])
                            .args(["--all-containers", "--tail=20"])
                            .run_for(Duration::from_secs(30))
                            .await
                            .unwrap_or_else(|e| e);
                        panic!(
                            "the operator keeps crashing ({}); its last log lines:\n{logs}",
                            pod_summary(pod)
                        );
                    }
                    if let Some(reason) = hopeless_reason(pod) {
                        panic!(
                            "the operator cannot start: {reason} ({}); is {} set to an image the \
                             node has (image/build.sh, then import it into the node)?",
                            pod_summary(pod),
                            super::E2E_IMAGE_ENV
                        );
                    }
                }
                let summaries: Vec<String> = list.iter().map(pod_summary).collect();
                Err(format!(
                    "generation {:?} observed {:?}, replicas {:?} updated {:?} available {:?}; {}",
                    d.metadata.generation,
                    status.observed_generation,
                    status.replicas,
                    status.updated_replicas,
                    status.available_replicas,
                    summaries.join("; ")
                ))
            },
        )
        .await;
    }

    /// The condition `type_` of a MultusConfig's status.
    pub fn condition<'a>(mc: &'a MultusConfig, type_: &str) -> Option<&'a Condition> {
        mc.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }

    /// Whether the condition `type_` has `status` and (when given) `reason`.
    pub fn has_condition(
        mc: &MultusConfig,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> bool {
        condition(mc, type_)
            .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
    }

    /// Whether the status describes the current generation (the status and
    /// each condition).
    pub fn status_current(mc: &MultusConfig) -> bool {
        let generation = mc.metadata.generation;
        mc.status.as_ref().is_some_and(|s| {
            s.observed_generation == generation
                && !s.conditions.is_empty()
                && s.conditions
                    .iter()
                    .all(|c| c.observed_generation == generation)
        })
    }

    /// One paragraph about a MultusConfig's status.
    pub fn mc_summary(mc: &MultusConfig) -> String {
        let name = mc.metadata.name.as_deref().unwrap_or("?");
        let Some(s) = &mc.status else {
            return format!(
                "MultusConfig {name} (generation {:?}): no status",
                mc.metadata.generation
            );
        };
        let conditions: Vec<String> = s
            .conditions
            .iter()
            .map(|c| {
                format!(
                    "{}={} {} (gen {:?}): {}",
                    c.type_, c.status, c.reason, c.observed_generation, c.message
                )
            })
            .collect();
        format!(
            "MultusConfig {name} generation {:?} observed {:?}, nodes desired {} ready {} updated {}, \
             invalid NADs {}; {}",
            mc.metadata.generation,
            s.observed_generation,
            s.desired_nodes,
            s.ready_nodes,
            s.updated_nodes,
            s.invalid_network_attachment_definitions,
            conditions.join(" | ")
        )
    }

    /// Waits until the MultusConfig `name` satisfies `done` (`what` says
    /// what that means); returns it.
    pub async fn wait_mc(
        client: &kube::Client,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&MultusConfig) -> bool,
    ) -> MultusConfig {
        let api: Api<MultusConfig> = Api::all(client.clone());
        wait_until(
            &format!("MultusConfig {name}: {what}"),
            timeout,
            async || {
                let mc = api
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("GET failed: {e}"))?
                    .ok_or("it does not exist")?;
                if done(&mc) {
                    Ok(mc)
                } else {
                    Err(mc_summary(&mc))
                }
            },
        )
        .await
    }

    /// Waits until MultusConfig `name` is Ready=True for its current
    /// generation.
    pub async fn wait_mc_ready(
        client: &kube::Client,
        name: &str,
        timeout: Duration,
    ) -> MultusConfig {
        wait_mc(
            client,
            name,
            "Ready=True with status.observedGeneration == metadata.generation",
            timeout,
            |mc| status_current(mc) && has_condition(mc, "Ready", "True", None),
        )
        .await
    }

    /// Removes a release of the chart the documented way, for cleanups
    /// (blocking, never fails the test): the MultusConfigs matching
    /// `mc_selector` first (their finalizer has the agents remove Multus from
    /// the nodes; finalizers still there after the wait are removed, so a
    /// dead operator cannot block the cleanup), then `helm uninstall`, then
    /// the namespace.
    pub fn remove_release(release: &str, namespace: &str, mc_selector: &str) {
        super::cleanup_cmd(&Cmd::kubectl([
            "delete",
            "multusconfigs",
            "-l",
            mc_selector,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=150s",
        ]));
        let left = Cmd::kubectl(["get", "multusconfigs", "-l", mc_selector, "-o", "name"])
            .run_blocking()
            .unwrap_or_default();
        for mc in left.lines().filter(|l| !l.is_empty()) {
            eprintln!("cleanup: {mc} is stuck in deletion; removing its finalizers");
            super::cleanup_cmd(&Cmd::kubectl([
                "patch",
                mc,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]));
        }
        super::cleanup_cmd(&Cmd::helm([
            "uninstall",
            release,
            "--namespace",
            namespace,
            "--ignore-not-found",
            "--wait",
            "--timeout",
            "90s",
        ]));
        super::cleanup_cmd(&Cmd::kubectl([
            "delete",
            "namespace",
            namespace,
            "--ignore-not-found",
            "--timeout=90s",
        ]));
    }
}
