//! A fake container runtime (CRI `RuntimeService` on a unix socket, in
//! the test process) that knows pods' sandboxes, and `multus
//! sync-networks` run as the node agent runs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::CNI_BIN;

#[allow(clippy::all, missing_debug_implementations)]
mod runtime {
    include!(concat!(env!("OUT_DIR"), "/full/runtime.v1.rs"));
}

use runtime::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use runtime::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxMetadata, PodSandboxState,
    PodSandboxStatus, PodSandboxStatusRequest, PodSandboxStatusResponse, VersionRequest,
    VersionResponse,
};

/// Sandbox ID and network namespace (`None`: the host's) by pod UID.
pub type Sandboxes = HashMap<String, (String, Option<PathBuf>)>;

/// The fake runtime.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    pub sandboxes: Arc<Mutex<Sandboxes>>,
}

#[tonic::async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(
        &self,
        _: tonic::Request<VersionRequest>,
    ) -> Result<tonic::Response<VersionResponse>, tonic::Status> {
        Ok(tonic::Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: tonic::Request<ListPodSandboxRequest>,
    ) -> Result<tonic::Response<ListPodSandboxResponse>, tonic::Status> {
        let uid = request
            .into_inner()
            .filter
            .and_then(|f| f.label_selector.get("io.kubernetes.pod.uid").cloned())
            .unwrap_or_default();
        let items = self
            .sandboxes
            .lock()
            .unwrap()
            .get(&uid)
            .map(|(id, _)| PodSandbox {
                id: id.clone(),
                metadata: Some(PodSandboxMetadata {
                    name: "pod".into(),
                    uid: uid.clone(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                state: PodSandboxState::SandboxReady as i32,
                created_at: 1,
                labels: HashMap::from([("io.kubernetes.pod.uid".to_owned(), uid.clone())]),
                ..PodSandbox::default()
            })
            .into_iter()
            .collect();
        Ok(tonic::Response::new(ListPodSandboxResponse { items }))
    }

    async fn pod_sandbox_status(
        &self,
        request: tonic::Request<PodSandboxStatusRequest>,
    ) -> Result<tonic::Response<PodSandboxStatusResponse>, tonic::Status> {
        let id = request.into_inner().pod_sandbox_id;
        let sandboxes = self.sandboxes.lock().unwrap();
        let Some((_, netns)) = sandboxes.values().find(|(s, _)| *s == id) else {
            return Err(tonic::Status::not_found(format!("sandbox {id}")));
        };
        // containerd's verbose info: the OCI spec's namespaces.
        let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "ipc"})];
        if let Some(path) = netns {
            namespaces.push(json!({"type": "network", "path": path}));
        }
        let info = json!({"pid": 4242, "runtimeSpec": {"linux": {"namespaces": namespaces}}});
        Ok(tonic::Response::new(PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                id: id.clone(),
                state: PodSandboxState::SandboxReady as i32,
                created_at: 1,
                ..PodSandboxStatus::default()
            }),
            info: HashMap::from([("info".to_owned(), info.to_string())]),
        }))
    }
}

pub fn serve_runtime(socket: &Path, runtime: FakeRuntime) -> tokio::sync::oneshot::Sender<()> {
    super::serve_grpc(
        socket,
        tonic::service::Routes::new(RuntimeServiceServer::new(runtime)),
    )
}

/// Runs `multus sync-networks` as the agent does; the outcome.
pub fn sync(conf: &Value, pod: &Value, cri: &Path) -> Value {
    let input = json!({"multusConfig": conf, "pod": pod, "criSocket": cri});
    let mut child = Command::new(env!("CARGO_BIN_EXE_multus"))
        .arg("sync-networks")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_PATH", CNI_BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sync-networks failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not an outcome ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
