//! NATS JetStream with file storage, over a hand-written NATS client protocol.
//!
//! `nats-server -js -sd DIR -p PORT -a 127.0.0.1`, ready once it sends its `INFO` line, stopped with SIGTERM.
//! A stream `bench_orders_v1` takes subjects `bench.orders.v1.<partition>`; each event is a `PUB` with a reply inbox,
//! and JetStream answers on that inbox with `{"stream":..,"seq":..}` once it has stored the message.
//! A batch is a pipelined burst of `PUB`s followed by waiting for all their acknowledgements.
//! Consuming uses one ephemeral pull consumer with `ack_policy: none` and two pull requests in flight.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::server_process::{ServerProcess, free_loopback_port};
use crate::systems::{
    CONSUME_BATCH_EVENTS_MAX, ConsumeOutcome, Lane, START_TIMEOUT, StreamSpec, System, connect_with_retry, read_line_bounded,
};
use crate::workload::Event;

/// Longest protocol control line accepted (INFO can be a few KiB).
const CONTROL_LINE_BYTES_MAX: u64 = 64 * 1024;
/// Largest message payload accepted (the server's default `max_payload` is 1 MiB).
const PAYLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How long a pull request may wait on the server before it expires, in nanoseconds.
const PULL_EXPIRES_NS: u64 = 30_000_000_000;

/// Makes inbox names unique across connections of this process.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct NatsSystem {
    process: ServerProcess,
    port: u16,
}

