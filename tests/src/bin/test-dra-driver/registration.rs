//! The kubelet's plugin registration service (`pluginregistration.Registration`),
//! served on h2's frame codec instead of tonic.
//!
//! The kubelet's plugin watcher dials a registration socket with the bare
//! socket path as its gRPC target, so grpc-go sends that path as the
//! HTTP/2 `:authority` of every call. h2's server, under tonic, rejects a
//! request whose authority is not a host (RST_STREAM with PROTOCOL_ERROR)
//! before any service sees it, and has no option to accept it. The
//! registration service is two unary methods on one short connection, so
//! this module answers them itself: h2's codec (its `unstable` API) reads
//! and writes the frames and their HPACK-coded headers; this module keeps
//! the connection (settings, pings), collects each request's body and
//! answers with headers, one gRPC message and trailers. The authority is
//! never looked at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use h2::frame::{Data, Frame, Headers, Ping, Pseudo, Settings, StreamId};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message as _;
use tokio::io::AsyncReadExt as _;

use crate::api::pluginregistration as reg;

/// The client's connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const GET_INFO: &str = "/pluginregistration.Registration/GetInfo";
const NOTIFY: &str = "/pluginregistration.Registration/NotifyRegistrationStatus";
/// gRPC status codes used here.
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;

/// The registration service: what GetInfo answers and the last status the
/// kubelet reported.
#[derive(Debug, Clone)]
pub struct Registration {
    info: reg::PluginInfo,
    status: Arc<Mutex<Option<reg::RegistrationStatus>>>,
}

impl Registration {
    pub fn new(info: reg::PluginInfo) -> Self {
        Self {
            info,
            status: Arc::default(),
        }
    }

    /// The last registration status the kubelet reported, if any.
    #[cfg(test)]
    pub fn status(&self) -> Option<reg::RegistrationStatus> {
        self.status.lock().unwrap().clone()
    }

    /// The answer to one call: the response message, or a gRPC status code
    /// and message.
    fn answer(&self, path: &str, request: &[u8]) -> Result<Vec<u8>, (u32, String)> {
        match path {
            GET_INFO => Ok(self.info.encode_to_vec()),
            NOTIFY => {
                let status = reg::RegistrationStatus::decode(request)
                    .map_err(|e| (INTERNAL, format!("bad RegistrationStatus: {e}")))?;
                if status.plugin_registered {
                    eprintln!(
                        "test-dra-driver: registered with the kubelet ({})",
                        self.info.supported_versions.join(", ")
                    );
                } else {
                    eprintln!(
                        "test-dra-driver: the kubelet refused the registration: {}",
                        status.error
                    );
                }
                *self.status.lock().unwrap() = Some(status);
                Ok(reg::RegistrationStatusResponse {}.encode_to_vec())
            }
            other => Err((UNIMPLEMENTED, format!("no method {other}"))),
        }
    }

    /// Serves every connection of `listener` until `stop` completes.
    pub async fn serve(self, listener: tokio::net::UnixListener, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let service = self.clone();
                        tokio::spawn(async move {
                            match service.connection(stream).await {
                                Err(e) if !hung_up(&e) => {
                                    eprintln!("test-dra-driver: registration connection: {e:#}");
                                }
                                _ => {}
                            }
                        });
                    }
                    Err(e) => eprintln!("test-dra-driver: registration socket: {e}"),
                },
            }
        }
    }

    /// One HTTP/2 connection, until the client closes it.
    async fn connection(&self, mut io: tokio::net::UnixStream) -> anyhow::Result<()> {
        let mut preface = [0; PREFACE.len()];
        io.read_exact(&mut preface)
            .await
            .context("reading the preface")?;
        anyhow::ensure!(&preface == PREFACE, "not an HTTP/2 client");
        let mut codec: h2::Codec<_, Bytes> = h2::Codec::new(io);
        codec
            .send(Settings::default().into())
            .await
            .map_err(send_error)?;
        // The path and body so far of each open request.
        let mut requests: HashMap<StreamId, (String, BytesMut)> = HashMap::new();
        while let Some(frame) = codec.next().await {
            let (id, end) = match frame.map_err(codec_error).context("reading a frame")? {
                Frame::Settings(settings) if !settings.is_ack() => {
                    codec
                        .send(Settings::ack().into())
                        .await
                        .map_err(send_error)?;
                    continue;
                }
                Frame::Ping(ping) if !ping.is_ack() => {
                    codec
                        .send(Ping::pong(ping.into_payload()).into())
                        .await
                        .map_err(send_error)?;
                    continue;
                }
                Frame::Headers(headers) => {
                    let (id, end) = (headers.stream_id(), headers.is_end_stream());
                    let (pseudo, _) = headers.into_parts();
                    let path = pseudo.path.as_deref().unwrap_or_default().to_owned();
                    requests.insert(id, (path, BytesMut::new()));
                    (id, end)
                }
                Frame::Data(data) => {
                    let (id, end) = (data.stream_id(), data.is_end_stream());
                    if let Some((_, body)) = requests.get_mut(&id) {
                        body.extend_from_slice(data.payload());
                    }
                    (id, end)
                }
                Frame::Reset(reset) => {
                    requests.remove(&reset.stream_id());
                    continue;
                }
                Frame::GoAway(_) => break,
                _ => continue,
            };
            if !end {
                continue;
            }
            let Some((path, body)) = requests.remove(&id) else {
                continue;
            };
            let answer = grpc_message(&body).and_then(|request| self.answer(&path, request));
            for frame in response(id, answer) {
                codec.feed(frame).await.map_err(send_error)?;
            }
            SinkExt::flush(&mut codec).await.map_err(send_error)?;
        }
        Ok(())
    }
}

