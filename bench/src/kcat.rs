//! kcat, librdkafka's command-line client, as the Kafka client of the benchmark: produce and consume through the real
//! client library most Kafka applications use (directly, or through confluent-kafka), run as separate processes.
//!
//! Produce: the events are written to `n_producers` input files (`key<TAB>payload` lines, event `i` to file
//! `i % n_producers`) before timing starts; then one `kcat -P -K '\t' -l FILE` per file runs at once, and the phase ends
//! when the last one exits. kcat exits after librdkafka's final flush, so every message has been acknowledged with
//! `acks=all` (Weft answers Produce once the batch is durable under the stream's fsync policy); a non-zero exit or a
//! delivery error fails the run, and the consume phase counts every event again.
//! Partitions are chosen by librdkafka's default partitioner from the key (the customer id).
//! Consume: one `kcat -C -p PARTITION -o beginning -e` per partition, all at once (as a consumer group with one member
//! per partition), counting the lines each prints (one per event: the payload and `\n`).
//! A single kcat reading all partitions was slower here (about 400k events/s: its one output thread is the limit).
//! Producer and consumer settings are librdkafka's defaults (`linger.ms=5`, `batch.size=1000000`,
//! `fetch.max.bytes=52428800`, `max.partition.fetch.bytes=1048576`, no compression) apart from the broker address,
//! `fetch.wait.max.ms=10` for consumers (see `consume_partition`) and, with authentication on, SASL/PLAIN as `admin`
//! with the admin token; they are written to a `-F` file in the run's dir.
//!
//! This module knows kcat's command line and nothing about Weft beyond "a Kafka broker on a loopback port".

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::systems::ConsumeOutcome;
use crate::workload::Event;

/// Longest one kcat process may run before it is killed and its phase fails.
const KCAT_RUN_MAX: Duration = Duration::from_secs(600);
/// How often a running kcat is checked for exit.
const KCAT_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Bytes of kcat's stderr quoted in an error.
const STDERR_QUOTED_BYTES_MAX: usize = 2_000;
/// Read size for kcat's output.
const OUTPUT_READ_BYTES: usize = 256 * 1024;

/// Where a Kafka broker listens and how to sign in.
#[derive(Clone, Debug)]
pub(crate) struct KafkaEndpoint {
    pub port: u16,
    /// `(username, password)` for SASL/PLAIN, or `None` for plaintext without authentication.
    pub sasl_plain: Option<(String, String)>,
    /// A directory for kcat's config and input files (the run's temp dir).
    pub work_dir: PathBuf,
}

/// What producing with a separate client took (its CPU is read by the caller from the reaped children's times).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OwnClientProduce {
    pub elapsed: Duration,
}

/// The path of `kcat` on `PATH`, if installed.
pub(crate) fn find_kcat() -> Option<PathBuf> {
    crate::server_process::find_on_path("kcat")
}

fn write_config(endpoint: &KafkaEndpoint) -> Result<PathBuf> {
    let path = endpoint.work_dir.join("kcat.conf");
    let mut text = format!("bootstrap.servers=127.0.0.1:{}\nacks=all\n", endpoint.port);
    if let Some((username, password)) = &endpoint.sasl_plain {
        text.push_str(&format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\nsasl.username={username}\nsasl.password={password}\n"
        ));
    }
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Produces every event with `n_producers` kcat processes and returns once all have exited.
pub(crate) async fn produce(endpoint: &KafkaEndpoint, topic: &str, events: &[Event], n_producers: usize) -> Result<OwnClientProduce> {
    let kcat = find_kcat().ok_or_else(|| anyhow!("kcat is not on PATH (scripts/bench.sh installs it)"))?;
    let config = write_config(endpoint)?;
    let n_producers = n_producers.max(1);
    let mut inputs = Vec::with_capacity(n_producers);
    for producer_idx in 0..n_producers {
        let path = endpoint.work_dir.join(format!("kcat-produce-{producer_idx}.txt"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?);
        for event in events.iter().skip(producer_idx).step_by(n_producers) {
            if event.key.contains(['\t', '\n']) || event.payload.contains(['\t', '\n']) {
                bail!("an event holds a tab or newline, which kcat's line input cannot carry");
            }
            file.write_all(event.key.as_bytes())?;
            file.write_all(b"\t")?;
            file.write_all(event.payload.as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
        inputs.push(path);
    }
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut children = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let mut command = Command::new(&kcat);
            command.arg("-F").arg(&config).args(["-P", "-q", "-t", &topic, "-K", "\t", "-l"]).arg(input);
            children.push(spawn_logged(command, &input.with_extension("stderr"), Stdio::null())?);
        }
        for (child, input) in children.into_iter().zip(&inputs) {
            wait_within(child, started + KCAT_RUN_MAX, &input.with_extension("stderr"))?;
        }
        Ok(OwnClientProduce { elapsed: started.elapsed() })
    })
    .await
    .context("the kcat producer thread panicked")?
}

