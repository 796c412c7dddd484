"""Governance on the Kafka listener with real clients: SASL/PLAIN authentication,
authorization, contract validation with dead letters, masking, the registry's serializers
and `datacontract test` (over SASL_SSL, with credentials).

Each test names the property it proves. The mesh: domain `shop` owned by `alice`, whose
product publishes `shop.payments.v1` under a contract that requires `payment_id` and a
numeric `amount` and classifies `email` as pii. `alice` may produce and consume (owner) but
not unmask; `bob` owns nothing; `admin` may do everything.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

CLIENT_DEADLINE_S = 30.0
STREAM = "shop.payments.v1"
KAFKA_INVALID_RECORD = 87

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:payments
name: Payments
version: 1.0.0
status: active
domain: shop
servers:
  - server: weft
    type: kafka
    host: {bootstrap}
    format: json
schema:
  - name: Payment
    physicalType: topic
    physicalName: shop.payments.v1
    customProperties:
      - property: weft.partitions
        value: 1
    properties:
      - name: payment_id
        logicalType: string
        required: true
      - name: amount
        logicalType: number
        required: true
      - name: email
        logicalType: string
        classification: pii
"""

MESH = """apiVersion: weft/v1
kind: Domain
name: shop
owners: [alice]
---
{contract}
---
apiVersion: v1.0.0
kind: DataProduct
id: shop.payments
status: active
domain: shop
outputPorts:
  - name: payments
    version: 1.0.0
    contractId: urn:test:payments
"""


def governed(weft) -> dict:
    """Applies the mesh; returns tokens of alice and bob."""
    tokens = {"alice": weft.create_principal("alice"), "bob": weft.create_principal("bob")}
    weft.apply(MESH.format(contract=CONTRACT.format(bootstrap=weft.bootstrap)))
    return tokens


def produce_reports(config: dict, topic: str, values: list) -> list:
    """Produces values (in one batch where they fit) and returns (error, message) per value."""
    p = Producer({"linger.ms": 50, **config})
    reports = []
    for value in values:
        p.produce(topic, value=value, on_delivery=lambda err, msg: reports.append((err, msg)))
    assert p.flush(CLIENT_DEADLINE_S) == 0, "messages still queued after the deadline"
    return reports


def read_partition(config: dict, topic: str, n_wanted: int) -> list:
    """Reads partition 0 from offset 0 with `assign` (no group rebalance)."""
    c = Consumer({**config, "group.id": "readers", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    received = []
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    try:
        while len(received) < n_wanted and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append(msg)
    finally:
        c.close()
    return received


def test_sasl_plain_with_a_wrong_password_is_refused_and_audited(weft, kcat):
    result = subprocess.run([kcat, *weft.kcat_args(password="weft_wrong"), "-L", "-m", "3"], capture_output=True, timeout=CLIENT_DEADLINE_S)
    assert result.returncode != 0
    assert b"Authentication failed" in result.stderr or b"SASL" in result.stderr, result.stderr
    errors = []
    p = Producer(weft.kafka_config(password="weft_" + "0" * 80, error_cb=errors.append))
    with pytest.raises(KafkaException):
        p.list_topics(timeout=3)
    p.poll(1)  # serves error_cb
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    status, audit = weft.request("GET", "/api/v1/audit?decision=auth_failure")
    assert status == 200, audit
    assert any(entry.get("source", "").startswith("kafka ") for entry in audit["entries"]), audit


def test_requests_before_sasl_close_the_connection_unless_auth_is_off(weft, weft_auth_off):
    metadata_v1 = struct.pack(">hhih", 3, 1, 7, 3) + b"raw" + struct.pack(">i", -1)
    for server, answered in [(weft, False), (weft_auth_off, True)]:
        with socket.create_connection(("127.0.0.1", server.kafka_port), timeout=10) as sock:
            sock.sendall(struct.pack(">i", len(metadata_v1)) + metadata_v1)
            reply = sock.recv(8)
            assert bool(reply) == answered, reply


def test_sasl_handshake_v0_then_a_bare_plain_token_authenticates(weft):
    """Older clients send the PLAIN token unframed after SaslHandshake v0."""
    with socket.create_connection(("127.0.0.1", weft.kafka_port), timeout=10) as sock:
        handshake = struct.pack(">hhih", 17, 0, 1, 3) + b"raw" + struct.pack(">h", 5) + b"PLAIN"
        sock.sendall(struct.pack(">i", len(handshake)) + handshake)
        length = struct.unpack(">i", sock.recv(4))[0]
        correlation_id, error_code = struct.unpack(">ih", sock.recv(length)[:6])
        assert (correlation_id, error_code) == (1, 0)
        token = b"\0admin\0" + weft.admin_token.encode()
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert sock.recv(4) == b"\0\0\0\0", "an empty frame says the token was accepted"


def test_kcat_and_confluent_kafka_authenticate_with_sasl_plain(weft, kcat):
    tokens = governed(weft)
    listing = json.loads(subprocess.run([kcat, *weft.kcat_args("alice", tokens["alice"]), "-L", "-J"], capture_output=True, timeout=30).stdout)
    topics = {topic["topic"] for topic in listing["topics"]}
    assert STREAM in topics
    assert not any(topic.startswith("_weft.") for topic in topics), topics


def test_a_principal_without_produce_gets_topic_authorization_failed(weft):
    tokens = governed(weft)
    reports = produce_reports(weft.kafka_config("bob", tokens["bob"]), STREAM, [b'{"payment_id":"p-1","amount":1}'])
    assert [err.code() for err, _ in reports] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], reports
    # Nobody, not even admin, produces to Weft's own streams.
    reports = produce_reports(weft.kafka_config(), "_weft.audit", [b"{}"])
    assert [err.code() for err, _ in reports] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], reports
    status, audit = weft.request("GET", "/api/v1/audit?decision=deny&principal=bob")
    assert any(entry["action"] == "produce" for entry in audit["entries"]), audit


