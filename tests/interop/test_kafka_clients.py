"""Real Kafka clients against Weft's Kafka listener.

Each test names the property it proves. Clients: kcat (Debian's librdkafka) and
confluent-kafka (PyPI's librdkafka 2.x). The server is a real `weft serve` process.
"""

import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

CLIENT_DEADLINE_S = 30.0
CODECS = ["gzip", "snappy", "lz4", "zstd"]


def producer(weft, **config):
    return Producer(weft.kafka_config(**{"linger.ms": 5, **config}))


def consumer(weft, group, **config):
    return Consumer(
        {
            **weft.kafka_config(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
            **config,
        }
    )


def produce_all(p, topic, messages, **kwargs):
    """Produces (key, value) pairs and returns the delivery reports, failing on any error."""
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg))

    for key, value in messages:
        p.produce(topic, value=value, key=key, on_delivery=on_delivery, **kwargs)
    assert p.flush(CLIENT_DEADLINE_S) == 0, "messages still queued after the deadline"
    errors = [err for err, _ in reports if err is not None]
    assert not errors, errors
    return [msg for _, msg in reports]


def consume(c, n_wanted, deadline_s=CLIENT_DEADLINE_S):
    received = []
    deadline = time.monotonic() + deadline_s
    while len(received) < n_wanted and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        received.append(msg)
    return received


def kcat_run(kcat, *args, stdin=None):
    result = subprocess.run([kcat, *args], input=stdin, capture_output=True, timeout=CLIENT_DEADLINE_S)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_kcat_lists_streams_as_topics_of_a_one_node_cluster(weft, kcat):
    weft.create_stream("sales.orders.v1", partitions=4, key="/customer_id")
    weft.create_stream("sales.refunds.v1", partitions=1)
    listing = json.loads(kcat_run(kcat, *weft.kcat_args(), "-L", "-J"))
    assert [broker["id"] for broker in listing["brokers"]] == [0]
    topics = {topic["topic"]: topic for topic in listing["topics"]}
    assert set(topics) == {"sales.orders.v1", "sales.refunds.v1"}
    assert [p["partition"] for p in topics["sales.orders.v1"]["partitions"]] == [0, 1, 2, 3]
    assert all(p["leader"] == 0 for p in topics["sales.orders.v1"]["partitions"])


def test_kcat_produce_then_consume_round_trips_and_reads_over_http_as_synthesized_events(weft, kcat):
    weft.create_stream("plain", partitions=2)
    lines = b"".join(f"k{i}:{{\"n\":{i}}}\n".encode() for i in range(50))
    kcat_run(kcat, *weft.kcat_args(), "-P", "-t", "plain", "-K:", stdin=lines)
    out = kcat_run(kcat, *weft.kcat_args(), "-C", "-t", "plain", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
    got = sorted(out.decode().splitlines())
    assert got == sorted(f"k{i}={{\"n\":{i}}}" for i in range(50))
    events = weft.all_events("plain", 2)
    assert len(events) == 50
    # No ce_ headers: the HTTP side synthesizes the CloudEvent around the record.
    event = events[0]["event"]
    assert event["type"] == "weft.record", event
    assert event["id"].startswith("plain-"), event


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_compressed_batches_read_back_over_http(weft, kcat, codec):
    weft.create_stream("zipped", partitions=1)
    lines = b"".join(f"{{\"codec\":\"{codec}\",\"n\":{i}}}\n".encode() for i in range(200))
    kcat_run(kcat, *weft.kcat_args(), "-P", "-t", "zipped", "-z", codec, stdin=lines)
    events = weft.fetch_events("zipped")
    assert [envelope["event"]["data"]["n"] for envelope in events] == list(range(200))
    out = kcat_run(kcat, *weft.kcat_args(), "-C", "-t", "zipped", "-o", "beginning", "-e", "-q")
    assert len(out.splitlines()) == 200


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_compressed_produce_reads_back_over_http(weft, codec):
    weft.create_stream("compressed", partitions=2)
    p = producer(weft, **{"compression.type": codec, "linger.ms": 20})
    messages = [(f"k{i % 7}".encode(), json.dumps({"n": i, "pad": "x" * 200}).encode()) for i in range(500)]
    produce_all(p, "compressed", messages)
    events = weft.all_events("compressed", 2)
    assert sorted(envelope["event"]["data"]["n"] for envelope in events) == list(range(500))


def test_idempotent_producer_with_acks_all_stores_each_message_once(weft):
    weft.create_stream("idem", partitions=3)
    p = producer(weft, **{"acks": "all", "enable.idempotence": True})
    messages = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(3000)]
    delivered = produce_all(p, "idem", messages)
    positions = {(msg.partition(), msg.offset()) for msg in delivered}
    assert len(positions) == 3000
    assert len(weft.all_events("idem", 3)) == 3000


def test_two_members_of_a_consumer_group_share_partitions_and_rebalance(weft):
    weft.create_stream("shared", partitions=4)
    group = f"g-{uuid.uuid4()}"
    first = consumer(weft, group)
    second = consumer(weft, group)
    first.subscribe(["shared"])
    second.subscribe(["shared"])
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while time.monotonic() < deadline:
        first.poll(0.1)
        second.poll(0.1)
        a, b = first.assignment(), second.assignment()
        if a and b and len(a) + len(b) == 4:
            break
    a = {tp.partition for tp in first.assignment()}
    b = {tp.partition for tp in second.assignment()}
    assert a and b and not (a & b) and a | b == {0, 1, 2, 3}, (a, b)

    p = producer(weft)
    produce_all(p, "shared", [(f"key-{i}".encode(), f"{i}".encode()) for i in range(400)])
    received = {first: [], second: []}
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while sum(len(v) for v in received.values()) < 400 and time.monotonic() < deadline:
        for c in (first, second):
            msg = c.poll(0.05)
            if msg is not None and msg.error() is None:
                received[c].append(int(msg.value()))
    values = received[first] + received[second]
    assert sorted(values) == list(range(400)), "every message consumed exactly once between the two"
    assert received[first] and received[second]

    # The second member leaves: the first takes over every partition.
    second.close()
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while len(first.assignment()) != 4 and time.monotonic() < deadline:
        first.poll(0.1)
    assert {tp.partition for tp in first.assignment()} == {0, 1, 2, 3}
    first.close()


