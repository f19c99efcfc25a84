//! The Kubernetes client: one bounded, counted HTTP request per attempt and
//! the retry loop every call goes through.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::Client;
use tokio::time::Instant;
use tracing::debug;

use super::K8sError;

/// Time limits of the Kubernetes client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct K8sSettings {
    /// Limit of one HTTP request (connect, write, read); default 5 s.
    pub request_timeout: Duration,
    /// Total budget for retrying transient errors of a read (GET pod, GET
    /// NAD) and for the status PATCH retries; default 10 s.
    pub pod_wait: Duration,
    /// Pause between retries; default 250 ms.
    pub retry_interval: Duration,
}

impl Default for K8sSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            pod_wait: Duration::from_secs(10),
            retry_interval: Duration::from_millis(250),
        }
    }
}

/// Kubernetes client of the plugin. Cloning shares the connection pool and
/// the request counter.
#[derive(Clone)]
pub struct K8sClient {
    pub(super) client: Client,
    pub(super) settings: K8sSettings,
    pub(super) requests: Arc<AtomicUsize>,
    /// What authenticates us, for error messages (`the token file ...`).
    pub(super) credential: String,
}

impl fmt::Debug for K8sClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sClient")
            .field("default_namespace", &self.client.default_namespace())
            .field("settings", &self.settings)
            .field("requests", &self.request_count())
            .finish()
    }
}

impl K8sClient {
    /// Wraps an existing client (tests, benchmarks).
    pub fn from_client(client: Client, settings: K8sSettings) -> K8sClient {
        Self {
            client,
            settings,
            requests: Arc::new(AtomicUsize::new(0)),
            credential: "the client's credentials".to_owned(),
        }
    }

    /// Names the credential in 401 errors.
    pub fn with_credential(mut self, credential: String) -> Self {
        self.credential = credential;
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> K8sSettings {
        self.settings
    }

    /// HTTP requests attempted so far (retries included).
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// One request bounded by `timeout`, counted.
    pub(super) async fn attempt<T, Fut>(
        &self,
        op: &str,
        timeout: Duration,
        call: Fut,
    ) -> Result<T, K8sError>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(match K8sError::from_kube(op, timeout, e) {
                K8sError::Api {
                    op,
                    code: 401,
                    message,
                    ..
                } => K8sError::Unauthorized {
                    op,
                    credential: self.credential.clone(),
                    message,
                },
                other => other,
            }),
            Err(_) => Err(K8sError::Timeout {
                op: op.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Runs `call` until it succeeds, fails with an error that is neither
    /// transient nor accepted by `retry_also`, `max_attempts` are used, or the
    /// next try would start after `pod_wait`. The first try always gets the
    /// full request timeout, later ones at most what is left of the budget.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        op: &str,
        max_attempts: usize,
        retry_also: impl Fn(&K8sError) -> bool,
        mut call: F,
    ) -> Result<T, K8sError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let settings = self.settings;
        let deadline = Instant::now() + settings.pod_wait;
        let mut attempts = 0usize;
        loop {
            let timeout = if attempts == 0 {
                settings.request_timeout
            } else {
                settings
                    .request_timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
            };
            attempts += 1;
            let error = match self.attempt(op, timeout, call()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let retryable = error.is_transient() || retry_also(&error);
            let next_start = Instant::now() + settings.retry_interval;
            if !retryable || attempts >= max_attempts || next_start >= deadline {
                return Err(error);
            }
            debug!(error = %error, attempt = attempts, "retrying");
            tokio::time::sleep(settings.retry_interval).await;
        }
    }
}
