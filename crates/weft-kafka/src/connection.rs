//! One client connection, over plaintext TCP or TLS: the code is generic over the byte stream,
//! so both are served by the same lines, and TLS (done by the listener before this runs) only
//! wraps the bytes under the Kafka framing.
//!
//! A connection lives in two phases.
//! **Until it has authenticated** (SASL; skipped under `--auth off`) it is served one frame at a
//! time, with nothing read ahead: a frame may be at most `PRE_AUTH_REQUEST_BYTES_MAX` (a larger
//! length prefix closes the connection before any of its body is read), only ApiVersions and the
//! SASL requests are answered, and the exchange, TLS handshake included, must be over by the
//! deadline the listener set (`SASL_HANDSHAKE_DEADLINE_MS` after accept). So a client without
//! credentials holds at most one small frame for a few seconds.
//! **Once authenticated**, a reader task cuts the byte stream into frames, and a loop answers them
//! one at a time, in order, as a Kafka broker does (it "mutes" a connection while a request is in
//! flight). Clients pipeline requests; up to `REQUESTS_QUEUED_MAX` are read ahead while one is
//! processed, which bounds the memory one connection can hold to that many frames of at most
//! `REQUEST_BYTES_MAX`. A connection that sends no request for the idle limit
//! (`CONNECTIONS_IDLE_MS_MAX`, Kafka's `connections.max.idle.ms`) is closed.
//!
//! Any framing or decoding error closes the connection (after answering the requests read
//! before it), which is what Kafka does with requests it cannot parse. So does any request
//! other than ApiVersions and the SASL ones before the connection authenticated (`sasl`),
//! and a failed authentication, after its response. A connection whose token is revoked or
//! expires is closed at once, idle or not, and answers no request after that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::frame::{Decoded, FrameError, PRE_AUTH_REQUEST_BYTES_MAX, REQUEST_BYTES_MAX, Request, decode_request, encode_response};
use crate::sasl::{self, SaslState, Session};
use crate::{Context, cluster, fetch, groups, produce};

/// Requests read ahead of the one being answered.
pub const REQUESTS_QUEUED_MAX: usize = 8;
/// Bytes reserved up front for a frame's body: the length prefix is the client's claim, so a
/// larger frame grows its buffer as its bytes actually arrive.
const FRAME_PREALLOCATION_BYTES_MAX: usize = 64 * 1024;

/// What bounds one connection's life, set by the listener from its `ListenerOptions`.
pub(crate) struct ConnectionLimits {
    /// When the connection must have authenticated; counted from accept, TLS handshake included.
    pub authenticate_by: Instant,
    /// How long an authenticated connection may wait for its next request.
    pub idle: Duration,
}

/// Why a connection ended before or during authentication; logged, never sent.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("the client closed the connection")]
    ClosedByClient,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Refused(#[from] FrameError),
    #[error("sasl authentication failed: {0}")]
    AuthenticationFailed(String),
    #[error("writing a response: {0}")]
    Write(std::io::Error),
}

