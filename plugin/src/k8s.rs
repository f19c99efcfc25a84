//! Kubernetes access of the plugin: read the pod and its NADs, write the
//! network-status annotation, record events.
//!
//! Every request is bounded by [`K8sSettings::request_timeout`] (both in the
//! HTTP stack and with a `tokio` timeout around the call), transient failures
//! are retried within a fixed total budget, and every error names the object
//! and the operation that failed. kube's own retry layer is switched off so
//! that one API call is exactly one HTTP request: [`K8sClient::request_count`]
//! then tells the real API cost of an invocation (docs/architecture.md, quality bars: 1 GET pod + 1 GET per
//! distinct NAD + 1 status update per ADD).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client, Config};
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::{
    NETWORK_STATUS_ANNOTATION, NetworkAttachmentDefinition, NetworkStatus,
    network_status_annotation_value,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Annotation the kubelet sets on pods; anything but `api` marks a static pod.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Event reason for an interface added to a pod (type Normal).
pub const REASON_ADDED_INTERFACE: &str = "AddedInterface";

/// Event reason for a NetworkAttachmentDefinition that does not exist (type Warning).
pub const REASON_NO_NETWORK_FOUND: &str = "NoNetworkFound";

/// Component name used in events (`source.component`, `reportingComponent`).
pub const EVENT_COMPONENT: &str = "multus";

/// Tries of the network-status PATCH (409 Conflict and transient errors).
const STATUS_PATCH_ATTEMPTS: usize = 5;

/// Limits of core/v1 Event fields enforced by the API server.
const EVENT_NAME_MAX: usize = 253;
const EVENT_REASON_MAX: usize = 128;
const EVENT_MESSAGE_MAX: usize = 1024;
const EVENT_INSTANCE_MAX: usize = 128;

/// The pod a CNI invocation is for (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
/// `K8S_POD_UID` of `CNI_ARGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// UID the runtime created the sandbox for; `None` or empty = unknown.
    pub uid: Option<String>,
}

impl PodRef {
    /// A reference without UID.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: None,
        }
    }

    /// The same reference with a UID.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    fn known_uid(&self) -> Option<&str> {
        self.uid.as_deref().filter(|u| !u.is_empty())
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

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

/// Event type of core/v1 Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The API value (`Normal` / `Warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Errors of the Kubernetes client. Every message names the object and the
/// operation (`getting pod default/web-1`).
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig file could not be read or is invalid.
    #[error("cannot read kubeconfig {path}: {detail}")]
    Kubeconfig { path: String, detail: String },
    /// The in-cluster configuration could not be loaded.
    #[error(
        "cannot load the in-cluster Kubernetes configuration (KUBERNETES_SERVICE_HOST={host}, KUBERNETES_SERVICE_PORT={port}): {detail}"
    )]
    InCluster {
        host: String,
        port: String,
        detail: String,
    },
    /// The request did not complete within the request timeout.
    #[error("timed out after {} {op}", fmt_duration(.after))]
    Timeout { op: String, after: Duration },
    /// The API server could not be reached (connect, TLS, reset connection).
    #[error("cannot reach the API server while {op}: {detail}")]
    Connection { op: String, detail: String },
    /// The client could not authenticate (token file unreadable, exec plugin).
    #[error("cannot authenticate to the API server while {op}: {detail}")]
    Auth { op: String, detail: String },
    /// The API server rejected the credential (HTTP 401): names the token
    /// and what usually causes it.
    #[error(
        "API error {op}: 401 Unauthorized: the API server rejected {credential} ({message}); \
         the token has expired or its ServiceAccount was deleted (Multus uninstalled). \
         The Multus node agent renews it: check the agent pod on this node and \
         `kubectl get multusnodestate <node> -o yaml` (status.pluginCredential)"
    )]
    Unauthorized {
        op: String,
        credential: String,
        message: String,
    },
    /// The API server answered with an error status.
    #[error("API error {op}: {code} {reason}: {message}{}", api_hint(*.code))]
    Api {
        op: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The pod exists under another UID than the one the runtime set up.
    #[error("pod {pod} has UID {actual} but the runtime asked for {expected}")]
    UidMismatch {
        pod: String,
        actual: String,
        expected: String,
    },
    /// Anything else (undecodable answer, request building).
    #[error("error {op}: {detail}")]
    Other { op: String, detail: String },
}

