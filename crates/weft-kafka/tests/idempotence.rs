//! Idempotent producers through real sockets against `weft_kafka::serve` on loopback: a retried
//! batch is stored once, and what makes it so survives closing and reopening the data
//! directory (sequence state rebuilt from the log, producer ids from the metadata store), even
//! when the clock stands still across the restart.
//!
//! The restarts here are in-process (the listener stops, the broker is dropped without a sync,
//! the data directory is opened again); `crates/weft/tests/it/kafka_idempotence.rs` does the
//! same with `kill -9` of the real binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_core::{Broker, Clock, StreamConfig};
use weft_log::batch::{BatchBuilder, ProducerStamp, set_producer};

/// Longest any test waits for one answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const STREAM: &str = "orders";
/// Kafka's error codes the tests expect.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// A clock that stands still: what an earlier version's time-derived producer ids could not survive.
struct StillClock(i64);

impl Clock for StillClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// A listener over a broker on `data_dir`; `stop` ends it and waits until the broker is released.
struct Listener {
    address: std::net::SocketAddr,
    broker: Option<Arc<Broker>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listener {
    async fn start(data_dir: &Path, clock: Arc<dyn Clock>) -> Self {
        let broker = Broker::open(data_dir, clock).expect("opening the broker");
        broker.guard().disable();
        if broker.stream(STREAM).is_err() {
            let config = StreamConfig {
                name: STREAM.into(),
                partitions: 2,
                key: None,
                retention_ms: None,
                retention_bytes: None,
                fsync: weft_core::FsyncPolicy::Always,
                segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                created_at_ms: 0,
            };
            broker.create_stream(config).expect("creating the stream");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
        let address = listener.local_addr().expect("the listener's address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let advertised = ("127.0.0.1".to_string(), address.port() as i32);
        let served = tokio::spawn(weft_kafka::serve(listener, Arc::clone(&broker), advertised, Default::default(), async move {
            let _ = stopped.await;
        }));
        Self { address, broker: Some(broker), stop: Some(stop), served }
    }

    fn next_offset(&self, partition: u32) -> u64 {
        self.broker.as_ref().unwrap().stream(STREAM).unwrap().partition_stats(partition).unwrap().visible_next_offset
    }

    /// Stops serving and drops the broker without syncing: the data directory can be opened again.
    async fn stop(mut self) {
        drop(self.broker.take());
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(CLIENT_TIMEOUT, &mut self.served).await.expect("the listener stops").unwrap().unwrap();
    }
}

/// One connection speaking the Kafka protocol, one request at a time.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    async fn connect(address: std::net::SocketAddr) -> Self {
        Self { stream: TcpStream::connect(address).await.expect("connecting"), correlation_id: 0 }
    }

    async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, body: &Req) -> Resp {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("idempotence-test")));
        let mut out = BytesMut::new();
        header.encode(&mut out, api.request_header_version(version)).unwrap();
        body.encode(&mut out, version).unwrap();
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        self.stream.write_all(&frame).await.expect("sending a request");
        let read = async {
            let mut length = [0u8; 4];
            self.stream.read_exact(&mut length).await.expect("a response");
            let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
            self.stream.read_exact(&mut body).await.expect("a whole response");
            body
        };
        let mut body = Bytes::from(tokio::time::timeout(CLIENT_TIMEOUT, read).await.expect("answered in time"));
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = Resp::decode(&mut body, version).unwrap();
        assert!(!body.has_remaining(), "the response is read whole");
        response
    }

    async fn init_producer_id(&mut self) -> i64 {
        let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
        let response: InitProducerIdResponse = self.call(ApiKey::InitProducerId, 1, &request).await;
        assert_eq!(response.error_code, 0);
        response.producer_id.0
    }

    /// Produces `batch` to one partition with acks=all; returns (error code, base offset).
    async fn produce(&mut self, partition: i32, batch: &[u8]) -> (i16, i64) {
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str(STREAM))).with_partition_data(vec![
                PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::copy_from_slice(batch))),
            ]),
        ]);
        let response: ProduceResponse = self.call(ApiKey::Produce, 8, &request).await;
        let answer = &response.responses[0].partition_responses[0];
        (answer.error_code, answer.base_offset)
    }
}

