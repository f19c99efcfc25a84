//! Lookups at the node agent's cache (the lookup socket the Multus config
//! announces as `nodeAgentSocket`, see `multus_config::agent_api`), before
//! the API server.
//!
//! The agent is an optimisation, never a dependency: a missing socket, a
//! refused or slow connection, an unknown API version, a 404 or any error
//! makes the lookup return `None` and the caller asks the API server as
//! without an agent. The first failure to reach the agent turns it off for
//! the rest of the invocation, so an agent that is down costs at most one
//! [`CONNECT_TIMEOUT`] (a missing socket costs nothing measurable).

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use k8s_openapi::api::core::v1::Pod;
use multus_config::agent_api::{self, ApiError, VERSION_HEADER};
use multus_config::npwg::NetworkAttachmentDefinition;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::debug;

use crate::k8s::PodRef;

/// Limit for connecting to the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(50);
/// Limit for a pod lookup (the agent waits up to 60 ms for its watch).
pub const POD_TIMEOUT: Duration = Duration::from_millis(120);
/// Limit for a NAD lookup (answered from memory or not at all). 30 ms
/// was too tight while 48 pods started at once on 2 cores: 11 of 96 NAD
/// lookups fell back to the API server.
pub const NAD_TIMEOUT: Duration = Duration::from_millis(80);
/// Largest answer read (a pod or NAD trimmed by the agent is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// The node agent of this invocation.
#[derive(Debug)]
pub struct NodeAgent {
    socket: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// Not connected yet.
    Idle,
    Connected(SendRequest<String>),
    /// Unreachable or misbehaving: not asked again in this invocation.
    Off,
}

/// Why a lookup was not answered by the agent (logged, never returned).
#[derive(Debug, thiserror::Error)]
enum Miss {
    #[error("cannot reach it: {0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0}: {1}")]
    Answer(u16, String),
    #[error("unexpected answer: {0}")]
    Garbage(String),
}

