//! The container runtime's CRI API (runtime.v1, gRPC over a unix socket),
//! asked for a running pod's sandbox and its network namespace: what a
//! hot-plug attach or detach on a running pod acts in, when no CNI ADD
//! handed them to us.
//!
//! Read only, on one connection, within one deadline:
//! 1. `Version`: the runtime's name (`containerd`, `cri-o`), for messages
//!    and logs; it also shows early that the socket serves CRI runtime.v1;
//! 2. `ListPodSandbox`, filtered by the kubelet's pod UID label
//!    (`io.kubernetes.pod.uid`) and the READY state: the pod's live sandbox
//!    (the newest, should a runtime list several);
//! 3. `PodSandboxStatus` with `verbose`: the sandbox's state again (it may
//!    have stopped in between), whether it uses the node's network
//!    namespace (hostNetwork), and, in the runtime's verbose `info`, the
//!    path of its network namespace. CRI does not define that path: both
//!    containerd and CRI-O put a JSON object under the key `"info"` whose
//!    `runtimeSpec` is the sandbox's OCI runtime spec, and the spec's
//!    `linux.namespaces` entry of type `network` has the path
//!    (containerd: `/var/run/netns/cni-<uuid>`; CRI-O:
//!    `/var/run/netns/<uuid>`, under its `namespaces_dir`).
//!
//! hostNetwork is read from the status's namespace options (`NODE`), not
//! from the spec alone: CRI-O pins the node's network namespace as well,
//! so a hostNetwork sandbox's spec names a path there too (CRI-O's spec
//! annotation `io.kubernetes.cri-o.HostNetwork` tells it apart when the
//! status lacks the options). containerd leaves the network namespace out
//! of a hostNetwork sandbox's spec.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tonic::Code;

use crate::grpc_unix;
pub use crate::grpc_unix::ConnectError;

/// The generated messages and client of `proto/cri_runtime_v1.proto`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod api {
    include!(concat!(env!("OUT_DIR"), "/client/runtime.v1.rs"));
}

use api::runtime_service_client::RuntimeServiceClient;
use api::{
    ListPodSandboxRequest, NamespaceMode, PodSandbox, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PodSandboxStatusRequest, PodSandboxStatusResponse, VersionRequest,
};

/// containerd's CRI socket; CRI-O's is [`CRIO_SOCKET`].
pub const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";

/// CRI-O's CRI socket.
pub const CRIO_SOCKET: &str = "/var/run/crio/crio.sock";

/// A reasonable deadline for [`find_sandbox`]: three small calls to a
/// local daemon.
pub const CRI_TIMEOUT: Duration = Duration::from_secs(5);

/// The label the kubelet puts on every sandbox: the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// The CRI API version asked for in `Version`.
const CRI_API_VERSION: &str = "v1";

/// Largest answer accepted: a verbose status carries the whole OCI spec
/// of the sandbox (tens of KiB), far below this.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A pod's running sandbox, as its container runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox ID (CNI's `CNI_CONTAINERID`).
    pub id: String,
    /// The sandbox's network namespace (CNI's `CNI_NETNS`); `None` when it
    /// uses the node's (a hostNetwork pod).
    pub netns: Option<PathBuf>,
    /// The runtime's name from `Version`: `containerd`, `cri-o`.
    pub runtime: String,
}

/// Why the container runtime could not tell a pod's sandbox.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// Nothing answers on the socket (missing, refused, not HTTP/2).
    #[error("cannot reach the container runtime's CRI API at {}: {source}", socket.display())]
    Connect {
        /// The socket tried.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: ConnectError,
    },
    /// The runtime did not answer in time.
    #[error("the container runtime's CRI API at {} did not answer within {timeout:?}", socket.display())]
    Timeout {
        /// The socket tried.
        socket: PathBuf,
        /// The deadline.
        timeout: Duration,
    },
    /// The runtime answered a call with an error.
    #[error("the container runtime's CRI API at {} failed {call}: {code:?}: {message}{}", socket.display(), unimplemented_hint(*.code))]
    Call {
        /// The socket tried.
        socket: PathBuf,
        /// The CRI method called.
        call: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The runtime's message.
        message: String,
    },
    /// The runtime's status of the sandbox does not tell its network
    /// namespace.
    #[error("the container runtime's CRI API at {} gave an unusable status of sandbox {sandbox}: {reason}", socket.display())]
    BadInfo {
        /// The socket tried.
        socket: PathBuf,
        /// The sandbox ID.
        sandbox: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn unimplemented_hint(code: Code) -> &'static str {
    if code == Code::Unimplemented {
        " (the runtime does not serve CRI runtime.v1 on this socket)"
    } else {
        ""
    }
}