/// A batch of `n_records` records stamped with the producer's id, epoch and base sequence.
fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, n_records: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    for record_idx in 0..n_records {
        builder.push::<&str>(1_700_000_000_000, None, Some(format!("{{\"n\":{record_idx}}}").as_bytes()), &[]);
    }
    let mut batch = builder.finish();
    set_producer(&mut batch, ProducerStamp { producer_id, producer_epoch: epoch, base_sequence });
    batch
}

/// Proves: the same idempotent batch sent twice (same producer id, epoch and sequence) is stored
/// once, and the second answer is a success carrying the first one's base offset.
#[tokio::test]
async fn the_same_idempotent_batch_sent_twice_is_stored_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let listener = Listener::start(data_dir.path(), Arc::new(weft_log::SystemClock)).await;
    let mut client = Client::connect(listener.address).await;
    let producer_id = client.init_producer_id().await;
    let first = idempotent_batch(producer_id, 0, 0, 3);
    assert_eq!(client.produce(0, &first).await, (0, 0));
    assert_eq!(client.produce(0, &first).await, (0, 0), "the retry is answered with the original offset");
    assert_eq!(listener.next_offset(0), 3, "stored once");
    assert_eq!(client.produce(0, &idempotent_batch(producer_id, 0, 3, 2)).await, (0, 3), "the next sequence appends");
    assert_eq!(listener.next_offset(0), 5);
    listener.stop().await;
}

/// Proves: after the data directory is closed and opened again, a retry of each of a
/// producer's last batches is still answered with its original offset and not stored again,
/// on every partition it wrote to; a gap is still OUT_OF_ORDER_SEQUENCE_NUMBER; and the next
/// sequence appends.
#[tokio::test]
async fn retries_after_reopening_are_still_stored_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let listener = Listener::start(data_dir.path(), Arc::new(weft_log::SystemClock)).await;
    let mut client = Client::connect(listener.address).await;
    let producer_id = client.init_producer_id().await;
    let batches: Vec<Vec<u8>> = (0..4).map(|batch_idx| idempotent_batch(producer_id, 0, batch_idx * 2, 2)).collect();
    for (batch_idx, batch) in batches.iter().enumerate() {
        assert_eq!(client.produce(0, batch).await, (0, batch_idx as i64 * 2));
        assert_eq!(client.produce(1, batch).await, (0, batch_idx as i64 * 2));
    }
    listener.stop().await;

    let listener = Listener::start(data_dir.path(), Arc::new(weft_log::SystemClock)).await;
    let mut client = Client::connect(listener.address).await;
    for (batch_idx, batch) in batches.iter().enumerate().rev() {
        for partition in [0, 1] {
            assert_eq!(client.produce(partition, batch).await, (0, batch_idx as i64 * 2), "retry of batch {batch_idx} on {partition}");
        }
    }
    assert_eq!((listener.next_offset(0), listener.next_offset(1)), (8, 8), "nothing stored twice");
    let gap = idempotent_batch(producer_id, 0, 20, 1);
    assert_eq!(client.produce(0, &gap).await.0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(client.produce(0, &idempotent_batch(producer_id, 0, 8, 1)).await, (0, 8), "the next sequence appends");
    listener.stop().await;
}

/// Proves: producer ids are never handed out twice across restarts, even when the clock reads
/// the same time after the restart as before it (ids derived from the start-up time repeat).
#[tokio::test]
async fn producer_ids_do_not_repeat_across_a_restart_when_the_clock_stands_still() {
    let data_dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(StillClock(1_700_000_000_000));
    let mut handed_out = Vec::new();
    for _restart_idx in 0..3 {
        let listener = Listener::start(data_dir.path(), Arc::clone(&clock)).await;
        let mut client = Client::connect(listener.address).await;
        for _ in 0..3 {
            handed_out.push(client.init_producer_id().await);
        }
        listener.stop().await;
    }
    let mut distinct = handed_out.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), handed_out.len(), "every id is new: {handed_out:?}");
    assert!(handed_out.windows(2).all(|pair| pair[0] < pair[1]), "ids only grow: {handed_out:?}");
}

