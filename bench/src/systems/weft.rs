//! Weft, over its HTTP API (NDJSON batches in, JSON pages out) or over its Kafka listener (kcat, that is librdkafka).
//!
//! `weft serve --data-dir DIR --listen 127.0.0.1:PORT --kafka-listen 127.0.0.1:PORT2 [--auth off]`,
//! ready when `GET /healthz` answers 200, stopped with SIGTERM.
//! With authentication on (Weft's default) the server writes `<data-dir>/admin.token` on first start;
//! every `/api/...` request then carries `Authorization: Bearer <token>`, and kcat signs in with SASL/PLAIN
//! (`admin`, the token).
//!
//! Streams are created over HTTP for both transports: with contracts off by `POST /api/v1/streams`, with contracts on by
//! `POST /api/v1/apply` of the ODCS contract `bench/contracts/orders.odcs.yaml` ([`order_contract_yaml`]), which makes
//! every produced event be validated before it is appended, over HTTP and over Kafka (invalid ones go to
//! `<stream>.dlq`; the benchmark's events are all valid, an HTTP run fails if any is rejected, and a Kafka run fails if
//! the consumed count is short).
//! A `POST .../events` response, and a Kafka Produce response (acks=all), arrives only once its events are durable
//! under the stream's fsync policy.
//!
//! The Kafka transport has no `Lane`: kcat runs as separate processes (`kcat.rs`), so produce and consume are done
//! through `System::produce_with_own_client` and `consume_all`, and the open-loop latency phase is not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::http1::HttpConnection;
use crate::kcat::{KafkaEndpoint, OwnClientProduce};
use crate::server_process::{ServerProcess, free_loopback_port};
use crate::systems::{CONSUME_BATCH_EVENTS_MAX, ConsumeOutcome, Lane, START_TIMEOUT, StreamSpec, System};
use crate::workload::Event;

/// How the benchmark talks to Weft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WeftTransport {
    /// The HTTP API with this crate's own HTTP/1.1 client.
    Http,
    /// The Kafka listener with kcat (librdkafka) processes.
    Kafka,
}

/// How Weft is configured for one benchmark configuration.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WeftOptions {
    pub transport: WeftTransport,
    /// The stream's fsync policy as the API spells it: `always`, `interval:<ms>` or `never`.
    pub fsync: String,
    /// Whether the streams are created from a data contract, so that every event produced over HTTP is validated.
    pub contracts: bool,
    /// Whether the server runs with authentication and authorization on (`weft serve --auth on`, the default).
    pub auth: bool,
}

pub(crate) struct WeftSystem {
    process: ServerProcess,
    port: u16,
    kafka_port: u16,
    options: WeftOptions,
    /// The admin token when authentication is on.
    token: Option<String>,
    control: HttpConnection,
    /// The run's temp dir, where kcat's input and config files go.
    run_dir: PathBuf,
}

impl WeftSystem {
    pub(crate) async fn start(binary: &Path, run_dir: &Path, options: WeftOptions) -> Result<WeftSystem> {
        let port = free_loopback_port()?;
        let kafka_port = free_loopback_port()?;
        let data_dir = run_dir.join("weft");
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--kafka-listen")
            .arg(format!("127.0.0.1:{kafka_port}"))
            .arg("--auth")
            .arg(if options.auth { "on" } else { "off" });
        let mut process = ServerProcess::spawn("weft", command, &run_dir.join("weft.log"))?;
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
        // The server writes its admin token before it listens, so it is there once /healthz answers.
        let token = if options.auth {
            let path = data_dir.join("admin.token");
            let token = std::fs::read_to_string(&path)
                .with_context(|| format!("read {} (weft writes it on first start with auth on)", path.display()))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                bail!("{} is empty", path.display());
            }
            Some(token)
        } else {
            None
        };
        let control = control.with_bearer_token(token.as_deref());
        Ok(WeftSystem { process, port, kafka_port, options, token, control, run_dir: run_dir.to_path_buf() })
    }

    async fn connect(&self) -> Result<HttpConnection> {
        Ok(HttpConnection::connect(self.port).await?.with_bearer_token(self.token.as_deref()))
    }

    fn kafka_endpoint(&self) -> KafkaEndpoint {
        KafkaEndpoint {
            port: self.kafka_port,
            sasl_plain: self.token.as_ref().map(|token| ("admin".to_string(), token.clone())),
            work_dir: self.run_dir.clone(),
        }
    }
}