/// The READY sandbox of the pod whose UID is `pod_uid`, with its network
/// namespace, or `None` when the runtime has no READY sandbox for it (not
/// started yet, stopped, or on another node). Connecting and all calls
/// share `timeout`.
pub async fn find_sandbox(
    socket: &Path,
    pod_uid: &str,
    timeout: Duration,
) -> Result<Option<Sandbox>, CriError> {
    tokio::time::timeout(timeout, ask(socket, pod_uid))
        .await
        .map_err(|_| CriError::Timeout {
            socket: socket.to_owned(),
            timeout,
        })?
}

/// A CRI client on its own connection, and the socket for errors.
struct Runtime<'a> {
    socket: &'a Path,
    channel: grpc_unix::UnixChannel,
    client: RuntimeServiceClient<grpc_unix::UnixChannel>,
}

/// How long a failed call waits for the connection's own error.
const CONNECTION_ERROR_WAIT: Duration = Duration::from_millis(250);

impl<'a> Runtime<'a> {
    async fn connect(socket: &'a Path) -> Result<Self, CriError> {
        let connected = grpc_unix::connect(socket, "CRI").await;
        let channel = connected.map_err(|source| CriError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
        let client = RuntimeServiceClient::with_origin(channel.clone(), grpc_unix::origin())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            socket,
            channel,
            client,
        })
    }

    /// The error of a failed `call`: the connection's when it broke
    /// (tonic then only says "operation was canceled"), else the
    /// runtime's answer.
    async fn failed(&self, call: &'static str, status: tonic::Status) -> CriError {
        let broken = matches!(
            status.code(),
            Code::Cancelled | Code::Unavailable | Code::Unknown
        );
        if broken && let Some(error) = self.channel.connection_error(CONNECTION_ERROR_WAIT).await {
            return CriError::Connect {
                socket: self.socket.to_owned(),
                source: ConnectError::Failed(error),
            };
        }
        CriError::Call {
            socket: self.socket.to_owned(),
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    async fn runtime_name(&mut self) -> Result<String, CriError> {
        let request = VersionRequest {
            version: CRI_API_VERSION.to_owned(),
        };
        let version = match self.client.version(request).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => return Err(self.failed("Version", status).await),
        };
        tracing::debug!(
            runtime = version.runtime_name,
            version = version.runtime_version,
            api = version.runtime_api_version,
            "CRI runtime"
        );
        Ok(version.runtime_name)
    }

    async fn list(
        &mut self,
        filter: Option<PodSandboxFilter>,
    ) -> Result<Vec<PodSandbox>, CriError> {
        let request = ListPodSandboxRequest { filter };
        match self.client.list_pod_sandbox(request).await {
            Ok(answer) => Ok(answer.into_inner().items),
            Err(status) => Err(self.failed("ListPodSandbox", status).await),
        }
    }

    /// The verbose status of sandbox `id`; `None` when the runtime no
    /// longer knows it.
    async fn status(&mut self, id: &str) -> Result<Option<PodSandboxStatusResponse>, CriError> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: true,
        };
        match self.client.pod_sandbox_status(request).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.failed("PodSandboxStatus", status).await),
        }
    }

    fn bad_info(&self, sandbox: &str, reason: impl Into<String>) -> CriError {
        CriError::BadInfo {
            socket: self.socket.to_owned(),
            sandbox: sandbox.to_owned(),
            reason: reason.into(),
        }
    }
}

async fn ask(socket: &Path, pod_uid: &str) -> Result<Option<Sandbox>, CriError> {
    let mut runtime = Runtime::connect(socket).await?;
    let runtime_name = runtime.runtime_name().await?;
    let ready = PodSandboxState::SandboxReady as i32;
    let filter = PodSandboxFilter {
        id: String::new(),
        state: Some(PodSandboxStateValue { state: ready }),
        label_selector: HashMap::from([(POD_UID_LABEL.to_owned(), pod_uid.to_owned())]),
    };
    let sandboxes = runtime.list(Some(filter)).await?;
    // The runtime filtered already; checked again, as the filter is only
    // the runtime's word.
    let Some(listed) = sandboxes
        .into_iter()
        .filter(|s| {
            s.state == ready
                && (s.labels.get(POD_UID_LABEL).map(String::as_str) == Some(pod_uid)
                    || s.metadata.as_ref().is_some_and(|m| m.uid == pod_uid))
        })
        .max_by_key(|s| s.created_at)
    else {
        tracing::debug!(pod_uid, runtime = runtime_name, "no READY sandbox");
        return Ok(None);
    };
    let Some(answer) = runtime.status(&listed.id).await? else {
        tracing::debug!(
            sandbox = listed.id,
            "the sandbox went away after it was listed"
        );
        return Ok(None);
    };
    let Some(status) = &answer.status else {
        return Err(runtime.bad_info(&listed.id, "the answer has no status"));
    };
    if status.state != ready {
        tracing::debug!(
            sandbox = listed.id,
            "the sandbox stopped after it was listed"
        );
        return Ok(None);
    }
    let netns = if network_mode(&answer) == Some(NamespaceMode::Node) {
        None
    } else {
        match netns_from_info(&answer.info)
            .map_err(|reason| runtime.bad_info(&listed.id, reason))?
        {
            Netns::Path(path) => Some(path),
            Netns::Closed => {
                // containerd: the namespace was removed; the sandbox is
                // on its way out (the kubelet will make a new one).
                tracing::debug!(
                    sandbox = listed.id,
                    "the sandbox's network namespace is closed"
                );
                return Ok(None);
            }
            Netns::Node if network_mode(&answer) == Some(NamespaceMode::Pod) => {
                return Err(runtime.bad_info(
                    &listed.id,
                    "its status says it has its own network namespace, but its verbose info names no network namespace path",
                ));
            }
            Netns::Node => None,
        }
    };
    Ok(Some(Sandbox {
        id: listed.id,
        netns,
        runtime: runtime_name,
    }))
}