/// Whether `error` only says that the client closed the connection first
/// (the kubelet hangs up as soon as it has its answers).
fn hung_up(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        })
    })
}

/// An error of h2's codec, as an `io::Error` when it is one.
fn codec_error(error: h2::proto::Error) -> anyhow::Error {
    match error {
        h2::proto::Error::Io(kind, message) => {
            std::io::Error::new(kind, message.unwrap_or_else(|| kind.to_string())).into()
        }
        other => anyhow::anyhow!("{other:?}"),
    }
}

/// An error of writing with h2's codec, as an `io::Error` when it is one.
fn send_error(error: h2::SendError) -> anyhow::Error {
    match error {
        h2::SendError::Connection(e) => codec_error(e),
        h2::SendError::User(e) => anyhow::anyhow!("{e}"),
    }
}

/// The message of a unary gRPC request body (one uncompressed
/// length-prefixed message).
fn grpc_message(body: &[u8]) -> Result<&[u8], (u32, String)> {
    let bad = |what: &str| Err((INTERNAL, format!("bad gRPC request body: {what}")));
    let Some((&[compressed, a, b, c, d], message)) = body.split_first_chunk::<5>() else {
        return bad("shorter than its prefix");
    };
    if compressed != 0 {
        return bad("compressed");
    }
    if u32::from_be_bytes([a, b, c, d]) as usize != message.len() {
        return bad("length mismatch");
    }
    Ok(message)
}