def test_an_invalid_record_refuses_its_batch_with_invalid_record_and_is_dead_lettered(weft):
    """A batch holding an invalid record is refused as a whole with INVALID_RECORD; the
    invalid record is in the dead-letter stream, as over HTTP. Whether librdkafka put the
    valid record in the same batch (then it is refused too, and not stored) depends on its
    timing: what it reports as delivered is exactly what is stored."""
    tokens = governed(weft)
    values = [b'{"payment_id":"p-1","amount":10}', b'{"payment_id":"p-2","amount":"ten"}']
    reports = produce_reports(weft.kafka_config("alice", tokens["alice"]), STREAM, values)
    codes = [err.code() if err else None for err, _ in reports]
    assert codes[0] in (None, KAFKA_INVALID_RECORD) and codes[1] == KAFKA_INVALID_RECORD, [str(err) for err, _ in reports]
    stored = [event["event"]["data"]["payment_id"] for event in weft.fetch_events(STREAM)]
    assert stored == (["p-1"] if codes[0] is None else []), (codes, stored)
    status, reply = weft.request("GET", f"/api/v1/streams/{STREAM}/dead-letters?list=true")
    assert status == 200, reply
    letters = reply["streams"][0]["dead_letters"]
    assert len(letters) == 1, letters
    letter = letters[0]
    assert letter["reason"] == "contract.type_mismatch", letter
    assert letter["violations"][0]["path"] == "/amount", letter
    assert letter["producer"] == "alice", letter
    assert letter["data"] == {"payment_id": "p-2", "amount": "ten"}, letter


def test_a_reader_without_unmask_gets_pii_masked_and_admin_reads_it_clear(weft):
    tokens = governed(weft)
    value = {"payment_id": "p-1", "amount": 5, "email": "a@example.com"}
    reports = produce_reports(weft.kafka_config(), STREAM, [json.dumps(value).encode(), json.dumps(value).encode()])
    assert [err for err, _ in reports] == [None, None]
    masked = [json.loads(msg.value()) for msg in read_partition(weft.kafka_config("alice", tokens["alice"]), STREAM, 2)]
    assert [m["payment_id"] for m in masked] == ["p-1", "p-1"]
    assert masked[0]["email"].startswith("masked:") and masked[0]["email"] != "a@example.com", masked
    assert masked[0]["email"] == masked[1]["email"], "masking is deterministic"
    clear = read_partition(weft.kafka_config(), STREAM, 2)
    assert [json.loads(msg.value()) for msg in clear] == [value, value]
    assert [msg.offset() for msg in clear] == [0, 1]