/// The network namespace mode of the sandbox's status (set by the kubelet
/// from the pod's hostNetwork), when the runtime reports it (containerd
/// and CRI-O do).
fn network_mode(answer: &PodSandboxStatusResponse) -> Option<NamespaceMode> {
    let options = answer
        .status
        .as_ref()?
        .linux
        .as_ref()?
        .namespaces
        .as_ref()?
        .options
        .as_ref()?;
    NamespaceMode::try_from(options.network).ok()
}

/// What the verbose info of a sandbox tells of its network namespace.
#[derive(Debug, PartialEq, Eq)]
enum Netns {
    /// Its own, at this path.
    Path(PathBuf),
    /// The node's: no network namespace with a path in its spec.
    Node,
    /// Its own, already removed (containerd's `netNamespaceClosed`).
    Closed,
}

/// The network namespace in a runtime's verbose `info`. The key `"info"`
/// is read first (containerd and CRI-O use it), then any other key whose
/// value is a JSON object with a `runtimeSpec` (or containerd's
/// `sandboxMetadata`). `Err` says why nothing could be read.
fn netns_from_info(info: &HashMap<String, String>) -> Result<Netns, String> {
    if info.is_empty() {
        return Err("the runtime gave no verbose info".to_owned());
    }
    let mut keys: Vec<&String> = info.keys().filter(|k| *k != "info").collect();
    keys.sort();
    if let Some(main) = info.get("info") {
        let value: Value = serde_json::from_str(main)
            .map_err(|e| format!("its verbose info \"info\" is not JSON: {e}"))?;
        if let Some(found) = netns_from_object(&value) {
            return Ok(found);
        }
    }
    for key in keys {
        // Other keys may hold anything; only a spec is of use.
        let Ok(value) = serde_json::from_str::<Value>(&info[key]) else {
            continue;
        };
        if let Some(found) = netns_from_object(&value) {
            return Ok(found);
        }
    }
    let mut keys: Vec<&String> = info.keys().collect();
    keys.sort();
    Err(format!(
        "its verbose info (keys {keys:?}) has no runtimeSpec naming its namespaces"
    ))
}

/// CRI-O's annotation on a sandbox's spec: whether it is hostNetwork (as
/// a JSON pointer into the spec).
const CRIO_HOST_NETWORK: &str = "/annotations/io.kubernetes.cri-o.HostNetwork";

/// The network namespace in one verbose info object: containerd's
/// `SandboxInfo` (`netNamespaceClosed`, `runtimeSpec`, `sandboxMetadata`)
/// or CRI-O's (`runtimeSpec`).
fn netns_from_object(info: &Value) -> Option<Netns> {
    if info.get("netNamespaceClosed").and_then(Value::as_bool) == Some(true) {
        return Some(Netns::Closed);
    }
    if let Some(spec) = info.get("runtimeSpec").filter(|s| s.is_object()) {
        // CRI-O pins the node's namespace too, for a hostNetwork pod: its
        // spec has a network path, to the node's namespace.
        if spec.pointer(CRIO_HOST_NETWORK).and_then(Value::as_str) == Some("true") {
            return Some(Netns::Node);
        }
        let path = spec
            .pointer("/linux/namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|ns| ns.get("type").and_then(Value::as_str) == Some("network"))
            .find_map(|ns| {
                ns.get("path")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
            });
        return Some(path.map_or(Netns::Node, |p| Netns::Path(PathBuf::from(p))));
    }
    // containerd before the sandbox's spec is written: its own record,
    // with an empty NetNSPath for the node's namespace.
    let metadata = info
        .pointer("/sandboxMetadata/Metadata")
        .filter(|m| m.is_object())?;
    Some(
        match metadata
            .get("NetNSPath")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            Some(path) => Netns::Path(PathBuf::from(path)),
            None => Netns::Node,
        },
    )
}

#[cfg(test)]
mod tests;