/// Reads every partition of `topic` from the beginning with one kcat process per partition, all at once, as a Kafka
/// consumer group with one member per partition would.
pub(crate) async fn consume(endpoint: &KafkaEndpoint, topic: &str, n_partitions: u32, n_events_expected: u64) -> Result<ConsumeOutcome> {
    let kcat = find_kcat().ok_or_else(|| anyhow!("kcat is not on PATH (scripts/bench.sh installs it)"))?;
    let config = write_config(endpoint)?;
    let topic = topic.to_string();
    let work_dir = endpoint.work_dir.clone();
    let total = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + KCAT_RUN_MAX;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..n_partitions)
                .map(|partition| {
                    let (kcat, config, topic, work_dir) = (&kcat, &config, &topic, &work_dir);
                    scope.spawn(move || consume_partition(kcat, config, topic, partition, work_dir, deadline))
                })
                .collect();
            let mut total = ConsumeOutcome::default();
            for worker in workers {
                let outcome = worker.join().map_err(|_| anyhow!("a kcat consumer thread panicked"))??;
                total.n_events += outcome.n_events;
                total.n_payload_bytes += outcome.n_payload_bytes;
            }
            Ok::<_, anyhow::Error>(total)
        })
    })
    .await
    .context("the kcat consumer thread panicked")??;
    if total.n_events != n_events_expected {
        bail!("kcat consumed {} events, expected {n_events_expected}", total.n_events);
    }
    Ok(total)
}

fn consume_partition(
    kcat: &Path,
    config: &Path,
    topic: &str,
    partition: u32,
    work_dir: &Path,
    deadline: Instant,
) -> Result<ConsumeOutcome> {
    let stderr_path = work_dir.join(format!("kcat-consume-{partition}.stderr"));
    let mut command = Command::new(kcat);
    // fetch.wait.max.ms=10: at the end of a partition Weft holds an empty Fetch for this long before kcat sees the
    // end (`-e`); librdkafka's default of 500 ms would add half a second per run that is not consuming.
    command.arg("-F").arg(config).args(["-X", "fetch.wait.max.ms=10", "-C", "-q", "-e", "-o", "beginning", "-t", topic]);
    command.arg("-p").arg(partition.to_string());
    let mut child = spawn_logged(command, &stderr_path, Stdio::piped())?;
    let mut stdout = child.stdout.take().context("kcat's stdout is piped")?;
    let mut buffer = vec![0u8; OUTPUT_READ_BYTES];
    let (mut n_lines, mut n_bytes) = (0u64, 0u64);
    loop {
        let n_read = stdout.read(&mut buffer).context("read kcat's output")?;
        if n_read == 0 {
            break;
        }
        n_bytes += n_read as u64;
        n_lines += buffer[..n_read].iter().filter(|byte| **byte == b'\n').count() as u64;
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("kcat consuming partition {partition} ran longer than {KCAT_RUN_MAX:?}");
        }
    }
    wait_within(child, deadline, &stderr_path)?;
    Ok(ConsumeOutcome { n_events: n_lines, n_payload_bytes: n_bytes - n_lines })
}

fn spawn_logged(mut command: Command, stderr_path: &Path, stdout: Stdio) -> Result<Child> {
    let stderr = std::fs::File::create(stderr_path).with_context(|| format!("create {}", stderr_path.display()))?;
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().with_context(|| format!("spawn {command:?}"))
}

/// Waits for a kcat process; fails if it exits non-zero, reports an error on stderr, or outlives `deadline`.
fn wait_within(mut child: Child, deadline: Instant, stderr_path: &Path) -> Result<()> {
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("kcat ran longer than {KCAT_RUN_MAX:?}");
        }
        std::thread::sleep(KCAT_POLL_INTERVAL);
    };
    let stderr = std::fs::read(stderr_path).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr[..stderr.len().min(STDERR_QUOTED_BYTES_MAX)]).into_owned();
    // With -q kcat prints only errors; librdkafka's delivery failures appear as "% Delivery failed" or "% ERROR".
    if !status.success() || stderr.contains("ERROR") || stderr.contains("failed") {
        bail!("kcat exited with {status}: {stderr}");
    }
    Ok(())
}