/// Serves one connection until the client closes it, a frame is refused, the connection misses
/// its authentication deadline or idles too long, or `stop` turns true.
pub(crate) async fn run<S>(socket: S, peer: SocketAddr, context: Arc<Context>, limits: ConnectionLimits, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read_half, mut write_half) = tokio::io::split(socket);
    let client = ClientAddress(peer);
    let mut session = Session::new(&context.broker, peer);
    if session.caller.is_none() {
        let authenticating = authenticate(&context, &client, &mut session, &mut read_half, &mut write_half);
        let outcome = tokio::select! {
            biased;
            _ = stop.changed() => return,
            outcome = tokio::time::timeout_at(limits.authenticate_by, authenticating) => outcome,
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(end)) => {
                tracing::debug!(%peer, %end, "kafka connection closed before authentication");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "kafka connection did not authenticate before its deadline; closing it");
                return;
            }
        }
    }
    let (frames_sender, mut frames) = mpsc::channel::<Bytes>(REQUESTS_QUEUED_MAX);
    let reader = tokio::spawn(async move {
        if let Err(error) = read_frames(read_half, frames_sender).await {
            tracing::debug!(%peer, %error, "kafka connection closed by the listener");
        }
    });
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            error = session.ended() => {
                tracing::debug!(%peer, %error, "kafka connection's token ended; closing the connection");
                break;
            }
            frame = tokio::time::timeout(limits.idle, frames.recv()) => match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => {
                    tracing::debug!(%peer, idle_ms = limits.idle.as_millis() as u64, "kafka connection idle; closing it");
                    break;
                }
            },
        };
        match answer(&context, &client, &mut session, frame).await {
            Ok(Reply { response, close }) => {
                if let Some(response) = response
                    && send(&mut write_half, &response).await.is_err()
                {
                    break;
                }
                if close {
                    tracing::debug!(%peer, "kafka sasl authentication failed; closing the connection");
                    break;
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "kafka request refused; closing the connection");
                break;
            }
        }
    }
    reader.abort();
}

/// Answers the frames of an unauthenticated connection one at a time until it has authenticated.
/// Nothing is read ahead, so the limit on the next frame is always the one for its phase.
async fn authenticate<R, W>(
    context: &Context,
    client: &ClientAddress,
    session: &mut Session,
    reader: &mut R,
    writer: &mut W,
) -> Result<(), ConnectionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while session.caller.is_none() {
        let frame = read_frame(reader, PRE_AUTH_REQUEST_BYTES_MAX).await?.ok_or(ConnectionEnd::ClosedByClient)?;
        if session.state == SaslState::RawTokenNext {
            // After SaslHandshake v0 the client sends the bare PLAIN token, not a request;
            // success is an empty frame, failure closes the connection.
            sasl::authenticate_raw(&context.broker, session, &frame).await.map_err(ConnectionEnd::AuthenticationFailed)?;
            send(writer, &0i32.to_be_bytes()).await.map_err(ConnectionEnd::Write)?;
            continue;
        }
        let Reply { response, close } = answer(context, client, session, frame).await?;
        if let Some(response) = response {
            send(writer, &response).await.map_err(ConnectionEnd::Write)?;
        }
        if close {
            return Err(ConnectionEnd::AuthenticationFailed("answered with SASL_AUTHENTICATION_FAILED".to_string()));
        }
    }
    Ok(())
}

