"""No data without a grant, on the Kafka listener, with real clients: a dead-letter stream
read directly needs `read_dead_letters`, a consumer group belongs to its creator (the same
rule over Kafka and HTTP, for a group made on either edge), and revoking a token closes the
Kafka connections it opened.

The mesh: domain `shop` owned by `alice`, whose product publishes `shop.payments.v1`; a domain
policy lets `carl` and `dan` consume the product, which does not make them readers of its dead
letters. The HTTP side of the same rules is in `crates/weft/tests/it/grants.rs`. Every wait is
a poll loop with a deadline; "within a second" is asserted as well under five seconds.
"""

import socket
import struct
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

from test_kafka_governance import CONTRACT, MESH, STREAM, produce_reports

DEADLINE_S = 30.0
ENDS_WITHIN_S = 5.0
DEAD_LETTERS = STREAM + ".dlq"

READERS = """apiVersion: weft/v1
kind: Policy
name: payment-readers
scope: domain
domain: shop
policies: |
  permit(principal == Weft::Principal::"carl", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.payments");
  permit(principal == Weft::Principal::"dan", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.payments");
"""


def shop(weft) -> dict:
    """Applies the mesh and the readers' policy; returns a token per principal."""
    tokens = {name: weft.create_principal(name) for name in ["alice", "carl", "dan"]}
    weft.apply(MESH.format(contract=CONTRACT.format(bootstrap=weft.bootstrap)))
    weft.apply(READERS)
    return tokens


def first_message_or_error(config: dict, topic: str, group: str, assign: bool):
    """The first message or error a consumer sees on partition 0 of `topic`, within the deadline."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    if assign:
        consumer.assign([TopicPartition(topic, 0, 0)])
    else:
        consumer.subscribe([topic])
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"nothing arrived on {topic} within {DEADLINE_S}s")


def test_reading_a_dead_letter_stream_directly_needs_read_dead_letters(weft):
    tokens = shop(weft)
    reports = produce_reports(weft.kafka_config("alice", tokens["alice"]), STREAM, [b'{"payment_id":"p-1","amount":"ten"}'])
    assert reports[0][0] is not None, "the invalid record was refused and dead-lettered"
    carl = first_message_or_error(weft.kafka_config("carl", tokens["carl"]), DEAD_LETTERS, "carl-dlq", assign=True)
    assert carl.error() is not None and carl.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, carl.error()
    alice = first_message_or_error(weft.kafka_config("alice", tokens["alice"]), DEAD_LETTERS, "alice-dlq", assign=True)
    assert alice.error() is None, alice.error()
    headers = dict(alice.headers())
    assert headers["weft_dlq_reason"] == b"contract.type_mismatch", headers


def test_a_consumer_group_belongs_to_its_creator_on_both_edges(weft):
    tokens = shop(weft)
    produce_reports(weft.kafka_config(), STREAM, [b'{"payment_id":"p-1","amount":1}'])
    # carl creates `carl-app` over HTTP; dan may consume the stream, but not carl's group.
    status, reply = weft.request("POST", f"/api/v1/streams/{STREAM}/groups/carl-app/poll", {"member": "h1"}, token=tokens["carl"])
    assert status == 200, reply
    dan = first_message_or_error(weft.kafka_config("dan", tokens["dan"]), STREAM, "carl-app", assign=False)
    assert dan.error() is not None and dan.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED, dan.error()
    carl = first_message_or_error(weft.kafka_config("carl", tokens["carl"]), STREAM, "carl-app", assign=False)
    assert carl.error() is None and carl.value() == b'{"payment_id":"p-1","amount":1}', carl.error()

    # dan creates `dan-app` over Kafka; carl is refused over HTTP, the stream's owner is not.
    dan = first_message_or_error(weft.kafka_config("dan", tokens["dan"]), STREAM, "dan-app", assign=False)
    assert dan.error() is None, dan.error()
    status, reply = weft.request("POST", f"/api/v1/streams/{STREAM}/groups/dan-app/poll", {"member": "h2"}, token=tokens["carl"])
    assert (status, reply["error"]["code"]) == (403, "authz.denied"), reply
    status, reply = weft.request("POST", f"/api/v1/streams/{STREAM}/groups/dan-app/poll", {"member": "h3"}, token=tokens["alice"])
    assert status == 200, reply


def token_id(weft, principal: str) -> str:
    status, reply = weft.request("GET", f"/api/v1/tokens?principal={principal}")
    assert status == 200, reply
    return reply["tokens"][0]["id"]


def sasl_plain_connection(weft, user: str, token: str) -> socket.socket:
    """A raw connection authenticated with SaslHandshake v0 and a bare PLAIN token."""
    sock = socket.create_connection(("127.0.0.1", weft.kafka_port), timeout=DEADLINE_S)
    handshake = struct.pack(">hhih", 17, 0, 1, 3) + b"raw" + struct.pack(">h", 5) + b"PLAIN"
    sock.sendall(struct.pack(">i", len(handshake)) + handshake)
    length = struct.unpack(">i", sock.recv(4))[0]
    assert struct.unpack(">ih", sock.recv(length)[:6]) == (1, 0)
    plain = b"\0" + user.encode() + b"\0" + token.encode()
    sock.sendall(struct.pack(">i", len(plain)) + plain)
    assert sock.recv(4) == b"\0\0\0\0", "the token was accepted"
    return sock


def test_revoking_a_token_closes_its_kafka_connections_within_a_second(weft):
    tokens = shop(weft)
    idle = sasl_plain_connection(weft, "carl", tokens["carl"])
    errors = []
    consumer = Consumer(
        {
            **weft.kafka_config("carl", tokens["carl"]),
            "group.id": "carl-tail",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10_000,
            "error_cb": errors.append,
        }
    )
    consumer.assign([TopicPartition(STREAM, 0, 0)])
    try:
        produce_reports(weft.kafka_config(), STREAM, [b'{"payment_id":"p-1","amount":1}'])
        deadline = time.monotonic() + DEADLINE_S
        while (msg := consumer.poll(0.2)) is None or msg.error() is not None:
            assert time.monotonic() < deadline, "carl's consumer read nothing"

        revoked_at = time.monotonic()
        status, reply = weft.request("DELETE", f"/api/v1/tokens/{token_id(weft, 'carl')}")
        assert status == 200, reply
        # The idle connection is closed by the server: recv returns end of stream.
        assert idle.recv(1) == b"", "the connection stayed open"
        idle_closed_after = time.monotonic() - revoked_at
        assert idle_closed_after < ENDS_WITHIN_S, f"the idle connection was closed {idle_closed_after:.1f}s after the revocation"
        # The consumer, waiting in a long Fetch, loses its connection and cannot authenticate again.
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            consumer.poll(0.1)
            assert time.monotonic() - revoked_at < ENDS_WITHIN_S, f"the consumer saw no authentication failure: {errors}"
    finally:
        idle.close()
        consumer.close()