impl K8sError {
    /// Whether retrying later may succeed: timeouts, connection errors and
    /// HTTP 429, 500, 502, 503, 504.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Whether the API answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// HTTP status of an API error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => Some(*code),
            Self::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// Classifies a kube error of the operation `op`.
    fn from_kube(op: &str, after: Duration, err: kube::Error) -> Self {
        let op = op.to_owned();
        match err {
            kube::Error::Api(status) => {
                let code = status.code;
                let canonical = canonical_reason(code);
                // kube fills `reason` with its own text when the body was not a
                // Status (proxies, a path the server does not serve).
                let reason =
                    if status.reason.is_empty() || status.reason == "Failed to parse error data" {
                        canonical.to_owned()
                    } else {
                        status.reason.clone()
                    };
                let message = if status.message.is_empty() {
                    canonical.to_owned()
                } else {
                    status.message.clone()
                };
                Self::Api {
                    op,
                    code,
                    reason,
                    message,
                }
            }
            kube::Error::Auth(_) => Self::Auth {
                op,
                detail: error_chain(&err),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                if chain_has_timeout(&err) {
                    Self::Timeout { op, after }
                } else {
                    Self::Connection {
                        op,
                        detail: error_chain(&err),
                    }
                }
            }
            other => Self::Other {
                op,
                detail: error_chain(&other),
            },
        }
    }

    /// 409 or 422 caused by the UID precondition of the status patch: the pod
    /// was deleted and recreated under the same name.
    fn is_uid_precondition_failure(&self) -> bool {
        match self {
            Self::Api { code, message, .. } => {
                let lower = message.to_ascii_lowercase();
                (*code == 409 && lower.contains("uid"))
                    || (*code == 422 && lower.contains("metadata.uid"))
            }
            _ => false,
        }
    }
}

/// Reason phrases of the statuses the API server and proxies commonly return.
fn canonical_reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn api_hint(code: u16) -> &'static str {
    match code {
        401 => {
            " (the API server rejected the credentials; check the kubeconfig and its token file)"
        }
        _ => "",
    }
}

/// `5s`, `250ms`, `1.5s`.
fn fmt_duration(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else {
            format!("{d:?}")
        }
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The error and its sources, without repeating text a source already shows.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

fn chain_has_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Whether the pod is a static pod (its API object is a mirror pod whose UID
/// differs from the one the kubelet uses for the sandbox).
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|source| source != "api")
}

/// Upstream's `AddedInterface` message: `Add net1 [10.1.1.5/24] from ns/nad`.
pub fn added_interface_message(ifname: &str, ips: &[String], network: &str) -> String {
    format!("Add {ifname} [{}] from {network}", ips.join(" "))
}

/// Upstream's `NoNetworkFound` message for a missing NAD.
pub fn no_network_found_message(namespace: &str, name: &str) -> String {
    format!(
        "cannot find a network-attachment-definition ({name}) in namespace ({namespace}): \
         NetworkAttachmentDefinition {namespace}/{name} not found"
    )
}

/// The merge patch of `set_network_status`: the annotation, plus `metadata.uid`
/// as a precondition when the UID is known.
pub fn network_status_patch(uid: Option<&str>, statuses: &[NetworkStatus]) -> serde_json::Value {
    let mut metadata = serde_json::Map::new();
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        metadata.insert("uid".to_owned(), serde_json::Value::from(uid));
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        NETWORK_STATUS_ANNOTATION.to_owned(),
        serde_json::Value::from(network_status_annotation_value(statuses)),
    );
    metadata.insert(
        "annotations".to_owned(),
        serde_json::Value::Object(annotations),
    );
    let mut root = serde_json::Map::new();
    root.insert("metadata".to_owned(), serde_json::Value::Object(metadata));
    serde_json::Value::Object(root)
}

