//! The lookup API on the unix socket (see `multus_config::agent_api`):
//! `GET /v1/pods/{namespace}/{name}?uid=` and `GET /v1/nads/{namespace}/{name}`.
//! A pod lookup waits up to [`Caches::pod_wait`] for the watch to deliver a
//! pod that is not (yet) cached with the asked UID: the runtime may start
//! the sandbox moments after the pod was created. Anything the cache
//! cannot vouch for is a 404 with an [`ApiError`], and the plugin asks the
//! API server instead.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use multus_config::agent_api::{ApiError, MissReason, VERSION_HEADER};

use super::store::{Entry, Lookup, Store};

/// The caches the API serves.
#[derive(Debug)]
pub struct Caches {
    /// The node the pods are on.
    pub node: String,
    /// The node's pods.
    pub pods: Arc<Store>,
    /// Every NAD of the cluster.
    pub nads: Arc<Store>,
    /// How long a pod lookup waits for the watch.
    pub pod_wait: Duration,
}

fn versioned(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from_static("v1"));
    response
}

fn found(entry: &Entry) -> Response {
    versioned(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            entry.body.clone(),
        )
            .into_response(),
    )
}

fn miss(status: StatusCode, reason: MissReason, message: String) -> Response {
    tracing::debug!(?reason, %message, "lookup not answered from the cache");
    let body = serde_json::to_vec(&ApiError { reason, message }).unwrap_or_default();
    versioned((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The router of the lookup API.
pub fn router(caches: Arc<Caches>) -> Router {
    Router::new()
        .route("/v1/pods/{namespace}/{name}", get(pod))
        .route("/v1/nads/{namespace}/{name}", get(nad))
        .fallback(not_served)
        .method_not_allowed_fallback(not_served)
        .with_state(caches)
}

async fn not_served(uri: axum::http::Uri, method: axum::http::Method) -> Response {
    miss(
        StatusCode::NOT_FOUND,
        MissReason::NotServed,
        format!(
            "{method} {uri} is not served by this node agent; it serves GET /v1/pods/{{namespace}}/{{name}}?uid= \
             and GET /v1/nads/{{namespace}}/{{name}}"
        ),
    )
}

async fn nad(
    State(caches): State<Arc<Caches>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Path((namespace, name)) = match path {
        Ok(path) => path,
        Err(e) => {
            return miss(
                StatusCode::BAD_REQUEST,
                MissReason::BadRequest,
                e.body_text(),
            );
        }
    };
    match caches.nads.get(&namespace, &name) {
        Lookup::Found(entry) => found(&entry),
        Lookup::Missing => miss(
            StatusCode::NOT_FOUND,
            MissReason::NotCached,
            format!(
                "NetworkAttachmentDefinition {namespace}/{name} is not in the node agent's cache"
            ),
        ),
        Lookup::NotSynced => miss(
            StatusCode::NOT_FOUND,
            MissReason::NotSynced,
            "the node agent's NetworkAttachmentDefinition cache is not in step with the API server"
                .into(),
        ),
    }
}

/// The pod's entry if it is cached with `uid` (or is a static pod).
fn pod_now(
    caches: &Caches,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Arc<Entry>, (MissReason, String)> {
    match caches.pods.get(namespace, name) {
        Lookup::Found(entry) if entry.uid == uid || entry.static_pod => Ok(entry),
        Lookup::Found(entry) => Err((
            MissReason::UidMismatch,
            format!(
                "pod {namespace}/{name} is cached with UID {}, not {uid}",
                entry.uid
            ),
        )),
        Lookup::Missing => Err((
            MissReason::NotCached,
            format!(
                "pod {namespace}/{name} (UID {uid}) is not among the pods of node {} in the node agent's cache",
                caches.node
            ),
        )),
        Lookup::NotSynced => Err((
            MissReason::NotSynced,
            format!(
                "the node agent's cache of the pods of node {} is not in step with the API server",
                caches.node
            ),
        )),
    }
}

/// The `uid` query parameter (UIDs need no percent-decoding: they are
/// UUIDs, anything else matches no pod).
fn uid_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("uid="))
        .filter(|uid| !uid.is_empty())
        .map(str::to_owned)
}

async fn pod(
    State(caches): State<Arc<Caches>>,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: axum::http::Uri,
) -> Response {
    let Path((namespace, name)) = match path {
        Ok(path) => path,
        Err(e) => {
            return miss(
                StatusCode::BAD_REQUEST,
                MissReason::BadRequest,
                e.body_text(),
            );
        }
    };
    let uid = uid_param(uri.query());
    let Some(uid) = uid.as_deref() else {
        return miss(
            StatusCode::BAD_REQUEST,
            MissReason::BadRequest,
            format!(
                "a lookup of pod {namespace}/{name} needs ?uid=<the pod's UID>: without it a recreated pod cannot be told from the old one"
            ),
        );
    };
    let mut changes = caches.pods.subscribe();
    let deadline = tokio::time::Instant::now() + caches.pod_wait;
    loop {
        changes.mark_unchanged();
        let last = match pod_now(&caches, &namespace, &name, uid) {
            Ok(entry) => return found(&entry),
            Err(miss) => miss,
        };
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                let (reason, message) = last;
                return miss(StatusCode::NOT_FOUND, reason, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use std::collections::HashMap;

    use super::super::store::key;
    use super::*;

    fn caches() -> Arc<Caches> {
        Arc::new(Caches {
            node: "vm".into(),
            pods: Arc::new(Store::default()),
            nads: Arc::new(Store::default()),
            pod_wait: Duration::from_millis(200),
        })
    }

    fn entry(uid: &str, body: &'static str) -> Entry {
        Entry {
            uid: uid.into(),
            static_pod: false,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    async fn get(caches: &Arc<Caches>, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = router(Arc::clone(caches))
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.headers()[VERSION_HEADER], "v1");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn pod_found_only_with_its_uid() {
        let caches = caches();
        caches.pods.replace(HashMap::from([(
            key("app", "web"),
            Arc::new(entry("u1", r#"{"metadata":{"uid":"u1"}}"#)),
        )]));
        let (status, body) = get(&caches, "/v1/pods/app/web?uid=u1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["metadata"]["uid"], "u1");
        let (status, body) = get(&caches, "/v1/pods/app/web?uid=u2").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["reason"], "UidMismatch");
        assert!(body["message"].as_str().unwrap().contains("app/web"));
        let (status, body) = get(&caches, "/v1/pods/app/web").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["reason"], "BadRequest");
    }

    #[tokio::test]
    async fn pod_lookup_waits_for_the_watch() {
        let caches = caches();
        caches.pods.replace(HashMap::new());
        let writer = Arc::clone(&caches);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            writer.pods.insert(
                key("app", "new"),
                entry("u9", r#"{"metadata":{"uid":"u9"}}"#),
            );
        });
        let (status, body) = get(&caches, "/v1/pods/app/new?uid=u9").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["metadata"]["uid"], "u9");
    }

    #[tokio::test]
    async fn pod_lookup_gives_up_after_the_wait() {
        let caches = caches();
        caches.pods.replace(HashMap::new());
        let started = std::time::Instant::now();
        let (status, body) = get(&caches, "/v1/pods/app/gone?uid=u1").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["reason"], "NotCached");
        assert!(
            body["message"].as_str().unwrap().contains("node vm"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn nads_and_sync_state() {
        let caches = caches();
        let (status, body) = get(&caches, "/v1/nads/app/net").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["reason"], "NotSynced");
        caches.nads.replace(HashMap::from([(
            key("app", "net"),
            Arc::new(entry("n1", r#"{"spec":{"config":"{}"}}"#)),
        )]));
        let (status, body) = get(&caches, "/v1/nads/app/net").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["spec"]["config"], "{}");
        let (status, body) = get(&caches, "/v1/nads/app/other").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["reason"], "NotCached");
    }

    #[tokio::test]
    async fn unknown_versions_and_paths_are_refused() {
        let caches = caches();
        let response = router(Arc::clone(&caches))
            .oneshot(
                Request::post("/v1/nads/app/net")
                    .body(Body::from("garbage"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        for uri in [
            "/v2/pods/app/web?uid=u1",
            "/",
            "/v1/pods/app",
            "/v1/secrets/a/b",
        ] {
            let (status, body) = get(&caches, uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body["reason"], "NotServed", "{uri}");
        }
    }
}
