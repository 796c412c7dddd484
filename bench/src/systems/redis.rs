//! Redis Streams over a hand-written RESP client, one stream key per partition (`bench.orders.v1:<partition>`).
//!
//! `redis-server` runs in one of two persistence modes: AOF with `appendfsync everysec`, or no persistence at all.
//! A batch is a pipelined burst of `XADD key * d <payload>` commands followed by reading all replies.
//! Consuming reads each partition's stream with `XRANGE key (<last-id> + COUNT 10000`.

use std::path::Path;
use std::pin::Pin;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::server_process::{ServerProcess, free_loopback_port};
use crate::systems::{
    CONSUME_BATCH_EVENTS_MAX, ConsumeOutcome, Lane, START_TIMEOUT, StreamSpec, System, connect_with_retry, read_line_bounded,
};
use crate::workload::Event;

/// Longest simple-string, error or size line accepted.
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// Largest bulk string accepted.
const BULK_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most elements in one array reply (an XRANGE page of 10,000 entries).
const ARRAY_ELEMENTS_MAX: usize = 1_000_000;
/// Deepest nesting accepted (XRANGE replies nest three deep).
const NESTING_DEPTH_MAX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RedisPersistence {
    /// `appendonly yes`, `appendfsync everysec`.
    AofEverySecond,
    /// No AOF and no RDB snapshots.
    None,
}

pub(crate) struct RedisSystem {
    process: ServerProcess,
    port: u16,
}