def test_committed_offsets_survive_a_server_kill_and_are_the_http_groups_offsets(weft):
    weft.create_stream("durable", partitions=1)
    produce_all(producer(weft, acks="all"), "durable", [(None, f"{i}".encode()) for i in range(100)])
    c = consumer(weft, "resumers")
    c.subscribe(["durable"])
    got = consume(c, 40)
    assert [int(m.value()) for m in got[:40]] == list(range(40))
    c.commit(offsets=[TopicPartition("durable", 0, 40)], asynchronous=False)
    c.close()

    weft.kill()
    weft.start()

    status, group = weft.request("GET", "/api/v1/streams/durable/groups/resumers")
    assert status == 200, group
    assert [(p["partition"], p["committed"]) for p in group["partitions"]] == [(0, 40)], group
    c = consumer(weft, "resumers")
    c.subscribe(["durable"])
    got = consume(c, 1)
    assert got and got[0].offset() == 40 and int(got[0].value()) == 40
    committed = c.committed([TopicPartition("durable", 0)], timeout=10)
    assert committed[0].offset == 40
    c.close()


def test_offsets_for_times_finds_the_first_record_at_or_after_a_timestamp(weft):
    weft.create_stream("timed", partitions=1)
    base_ms = int(time.time() * 1000) - 3_600_000
    p = producer(weft, **{"linger.ms": 0})
    for i in range(10):
        p.produce("timed", value=f"{i}".encode(), timestamp=base_ms + i * 1000)
        p.flush(CLIENT_DEADLINE_S)
    c = consumer(weft, "timed-readers")
    found = c.offsets_for_times([TopicPartition("timed", 0, base_ms + 4500)], timeout=10)
    assert found[0].offset == 5
    found = c.offsets_for_times([TopicPartition("timed", 0, base_ms + 99_000)], timeout=10)
    assert found[0].offset in (-1, 10)  # -1: no record that late (Kafka's answer)
    c.assign([TopicPartition("timed", 0, 5)])
    got = consume(c, 5)
    assert [int(m.value()) for m in got] == [5, 6, 7, 8, 9]
    assert got[0].timestamp()[1] == base_ms + 5000
    c.close()


def test_http_produced_cloudevent_reads_as_binary_mode_kafka_record(weft):
    weft.create_stream("sales.orders.v1", partitions=4, key="/customer_id")
    event = {
        "specversion": "1.0",
        "id": "order-1",
        "source": "/shop",
        "type": "com.example.order.created",
        "datacontenttype": "application/json",
        "data": {"customer_id": "c-42", "total": 12.5},
    }
    status, reply = weft.request("POST", "/api/v1/streams/sales.orders.v1/events", event, "application/cloudevents+json")
    assert status in (200, 201), reply
    c = consumer(weft, "ce-readers")
    c.subscribe(["sales.orders.v1"])
    msg = consume(c, 1)[0]
    assert json.loads(msg.value()) == event["data"]
    assert msg.key() == b"c-42"
    headers = {k: v.decode() for k, v in msg.headers()}
    assert headers["ce_id"] == "order-1"
    assert headers["ce_source"] == "/shop"
    assert headers["ce_type"] == "com.example.order.created"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    c.close()


def test_kafka_record_with_ce_headers_reads_over_http_as_that_cloudevent(weft):
    weft.create_stream("binary", partitions=1)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-7"),
        ("ce_source", b"/kafka/producer"),
        ("ce_type", b"com.example.thing"),
        ("ce_subject", b"thing-7"),
        ("content-type", b"application/json"),
    ]
    produce_all(producer(weft), "binary", [(b"k", b'{"thing":7}')], headers=headers)
    produce_all(producer(weft), "binary", [(b"k", b'{"thing":8}')])
    first, second = (envelope["event"] for envelope in weft.fetch_events("binary"))
    assert (first["id"], first["source"], first["type"], first["subject"]) == ("evt-7", "/kafka/producer", "com.example.thing", "thing-7")
    assert first["data"] == {"thing": 7}
    assert second["type"] == "weft.record" and second["data"] == {"thing": 8}


def test_create_topics_is_refused_with_policy_violation(weft):
    admin = AdminClient(weft.kafka_config())
    futures = admin.create_topics([NewTopic("made.by.kafka", num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as raised:
        futures["made.by.kafka"].result(timeout=CLIENT_DEADLINE_S)
    error = raised.value.args[0]
    assert error.code() == KafkaError.POLICY_VIOLATION
    assert "weft apply" in error.str() and "/api/v1/streams" in error.str()
    # Auto-creation through Metadata is refused as well.
    assert "made.by.kafka" not in admin.list_topics(timeout=10).topics


def test_describe_configs_reports_stream_retention(weft):
    weft.create_stream("configured", partitions=1)
    admin = AdminClient(weft.kafka_config())
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "configured")])
    configs = list(futures.values())[0].result(timeout=CLIENT_DEADLINE_S)
    assert configs["cleanup.policy"].value == "delete"
    assert configs["retention.ms"].value == str(7 * 86_400_000)
    assert int(configs["max.message.bytes"].value) > 0
    groups = admin.list_consumer_groups().result(timeout=CLIENT_DEADLINE_S)
    assert groups is not None
