"""Throughput of the Kafka listener versus the HTTP NDJSON path (not part of the test suite).

Usage: WEFT_BIN=target/release/weft target/venv/bin/python tests/interop/bench_kafka.py [n_events]
Starts a server on a temporary data directory, creates 8-partition streams, and measures
with ~250-byte JSON events: Kafka produce (confluent-kafka, 4 processes), Kafka consume
(4 processes, 2 partitions each), HTTP NDJSON produce (1000 events per request, 4 threads)
and HTTP fetch (4 threads).
"""

import json
import multiprocessing
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import WeftServer  # noqa: E402

N_PARTITIONS = 8
N_PROCESSES = 4


def event(i: int) -> bytes:
    body = {"order_id": f"o-{i:012d}", "customer_id": f"c-{i % 1000:06d}", "amount": 123.45, "currency": "EUR",
            "items": [{"sku": "sku-000123", "qty": 2}], "status": "created", "note": "x" * 60}
    return json.dumps(body).encode()


def kafka_produce_worker(bootstrap, topic, start, count, acks, out):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "batch.size": 1_000_000, "acks": acks,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    payload = event(start)
    t0 = time.perf_counter()
    for i in range(start, start + count):
        while True:
            try:
                p.produce(topic, payload, key=str(i % 1000).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    out.put(time.perf_counter() - t0)


def kafka_consume_worker(bootstrap, topic, partitions, expected, out):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 16 * 1024 * 1024, "max.partition.fetch.bytes": 4 * 1024 * 1024,
                  "queued.max.messages.kbytes": 1_048_576})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    n = 0
    t0 = time.perf_counter()
    while n < expected:
        n += len(c.consume(100_000, 1.0))
    out.put((n, time.perf_counter() - t0))
    c.close()


def run_processes(target, args_list):
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(*args, queue)) for args in args_list]
    t0 = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return time.perf_counter() - t0, results


def http_produce(weft, topic, n_events, n_threads=4, per_request=1000):
    body = b"\n".join(event(i) for i in range(per_request)) + b"\n"
    n_requests = n_events // per_request

    def worker(count):
        for _ in range(count):
            req = urllib.request.Request(f"{weft.http}/api/v1/streams/{topic}/events", data=body, method="POST",
                                         headers={"content-type": "application/x-ndjson"})
            with urllib.request.urlopen(req, timeout=60) as response:
                response.read()

    threads = [threading.Thread(target=worker, args=(n_requests // n_threads,)) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def http_consume(weft, topic, n_threads=4):
    counts = []

    def worker(partitions):
        n = 0
        for partition in partitions:
            offset = 0
            while True:
                with urllib.request.urlopen(f"{weft.http}/api/v1/streams/{topic}/events?partition={partition}&offset={offset}&limit=10000", timeout=60) as response:
                    reply = json.loads(response.read())
                if not reply["events"]:
                    break
                n += len(reply["events"])
                offset = reply["next_offset"]
        counts.append(n)

    threads = [threading.Thread(target=worker, args=([p for p in range(N_PARTITIONS) if p % n_threads == t],)) for t in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - t0


def main():
    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    fsync = sys.argv[2] if len(sys.argv) > 2 else "always"
    with tempfile.TemporaryDirectory() as tmp:
        weft = WeftServer(Path(tmp) / "data", Path(tmp) / "weft.log", extra_args=["--auth", "off"])  # plaintext clients, as before governance
        weft.start()
        try:
            weft.create_stream("bench.kafka", partitions=N_PARTITIONS, fsync=fsync)
            weft.create_stream("bench.http", partitions=N_PARTITIONS, key="/customer_id", fsync=fsync)
            print(f"event size {len(event(0))} bytes, {n_events} events, 8 partitions, fsync {fsync}")
            per = n_events // N_PROCESSES
            wall, _ = run_processes(kafka_produce_worker, [(weft.bootstrap, "bench.kafka", k * per, per, "all") for k in range(N_PROCESSES)])
            print(f"kafka produce (confluent-kafka, {N_PROCESSES} procs, acks=all): {n_events / wall:,.0f} events/s ({wall:.1f}s)")
            groups = [[p for p in range(N_PARTITIONS) if p % N_PROCESSES == k] for k in range(N_PROCESSES)]
            ends = {o["partition"]: o["next_offset"] for o in weft.request("GET", "/api/v1/streams/bench.kafka")[1]["offsets"]}
            assert sum(ends.values()) == n_events, ends
            jobs = [(weft.bootstrap, "bench.kafka", g, sum(ends[p] for p in g)) for g in groups]
            wall, results = run_processes(kafka_consume_worker, jobs)
            total = sum(n for n, _ in results)
            print(f"kafka consume (confluent-kafka, {N_PROCESSES} procs): {total / wall:,.0f} events/s ({total} in {wall:.1f}s incl. start-up; slowest proc {max(t for _, t in results):.1f}s)")
            n_http = min(n_events, 1_000_000)
            wall = http_produce(weft, "bench.http", n_http)
            print(f"http ndjson produce (1000/request, 4 threads): {n_http / wall:,.0f} events/s ({wall:.1f}s)")
            total, wall = http_consume(weft, "bench.http")
            print(f"http fetch consume (limit 10000, 4 threads): {total / wall:,.0f} events/s ({total} in {wall:.1f}s)")
        finally:
            weft.stop()


if __name__ == "__main__":
    main()
