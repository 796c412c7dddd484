"""The Kafka listener's edge hardening rules (issue 11) with a real client (confluent-kafka):
Weft's own record headers cannot be forged, records from the future are refused, and a JSON
value that repeats a key is refused on a governed stream. Each test names the property it proves.
librdkafka reports the Kafka error code only, so the reason codes in the messages
(`event.reserved_header`, ...) are asserted by the Rust tests named below.

The same rules are proven over HTTP through the binary in `crates/weft/tests/it/edge_hardening.rs`,
and for the listener's produce handler in `crates/weft-kafka/src/produce/edge_tests.rs`.
"""

import time

from confluent_kafka import KafkaError, Producer

CLIENT_DEADLINE_S = 30.0
KAFKA_INVALID_RECORD = 87
KAFKA_INVALID_TIMESTAMP = 32
HOUR_MS = 3_600_000

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:edge-payments
version: 1.0.0
status: active
schema:
  - name: Payment
    physicalType: topic
    physicalName: edge.payments.v1
    customProperties:
      - property: weft.partitions
        value: 1
    properties:
      - name: payment_id
        logicalType: string
        required: true
      - name: email
        logicalType: string
        classification: pii
"""


def produce_one(weft, topic: str, value: bytes, **kwargs):
    """Produces one record (its own batch) and returns the delivery error, or None."""
    p = Producer(weft.kafka_config(**{"linger.ms": 0, "retries": 0}))
    reports = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err), **kwargs)
    assert p.flush(CLIENT_DEADLINE_S) == 0, "record still queued after the deadline"
    assert len(reports) == 1, reports
    return reports[0]


def code_of(error):
    return None if error is None else error.code()


def test_kafka_producers_cannot_forge_weft_headers(weft):
    """A record with a `weft_*` header (the dead letters' metadata) or a `ce_weft*` header is
    refused with INVALID_RECORD on any stream and nothing is stored or dead-lettered, so a
    `weft_dlq_*` header a reader sees is always Weft's own; other headers pass."""
    weft.create_stream("plain")
    weft.apply(CONTRACT)
    for topic in ["plain", "edge.payments.v1"]:
        for forged in ["weft_dlq_reason", "weft_dlq_producer", "WEFT_anything", "ce_weftsource"]:
            error = produce_one(weft, topic, b'{"payment_id":"p-1"}', headers=[("ce_id", b"e-1"), (forged, b"admin")])
            assert code_of(error) == KAFKA_INVALID_RECORD, (topic, forged, error)
        assert weft.fetch_events(topic) == [], topic
    status, reply = weft.request("GET", "/api/v1/streams/edge.payments.v1/dead-letters?list=true")
    assert status == 200 and reply["streams"][0]["dead_letters"] == [], reply
    assert produce_one(weft, "plain", b"{}", headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]) is None


def test_kafka_records_from_the_future_are_refused(weft):
    """A record whose CreateTime is more than the allowed skew (an hour by default) ahead of the
    server's clock is refused with INVALID_TIMESTAMP and not stored; a timestamp a minute ahead or
    a day back is accepted."""
    weft.create_stream("timed")
    now_ms = int(time.time() * 1000)
    error = produce_one(weft, "timed", b"{}", timestamp=now_ms + 2 * HOUR_MS)
    assert code_of(error) == KAFKA_INVALID_TIMESTAMP, error
    assert weft.fetch_events("timed") == []
    for timestamp in [now_ms + 60_000, now_ms - 24 * HOUR_MS]:
        assert produce_one(weft, "timed", b"{}", timestamp=timestamp) is None, timestamp
    assert len(weft.fetch_events("timed")) == 2


def test_a_kafka_record_with_a_repeated_key_is_refused(weft):
    """On a governed stream a JSON value whose object repeats a key is refused with
    INVALID_RECORD (`event.duplicate_key` at the repeated member) and dead-lettered, so the
    value the contract checked is the one every reader, and the masker, sees."""
    weft.apply(CONTRACT)
    error = produce_one(weft, "edge.payments.v1", b'{"payment_id":"p-1","email":"a@example.com","email":"b@example.com"}')
    assert code_of(error) == KAFKA_INVALID_RECORD, error
    assert weft.fetch_events("edge.payments.v1") == []
    status, reply = weft.request("GET", "/api/v1/streams/edge.payments.v1/dead-letters?list=true")
    assert status == 200, reply
    assert [letter["reason"] for letter in reply["streams"][0]["dead_letters"]] == ["event.duplicate_key"], reply
