//! The kubelet's PodResources API: gRPC v1 over a unix socket, asked which
//! devices the kubelet allocated to a pod's containers. Contacted only when
//! a NAD of the pod names a device resource, with one bounded deadline for
//! connecting and every call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::Code;

use crate::grpc_unix;
pub use crate::grpc_unix::ConnectError;

/// The generated messages and client of `proto/podresources_v1.proto`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod api {
    include!(concat!(env!("OUT_DIR"), "/client/v1.rs"));
}

use api::pod_resources_lister_client::PodResourcesListerClient;
use api::{GetPodResourcesRequest, ListPodResourcesRequest, PodResources};

/// How long the whole exchange with the kubelet (connect, Get, List) may
/// take.
pub const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer accepted (a List on a busy node); upstream's limit.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why the kubelet could not tell which devices a pod holds.
#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    /// Nothing answers on the socket.
    #[error("cannot reach the kubelet's PodResources API at {}: {source}", socket.display())]
    Connect {
        /// The socket tried.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: ConnectError,
    },
    /// The kubelet did not answer in time.
    #[error("the kubelet's PodResources API at {} did not answer within {}s", socket.display(), timeout.as_secs())]
    Timeout {
        /// The socket tried.
        socket: PathBuf,
        /// The deadline.
        timeout: Duration,
    },
    /// The kubelet answered with an error.
    #[error("the kubelet's PodResources API at {} failed: {code:?}: {message}", socket.display())]
    Call {
        /// The socket tried.
        socket: PathBuf,
        /// The gRPC status code.
        code: Code,
        /// The kubelet's message.
        message: String,
    },
}

/// The resources the kubelet allocated to the pod `namespace/name`, or
/// `None` when the kubelet does not know the pod. Uses `Get` when the
/// kubelet serves it, else `List` (Kubernetes before 1.34 has `Get` off by
/// default and answers it with an error).
pub async fn pod_resources(
    socket: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<PodResources>, PodResourcesError> {
    tokio::time::timeout(timeout, ask(socket, namespace, name))
        .await
        .map_err(|_| PodResourcesError::Timeout {
            socket: socket.to_owned(),
            timeout,
        })?
}

async fn ask(
    socket: &Path,
    namespace: &str,
    name: &str,
) -> Result<Option<PodResources>, PodResourcesError> {
    let connect_failed = |source: ConnectError| PodResourcesError::Connect {
        socket: socket.to_owned(),
        source,
    };
    let channel = grpc_unix::connect(socket, "PodResources")
        .await
        .map_err(connect_failed)?;
    let client = PodResourcesListerClient::with_origin(channel, grpc_unix::origin())
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let failed = |status: tonic::Status| PodResourcesError::Call {
        socket: socket.to_owned(),
        code: status.code(),
        message: status.message().to_owned(),
    };
    let get = GetPodResourcesRequest {
        pod_name: name.to_owned(),
        pod_namespace: namespace.to_owned(),
    };
    let answer = retry_while_rate_limited(|| {
        let mut client = client.clone();
        let get = get.clone();
        async move { client.get(get).await }
    })
    .await;
    match answer {
        Ok(answer) => {
            if let Some(pod) = answer.into_inner().pod_resources {
                return Ok(Some(pod));
            }
        }
        Err(status)
            if matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ) =>
        {
            return Err(failed(status));
        }
        Err(status) => {
            tracing::debug!(code = ?status.code(), message = status.message(), "PodResources Get unavailable; using List");
        }
    }
    let list = retry_while_rate_limited(|| {
        let mut client = client.clone();
        async move { client.list(ListPodResourcesRequest {}).await }
    })
    .await
    .map_err(failed)?
    .into_inner();
    Ok(list
        .pod_resources
        .into_iter()
        .find(|p| p.namespace == namespace && p.name == name))
}

/// Calls again while the kubelet answers `ResourceExhausted` (its
/// PodResources API is rate limited: 100 calls per second, bursts of 10),
/// pausing 20 ms, doubling up to 500 ms; the caller's deadline bounds it.
async fn retry_while_rate_limited<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = Duration::from_millis(20);
    loop {
        match call().await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                tracing::debug!(
                    message = status.message(),
                    ?pause,
                    "the kubelet's PodResources API is busy; retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kubelet.sock");
        let err = pod_resources(&socket, "ns", "p", KUBELET_TIMEOUT)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PodResourcesError::Connect { .. }), "{text}");
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }

    #[tokio::test]
    async fn a_silent_socket_times_out() {
        // A listener that accepts and never answers HTTP/2.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kubelet.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let err = pod_resources(&socket, "ns", "p", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, PodResourcesError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("did not answer"), "{err}");
        hold.abort();
    }
}
