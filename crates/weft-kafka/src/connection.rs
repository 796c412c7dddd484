//! One client connection: a reader task that cuts the byte stream into frames, and a loop
//! that answers them one at a time, in order, as a Kafka broker does (it "mutes" a
//! connection while a request is in flight). Clients pipeline requests; up to
//! `REQUESTS_QUEUED_MAX` are read ahead while one is processed, which bounds the memory one
//! connection can hold to that many frames of at most `REQUEST_BYTES_MAX`.
//!
//! Any framing or decoding error closes the connection (after answering the requests read
//! before it), which is what Kafka does with requests it cannot parse. So does any request
//! other than ApiVersions and the SASL ones before the connection authenticated (`sasl`),
//! and a failed authentication, after its response. A connection whose token is revoked or
//! expires is closed at once, idle or not, and answers no request after that.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, watch};

use crate::frame::{Decoded, FrameError, REQUEST_BYTES_MAX, Request, decode_request, encode_response};
use crate::sasl::{self, SaslState, Session};
use crate::{Context, cluster, fetch, groups, produce};

/// Requests read ahead of the one being answered.
pub const REQUESTS_QUEUED_MAX: usize = 8;
/// Bytes reserved up front for a frame's body: the length prefix is the client's claim, so a
/// larger frame grows its buffer as its bytes actually arrive.
const FRAME_PREALLOCATION_BYTES_MAX: usize = 64 * 1024;

/// Serves one connection until the client closes it, a frame is refused, or `stop` turns true.
pub(crate) async fn run(socket: TcpStream, peer: SocketAddr, context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let (read_half, mut write_half) = socket.into_split();
    let (frames_sender, mut frames) = mpsc::channel::<Bytes>(REQUESTS_QUEUED_MAX);
    let reader = tokio::spawn(async move {
        if let Err(error) = read_frames(read_half, frames_sender).await {
            tracing::debug!(%peer, %error, "kafka connection closed by the listener");
        }
    });
    let client = ClientAddress(peer);
    let mut session = Session::new(&context.broker, peer);
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            error = session.ended() => {
                tracing::debug!(%peer, %error, "kafka connection's token ended; closing the connection");
                break;
            }
            frame = frames.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        if session.state == SaslState::RawTokenNext {
            // After SaslHandshake v0 the client sends the bare PLAIN token, not a request;
            // success is an empty frame, failure closes the connection.
            match sasl::authenticate_raw(&context.broker, &mut session, &frame).await {
                Ok(()) if write_half.write_all(&0i32.to_be_bytes()).await.is_ok() => continue,
                Ok(()) => break,
                Err(message) => {
                    tracing::debug!(%peer, %message, "kafka sasl authentication failed; closing the connection");
                    break;
                }
            }
        }
        match answer(&context, &client, &mut session, frame).await {
            Ok(Reply { response, close }) => {
                if let Some(response) = response
                    && write_half.write_all(&response).await.is_err()
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

/// Where a request came from, for DescribeGroups' `client_host`.
pub(crate) struct ClientAddress(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads length-prefixed frames until end of stream or a refused length. Reads a frame's
/// body as it arrives rather than allocating its declared length up front, so a client
/// that announces 100 MiB and sends nothing holds no memory.
async fn read_frames(mut reader: OwnedReadHalf, frames: mpsc::Sender<Bytes>) -> Result<(), ReadError> {
    loop {
        let mut length_prefix = [0u8; 4];
        match reader.read_exact(&mut length_prefix).await {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        let length = i32::from_be_bytes(length_prefix);
        if length < 0 || length as usize > REQUEST_BYTES_MAX {
            return Err(FrameError::TooLarge(length as i64).into());
        }
        let mut body = Vec::with_capacity((length as usize).min(FRAME_PREALLOCATION_BYTES_MAX));
        (&mut reader).take(length as u64).read_to_end(&mut body).await?;
        if body.len() != length as usize {
            return Ok(());
        }
        if frames.send(Bytes::from(body)).await.is_err() {
            return Ok(());
        }
    }
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
        Request::InitProducerId(request) => respond!(produce::init_producer_id(context, request)),
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
