//! A mock Kubernetes API server for in-process tests: kube's client over
//! tower-test's mock service. The test takes each request the client makes
//! ([`next_request`], [`expect_request`]), looks at it as a [`Seen`] record and answers it
//! ([`respond_json`], [`status_body`]); or it scripts the requests in
//! advance ([`Step`], [`Reply`]) and lets [`serve`] answer them in order.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle, SendResponse};

/// The test's end of the mock API server: the requests of the client.
pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// Answers one request.
pub type Responder = SendResponse<Response<Body>>;

/// A kube client whose API server is the returned handle.
pub fn mock_client(namespace: &str) -> (kube::Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, namespace), handle)
}

/// One request as the mock API server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// The query string, empty when there is none.
    pub query: String,
    /// The `Content-Type` header, empty when there is none.
    pub content_type: String,
    /// The JSON body; `Null` when the request has no body.
    pub body: Value,
}

impl Seen {
    /// The decoded value of query parameter `name` (`%XX` and `+`
    /// decoded), `None` when absent.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// Reads a request, its body included. A body that is not JSON fails
    /// the test.
    pub async fn read(request: Request<Body>) -> Self {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("the request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{} {}: the body is not JSON ({e}): {}",
                    parts.method,
                    parts.uri,
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Self {
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            body,
        }
    }
}

/// `%XX` and `+` of a query component decoded (invalid escapes kept).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The next request of the client, read, and its responder. Fails the test
/// when none comes within `deadline` or the client is gone.
pub async fn next_request(handle: &mut ApiHandle, deadline: Duration) -> (Seen, Responder) {
    let (request, send) = tokio::time::timeout(deadline, handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request within {deadline:?}"))
        .expect("the client is gone");
    (Seen::read(request).await, send)
}

/// The next request, which must be `method` on `path`, and its responder.
pub async fn expect_request(
    handle: &mut ApiHandle,
    method: Method,
    path: &str,
    deadline: Duration,
) -> (Seen, Responder) {
    let (request, send) = tokio::time::timeout(deadline, handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request within {deadline:?}; expected {method} {path}"))
        .expect("the client is gone");
    let seen = Seen::read(request).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&method, path),
        "unexpected request {seen:#?}"
    );
    (seen, send)
}

/// Asserts that the client makes no request within `quiet`.
pub async fn assert_silent(handle: &mut ApiHandle, quiet: Duration) {
    if let Ok(Some((request, _))) = tokio::time::timeout(quiet, handle.next_request()).await {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

/// Answers with `status` and `body` as JSON.
pub fn respond_json(send: Responder, status: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// A Kubernetes `Status` object of a failed request.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// What the scripted server answers to one request.
#[derive(Debug)]
pub enum Reply {
    Json(StatusCode, Value),
    /// A body that is not JSON (no `Content-Type`).
    Text(StatusCode, &'static str),
    /// Never answer (the client must time out).
    Never,
}

/// Assertions on a request's JSON body.
pub type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One expected request of a script and its answer.
pub struct Step {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    check_body: Option<BodyCheck>,
    reply: Reply,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .field("check_body", &self.check_body.is_some())
            .field("reply", &self.reply)
            .finish()
    }
}

impl Step {
    pub fn new(method: Method, path: &'static str, reply: Reply) -> Self {
        Self {
            method,
            path,
            content_type: None,
            check_body: None,
            reply,
        }
    }

    pub fn get(path: &'static str, reply: Reply) -> Self {
        Self::new(Method::GET, path, reply)
    }

    /// The request must carry this `Content-Type`.
    pub fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// Assertions on the request's JSON body.
    pub fn body(mut self, check: impl Fn(&Value) + Send + 'static) -> Self {
        self.check_body = Some(Box::new(check));
        self
    }
}

/// Serves `steps` in order, asserting each request; then answers nothing.
/// The returned task fails when a request differs from the script; it
/// returns the responders of the [`Reply::Never`] steps (kept alive, so that
/// their requests time out rather than fail).
pub fn serve(mut handle: ApiHandle, steps: Vec<Step>) -> JoinHandle<Vec<Responder>> {
    tokio::spawn(async move {
        let mut parked = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("step {index}: client gone before request"));
            let seen = Seen::read(request).await;
            assert_eq!(seen.method, step.method, "step {index}: method");
            assert_eq!(seen.path, step.path, "step {index}: path");
            if let Some(want) = step.content_type {
                assert_eq!(seen.content_type, want, "step {index}: content-type");
            }
            if let Some(check) = step.check_body {
                check(&seen.body);
            }
            match step.reply {
                Reply::Json(status, value) => respond_json(send, status, &value),
                Reply::Text(status, text) => send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(text.as_bytes().to_vec()))
                        .unwrap(),
                ),
                Reply::Never => parked.push(send),
            }
        }
        parked
    })
}