impl NatsSystem {
    pub(crate) async fn start(binary: &Path, data_dir: &Path) -> Result<NatsSystem> {
        let port = free_loopback_port()?;
        let mut command = Command::new(binary);
        command.arg("-js").arg("-sd").arg(data_dir.join("jetstream")).arg("-p").arg(port.to_string()).arg("-a").arg("127.0.0.1");
        let mut process = ServerProcess::spawn("nats-server", command, &data_dir.join("nats.log"))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            process.check_running()?;
            if let Ok(mut connection) = NatsConnection::connect(port, deadline).await {
                // JetStream may still be initialising after the listener is up; ask for account info until it answers.
                if let Ok(info) = connection.request("$JS.API.INFO", b"").await
                    && !contains(&info, b"\"error\"")
                {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("nats-server did not answer a JetStream request within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(NatsSystem { process, port })
    }
}

fn jetstream_stream_name(stream: &StreamSpec) -> String {
    stream.name.replace('.', "_")
}

impl System for NatsSystem {
    type Lane = NatsLane;

    fn server_pid(&self) -> u32 {
        self.process.pid()
    }

    async fn create_stream(&mut self, stream: &StreamSpec) -> Result<()> {
        let mut connection = NatsConnection::connect(self.port, deadline_in(START_TIMEOUT)).await?;
        let name = jetstream_stream_name(stream);
        let config = serde_json::json!({
            "name": name,
            "subjects": [format!("{}.>", stream.name)],
            "storage": "file",
            "num_replicas": 1,
            "retention": "limits",
            "discard": "old",
            "max_msgs": -1,
            "max_bytes": -1,
        });
        let reply = connection.request(&format!("$JS.API.STREAM.CREATE.{name}"), config.to_string().as_bytes()).await?;
        if contains(&reply, b"\"error\"") {
            bail!("create JetStream stream {name}: {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }

    async fn open_lane(&self, stream: &StreamSpec, _lane_idx: usize) -> Result<NatsLane> {
        let connection = NatsConnection::connect(self.port, deadline_in(START_TIMEOUT)).await?;
        let subjects = (0..stream.n_partitions).map(|partition| format!("{}.{partition}", stream.name)).collect();
        let ack_inbox = format!("{}.ack", connection.inbox_prefix);
        Ok(NatsLane { connection, subjects, ack_inbox })
    }

    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, _n_consumers: usize) -> Result<ConsumeOutcome> {
        let mut connection = NatsConnection::connect(self.port, deadline_in(START_TIMEOUT)).await?;
        let name = jetstream_stream_name(stream);
        let consumer_config = serde_json::json!({
            "stream_name": name,
            "config": {
                "ack_policy": "none",
                "deliver_policy": "all",
                "replay_policy": "instant",
                "inactive_threshold": 120_000_000_000u64,
            },
        });
        let reply = connection.request(&format!("$JS.API.CONSUMER.CREATE.{name}"), consumer_config.to_string().as_bytes()).await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply).context("parse the consumer create reply")?;
        let Some(consumer_name) = reply["name"].as_str() else {
            bail!("create pull consumer on {name}: {reply}");
        };
        let pull_subject = format!("$JS.API.CONSUMER.MSG.NEXT.{name}.{consumer_name}");
        let pull_inbox = format!("{}.pull", connection.inbox_prefix);
        let batch = CONSUME_BATCH_EVENTS_MAX as u64;
        let mut outcome = ConsumeOutcome::default();
        let mut n_requested = 0u64;
        while outcome.n_events < n_events_expected {
            // Keep two pull requests outstanding so the server never waits for the client to ask again.
            while n_requested < n_events_expected && n_requested < outcome.n_events + 2 * batch {
                let n_asked = batch.min(n_events_expected - n_requested);
                let request = format!("{{\"batch\":{n_asked},\"expires\":{PULL_EXPIRES_NS}}}");
                connection.write_pub(&pull_subject, Some(&pull_inbox), request.as_bytes()).await?;
                n_requested += n_asked;
            }
            connection.writer.flush().await?;
            match connection.read_frame().await? {
                Frame::Message { status: Some(status), .. } => {
                    // 408 (expired) or 404/409 ended a pull request early: ask again for what is still missing.
                    if status == 100 {
                        continue;
                    }
                    if status != 408 && status != 404 {
                        bail!("pull request on {name} ended with status {status}");
                    }
                    n_requested = outcome.n_events;
                }
                Frame::Message { payload, .. } => {
                    outcome.n_events += 1;
                    outcome.n_payload_bytes += payload.len() as u64;
                }
                Frame::Other => {}
            }
        }
        if outcome.n_events != n_events_expected {
            bail!("consumed {} events, expected {n_events_expected}", outcome.n_events);
        }
        Ok(outcome)
    }

    async fn stop(mut self) -> Result<()> {
        self.process.stop()
    }
}

fn deadline_in(duration: std::time::Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + duration
}

pub(crate) struct NatsLane {
    connection: NatsConnection,
    /// `bench.orders.v1.<partition>`, indexed by partition.
    subjects: Vec<String>,
    ack_inbox: String,
}

impl Lane for NatsLane {
    async fn send_batch(&mut self, events: &[Event]) -> Result<()> {
        for event in events {
            let subject = &self.subjects[event.partition as usize];
            self.connection.write_pub(subject, Some(&self.ack_inbox), event.payload.as_bytes()).await?;
        }
        self.connection.writer.flush().await?;
        let mut n_acked = 0;
        while n_acked < events.len() {
            match self.connection.read_frame().await? {
                Frame::Message { status: Some(status), .. } => {
                    bail!("publish answered with status {status} (no JetStream stream for the subject?)")
                }
                Frame::Message { payload, .. } => {
                    if contains(&payload, b"\"error\"") {
                        bail!("JetStream rejected a publish: {}", String::from_utf8_lossy(&payload));
                    }
                    n_acked += 1;
                }
                Frame::Other => {}
            }
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// What a read from the server produced; pings are answered inside `read_frame` and never surface.
enum Frame {
    /// `MSG` or `HMSG` on this connection's inbox subscription.
    Message { status: Option<u16>, payload: Vec<u8> },
    /// `+OK`, `PONG`, `INFO`: nothing to act on.
    Other,
}

/// One client connection subscribed to its own inbox `_INBOX.bench<N>.>`.
struct NatsConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    inbox_prefix: String,
    n_requests: u64,
}

impl NatsConnection {
    async fn connect(port: u16, deadline: tokio::time::Instant) -> Result<NatsConnection> {
        let stream = connect_with_retry(port, deadline).await?;
        let (reader, writer) = stream.into_split();
        let mut connection = NatsConnection {
            reader: BufReader::with_capacity(256 * 1024, reader),
            writer: BufWriter::with_capacity(256 * 1024, writer),
            inbox_prefix: format!("_INBOX.bench{}", NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed)),
            n_requests: 0,
        };
        let info = read_line_bounded(&mut connection.reader, CONTROL_LINE_BYTES_MAX).await?;
        if !info.starts_with(b"INFO ") {
            bail!("expected INFO from nats-server, got {:?}", String::from_utf8_lossy(&info));
        }
        // Headers are on so that status messages (no responders, pull request expiry) arrive as HMSG.
        let connect = concat!(
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,",
            "\"lang\":\"rust\",\"version\":\"weft-bench\",\"protocol\":1}\r\n"
        );
        connection.writer.write_all(connect.as_bytes()).await?;
        let subscribe = format!("SUB {}.> 1\r\nPING\r\n", connection.inbox_prefix);
        connection.writer.write_all(subscribe.as_bytes()).await?;
        connection.writer.flush().await?;
        loop {
            let line = read_line_bounded(&mut connection.reader, CONTROL_LINE_BYTES_MAX).await?;
            if line == b"PONG" {
                return Ok(connection);
            }
            if line.starts_with(b"-ERR") {
                bail!("nats-server refused the connection: {}", String::from_utf8_lossy(&line));
            }
        }
    }

    async fn write_pub(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<()> {
        let head = match reply {
            Some(reply) => format!("PUB {subject} {reply} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        };
        self.writer.write_all(head.as_bytes()).await?;
        self.writer.write_all(payload).await?;
        self.writer.write_all(b"\r\n").await?;
        Ok(())
    }

    /// Sends a request and returns the payload of its reply; only for control requests when nothing else is in flight.
    async fn request(&mut self, subject: &str, payload: &[u8]) -> Result<Vec<u8>> {
        self.n_requests += 1;
        let reply = format!("{}.req{}", self.inbox_prefix, self.n_requests);
        self.write_pub(subject, Some(&reply), payload).await?;
        self.writer.flush().await?;
        let reply_timeout = std::time::Duration::from_secs(10);
        loop {
            let frame = tokio::time::timeout(reply_timeout, self.read_frame())
                .await
                .with_context(|| format!("no reply to {subject} within {reply_timeout:?}"))??;
            match frame {
                Frame::Message { status: Some(status), .. } => bail!("request {subject} answered with status {status}"),
                Frame::Message { payload, .. } => return Ok(payload),
                Frame::Other => {}
            }
        }
    }

    async fn read_frame(&mut self) -> Result<Frame> {
        let line = read_line_bounded(&mut self.reader, CONTROL_LINE_BYTES_MAX).await?;
        let text = std::str::from_utf8(&line).context("control line is not UTF-8")?;
        let mut words = text.split_ascii_whitespace();
        match words.next() {
            Some("MSG") => {
                // MSG <subject> <sid> [reply-to] <#bytes>
                let arguments: Vec<&str> = words.collect();
                let n_bytes = parse_size(arguments.last())?;
                let payload = self.read_payload(n_bytes).await?;
                Ok(Frame::Message { status: None, payload })
            }
            Some("HMSG") => {
                // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
                let arguments: Vec<&str> = words.collect();
                if arguments.len() < 4 {
                    bail!("bad HMSG line {text:?}");
                }
                let n_header_bytes = parse_size(arguments.get(arguments.len() - 2))?;
                let n_total_bytes = parse_size(arguments.last())?;
                if n_header_bytes > n_total_bytes {
                    bail!("bad HMSG sizes in {text:?}");
                }
                let mut message = self.read_payload(n_total_bytes).await?;
                let payload = message.split_off(n_header_bytes);
                // The header block starts with `NATS/1.0` and, for status messages, a three-digit code.
                let status = std::str::from_utf8(&message)
                    .ok()
                    .and_then(|headers| headers.lines().next())
                    .and_then(|first| first.split_ascii_whitespace().nth(1))
                    .and_then(|code| code.parse::<u16>().ok());
                Ok(Frame::Message { status, payload })
            }
            Some("PING") => {
                self.writer.write_all(b"PONG\r\n").await?;
                self.writer.flush().await?;
                Ok(Frame::Other)
            }
            Some("-ERR") => bail!("nats-server error: {text}"),
            _ => Ok(Frame::Other),
        }
    }

    async fn read_payload(&mut self, n_bytes: usize) -> Result<Vec<u8>> {
        let mut payload = vec![0; n_bytes + 2];
        self.reader.read_exact(&mut payload).await?;
        if !payload.ends_with(b"\r\n") {
            bail!("message payload not followed by CRLF");
        }
        payload.truncate(n_bytes);
        Ok(payload)
    }
}

fn parse_size(word: Option<&&str>) -> Result<usize> {
    let size: usize = word.context("missing size in a message line")?.parse().context("bad size in a message line")?;
    if size > PAYLOAD_BYTES_MAX {
        bail!("message of {size} bytes is over the {PAYLOAD_BYTES_MAX} byte limit");
    }
    Ok(size)
}