impl RedisSystem {
    pub(crate) async fn start(binary: &Path, data_dir: &Path, persistence: RedisPersistence) -> Result<RedisSystem> {
        let port = free_loopback_port()?;
        let mut command = Command::new(binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(data_dir)
            .arg("--save")
            .arg("")
            .arg("--protected-mode")
            .arg("no")
            .arg("--daemonize")
            .arg("no");
        match persistence {
            RedisPersistence::AofEverySecond => command.args(["--appendonly", "yes", "--appendfsync", "everysec"]),
            RedisPersistence::None => command.args(["--appendonly", "no"]),
        };
        let mut process = ServerProcess::spawn("redis-server", command, &data_dir.join("redis.log"))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            process.check_running()?;
            if let Ok(mut connection) = RespConnection::connect(port, deadline).await
                && let Ok(Resp::Simple(pong)) = connection.command(&[b"PING"]).await
                && pong == b"PONG"
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("redis-server did not answer PING within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(RedisSystem { process, port })
    }
}

fn stream_keys(stream: &StreamSpec) -> Vec<String> {
    (0..stream.n_partitions).map(|partition| format!("{}:{partition}", stream.name)).collect()
}

impl System for RedisSystem {
    type Lane = RedisLane;

    fn server_pid(&self) -> u32 {
        self.process.pid()
    }

    async fn create_stream(&mut self, _stream: &StreamSpec) -> Result<()> {
        // Redis creates a stream on its first XADD.
        Ok(())
    }

    async fn open_lane(&self, stream: &StreamSpec, _lane_idx: usize) -> Result<RedisLane> {
        Ok(RedisLane {
            connection: RespConnection::connect(self.port, tokio::time::Instant::now() + START_TIMEOUT).await?,
            keys: stream_keys(stream),
        })
    }

    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, n_consumers: usize) -> Result<ConsumeOutcome> {
        let keys = stream_keys(stream);
        let next_key_idx = std::sync::atomic::AtomicUsize::new(0);
        let count = CONSUME_BATCH_EVENTS_MAX.to_string();
        let consumers = (0..n_consumers.max(1)).map(|_| async {
            let mut connection = RespConnection::connect(self.port, tokio::time::Instant::now() + START_TIMEOUT).await?;
            let mut outcome = ConsumeOutcome::default();
            loop {
                let key_idx = next_key_idx.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(key) = keys.get(key_idx) else {
                    return Ok::<_, anyhow::Error>(outcome);
                };
                let mut start = b"-".to_vec();
                loop {
                    let reply = connection.command(&[b"XRANGE", key.as_bytes(), &start, b"+", b"COUNT", count.as_bytes()]).await?;
                    let Resp::Array(Some(entries)) = reply else {
                        bail!("XRANGE {key} answered {reply:?}");
                    };
                    let Some(last) = entries.last() else {
                        break;
                    };
                    for entry in &entries {
                        outcome.n_events += 1;
                        outcome.n_payload_bytes += entry_payload_bytes(entry);
                    }
                    let Resp::Array(Some(parts)) = last else {
                        bail!("XRANGE {key} entry is not an array");
                    };
                    let Some(Resp::Bulk(Some(last_id))) = parts.first() else {
                        bail!("XRANGE {key} entry has no id");
                    };
                    // `(` makes the next range start after the last id seen.
                    start = [b"(".as_slice(), last_id].concat();
                }
            }
        });
        super::sum_consumed(consumers, n_events_expected, "events").await
    }

    async fn stop(mut self) -> Result<()> {
        self.process.stop()
    }
}

/// The size of the field values of one XRANGE entry `[id, [field, value, ...]]`.
fn entry_payload_bytes(entry: &Resp) -> u64 {
    let Resp::Array(Some(parts)) = entry else {
        return 0;
    };
    let Some(Resp::Array(Some(fields))) = parts.get(1) else {
        return 0;
    };
    fields
        .iter()
        .skip(1)
        .step_by(2)
        .map(|value| match value {
            Resp::Bulk(Some(bytes)) => bytes.len() as u64,
            _ => 0,
        })
        .sum()
}

pub(crate) struct RedisLane {
    connection: RespConnection,
    /// Stream key per partition.
    keys: Vec<String>,
}

impl Lane for RedisLane {
    async fn send_batch(&mut self, events: &[Event]) -> Result<()> {
        for event in events {
            let key = &self.keys[event.partition as usize];
            self.connection.write_command(&[b"XADD", key.as_bytes(), b"*", b"d", event.payload.as_bytes()]).await?;
        }
        self.connection.writer.flush().await?;
        for _ in events {
            match self.connection.read_reply().await? {
                Resp::Bulk(Some(_)) => {}
                other => bail!("XADD answered {other:?}"),
            }
        }
        Ok(())
    }
}

/// A RESP2 reply.
#[derive(Debug)]
enum Resp {
    Simple(Vec<u8>),
    Error(String),
    Integer(#[expect(dead_code, reason = "parsed to keep the stream in sync; no command used here needs the value")] i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

struct RespConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

impl RespConnection {
    async fn connect(port: u16, deadline: tokio::time::Instant) -> Result<RespConnection> {
        let stream = connect_with_retry(port, deadline).await?;
        let (reader, writer) = stream.into_split();
        Ok(RespConnection { reader: BufReader::with_capacity(256 * 1024, reader), writer: BufWriter::with_capacity(256 * 1024, writer) })
    }

    async fn command(&mut self, arguments: &[&[u8]]) -> Result<Resp> {
        self.write_command(arguments).await?;
        self.writer.flush().await?;
        self.read_reply().await
    }

    async fn write_command(&mut self, arguments: &[&[u8]]) -> Result<()> {
        let mut head = format!("*{}\r\n", arguments.len());
        for argument in arguments {
            head.push_str(&format!("${}\r\n", argument.len()));
            self.writer.write_all(head.as_bytes()).await?;
            self.writer.write_all(argument).await?;
            head.clear();
            head.push_str("\r\n");
        }
        self.writer.write_all(head.as_bytes()).await?;
        Ok(())
    }

    async fn read_reply(&mut self) -> Result<Resp> {
        match read_value(&mut self.reader, 0).await? {
            Resp::Error(message) => bail!("redis error: {message}"),
            reply => Ok(reply),
        }
    }
}

fn read_value<'a>(reader: &'a mut BufReader<OwnedReadHalf>, depth: usize) -> Pin<Box<dyn Future<Output = Result<Resp>> + 'a>> {
    Box::pin(async move {
        if depth > NESTING_DEPTH_MAX {
            bail!("RESP reply nested deeper than {NESTING_DEPTH_MAX}");
        }
        let line = read_line_bounded(reader, LINE_BYTES_MAX).await?;
        let Some((&kind, rest)) = line.split_first() else {
            bail!("empty RESP line");
        };
        let rest_text = || std::str::from_utf8(rest).context("RESP line is not UTF-8");
        match kind {
            b'+' => Ok(Resp::Simple(rest.to_vec())),
            b'-' => Ok(Resp::Error(rest_text()?.to_string())),
            b':' => Ok(Resp::Integer(rest_text()?.parse().context("bad RESP integer")?)),
            b'$' => {
                let length: i64 = rest_text()?.parse().context("bad RESP bulk length")?;
                if length < 0 {
                    return Ok(Resp::Bulk(None));
                }
                let length = length as usize;
                if length > BULK_BYTES_MAX {
                    bail!("RESP bulk string of {length} bytes is over the {BULK_BYTES_MAX} byte limit");
                }
                let mut bytes = vec![0; length + 2];
                reader.read_exact(&mut bytes).await?;
                bytes.truncate(length);
                Ok(Resp::Bulk(Some(bytes)))
            }
            b'*' => {
                let n_elements: i64 = rest_text()?.parse().context("bad RESP array length")?;
                if n_elements < 0 {
                    return Ok(Resp::Array(None));
                }
                let n_elements = n_elements as usize;
                if n_elements > ARRAY_ELEMENTS_MAX {
                    bail!("RESP array of {n_elements} elements is over the {ARRAY_ELEMENTS_MAX} limit");
                }
                let mut elements = Vec::with_capacity(n_elements);
                for _ in 0..n_elements {
                    elements.push(read_value(reader, depth + 1).await?);
                }
                Ok(Resp::Array(Some(elements)))
            }
            other => bail!("unknown RESP type byte {other:#x}"),
        }
    })
}
