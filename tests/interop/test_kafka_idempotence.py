"""Exactly once where a real idempotent producer retries across a crash (issue 12).

confluent-kafka (librdkafka 2.x) with enable.idempotence=true produces to a server armed to
abort right after it stores a batch and before it answers (`WEFT_CRASH_AT=kafka.produce.appended`,
as close to kill -9 at the worst moment as a process can do to itself). The producer sees the
connection drop and, once the server is back on the same ports, resends what it was not told
about with the same producer id, epoch and sequences; the server must recognise the batch it
already stored from its log and store nothing twice.
"""

import json
import os

from confluent_kafka import Producer

from conftest import STOP_DEADLINE_S, WeftServer

CLIENT_DEADLINE_S = 60.0
N_MESSAGES = 500


def test_an_idempotent_producer_retrying_across_a_crash_stores_each_message_once(tmp_path, monkeypatch):
    server = WeftServer(tmp_path / "data", tmp_path / "weft.log")
    monkeypatch.setenv("WEFT_CRASH_AT", "kafka.produce.appended")
    server.start()
    try:
        server.create_stream("payments", partitions=1, fsync="always")
        producer = Producer(
            server.kafka_config(
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 50,
                    "retry.backoff.ms": 50,
                    "reconnect.backoff.ms": 50,
                    "reconnect.backoff.max.ms": 200,
                    "message.timeout.ms": int(CLIENT_DEADLINE_S * 1000),
                }
            )
        )
        reports = []
        for n in range(N_MESSAGES):
            producer.produce("payments", value=json.dumps({"n": n}).encode(), on_delivery=lambda err, msg: reports.append((err, msg)))
        producer.poll(0)
        # The first batch appended is stored and the server aborts before answering it.
        assert server.process.wait(timeout=STOP_DEADLINE_S) != 0, "the server aborted at the crash point"
        assert not reports, "nothing was acknowledged before the crash"

        monkeypatch.delenv("WEFT_CRASH_AT")
        server.start()
        assert producer.flush(CLIENT_DEADLINE_S) == 0, "every message was delivered after the restart"
        errors = [err for err, _ in reports if err is not None]
        assert not errors, errors
        assert len(reports) == N_MESSAGES

        values = sorted(envelope["event"]["data"]["n"] for envelope in server.all_events("payments", 1))
        assert values == list(range(N_MESSAGES)), f"stored {len(values)} events for {N_MESSAGES} messages"
        offsets = sorted(msg.offset() for _, msg in reports)
        assert offsets == list(range(N_MESSAGES)), "each message was acknowledged at its one stored offset"
    finally:
        server.stop()
        assert not os.environ.get("WEFT_CRASH_AT")
