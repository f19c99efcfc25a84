//! A fake Kubernetes API server (a real HTTP server on a background thread
//! of the test process) serving one pod and its NADs, recording every
//! request; and the kubeconfig that points `multus` at it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Sandbox;

/// What the fake API server serves and saw.
#[derive(Default)]
pub struct Api {
    pub pod: Value,
    pub nads: Vec<(String, String, Value)>,
    /// ResourceClaims (resource.k8s.io/v1) by their metadata.
    pub claims: Vec<Value>,
    /// ResourceSlices, all answered to any LIST.
    pub slices: Vec<Value>,
    /// Refuse claim status writes with 403.
    pub claim_status_refused: bool,
    pub requests: Vec<(String, String, String)>,
    /// The query string of each request, in the order of `requests`.
    pub queries: Vec<String>,
    /// Answer every request with 401 (a rejected token).
    pub unauthorized: bool,
}

/// The server's state, shared with the test.
pub type Shared = Arc<Mutex<Api>>;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(api): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let mut api = api.lock().unwrap();
    api.requests.push((
        method.to_string(),
        path.clone(),
        String::from_utf8_lossy(&body).into_owned(),
    ));
    api.queries.push(uri.query().unwrap_or_default().to_owned());
    let ns = api.pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let name = api.pod["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if api.unauthorized {
        let status = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401,"message":"Unauthorized"});
        return json_response(StatusCode::UNAUTHORIZED, &status);
    }
    let pod_path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    if method == Method::GET && path == pod_path {
        return json_response(StatusCode::OK, &api.pod);
    }
    if method == Method::PATCH && path == format!("{pod_path}/status") {
        return json_response(StatusCode::OK, &api.pod);
    }
    if method == Method::POST && path.ends_with("/events") {
        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
        return json_response(StatusCode::CREATED, &event);
    }
    if let Some(response) = dra_response(&api, &method, &path) {
        return response;
    }
    for (nad_ns, nad_name, nad) in &api.nads {
        if method == Method::GET
            && path
                == format!(
                    "/apis/k8s.cni.cncf.io/v1/namespaces/{nad_ns}/network-attachment-definitions/{nad_name}"
                )
        {
            return json_response(StatusCode::OK, nad);
        }
    }
    let status = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":format!("{path} not found")});
    json_response(StatusCode::NOT_FOUND, &status)
}

/// The answer of the DRA API (`resource.k8s.io/v1`), if `path` is its.
fn dra_response(api: &Api, method: &Method, path: &str) -> Option<Response> {
    let rest = path.strip_prefix("/apis/resource.k8s.io/v1/")?;
    if method == Method::GET && rest == "resourceslices" {
        let list = json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSliceList",
            "metadata": {}, "items": api.slices});
        return Some(json_response(StatusCode::OK, &list));
    }
    let (object, is_status) = match rest.strip_suffix("/status") {
        Some(object) => (object, true),
        None => (rest, false),
    };
    let name = object.rsplit('/').next().unwrap_or_default();
    let claim = api.claims.iter().find(|c| {
        let ns = c["metadata"]["namespace"].as_str().unwrap_or_default();
        object == format!("namespaces/{ns}/resourceclaims/{name}") && c["metadata"]["name"] == name
    });
    let Some(claim) = claim else {
        let status = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,
            "message":format!("resourceclaims.resource.k8s.io \"{name}\" not found")});
        return Some(json_response(StatusCode::NOT_FOUND, &status));
    };
    if is_status && method == Method::PATCH {
        if api.claim_status_refused {
            let status = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,
                "message":format!("resourceclaims.resource.k8s.io \"{name}\" is forbidden: User \"system:serviceaccount:multus:plugin\" cannot patch resource \"resourceclaims/status\" in API group \"resource.k8s.io\"")});
            return Some(json_response(StatusCode::FORBIDDEN, &status));
        }
        return Some(json_response(StatusCode::OK, claim));
    }
    (method == Method::GET && !is_status).then(|| json_response(StatusCode::OK, claim))
}

/// Runs the fake API server on a background thread; returns its address.
pub fn serve(api: Shared) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().fallback(handle).with_state(api);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), stop_tx)
}

/// The shared state of a server serving `pod` and the NADs
/// (namespace, name, config) `nads`.
pub fn api_with(pod: Value, nads: &[(&str, &str, &Value)]) -> Shared {
    Arc::new(Mutex::new(Api {
        pod,
        nads: nads
            .iter()
            .map(|(ns, name, config)| ((*ns).into(), (*name).into(), nad(ns, name, config)))
            .collect(),
        ..Api::default()
    }))
}

/// The requests of `method` whose path ends with `suffix`, by their bodies.
pub fn request_bodies(api: &Shared, method: &str, suffix: &str) -> Vec<String> {
    api.lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(m, p, _)| m == method && p.ends_with(suffix))
        .map(|(_, _, body)| body.clone())
        .collect()
}

/// The body of the first network-status patch and the network-status
/// annotation it sets.
pub fn network_status_patch(api: &Shared) -> (Value, Vec<Value>) {
    let patch = request_bodies(api, "PATCH", "/status")
        .into_iter()
        .next()
        .expect("a status update");
    let body: Value = serde_json::from_str(&patch).unwrap();
    let status = serde_json::from_str(
        body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    (body, status)
}

/// (name, interface, default) of each network-status entry.
pub fn status_summary(status: &[Value]) -> Vec<(&str, &str, bool)> {
    status
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["interface"].as_str().unwrap(),
                s["default"] == true,
            )
        })
        .collect()
}

/// A NAD object with `config` as its spec.config.
pub fn nad(ns: &str, name: &str, config: &Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns, "uid": "nad-uid"},
        "spec": {"config": config.to_string()}
    })
}

/// A kubeconfig (token file) for the server at `addr`.
pub fn write_kubeconfig(sb: &Sandbox, addr: SocketAddr) -> std::path::PathBuf {
    let token = sb.path("token");
    std::fs::write(&token, "test-token").unwrap();
    let path = sb.path("multus.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\nusers:\n- name: u\n  user:\n    tokenFile: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            token.display()
        ),
    )
    .unwrap();
    path
}
