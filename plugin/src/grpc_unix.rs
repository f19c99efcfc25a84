//! One gRPC connection over a unix socket, for the node-local APIs the
//! plugin asks (the kubelet's PodResources API, the container runtime's
//! CRI API): a single hyper HTTP/2 connection driven by a task, wrapped as
//! a service that tonic's generated clients take. No tonic `Channel`: its
//! balancing, buffering and reconnection are not needed for a few calls
//! and cost binary size.
//!
//! Deadlines are the caller's: wrap the connection and the calls in one
//! `tokio::time::timeout`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response, Uri};

/// Why no HTTP/2 connection to a unix socket was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The socket cannot be connected to.
    #[error(transparent)]
    Socket(std::io::Error),
    /// The HTTP/2 handshake failed (shown with its sources).
    #[error("{}", chain(.0))]
    Handshake(#[source] hyper::Error),
    /// The connection failed after the handshake, e.g. a peer that does
    /// not speak HTTP/2 (see [`UnixChannel::connection_error`]).
    #[error("the connection failed: {0}")]
    Failed(String),
}

/// An error with its chain of sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// The origin handed to tonic's clients: it only fills in HTTP/2's
/// `:scheme` and `:authority`, which a unix socket server ignores.
pub fn origin() -> Uri {
    Uri::from_static("http://localhost")
}

/// An HTTP/2 connection to a unix socket, as a service for tonic's
/// generated clients (`XClient::with_origin(channel, origin())`). Cheap to
/// clone: clones share the connection. The connection ends when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct UnixChannel {
    sender: SendRequest<Body>,
    /// `Some` once the connection ended: with its error, if any.
    ended: watch::Receiver<Option<Option<String>>>,
}

impl UnixChannel {
    /// Why the connection failed, once it has: a call that failed with
    /// `Cancelled` or `Unavailable` only says the connection went away;
    /// this is what hyper saw. Waits up to `wait` for the connection to
    /// end; `None` if it did not, or ended cleanly.
    pub async fn connection_error(&self, wait: Duration) -> Option<String> {
        let mut ended = self.ended.clone();
        let result = tokio::time::timeout(wait, ended.wait_for(Option::is_some)).await;
        result.ok()?.ok()?.clone().flatten()
    }
}

/// Connects to `socket` and does the HTTP/2 handshake; `what` names the
/// peer in the debug log when the connection ends with an error.
pub async fn connect(socket: &Path, what: &'static str) -> Result<UnixChannel, ConnectError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(ConnectError::Socket)?;
    let (sender, connection) = hyper::client::conn::http2::handshake::<_, _, Body>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(ConnectError::Handshake)?;
    let (ended_tx, ended) = watch::channel(None);
    tokio::spawn(async move {
        let error = connection.await.err().map(|e| {
            tracing::debug!(error = %e, "{what} connection ended");
            chain(&e)
        });
        let _ = ended_tx.send(Some(error));
    });
    Ok(UnixChannel { sender, ended })
}

impl tower::Service<Request<Body>> for UnixChannel {
    type Response = Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let sent = self.sender.send_request(request);
        Box::pin(sent)
    }
}