def test_the_json_schema_serializer_produces_to_a_governed_stream_end_to_end(weft):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    governed(weft)
    registry = SchemaRegistryClient(weft.registry_config())
    latest = registry.get_latest_version(f"{STREAM}-value")
    serializer = JSONSerializer(
        latest.schema.schema_str, registry, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    context = SerializationContext(STREAM, MessageField.VALUE)
    payment = {"payment_id": "p-9", "amount": 12.5}
    reports = produce_reports(weft.kafka_config(), STREAM, [serializer(payment, context)])
    assert [err for err, _ in reports] == [None], reports
    (msg,) = read_partition(weft.kafka_config(), STREAM, 1)
    assert struct.unpack(">bI", msg.value()[:5]) == (0, latest.schema_id)
    deserializer = JSONDeserializer(latest.schema.schema_str, schema_registry_client=registry)
    assert deserializer(msg.value(), context) == payment
    # A frame with an id the registry does not know is refused like invalid data.
    reports = produce_reports(weft.kafka_config(), STREAM, [b"\0\0\0\x03\xe7" + json.dumps(payment).encode()])
    assert [err.code() for err, _ in reports] == [KAFKA_INVALID_RECORD]


SYSTEM_TRUST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def system_trust_including(ca: Path, tmp_path: Path) -> list:
    """A command prefix that runs a program in its own mount namespace, where the system CA
    bundle (Debian's, the one librdkafka finds first) also holds `ca`. Nothing outside that
    process sees the change. Needs root and util-linux's `unshare`; skips otherwise."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not SYSTEM_TRUST_BUNDLE.exists():
        pytest.skip("trusting the test CA system-wide for one process needs root, unshare and the ca-certificates bundle")
    bundle = tmp_path / "system-trust-with-test-ca.pem"
    bundle.write_bytes(SYSTEM_TRUST_BUNDLE.read_bytes() + b"\n" + ca.read_bytes())
    mount_then_run = 'mount --bind "$0" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount_then_run, str(bundle), str(SYSTEM_TRUST_BUNDLE)]


def test_datacontract_test_authenticates_over_sasl_ssl_and_passes_on_data_the_broker_let_in(weft_tls, tmp_path):
    """`datacontract test` reads the topic through Weft's Kafka listener, with credentials, and
    checks it against the contract. Invalid data cannot get in (the broker refuses it, shown
    here first), so the run passes.

    datacontract-cli turns SASL credentials (`DATACONTRACT_KAFKA_SASL_USERNAME`, `..._PASSWORD`)
    into `security.protocol=SASL_SSL` and has no setting for a CA file, so it trusts what the
    machine trusts: the wheel's librdkafka, without `ssl.ca.location`, loads the first system
    bundle it finds and ignores `SSL_CERT_FILE`. An operator adds their CA to the system store;
    the test does the same for the datacontract process only (`system_trust_including`). The
    reader is `alice`, the owner, not admin: the listener authorizes it like any other client."""
    datacontract = Path(sys.executable).parent / "datacontract"
    if not datacontract.exists():
        pytest.skip("datacontract-cli is not installed (scripts/install-interop-deps)")
    trusting = system_trust_including(weft_tls.tls.ca, tmp_path)
    weft = weft_tls
    tokens = governed(weft)
    alice = weft.kafka_config(username="alice", password=tokens["alice"])
    good = [json.dumps({"payment_id": f"p-{i}", "amount": i * 1.5}).encode() for i in range(20)]
    assert [err for err, _ in produce_reports(alice, STREAM, good)] == [None] * 20
    bad = [b'{"payment_id":"p-x"}', b'{"payment_id":"p-y","amount":"lots"}', b"not json"]
    for value in bad:
        reports = produce_reports(alice, STREAM, [value])
        assert [err.code() for err, _ in reports] == [KAFKA_INVALID_RECORD], value
    contract_path = tmp_path / "payments.odcs.yaml"
    contract_path.write_text(CONTRACT.format(bootstrap=weft.bootstrap))
    credentials = {"DATACONTRACT_KAFKA_SASL_USERNAME": "alice", "DATACONTRACT_KAFKA_SASL_PASSWORD": tokens["alice"]}
    result = subprocess.run(
        [*trusting, str(datacontract), "test", str(contract_path)],
        capture_output=True, text=True, timeout=180, env={**os.environ, **credentials},
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "passed" in result.stdout.lower(), result.stdout
    status, reply = weft.request("GET", f"/api/v1/streams/{STREAM}/dead-letters")
    assert reply["streams"][0]["total"] == 3, reply
    status, audit = weft.request("GET", "/api/v1/audit?decision=auth_failure")
    assert status == 200 and audit["entries"] == [], audit

