//! The systems under test, each behind the same small interface.
//!
//! Every system has one module with the same shape:
//! `start` (a constructor that launches the server on loopback with data under a temp dir and waits until it answers),
//! `create_stream`, `open_lane` (one producer connection, or `produce_with_own_client` for a client that runs as separate processes), `Lane::send_batch` (send events, return once all are acknowledged),
//! `consume_all` (read every event of a stream back), and `stop`.
//! Producing and the open-loop latency test are written once, in `driver.rs`, on top of `Lane`,
//! so every system is loaded by exactly the same code and differs only in how it puts a batch on the wire.

pub(crate) mod nats;
pub(crate) mod postgres;
pub(crate) mod redis;
pub(crate) mod weft;

use std::time::Duration;

use anyhow::Result;

use crate::kcat::OwnClientProduce;
use crate::workload::Event;

/// How long a server may take to become ready after it was launched.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many events one consume request asks for at most.
pub(crate) const CONSUME_BATCH_EVENTS_MAX: usize = 10_000;

/// A stream (NATS stream, Redis stream per partition, Postgres table, Weft stream) the benchmark writes to and reads from.
#[derive(Clone, Debug)]
pub(crate) struct StreamSpec {
    /// A name like `bench.orders.v1`; systems that forbid dots in names map it themselves.
    pub name: String,
    pub n_partitions: u32,
}

/// What a full read of a stream returned.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConsumeOutcome {
    pub n_events: u64,
    /// Bytes of event data received (payloads only, without protocol framing).
    pub n_payload_bytes: u64,
}

/// One producer connection.
pub(crate) trait Lane {
    /// Sends `events` as one batch (one request, or one pipelined burst) and returns once every event is acknowledged
    /// under the system's durability setting. Fails if any event was rejected.
    async fn send_batch(&mut self, events: &[Event]) -> Result<()>;
}

/// A running server and the client-side knowledge of how to use it.
pub(crate) trait System: Sized {
    type Lane: Lane;

    /// The root pid whose process tree is measured for CPU and memory.
    fn server_pid(&self) -> u32;

    async fn create_stream(&mut self, stream: &StreamSpec) -> Result<()>;

    async fn open_lane(&self, stream: &StreamSpec, lane_idx: usize) -> Result<Self::Lane>;

    /// Produces every event with the system's own client processes instead of `Lane`s (Weft over Kafka with kcat).
    /// `None` means the system is driven through lanes.
    async fn produce_with_own_client(
        &self,
        _stream: &StreamSpec,
        _events: &[Event],
        _n_producers: usize,
    ) -> Option<Result<OwnClientProduce>> {
        None
    }

    /// Whether the open-loop latency phase runs; it needs lanes, which a system with its own client does not have.
    fn measures_latency(&self) -> bool {
        true
    }

    /// Reads every event of `stream` back with up to `n_consumers` concurrent connections.
    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, n_consumers: usize) -> Result<ConsumeOutcome>;

    /// Stops the server (SIGTERM or the system's own stop command) and waits for it to exit.
    async fn stop(self) -> Result<()>;
}

/// Connects to a loopback TCP port, retrying until `deadline`; used by every readiness check.
pub(crate) async fn connect_with_retry(port: u16, deadline: tokio::time::Instant) -> Result<tokio::net::TcpStream> {
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(anyhow::Error::new(error).context(format!("connect to 127.0.0.1:{port}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Reads a line ending in `\n` of at most `bytes_max` bytes, without the line ending.
pub(crate) async fn read_line_bounded<R>(reader: &mut R, bytes_max: u64) -> Result<Vec<u8>>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let mut line = Vec::new();
    let n_read = (&mut *reader).take(bytes_max).read_until(b'\n', &mut line).await?;
    if n_read == 0 {
        anyhow::bail!("connection closed by the server");
    }
    if line.last() != Some(&b'\n') {
        anyhow::bail!("protocol line longer than {bytes_max} bytes");
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// Waits for every consumer and adds up what they read; it is an error if together they did not
/// read exactly `n_events_expected` (`what` names the unit in the message: events, rows).
pub async fn sum_consumed<F>(consumers: impl IntoIterator<Item = F>, n_events_expected: u64, what: &str) -> anyhow::Result<ConsumeOutcome>
where
    F: std::future::Future<Output = anyhow::Result<ConsumeOutcome>>,
{
    let mut total = ConsumeOutcome::default();
    for outcome in futures_util::future::join_all(consumers).await {
        let outcome = outcome?;
        total.n_events += outcome.n_events;
        total.n_payload_bytes += outcome.n_payload_bytes;
    }
    if total.n_events != n_events_expected {
        anyhow::bail!("consumed {} {what}, expected {n_events_expected}", total.n_events);
    }
    Ok(total)
}