/// Measures (does not prove): what rebuilding producer state costs the first idempotent
/// produce to a large partition after a restart, against the second produce. Run with
/// `cargo test -p weft-kafka --test idempotence rebuild_cost -- --ignored --nocapture`;
/// `WEFT_REBUILD_BENCH_DIR` keeps the data directory between runs (to evict it from the page
/// cache in between), `WEFT_REBUILD_BENCH_BATCH_BYTES` sets the batch size (default 16 KiB),
/// `WEFT_REBUILD_BENCH_PARTITION_BYTES` the partition size (default 1 GiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that writes a 1 GiB partition"]
async fn rebuild_cost_of_a_large_partition() {
    let env_u64 = |name: &str, default: u64| std::env::var(name).ok().map_or(default, |text| text.parse().expect(name));
    let batch_bytes = env_u64("WEFT_REBUILD_BENCH_BATCH_BYTES", 16 * 1024) as usize;
    let partition_bytes = env_u64("WEFT_REBUILD_BENCH_PARTITION_BYTES", 1024 * 1024 * 1024);
    let kept_dir = std::env::var("WEFT_REBUILD_BENCH_DIR").ok().map(std::path::PathBuf::from);
    let temp_dir = tempfile::tempdir().unwrap();
    let data_dir = kept_dir.clone().unwrap_or_else(|| temp_dir.path().to_path_buf());
    let producer_ids: Vec<i64> = (0..100).map(|producer_idx| 1_000_000 + producer_idx).collect();
    let fresh = !data_dir.join("meta.redb").exists();
    if fresh {
        let started = std::time::Instant::now();
        let broker = Broker::open(&data_dir, Arc::new(weft_log::SystemClock)).unwrap();
        let config = StreamConfig {
            name: STREAM.into(),
            partitions: 1,
            key: None,
            retention_ms: None,
            retention_bytes: None,
            fsync: weft_core::FsyncPolicy::Never,
            segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
            created_at_ms: 0,
        };
        let stream = broker.create_stream(config).unwrap();
        let value = vec![b'x'; batch_bytes.saturating_sub(100).max(1)];
        let mut sequences = vec![0i32; producer_ids.len()];
        let mut written = 0u64;
        let mut batch_idx = 0usize;
        let context = weft_core::ProduceContext { producer: "bench".into() };
        while written < partition_bytes {
            let producer_idx = batch_idx % producer_ids.len();
            let mut builder = BatchBuilder::new(1_700_000_000_000);
            builder.push::<&str>(1_700_000_000_000, None, Some(&value), &[]);
            let mut batch = builder.finish();
            let stamp =
                ProducerStamp { producer_id: producer_ids[producer_idx], producer_epoch: 0, base_sequence: sequences[producer_idx] };
            set_producer(&mut batch, stamp);
            sequences[producer_idx] += 1;
            written += batch.len() as u64;
            broker.append_batch_as(&stream, 0, weft_log::VerifiedBatch::verify(batch).unwrap(), &context).await.unwrap();
            batch_idx += 1;
        }
        broker.sync_all();
        println!("wrote {batch_idx} batches, {written} bytes, in {:?}", started.elapsed());
    }
    let started = std::time::Instant::now();
    let listener = Listener::start(&data_dir, Arc::new(weft_log::SystemClock)).await;
    let opened = started.elapsed();
    let mut client = Client::connect(listener.address).await;
    // A retry of producer 0's batch: the rebuild finds it in the tail, so it is a duplicate.
    let probe_producer = 1_000_000 + 99;
    let started = std::time::Instant::now();
    let (error_code, _) = client.produce(0, &idempotent_batch(probe_producer, 0, 0, 1)).await;
    let first = started.elapsed();
    let started = std::time::Instant::now();
    let _ = client.produce(0, &idempotent_batch(probe_producer + 1, 0, 0, 1)).await;
    let second = started.elapsed();
    println!(
        "batch {batch_bytes} B, partition {partition_bytes} B: open (recovery) {opened:?}, first idempotent produce (rebuild) {first:?} \
         [error code {error_code}], second {second:?}"
    );
    listener.stop().await;
}