fn events_path(stream: &StreamSpec) -> String {
    format!("/api/v1/streams/{}/events", stream.name)
}

/// The ODCS v3.1.0 contract template of the governed runs (`--weft-contracts on`), with `${stream}`, `${partitions}` and
/// `${fsync}` to fill in; kept as a YAML file so it can be read, and applied by hand, like the contracts in `examples/`.
const ORDER_CONTRACT_TEMPLATE: &str = include_str!("../../contracts/orders.odcs.yaml");

/// The contract the benchmark applies with `--weft-contracts on` for one stream: every field of the order events
/// (`workload.rs`) is declared with its type; ten are required, the order id is a uuid, three fields have a pattern,
/// numbers have bounds, two fields are enumerations and one is a timestamp, so validation does the work a realistic
/// contract for such events would.
pub(crate) fn order_contract_yaml(stream: &StreamSpec, fsync: &str) -> String {
    let yaml = ORDER_CONTRACT_TEMPLATE
        .replace("${stream}", &stream.name)
        .replace("${partitions}", &stream.n_partitions.to_string())
        .replace("${fsync}", fsync);
    // A placeholder left over would be applied literally (a stream named `${stream}`), so it is a bug of this file.
    assert!(!yaml.contains("${"), "the bench contract template has a placeholder this function does not fill in");
    yaml
}

/// The bench contract compiled with Weft's own contract library, for the in-process validation probe and tests.
pub(crate) fn compile_order_contract(stream: &StreamSpec, fsync: &str) -> Result<weft_contract::CompiledContract> {
    let yaml = order_contract_yaml(stream, fsync);
    let documents = weft_contract::parse_documents(&yaml, "bench contract").map_err(|error| anyhow::anyhow!("{error}"))?;
    let Some(weft_contract::Document::Contract(contract)) = documents.into_iter().next() else {
        bail!("the bench contract is not a data contract");
    };
    weft_contract::CompiledContract::compile(&contract, "Order").map_err(|error| anyhow::anyhow!("{error}"))
}

impl System for WeftSystem {
    type Lane = WeftLane;

    fn server_pid(&self) -> u32 {
        self.process.pid()
    }

    async fn create_stream(&mut self, stream: &StreamSpec) -> Result<()> {
        let response = if self.options.contracts {
            let contract = order_contract_yaml(stream, &self.options.fsync);
            self.control.post("/api/v1/apply", "application/yaml", contract.as_bytes()).await?
        } else {
            let body = serde_json::json!({
                "name": stream.name,
                "partitions": stream.n_partitions,
                "key": "/customer_id",
                "fsync": self.options.fsync,
            });
            self.control.post("/api/v1/streams", "application/json", body.to_string().as_bytes()).await?
        };
        if !(200..300).contains(&response.status) {
            bail!("create stream {} answered {}: {}", stream.name, response.status, String::from_utf8_lossy(&response.body));
        }
        Ok(())
    }

    async fn open_lane(&self, stream: &StreamSpec, _lane_idx: usize) -> Result<WeftLane> {
        if self.options.transport == WeftTransport::Kafka {
            bail!("Weft over Kafka has no lanes: kcat produces (produce_with_own_client)");
        }
        Ok(WeftLane { connection: self.connect().await?, path: events_path(stream), body: Vec::with_capacity(512 * 1024) })
    }

    fn measures_latency(&self) -> bool {
        self.options.transport == WeftTransport::Http
    }

    async fn produce_with_own_client(&self, stream: &StreamSpec, events: &[Event], n_producers: usize) -> Option<Result<OwnClientProduce>> {
        match self.options.transport {
            WeftTransport::Http => None,
            WeftTransport::Kafka => Some(crate::kcat::produce(&self.kafka_endpoint(), &stream.name, events, n_producers).await),
        }
    }