impl NodeAgent {
    /// The agent at `socket` (not connected until the first lookup).
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            state: Mutex::new(State::Idle),
        }
    }

    /// The agent the Multus config announces, if any.
    pub fn from_conf(conf: &multus_config::multus_conf::MultusNetConf) -> Option<Self> {
        conf.node_agent_socket
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(Self::new)
    }

    /// The pod, when the agent's cache holds it with the pod's UID.
    pub async fn pod(&self, pod: &PodRef) -> Option<Pod> {
        let uid = pod.uid.as_deref().filter(|u| !u.is_empty())?;
        let path = format!(
            "{}?uid={uid}",
            agent_api::pod_path(&pod.namespace, &pod.name)
        );
        let found: Pod = self.lookup(&path, POD_TIMEOUT).await?;
        // The agent checked; a mirror pod's UID differs by design.
        let cached_uid = found.metadata.uid.as_deref().unwrap_or_default();
        if cached_uid != uid && !crate::k8s::is_static_pod(&found) {
            debug!(pod = %pod, cached_uid, "the agent answered another pod; asking the API server");
            return None;
        }
        Some(found)
    }

    /// The NAD, when the agent's cache holds it.
    pub async fn nad(&self, namespace: &str, name: &str) -> Option<NetworkAttachmentDefinition> {
        self.lookup(&agent_api::nad_path(namespace, name), NAD_TIMEOUT)
            .await
    }

    async fn lookup<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> Option<T> {
        let mut state = self.state.lock().await;
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout(timeout, self.request(&mut state, path)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Miss::Timeout(timeout)),
        };
        match outcome {
            Ok(value) => {
                debug!(path, elapsed = ?started.elapsed(), "answered by the node agent");
                Some(value)
            }
            Err(Miss::Answer(status, message)) => {
                debug!(path, status, %message, "the node agent's cache cannot answer; asking the API server");
                None
            }
            Err(miss) => {
                debug!(path, %miss, socket = %self.socket.display(), "node agent not used for this invocation");
                *state = State::Off;
                None
            }
        }
    }

    async fn request<T: DeserializeOwned>(&self, state: &mut State, path: &str) -> Result<T, Miss> {
        if matches!(state, State::Off) {
            return Err(Miss::Unreachable("off after an earlier failure".into()));
        }
        if let State::Idle = state {
            *state = State::Connected(self.connect().await?);
        }
        let State::Connected(sender) = state else {
            unreachable!("connected above");
        };
        sender
            .ready()
            .await
            .map_err(|e| Miss::Unreachable(e.to_string()))?;
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "multus-node-agent")
            .body(String::new())
            .map_err(|e| Miss::Garbage(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Miss::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let version_ok = response
            .headers()
            .get(VERSION_HEADER)
            .is_some_and(|v| v == "v1");
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| Miss::Unreachable(e.to_string()))?
            .to_bytes();
        if !version_ok {
            return Err(Miss::Garbage(format!(
                "answer without {VERSION_HEADER}: v1 (status {status})"
            )));
        }
        if status != 200 {
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| format!("{:?}: {}", e.reason, e.message))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(Miss::Answer(status, message));
        }
        serde_json::from_slice(&body).map_err(|e| Miss::Garbage(e.to_string()))
    }

    async fn connect(&self) -> Result<SendRequest<String>, Miss> {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::UnixStream::connect(&self.socket),
        )
        .await
        .map_err(|_| Miss::Timeout(CONNECT_TIMEOUT))?
        .map_err(|e| Miss::Unreachable(e.to_string()))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| Miss::Unreachable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "node agent connection ended");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;

    /// A fake agent on a socket in `dir`; counts the requests it gets.
    async fn serve(dir: &tempfile::TempDir, router: Router) -> PathBuf {
        let path = dir.path().join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        path
    }

    fn v1(status: StatusCode, body: &'static str) -> axum::response::Response {
        (status, [(VERSION_HEADER, "v1")], body).into_response()
    }

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"app","uid":"u1","annotations":{"k8s.v1.cni.cncf.io/networks":"net-a"}},"spec":{"containers":[]}}"#;
    const NAD: &str = r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"net-a","namespace":"app"},"spec":{"config":"{}"}}"#;

    fn web() -> PodRef {
        PodRef::new("app", "web").with_uid("u1")
    }

    #[tokio::test]
    async fn answers_from_the_cache_over_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let router = Router::new()
            .route(
                "/v1/pods/app/web",
                get(|| async { v1(StatusCode::OK, POD) }),
            )
            .route(
                "/v1/nads/app/net-a",
                get(|| async { v1(StatusCode::OK, NAD) }),
            )
            .route(
                "/v1/nads/app/missing",
                get(|| async {
                    v1(
                        StatusCode::NOT_FOUND,
                        r#"{"reason":"NotCached","message":"not cached"}"#,
                    )
                }),
            );
        let path = serve(&dir, router).await;
        let agent = NodeAgent::new(&path);
        let pod = agent.pod(&web()).await.expect("the pod from the cache");
        assert_eq!(pod.metadata.uid.as_deref(), Some("u1"));
        let nad = agent.nad("app", "net-a").await.expect("the NAD");
        assert_eq!(nad.spec.config.as_deref(), Some("{}"));
        // A miss leaves the agent on for the next lookup.
        assert!(agent.nad("app", "missing").await.is_none());
        assert!(agent.nad("app", "net-a").await.is_some());
        assert!(matches!(*agent.state.lock().await, State::Connected(_)));
    }

    #[tokio::test]
    async fn no_uid_no_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let agent = NodeAgent::new(dir.path().join("none.sock"));
        assert!(agent.pod(&PodRef::new("app", "web")).await.is_none());
        // Not even tried.
        assert!(matches!(*agent.state.lock().await, State::Idle));
    }

    #[tokio::test]
    async fn another_uid_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let router = Router::new().route(
            "/v1/pods/app/web",
            get(|| async { v1(StatusCode::OK, POD) }),
        );
        let agent = NodeAgent::new(serve(&dir, router).await);
        assert!(
            agent
                .pod(&PodRef::new("app", "web").with_uid("u2"))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn missing_socket_turns_the_agent_off_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let agent = NodeAgent::new(dir.path().join("gone.sock"));
        let started = std::time::Instant::now();
        assert!(agent.nad("app", "net-a").await.is_none());
        assert!(agent.pod(&web()).await.is_none());
        assert!(
            started.elapsed() < CONNECT_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(*agent.state.lock().await, State::Off));
    }

    #[tokio::test]
    async fn a_slow_agent_costs_one_timeout_then_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let router = Router::new().route(
            "/v1/nads/app/net-a",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                v1(StatusCode::OK, NAD)
            }),
        );
        let agent = NodeAgent::new(serve(&dir, router).await);
        let started = std::time::Instant::now();
        assert!(agent.nad("app", "net-a").await.is_none());
        assert!(agent.nad("app", "net-a").await.is_none());
        let elapsed = started.elapsed();
        assert!(
            elapsed >= NAD_TIMEOUT && elapsed < NAD_TIMEOUT * 3,
            "{elapsed:?}"
        );
        assert!(matches!(*agent.state.lock().await, State::Off));
    }

    #[tokio::test]
    async fn unversioned_or_garbage_answers_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let router = Router::new()
            .route(
                "/v1/nads/app/plain",
                get(|| async { (StatusCode::OK, NAD) }),
            )
            .route(
                "/v1/nads/app/junk",
                get(|| async { v1(StatusCode::OK, "not json") }),
            );
        let path = serve(&dir, router).await;
        let agent = NodeAgent::new(&path);
        assert!(agent.nad("app", "plain").await.is_none());
        assert!(matches!(*agent.state.lock().await, State::Off));
        let agent = NodeAgent::new(&path);
        assert!(agent.nad("app", "junk").await.is_none());
        assert!(matches!(*agent.state.lock().await, State::Off));
    }
}
