"""A Kafka consumer and an HTTP member of one consumer group are one group.

They share its partitions (the server assigns them to both kinds, round robin), its
committed offsets, and its member list; when the HTTP member leaves, the Kafka consumer is
asked to rejoin and takes every partition. The server is a real `weft serve` process, the
Kafka client is confluent-kafka (librdkafka) over SASL/PLAIN, the HTTP member polls with the
admin token. Every wait is a poll loop with a deadline, never a fixed sleep.
"""

import json
import time

from confluent_kafka import Consumer, Producer

DEADLINE_S = 30.0
STREAM = "shared.orders"
GROUP = "g"
HTTP_MEMBER = "http-1"
N_PARTITIONS = 4
N_EVENTS = 400


def kafka_consumer(weft):
    return Consumer(
        {
            **weft.kafka_config(),
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
        }
    )


def http_poll(weft, max_events=500, wait_ms=0):
    body = {"member": HTTP_MEMBER, "max_events": max_events, "wait_ms": wait_ms, "session_timeout_ms": 10_000}
    status, reply = weft.request("POST", f"/api/v1/streams/{STREAM}/groups/{GROUP}/poll", body)
    assert status == 200, reply
    return reply


def kafka_partitions(consumer):
    return {tp.partition for tp in consumer.assignment()}


def produce_to_every_partition(weft, values):
    """Produces each value to partition value % N_PARTITIONS, so every partition gets its share."""
    producer = Producer(weft.kafka_config(**{"linger.ms": 5}))
    errors = []
    for value in values:
        producer.produce(
            STREAM,
            value=json.dumps({"n": value}).encode(),
            partition=value % N_PARTITIONS,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(DEADLINE_S) == 0, "messages still queued after the deadline"
    assert not errors, errors


def test_a_kafka_consumer_and_an_http_member_share_partitions_offsets_and_members(weft):
    weft.create_stream(STREAM, partitions=N_PARTITIONS)
    assert sorted(http_poll(weft)["partitions"]) == [0, 1, 2, 3], "the http member alone owns every partition"
    consumer = kafka_consumer(weft)
    consumer.subscribe([STREAM])

    # The Kafka consumer joins: the server splits the partitions between the two members.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert consumer.poll(0.1) is None, "nothing is produced yet"
        http_partitions = set(http_poll(weft)["partitions"])
        kafka_owned = kafka_partitions(consumer)
        if len(kafka_owned) == 2 and len(http_partitions) == 2 and kafka_owned.isdisjoint(http_partitions):
            break
        assert time.monotonic() < deadline, f"no split: kafka owns {kafka_owned}, http owns {http_partitions}"
    assert kafka_owned | http_partitions == {0, 1, 2, 3}

    status, described = weft.request("GET", f"/api/v1/streams/{STREAM}/groups/{GROUP}")
    assert status == 200, described
    members = {m["member"]: (m["kind"], set(m["partitions"])) for m in described["members"]}
    assert members == {HTTP_MEMBER: ("http", http_partitions), consumer.memberid(): ("kafka", kafka_owned)}, described

    # Each member consumes its own partitions; between them, every event exactly once.
    produce_to_every_partition(weft, range(N_EVENTS))
    by_kafka, by_http = [], []
    next_offsets = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(by_kafka) + len(by_http) < N_EVENTS:
        assert time.monotonic() < deadline, f"kafka got {len(by_kafka)}, http got {len(by_http)} of {N_EVENTS}"
        for msg in consumer.consume(num_messages=100, timeout=0.05):
            assert msg.error() is None, msg.error()
            by_kafka.append((msg.partition(), json.loads(msg.value())["n"]))
        reply = http_poll(weft, max_events=100, wait_ms=50)
        assert set(reply["partitions"]) == http_partitions, "no rebalance while both members are live"
        for envelope in reply["events"]:
            by_http.append((envelope["partition"], envelope["event"]["data"]["n"]))
            next_offsets[str(envelope["partition"])] = envelope["offset"] + 1
    assert {p for p, _ in by_kafka} == kafka_owned
    assert {p for p, _ in by_http} == http_partitions
    values = sorted(n for _, n in by_kafka + by_http)
    assert values == list(range(N_EVENTS)), "every event consumed exactly once between the two members"

    # Both commit their own partitions into the group's one set of committed offsets.
    status, reply = weft.request(
        "POST", f"/api/v1/streams/{STREAM}/groups/{GROUP}/commit", {"member": HTTP_MEMBER, "offsets": next_offsets}
    )
    assert status == 200, reply
    consumer.commit(asynchronous=False)
    status, described = weft.request("GET", f"/api/v1/streams/{STREAM}/groups/{GROUP}")
    assert status == 200, described
    per_partition = N_EVENTS // N_PARTITIONS
    assert [(p["partition"], p["committed"]) for p in described["partitions"]] == [(p, per_partition) for p in range(4)], described

    # The HTTP member leaves: the Kafka consumer rebalances and takes every partition, resuming
    # the HTTP member's partitions at their committed offsets.
    status, reply = weft.request("DELETE", f"/api/v1/streams/{STREAM}/groups/{GROUP}/members/{HTTP_MEMBER}")
    assert status == 204, reply
    deadline = time.monotonic() + DEADLINE_S
    while kafka_partitions(consumer) != {0, 1, 2, 3}:
        assert consumer.poll(0.1) is None, "no event is redelivered"
        assert time.monotonic() < deadline, f"kafka still owns {kafka_partitions(consumer)}"
    produce_to_every_partition(weft, range(N_EVENTS, N_EVENTS + N_PARTITIONS))
    received = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < N_PARTITIONS:
        assert time.monotonic() < deadline, f"kafka got {received}"
        msg = consumer.poll(0.1)
        if msg is not None:
            assert msg.error() is None, msg.error()
            received.append((msg.partition(), json.loads(msg.value())["n"]))
    assert sorted(received) == [(n % N_PARTITIONS, n) for n in range(N_EVENTS, N_EVENTS + N_PARTITIONS)]
    status, described = weft.request("GET", f"/api/v1/streams/{STREAM}/groups/{GROUP}")
    assert [m["member"] for m in described["members"]] == [consumer.memberid()], described
    consumer.close()