    async fn consume_all(&self, stream: &StreamSpec, n_events_expected: u64, n_consumers: usize) -> Result<ConsumeOutcome> {
        if self.options.transport == WeftTransport::Kafka {
            return crate::kcat::consume(&self.kafka_endpoint(), &stream.name, stream.n_partitions, n_events_expected).await;
        }
        let next_partition = std::sync::atomic::AtomicU32::new(0);
        let consumers = (0..n_consumers.max(1)).map(|_| async {
            let mut connection = self.connect().await?;
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
        super::sum_consumed(consumers, n_events_expected, "events").await
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
            bail!(
                "sent {} events, weft accepted {} and rejected {}: {}",
                events.len(),
                outcome.accepted,
                outcome.rejected,
                String::from_utf8_lossy(&response.body[..response.body.len().min(2_000)])
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;
    use serde_json::{Value, json};
    use weft_contract::violation;

    fn bench_stream() -> StreamSpec {
        StreamSpec { name: "bench.orders.v1".to_string(), n_partitions: 8 }
    }

    /// The one helper: a change to a generated event in, the `(code, pointer)` violations the contract reports out.
    fn check(contract: &weft_contract::CompiledContract, event: &Value, expected: &[(&str, &str)]) {
        let actual: Vec<(&str, String)> = match contract.validate(event) {
            Ok(()) => Vec::new(),
            Err(violations) => violations.into_iter().map(|violation| (violation.code, violation.path)).collect(),
        };
        let expected: Vec<(&str, String)> = expected.iter().map(|(code, path)| (*code, path.to_string())).collect();
        assert_eq!(actual, expected, "event {event}");
    }

    /// Proves the contract the benchmark applies accepts every generated event: it parses and compiles with Weft's own
    /// contract library and finds no violation, so a run with contracts on measures validation, not dead letters.
    #[test]
    fn the_bench_contract_accepts_every_generated_event() {
        let yaml = order_contract_yaml(&bench_stream(), "interval:5");
        assert!(yaml.contains("physicalName: bench.orders.v1"));
        assert!(yaml.contains("value: \"interval:5\""));
        assert!(yaml.contains("value: 8\n"));
        let contract = compile_order_contract(&bench_stream(), "interval:5").expect("the bench contract compiles");
        let workload = Workload::generate(2_000, 3, 8);
        for event in &workload.events {
            if let Err(violations) = contract.validate_bytes(event.payload.as_bytes()) {
                panic!("event {} violates the bench contract: {violations:?}", event.payload);
            }
        }
    }

    /// Proves every rule the bench contract declares is enforced, so governed runs pay for all of them: each of the ten
    /// required fields, the uuid format, the three patterns, the numeric bounds, both enumerations and the timestamp.
    #[test]
    fn the_bench_contract_enforces_each_of_its_rules() {
        let contract = compile_order_contract(&bench_stream(), "always").expect("the bench contract compiles");
        let workload = Workload::generate(1, 11, 8);
        let valid: Value = serde_json::from_str(&workload.events[0].payload).expect("generated events are JSON");
        check(&contract, &valid, &[]);

        let required =
            ["order_id", "customer_id", "amount", "currency", "items", "timestamp", "status", "channel", "shipping_country", "sku"];
        for field in required {
            let mut event = valid.clone();
            event.as_object_mut().expect("an event is an object").remove(field);
            check(&contract, &event, &[(violation::REQUIRED_MISSING, &format!("/{field}"))]);
        }
        let mut without_note = valid.clone();
        without_note.as_object_mut().expect("an event is an object").remove("note");
        check(&contract, &without_note, &[]);

        for (field, value, code) in [
            ("order_id", json!("ord-0001-000000001"), violation::FORMAT_INVALID),
            ("customer_id", json!("customer-1"), violation::PATTERN_MISMATCH),
            ("amount", json!(-0.01), violation::OUT_OF_RANGE),
            ("amount", json!("12.00"), violation::TYPE_MISMATCH),
            ("currency", json!("JPY"), violation::NOT_VALID_VALUE),
            ("items", json!(0), violation::OUT_OF_RANGE),
            ("timestamp", json!("yesterday"), violation::FORMAT_INVALID),
            ("status", json!("lost"), violation::NOT_VALID_VALUE),
            ("channel", json!("x"), violation::LENGTH_OUT_OF_RANGE),
            ("shipping_country", json!("de"), violation::PATTERN_MISMATCH),
            ("sku", json!("SKU-12345"), violation::PATTERN_MISMATCH),
        ] {
            let mut event = valid.clone();
            event[field] = value;
            check(&contract, &event, &[(code, &format!("/{field}"))]);
        }
    }
}