/// The frames answering stream `id`: headers, the message and trailers
/// with status 0, or only headers with the error status.
fn response(id: StreamId, answer: Result<Vec<u8>, (u32, String)>) -> Vec<Frame<Bytes>> {
    let mut fields = HeaderMap::new();
    fields.insert("content-type", HeaderValue::from_static("application/grpc"));
    let grpc_status = |fields: &mut HeaderMap, code: u32, message: &str| {
        fields.insert("grpc-status", HeaderValue::from(code));
        if let Ok(value) = HeaderValue::from_str(message)
            && !message.is_empty()
        {
            fields.insert("grpc-message", value);
        }
    };
    match answer {
        Ok(message) => {
            let head = Headers::new(id, Pseudo::response(StatusCode::OK), fields);
            let mut body = BytesMut::with_capacity(5 + message.len());
            body.put_u8(0);
            body.put_u32(message.len() as u32);
            body.put_slice(&message);
            let mut trailers = HeaderMap::new();
            grpc_status(&mut trailers, 0, "");
            let mut trailers = Headers::trailers(id, trailers);
            trailers.set_end_stream();
            vec![
                head.into(),
                Data::new(id, body.freeze()).into(),
                trailers.into(),
            ]
        }
        Err((code, message)) => {
            eprintln!("test-dra-driver: registration call failed: {message}");
            grpc_status(&mut fields, code, &message);
            let mut head = Headers::new(id, Pseudo::response(StatusCode::OK), fields);
            head.set_end_stream();
            vec![head.into()]
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::api::pluginregistration::registration_client::RegistrationClient;

    fn info() -> reg::PluginInfo {
        reg::PluginInfo {
            r#type: "DRAPlugin".into(),
            name: "e2e-dra.example.com".into(),
            endpoint: "/var/lib/kubelet/plugins/e2e-dra.example.com/dra.sock".into(),
            supported_versions: vec!["v1.DRAPlugin".into(), "v1beta1.DRAPlugin".into()],
        }
    }

    #[test]
    fn request_bodies_are_one_uncompressed_message() {
        assert_eq!(grpc_message(&[0, 0, 0, 0, 2, 8, 1]), Ok(&[8u8, 1][..]));
        assert_eq!(grpc_message(&[0, 0, 0, 0, 0]), Ok(&[][..]));
        assert!(grpc_message(&[0, 0, 0]).is_err());
        assert!(grpc_message(&[1, 0, 0, 0, 0]).is_err());
        assert!(grpc_message(&[0, 0, 0, 0, 3, 8, 1]).is_err());
    }

    #[test]
    fn only_a_client_hang_up_is_quiet() {
        let io = |kind| send_error(h2::SendError::Connection(h2::proto::Error::Io(kind, None)));
        assert!(hung_up(&io(std::io::ErrorKind::BrokenPipe)));
        assert!(hung_up(
            &codec_error(h2::proto::Error::Io(
                std::io::ErrorKind::ConnectionReset,
                None
            ))
            .context("reading a frame")
        ));
        assert!(!hung_up(&io(std::io::ErrorKind::PermissionDenied)));
        assert!(!hung_up(&anyhow::anyhow!("broken pipe")));
    }

    #[test]
    fn unknown_methods_are_unimplemented() {
        let registration = Registration::new(info());
        assert_eq!(
            registration.answer("/pluginregistration.Registration/Other", &[]),
            Err((
                UNIMPLEMENTED,
                "no method /pluginregistration.Registration/Other".to_owned()
            ))
        );
    }

    /// A gRPC client (tonic's) gets the plugin info and reports a status
    /// through the hand-served HTTP/2 connection.
    #[tokio::test]
    async fn a_grpc_client_registers_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("reg.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let registration = Registration::new(info());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(registration.clone().serve(listener, async {
            let _ = stop_rx.await;
        }));

        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    tokio::net::UnixStream::connect(socket)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .unwrap();
        let mut client = RegistrationClient::new(channel);
        let got = client.get_info(reg::InfoRequest {}).await.unwrap();
        assert_eq!(got.into_inner(), info());
        let refused = reg::RegistrationStatus {
            plugin_registered: false,
            error: "no such version".into(),
        };
        client
            .notify_registration_status(refused.clone())
            .await
            .unwrap();
        assert_eq!(registration.status(), Some(refused));
        let registered = reg::RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        };
        client
            .notify_registration_status(registered.clone())
            .await
            .unwrap();
        assert_eq!(registration.status(), Some(registered));

        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    /// The kubelet's call: the socket path as `:authority`, which h2's
    /// server would refuse, over a raw HTTP/2 connection.
    #[tokio::test]
    async fn a_socket_path_as_authority_is_answered() {
        use h2::frame::BytesStr;
        use tokio::io::AsyncWriteExt as _;

        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("reg.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let (_stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(Registration::new(info()).serve(listener, async {
            let _ = stop_rx.await;
        }));

        let mut io = tokio::net::UnixStream::connect(&socket).await.unwrap();
        io.write_all(PREFACE).await.unwrap();
        let mut codec: h2::Codec<_, Bytes> = h2::Codec::new(io);
        codec.send(Settings::default().into()).await.unwrap();
        let id = StreamId::from(1);
        let text = |s: &str| BytesStr::try_from(Bytes::copy_from_slice(s.as_bytes())).unwrap();
        let pseudo = Pseudo {
            method: Some(http::Method::POST),
            scheme: Some(text("http")),
            authority: Some(text(&socket.to_string_lossy())),
            path: Some(text(GET_INFO)),
            ..Pseudo::default()
        };
        let mut fields = HeaderMap::new();
        fields.insert("content-type", HeaderValue::from_static("application/grpc"));
        fields.insert("te", HeaderValue::from_static("trailers"));
        codec
            .send(Headers::new(id, pseudo, fields).into())
            .await
            .unwrap();
        let mut request = Data::new(id, Bytes::from_static(&[0, 0, 0, 0, 0]));
        request.set_end_stream(true);
        codec.send(request.into()).await.unwrap();

        let mut body = BytesMut::new();
        let mut status = None;
        let mut trailers = None;
        while trailers.is_none() {
            let frame = tokio::time::timeout(Duration::from_secs(5), codec.next())
                .await
                .expect("an answer within 5 s")
                .expect("the connection stays open")
                .unwrap();
            match frame {
                Frame::Headers(headers) if headers.stream_id() == id => {
                    let end = headers.is_end_stream();
                    let (pseudo, fields) = headers.into_parts();
                    if end {
                        trailers = Some(fields);
                    } else {
                        status = pseudo.status;
                    }
                }
                Frame::Data(data) => body.extend_from_slice(data.payload()),
                Frame::Reset(reset) => panic!("stream reset: {reset:?}"),
                _ => {}
            }
        }
        assert_eq!(status, Some(StatusCode::OK));
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
        let message = grpc_message(&body).unwrap();
        assert_eq!(reg::PluginInfo::decode(message).unwrap(), info());
    }
}
