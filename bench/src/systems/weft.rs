//! Weft over its HTTP API: NDJSON batches in, JSON pages out.
//!
//! `weft serve --data-dir DIR --listen 127.0.0.1:PORT`, ready when `GET /healthz` answers 200, stopped with SIGTERM.
//! A stream is created with its fsync policy (`always`, `interval:<ms>`, `never`); a `POST .../events` response
//! arrives only once its events are durable under that policy.
//!
//! Extension point for the Kafka listener (`--kafka-listen 127.0.0.1:9092`): add a second `Lane` type here that
//! speaks Kafka Produce, pass `--kafka-listen` in `start`, and add a `WeftTransport::Kafka` arm in `main.rs`;
//! `create_stream` and `consume_all` can stay on HTTP so the two transports are compared on equal footing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::http1::HttpConnection;
use crate::server_process::{ServerProcess, free_loopback_port};
use crate::systems::{CONSUME_BATCH_EVENTS_MAX, ConsumeOutcome, Lane, START_TIMEOUT, StreamSpec, System};
use crate::workload::Event;

/// How Weft is configured for one benchmark configuration.
#[derive(Clone, Debug)]
pub(crate) struct WeftOptions {
    /// The stream's fsync policy as the API spells it: `always`, `interval:<ms>` or `never`.
    pub fsync: String,
    /// Whether a data contract is attached to the stream; not supported by the server yet, so only `false` runs.
    pub contracts: bool,
}

pub(crate) struct WeftSystem {
    process: ServerProcess,
    port: u16,
    options: WeftOptions,
    control: HttpConnection,
}

impl WeftSystem {
    pub(crate) async fn start(binary: &Path, data_dir: &Path, options: WeftOptions) -> Result<WeftSystem> {
        if options.contracts {
            bail!("contracts on is not supported by this driver yet: the contract API is not defined");
        }
        let port = free_loopback_port()?;
        let mut command = Command::new(binary);
        command.arg("serve").arg("--data-dir").arg(data_dir.join("weft")).arg("--listen").arg(format!("127.0.0.1:{port}"));
        let mut process = ServerProcess::spawn("weft", command, &data_dir.join("weft.log"))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let control = loop {
            process.check_running()?;
            if let Ok(mut connection) = HttpConnection::connect(port).await
                && let Ok(response) = connection.get("/healthz").await
                && response.status == 200
            {
                break connection;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("weft did not answer GET /healthz with 200 within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        Ok(WeftSystem { process, port, options, control })
    }
}

fn events_path(stream: &StreamSpec) -> String {
    format!("/api/v1/streams/{}/events", stream.name)
}

impl System for WeftSystem {
    type Lane = WeftLane;

    fn server_pid(&self) -> u32 {
        self.process.pid()
    }

    async fn create_stream(&mut self, stream: &StreamSpec) -> Result<()> {
        let body = serde_json::json!({
            "name": stream.name,
            "partitions": stream.n_partitions,
            "key": "/customer_id",
            "fsync": self.options.fsync,
        });
        let response = self.control.post("/api/v1/streams", "application/json", body.to_string().as_bytes()).await?;
        if !(200..300).contains(&response.status) {
            bail!("create stream {} answered {}: {}", stream.name, response.status, String::from_utf8_lossy(&response.body));
        }
        Ok(())
    }

    async fn open_lane(&self, stream: &StreamSpec, _lane_idx: usize) -> Result<WeftLane> {
        Ok(WeftLane {
            connection: HttpConnection::connect(self.port).await?,
            path: events_path(stream),
            body: Vec::with_capacity(512 * 1024),
        })
    }

    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, n_consumers: usize) -> Result<ConsumeOutcome> {
        let next_partition = std::sync::atomic::AtomicU32::new(0);
        let consumers = (0..n_consumers.max(1)).map(|_| async {
            let mut connection = HttpConnection::connect(self.port).await?;
            let mut outcome = ConsumeOutcome::default();
            loop {
                let partition = next_partition.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if partition >= stream.n_partitions {
                    return Ok::<_, anyhow::Error>(outcome);
                }
                let mut offset = 0u64;
                loop {
                    let path = format!("{}?partition={partition}&offset={offset}&limit={CONSUME_BATCH_EVENTS_MAX}", events_path(stream));
                    let response = connection.get(&path).await?;
                    if response.status != 200 {
                        bail!("GET {path} answered {}: {}", response.status, String::from_utf8_lossy(&response.body));
                    }
                    let page: EventsPage =
                        serde_json::from_slice(&response.body).with_context(|| format!("parse the page of GET {path}"))?;
                    if page.events.is_empty() {
                        break;
                    }
                    if page.next_offset <= offset {
                        bail!("GET {path} returned events but next_offset {} does not advance", page.next_offset);
                    }
                    outcome.n_events += page.events.len() as u64;
                    outcome.n_payload_bytes += response.body.len() as u64;
                    offset = page.next_offset;
                }
            }
        });
        let mut total = ConsumeOutcome::default();
        for outcome in futures_util::future::join_all(consumers).await {
            let outcome = outcome?;
            total.n_events += outcome.n_events;
            total.n_payload_bytes += outcome.n_payload_bytes;
        }
        if total.n_events != n_events_expected {
            bail!("consumed {} events, expected {n_events_expected}", total.n_events);
        }
        Ok(total)
    }

    async fn stop(mut self) -> Result<()> {
        self.process.stop()
    }
}

/// A page of `GET .../events`; events are only counted here, so they are skipped without being built.
#[derive(Deserialize)]
struct EventsPage {
    events: Vec<IgnoredAny>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct ProduceResponse {
    accepted: u64,
    rejected: u64,
}

pub(crate) struct WeftLane {
    connection: HttpConnection,
    path: String,
    body: Vec<u8>,
}

impl Lane for WeftLane {
    async fn send_batch(&mut self, events: &[Event]) -> Result<()> {
        self.body.clear();
        for event in events {
            self.body.extend_from_slice(event.payload.as_bytes());
            self.body.push(b'\n');
        }
        let response = self.connection.post(&self.path, "application/x-ndjson", &self.body).await?;
        if response.status != 200 {
            bail!("POST {} answered {}: {}", self.path, response.status, String::from_utf8_lossy(&response.body));
        }
        let outcome: ProduceResponse = serde_json::from_slice(&response.body).context("parse the produce response")?;
        if outcome.accepted != events.len() as u64 || outcome.rejected != 0 {
            bail!("sent {} events, weft accepted {} and rejected {}", events.len(), outcome.accepted, outcome.rejected);
        }
        Ok(())
    }
}