/// Writes one response and flushes it: TLS holds written bytes in its record buffer until flushed.
async fn send<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Where a request came from, for DescribeGroups' `client_host`.
pub(crate) struct ClientAddress(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads length-prefixed frames of at most `REQUEST_BYTES_MAX` until end of stream or a
/// refused length, and queues them for the answering loop.
async fn read_frames<R: AsyncRead + Unpin>(mut reader: R, frames: mpsc::Sender<Bytes>) -> Result<(), ReadError> {
    while let Some(frame) = read_frame(&mut reader, REQUEST_BYTES_MAX).await? {
        if frames.send(frame).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads one length-prefixed frame; `None` at end of stream (also mid-frame). A length over
/// `limit` is refused as soon as the prefix is read, before any of the body. The body is read as
/// it arrives rather than allocated at its declared length, so a client that announces a large
/// frame and sends nothing holds no memory.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Result<Option<Bytes>, ReadError> {
    let mut length_prefix = [0u8; 4];
    match reader.read_exact(&mut length_prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    let length = i32::from_be_bytes(length_prefix);
    if length < 0 || length as usize > limit {
        return Err(FrameError::TooLarge { bytes: length as i64, limit }.into());
    }
    let mut body = Vec::with_capacity((length as usize).min(FRAME_PREALLOCATION_BYTES_MAX));
    (&mut *reader).take(length as u64).read_to_end(&mut body).await?;
    if body.len() != length as usize {
        return Ok(None);
    }
    Ok(Some(Bytes::from(body)))
}

/// What to send back for one request, and whether to close the connection after it.
pub(crate) struct Reply {
    /// `None` for requests Kafka does not answer (Produce with acks 0).
    pub response: Option<Bytes>,
    pub close: bool,
}

impl From<Option<Bytes>> for Reply {
    fn from(response: Option<Bytes>) -> Self {
        Self { response, close: false }
    }
}

/// Decodes and answers one request frame; `Err` closes the connection. Before SASL
/// authentication only ApiVersions, SaslHandshake and SaslAuthenticate are answered.
pub(crate) async fn answer(context: &Context, client: &ClientAddress, session: &mut Session, frame: Bytes) -> Result<Reply, FrameError> {
    let (header, api, request) = match decode_request(frame)? {
        Decoded::Request { header, api, request } => (header, api, request),
        Decoded::UnsupportedApiVersions { correlation_id } => {
            let response = cluster::api_versions(kafka_protocol::ResponseError::UnsupportedVersion.code());
            return encode_response(ApiKey::ApiVersions, 0, correlation_id, &response).map(|bytes| Some(bytes).into());
        }
    };
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    macro_rules! respond {
        ($response:expr) => {
            encode_response(api, version, correlation_id, &$response).map(|bytes| Some(bytes).into())
        };
    }
    let caller = match (&request, &session.caller) {
        (Request::ApiVersions(_), _) => return respond!(cluster::api_versions(crate::errors::NONE)),
        (Request::SaslHandshake(request), _) => return respond!(sasl::handshake(session, version, request)),
        (Request::SaslAuthenticate(request), _) => {
            return match sasl::authenticate(&context.broker, session, request).await {
                Ok(response) => respond!(response),
                Err(response) => {
                    let bytes = encode_response(api, version, correlation_id, &response)?;
                    Ok(Reply { response: Some(bytes), close: true })
                }
            };
        }
        (_, None) => return Err(FrameError::NotAuthenticated(api)),
        (_, Some(caller)) => caller.clone(),
    };
    if let Some(error) = session.token_ended() {
        return Err(FrameError::CredentialsEnded(error.to_string()));
    }
    let caller = &caller;
    let client_id = header.client_id.as_ref().map(|id| id.as_str().to_string()).unwrap_or_default();
    match request {
        Request::ApiVersions(_) | Request::SaslHandshake(_) | Request::SaslAuthenticate(_) => unreachable!("answered above"),
        Request::Metadata(request) => respond!(cluster::metadata(context, caller, version, request)),
        Request::FindCoordinator(request) => respond!(cluster::find_coordinator(context, caller, version, request).await),
        Request::DescribeConfigs(request) => respond!(cluster::describe_configs(context, caller, version, request)),
        Request::CreateTopics(request) => respond!(cluster::create_topics(context, version, request)),
        Request::InitProducerId(request) => respond!(produce::init_producer_id(context, request).await),
        Request::Produce(request) => match produce::produce(context, caller, version, request).await {
            Some(response) => respond!(response),
            None => Ok(Reply { response: None, close: false }),
        },
        Request::Fetch(request) => respond!(fetch::fetch(context, caller, session.token.clone(), version, request).await),
        Request::ListOffsets(request) => respond!(fetch::list_offsets(context, caller, version, request).await),
        Request::JoinGroup(request) => respond!(groups::join_group(context, caller, version, &client_id, client, request).await),
        Request::SyncGroup(request) => respond!(groups::sync_group(context, caller, request).await),
        Request::Heartbeat(request) => respond!(groups::heartbeat(context, caller, request).await),
        Request::LeaveGroup(request) => respond!(groups::leave_group(context, caller, version, request).await),
        Request::OffsetCommit(request) => respond!(groups::offset_commit(context, caller, version, request).await),
        Request::OffsetFetch(request) => respond!(groups::offset_fetch(context, caller, version, request).await),
        Request::ListGroups(_) => respond!(groups::list_groups(context, caller).await),
        Request::DescribeGroups(request) => respond!(groups::describe_groups(context, caller, version, request).await),
    }
}