/// Builds the core/v1 Event about `pod` (pure; `record_event` sends it).
/// `unique` makes the name unique among events created in the same
/// nanosecond.
pub fn build_event(
    pod: &Pod,
    event_type: EventType,
    reason: &str,
    message: &str,
    now: Timestamp,
    unique: u64,
) -> Event {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone();
    let nanos = u64::try_from(now.as_nanosecond()).unwrap_or_default();
    let suffix = format!("{:x}", nanos.wrapping_add(unique));
    let keep = EVENT_NAME_MAX.saturating_sub(suffix.len() + 1);
    let name = format!(
        "{}.{suffix}",
        truncate(&pod_name, keep).trim_end_matches('.')
    );
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let instance = truncate(
        node.as_deref().unwrap_or(EVENT_COMPONENT),
        EVENT_INSTANCE_MAX,
    )
    .to_owned();
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(pod_name),
            namespace,
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(truncate(reason, EVENT_REASON_MAX).to_owned()),
        message: Some(truncate(message, EVENT_MESSAGE_MAX).to_owned()),
        type_: Some(event_type.as_str().to_owned()),
        source: Some(EventSource {
            component: Some(EVENT_COMPONENT.to_owned()),
            host: node,
        }),
        reporting_component: Some(EVENT_COMPONENT.to_owned()),
        reporting_instance: Some(instance),
        // Required by the API server once eventTime is set.
        action: Some(truncate(reason, EVENT_REASON_MAX).to_owned()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Event::default()
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Sequence mixed into event names created by this process.
static EVENT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Kubernetes client of the plugin. Cloning shares the connection pool and
/// the request counter.
#[derive(Clone)]
pub struct K8sClient {
    client: Client,
    settings: K8sSettings,
    requests: Arc<AtomicUsize>,
    /// What authenticates us, for error messages (`the token file ...`).
    credential: String,
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
    /// The client of the invocation: from `conf.kubeconfig` when set, else
    /// the in-cluster config when `KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT` are set, else `None` (delegates-only mode).
    pub async fn connect(
        conf: &MultusNetConf,
        settings: K8sSettings,
    ) -> Result<Option<K8sClient>, K8sError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").ok();
        Self::connect_with_env(
            conf.kubeconfig.as_deref(),
            host.as_deref(),
            port.as_deref(),
            settings,
        )
        .await
    }

    /// `connect` with the service environment passed in.
    async fn connect_with_env(
        kubeconfig: Option<&str>,
        service_host: Option<&str>,
        service_port: Option<&str>,
        settings: K8sSettings,
    ) -> Result<Option<K8sClient>, K8sError> {
        if let Some(path) = kubeconfig.filter(|p| !p.is_empty()) {
            let (config, token_file) = kubeconfig_config(path).await?;
            let client = build_client(config, settings).map_err(|e| K8sError::Kubeconfig {
                path: path.to_owned(),
                detail: error_chain(&e),
            })?;
            debug!(kubeconfig = path, "Kubernetes client from kubeconfig");
            let credential = match token_file {
                Some(file) => format!("the token in {file} (named by kubeconfig {path})"),
                None => format!("the credentials of kubeconfig {path}"),
            };
            return Ok(Some(
                Self::from_client(client, settings).with_credential(credential),
            ));
        }
        let host = service_host.filter(|h| !h.is_empty());
        let port = service_port.filter(|p| !p.is_empty());
        let (Some(host), Some(port)) = (host, port) else {
            debug!("no kubeconfig and no in-cluster environment: delegates-only mode");
            return Ok(None);
        };
        let in_cluster_error = |detail: String| K8sError::InCluster {
            host: host.to_owned(),
            port: port.to_owned(),
            detail,
        };
        let config = Config::incluster_env().map_err(|e| in_cluster_error(error_chain(&e)))?;
        let client =
            build_client(config, settings).map_err(|e| in_cluster_error(error_chain(&e)))?;
        debug!("Kubernetes client from the in-cluster config");
        Ok(Some(Self::from_client(client, settings).with_credential(
            "the in-cluster service-account token".to_owned(),
        )))
    }

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

    /// The pod, `None` when it does not exist. Transient errors are retried
    /// every `retry_interval` until `pod_wait` has elapsed. When `pod.uid` is
    /// given it must match the API's UID, except for static pods.
    pub async fn get_pod(&self, pod: &PodRef) -> Result<Option<Pod>, K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let op = format!("getting pod {pod}");
        let found = match self
            .retrying(&op, usize::MAX, |_| false, || api.get(&pod.name))
            .await
        {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                debug!(pod = %pod, "pod not found");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(expected) = pod.known_uid() {
            let actual = found.metadata.uid.as_deref().unwrap_or_default();
            if actual != expected {
                if is_static_pod(&found) {
                    debug!(
                        pod = %pod, expected, actual,
                        "static pod: the mirror pod's UID differs from the runtime's"
                    );
                } else {
                    return Err(K8sError::UidMismatch {
                        pod: pod.to_string(),
                        actual: actual.to_owned(),
                        expected: expected.to_owned(),
                    });
                }
            }
        }
        Ok(Some(found))
    }

    /// The NetworkAttachmentDefinition, `None` when it does not exist.
    /// Transient errors are retried like `get_pod`. A 404 that is not an API
    /// `NotFound` status (the CRD is not served) is an error.
    pub async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>, K8sError> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("getting NetworkAttachmentDefinition {namespace}/{name}");
        match self
            .retrying(&op, usize::MAX, |_| false, || api.get(name))
            .await
        {
            Ok(nad) => Ok(Some(nad)),
            Err(K8sError::Api {
                code: 404, reason, ..
            }) if reason == "NotFound" => {
                debug!(namespace, name, "NetworkAttachmentDefinition not found");
                Ok(None)
            }
            Err(K8sError::Api {
                op,
                code: 404,
                reason,
                message,
            }) => Err(K8sError::Api {
                op,
                code: 404,
                reason,
                message: format!(
                    "{message} (is the network-attachment-definitions.k8s.cni.cncf.io CRD installed?)"
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Writes the network-status annotation with one merge PATCH of the
    /// pods/status subresource. The known UID is a precondition, so a pod
    /// recreated under the same name is left alone. 409 Conflict and transient
    /// errors are retried (5 tries within `pod_wait`); a pod that is gone is
    /// not an error.
    pub async fn set_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let patch = network_status_patch(pod.known_uid(), statuses);
        let op = format!("patching the network-status of pod {pod}");
        let params = PatchParams::default();
        let patch = Patch::Merge(&patch);
        let conflict =
            |e: &K8sError| e.status_code() == Some(409) && !e.is_uid_precondition_failure();
        let result = self
            .retrying(&op, STATUS_PATCH_ATTEMPTS, conflict, || {
                api.patch_status(&pod.name, &params, &patch)
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                debug!(pod = %pod, "pod is gone; network-status not written");
                Ok(())
            }
            Err(e) if e.is_uid_precondition_failure() => {
                info!(
                    pod = %pod,
                    error = %e,
                    "pod was recreated under the same name; network-status not written"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Records a core/v1 Event about `pod`. Best effort: one bounded request,
    /// a failure is logged as a warning and never returned.
    pub async fn record_event(
        &self,
        pod: &Pod,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(namespace) = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()) else {
            warn!(
                pod = pod_name,
                reason, "pod has no namespace; event not recorded"
            );
            return;
        };
        let unique = EVENT_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let event = build_event(pod, event_type, reason, message, Timestamp::now(), unique);
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let op = format!("creating event {reason} for pod {namespace}/{pod_name}");
        let timeout = self.settings.request_timeout;
        let params = PostParams::default();
        if let Err(e) = self
            .attempt(&op, timeout, api.create(&params, &event))
            .await
        {
            warn!(error = %e, "event not recorded");
        }
    }

    /// One request bounded by `timeout`, counted.
    async fn attempt<T, Fut>(&self, op: &str, timeout: Duration, call: Fut) -> Result<T, K8sError>
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
    async fn retrying<T, F, Fut>(
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

/// A kube `Config` from the kubeconfig at `path`, and the token file its
/// current user names (for error messages).
async fn kubeconfig_config(path: &str) -> Result<(Config, Option<String>), K8sError> {
    let kubeconfig_error = |detail: String| K8sError::Kubeconfig {
        path: path.to_owned(),
        detail,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| match e {
        // kube's text repeats the path; the I/O error alone reads better.
        KubeconfigError::ReadConfig(io, _) => kubeconfig_error(io.to_string()),
        other => kubeconfig_error(error_chain(&other)),
    })?;
    let token_file = current_token_file(&kubeconfig);
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(error_chain(&e)))?;
    Ok((config, token_file))
}

/// The `tokenFile` of the current context's user, if any.
fn current_token_file(kubeconfig: &Kubeconfig) -> Option<String> {
    let context_name = kubeconfig.current_context.as_deref()?;
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)?
        .context
        .as_ref()?
        .user
        .clone()?;
    kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)?
        .auth_info
        .as_ref()?
        .token_file
        .clone()
}

/// A client whose HTTP stack enforces the request timeout and does not retry.
fn build_client(mut config: Config, settings: K8sSettings) -> Result<Client, kube::Error> {
    config.connect_timeout = Some(settings.request_timeout);
    config.read_timeout = Some(settings.request_timeout);
    config.write_timeout = Some(settings.request_timeout);
    config.reset_reader_on_write = true;
    config.default_retry = false;
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings() -> K8sSettings {
        K8sSettings {
            request_timeout: Duration::from_millis(200),
            pod_wait: Duration::from_millis(300),
            retry_interval: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn no_kubeconfig_and_no_service_env_is_delegates_only() {
        let client = K8sClient::connect_with_env(None, None, None, settings())
            .await
            .unwrap();
        assert!(client.is_none());
        // One of the two variables is not enough, nor empty values.
        let client = K8sClient::connect_with_env(None, Some("10.0.0.1"), None, settings())
            .await
            .unwrap();
        assert!(client.is_none());
        let client = K8sClient::connect_with_env(Some(""), Some(""), Some(""), settings())
            .await
            .unwrap();
        assert!(client.is_none());
    }

    #[tokio::test]
    async fn missing_kubeconfig_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.d/multus.kubeconfig");
        let path = path.to_str().unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot read kubeconfig {path}: ")),
            "{text}"
        );
        assert!(matches!(err, K8sError::Kubeconfig { .. }));
    }

    #[tokio::test]
    async fn invalid_kubeconfig_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.kubeconfig");
        std::fs::write(&path, "apiVersion: v1\nkind: Config\nclusters: [[[\n").unwrap();
        let path = path.to_str().unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
        // No current context: also named.
        std::fs::write(path, "apiVersion: v1\nkind: Config\n").unwrap();
        let err = K8sClient::connect_with_env(Some(path), None, None, settings())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
    }

    fn write_kubeconfig(dir: &std::path::Path, server: &str) -> String {
        let token = dir.join("token");
        std::fs::write(&token, "secret-token").unwrap();
        let path = dir.join("multus.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: multus\n  user:\n    tokenFile: token\ncontexts:\n- name: multus-context\n  context:\n    cluster: local\n    user: multus\ncurrent-context: multus-context\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn kubeconfig_wins_and_unreachable_server_is_a_named_transient_error() {
        let dir = tempfile::tempdir().unwrap();
        // Port 1 on loopback: connection refused.
        let path = write_kubeconfig(dir.path(), "https://127.0.0.1:1");
        let client =
            K8sClient::connect_with_env(Some(&path), Some("10.0.0.1"), Some("443"), settings())
                .await
                .unwrap()
                .expect("a client");
        let err = client
            .get_pod(&PodRef::new("default", "web-1"))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string().contains("getting pod default/web-1"),
            "{err}"
        );
        // Retried within the budget.
        assert!(client.request_count() >= 2, "{}", client.request_count());
    }

    #[test]
    fn static_pod_detection() {
        let mut pod = Pod::default();
        assert!(!is_static_pod(&pod));
        let mut annotations = BTreeMap::new();
        annotations.insert(CONFIG_SOURCE_ANNOTATION.to_owned(), "api".to_owned());
        pod.metadata.annotations = Some(annotations.clone());
        assert!(!is_static_pod(&pod));
        annotations.insert(CONFIG_SOURCE_ANNOTATION.to_owned(), "file".to_owned());
        pod.metadata.annotations = Some(annotations);
        assert!(is_static_pod(&pod));
    }

    #[test]
    fn transient_classification() {
        let api = |code| K8sError::Api {
            op: "getting pod a/b".into(),
            code,
            reason: String::new(),
            message: String::new(),
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(api(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!api(code).is_transient(), "{code}");
        }
        let timeout = K8sError::Timeout {
            op: "getting pod a/b".into(),
            after: Duration::from_secs(5),
        };
        assert!(timeout.is_transient());
        assert_eq!(timeout.to_string(), "timed out after 5s getting pod a/b");
        let uid = K8sError::UidMismatch {
            pod: "default/web-1".into(),
            actual: "X".into(),
            expected: "Y".into(),
        };
        assert!(!uid.is_transient());
        assert_eq!(
            uid.to_string(),
            "pod default/web-1 has UID X but the runtime asked for Y"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(&Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(&Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(&Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn status_patch_shape() {
        let statuses = vec![NetworkStatus {
            name: "ns/nad".into(),
            interface: Some("net1".into()),
            ips: vec!["10.1.1.5".into()],
            ..NetworkStatus::default()
        }];
        let patch = network_status_patch(Some("u-1"), &statuses);
        assert_eq!(patch["metadata"]["uid"], "u-1");
        let value = patch["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(value, network_status_annotation_value(&statuses));
        let patch = network_status_patch(None, &statuses);
        assert!(patch["metadata"].get("uid").is_none());
        let patch = network_status_patch(Some(""), &statuses);
        assert!(patch["metadata"].get("uid").is_none());
    }

    #[test]
    fn event_shape_and_limits() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-1".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("u-1".into());
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("node-a".into()),
            ..Default::default()
        });
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let long = "é".repeat(2000);
        let event = build_event(&pod, EventType::Warning, "NoNetworkFound", &long, now, 1);
        let name = event.metadata.name.unwrap();
        assert!(name.starts_with("web-1."), "{name}");
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.message.unwrap().len(), 1024);
        assert_eq!(event.reporting_instance.as_deref(), Some("node-a"));
        assert_eq!(event.source.unwrap().host.as_deref(), Some("node-a"));
        // A 253-character pod name still yields a valid event name.
        pod.metadata.name = Some("a".repeat(253));
        let event = build_event(&pod, EventType::Normal, "AddedInterface", "m", now, 0);
        assert!(event.metadata.name.unwrap().len() <= 253);
    }

    #[test]
    fn upstream_messages() {
        assert_eq!(
            added_interface_message("net1", &["10.1.1.5/24".into()], "ns/nad"),
            "Add net1 [10.1.1.5/24] from ns/nad"
        );
        assert_eq!(
            added_interface_message(
                "net1",
                &["10.1.1.5/24".into(), "fd00::5/64".into()],
                "ns/nad"
            ),
            "Add net1 [10.1.1.5/24 fd00::5/64] from ns/nad"
        );
        assert!(no_network_found_message("ns", "nad").contains("(nad) in namespace (ns)"));
    }
}
