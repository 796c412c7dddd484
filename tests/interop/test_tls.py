"""TLS on both listeners (`weft serve --tls-cert --tls-key`) with real clients: curl over HTTPS,
kcat and confluent-kafka over SASL_SSL, SSL without SASL under `--auth off`, and the startup
errors and warnings an operator sees. Every certificate comes from a CA made in the test
(`make_test_certificates`), which the clients trust and nothing else does.

`datacontract test` over SASL_SSL is in test_kafka_governance.py, beside the governed stream it
checks.
"""

import http.client
import json
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import WEFT_BIN, WeftServer, make_test_certificates

CLIENT_DEADLINE_S = 30.0
SOCKET_TIMEOUT_S = 10.0
API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 41, 3) + b"raw"
METADATA_V1_ALL_TOPICS = struct.pack(">hhih", 3, 1, 42, 3) + b"raw" + struct.pack(">i", -1)


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def read_reply(sock):
    """The next response frame's body, or None once the server has closed the connection."""
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        return None
    return data[4:]


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "--silent", "--show-error", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


def test_curl_reaches_the_api_over_https_trusting_the_test_ca(weft_tls):
    ca = str(weft_tls.tls.ca)
    for host in ["127.0.0.1", "localhost"]:
        health = curl("--cacert", ca, f"https://{host}:{weft_tls.http_port}/healthz")
        assert (health.returncode, health.stdout) == (0, "ok\n"), health.stderr
    created = curl(
        "--cacert", ca, "-H", f"authorization: Bearer {weft_tls.admin_token}", "-H", "content-type: application/json",
        "--data", '{"name":"tls.orders","partitions":1}', f"{weft_tls.http}/api/v1/streams",
    )
    assert json.loads(created.stdout)["name"] == "tls.orders", created.stdout + created.stderr
    # Without the test CA the certificate is not trusted: verification is real.
    untrusted = curl(f"{weft_tls.http}/healthz")
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower(), untrusted


def test_plaintext_http_and_kafka_are_refused_on_tls_listeners(weft_tls):
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{weft_tls.http_port}/healthz", timeout=SOCKET_TIMEOUT_S)
    assert not isinstance(refused.value, urllib.error.HTTPError), "no HTTP answer comes back"
    with socket.create_connection(("127.0.0.1", weft_tls.kafka_port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(frame(API_VERSIONS_V0))
        reply = read_reply(sock)
        assert reply is None or reply[:4] != struct.pack(">i", 41), "a plaintext ApiVersions is not answered"
    assert weft_tls.is_alive()


def test_kcat_produces_and_consumes_over_sasl_ssl(weft_tls, kcat):
    weft_tls.create_stream("tls.kcat", partitions=1)
    lines = [json.dumps({"n": n}) for n in range(10)]
    produced = subprocess.run(
        [kcat, *weft_tls.kcat_args(), "-P", "-t", "tls.kcat"], input="\n".join(lines).encode(), capture_output=True, timeout=CLIENT_DEADLINE_S
    )
    assert produced.returncode == 0, produced.stderr.decode()
    consumed = subprocess.run(
        [kcat, *weft_tls.kcat_args(), "-C", "-t", "tls.kcat", "-o", "beginning", "-e", "-q"], capture_output=True, timeout=CLIENT_DEADLINE_S
    )
    assert consumed.returncode == 0, consumed.stderr.decode()
    assert consumed.stdout.decode().splitlines() == lines
    assert "-X" in weft_tls.kcat_args() and "security.protocol=SASL_SSL" in weft_tls.kcat_args()


def test_confluent_kafka_produces_and_consumes_over_sasl_ssl_with_frames_over_512_kib(weft_tls):
    """Once authenticated, the normal frame limit applies: a record of 600 KB, so a Produce frame
    over the 512 KiB pre-authentication limit, goes through, over TLS."""
    weft_tls.create_stream("tls.confluent", partitions=1)
    values = [json.dumps({"n": 0, "pad": "x" * 600_000}).encode()] + [json.dumps({"n": n}).encode() for n in range(1, 4)]
    reports = []
    producer = Producer(weft_tls.kafka_config(**{"linger.ms": 50, "batch.size": 4_000_000, "message.max.bytes": 4_000_000}))
    for value in values:
        producer.produce("tls.confluent", value=value, on_delivery=lambda err, msg: reports.append((err, msg)))
    assert producer.flush(CLIENT_DEADLINE_S) == 0
    assert [err for err, _ in reports] == [None] * len(values), reports
    consumer = Consumer({**weft_tls.kafka_config(), "group.id": "tls-readers", "enable.auto.commit": False})
    consumer.assign([TopicPartition("tls.confluent", 0, 0)])
    received = []
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    try:
        while len(received) < len(values) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                received.append(msg.value())
    finally:
        consumer.close()
    assert received == values


def test_ssl_without_sasl_follows_the_same_auth_rules_as_plaintext(weft_tls, tmp_path, kcat):
    """TLS changes only the bytes under the framing: with authentication on, a TLS client
    without SASL gets ApiVersions and nothing else; under `--auth off`, `security.protocol=SSL`
    works as plaintext does."""
    context = ssl.create_default_context(cafile=str(weft_tls.tls.ca))
    with socket.create_connection(("127.0.0.1", weft_tls.kafka_port), timeout=SOCKET_TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(frame(API_VERSIONS_V0))
            reply = read_reply(sock)
            assert reply is not None and reply[:4] == struct.pack(">i", 41), "ApiVersions is answered over TLS"
            sock.sendall(frame(METADATA_V1_ALL_TOPICS))
            assert read_reply(sock) is None, "Metadata before SASL closes the connection"

    open_server = WeftServer(tmp_path / "data-auth-off", tmp_path / "weft-auth-off.log", extra_args=["--auth", "off"], tls=weft_tls.tls)
    open_server.start()
    try:
        open_server.create_stream("tls.open", partitions=1)
        ssl_only = ["-b", open_server.bootstrap, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={weft_tls.tls.ca}"]
        produced = subprocess.run([kcat, *ssl_only, "-P", "-t", "tls.open"], input=b"hello", capture_output=True, timeout=CLIENT_DEADLINE_S)
        assert produced.returncode == 0, produced.stderr.decode()
        consumed = subprocess.run([kcat, *ssl_only, "-C", "-t", "tls.open", "-e", "-q"], capture_output=True, timeout=CLIENT_DEADLINE_S)
        assert consumed.stdout == b"hello\n", consumed.stderr.decode()
    finally:
        open_server.stop()


def test_sigterm_stops_a_tls_server_cleanly(weft_tls):
    """Graceful shutdown works as over plaintext: exit 0 with an HTTPS client connected."""
    context = ssl.create_default_context(cafile=str(weft_tls.tls.ca))
    with socket.create_connection(("127.0.0.1", weft_tls.http_port), timeout=SOCKET_TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1"):
            weft_tls.process.terminate()
            assert weft_tls.process.wait(timeout=10) == 0
    assert "weft stopped cleanly" in weft_tls.log_path.read_text()


def serve_fails(tmp_path, *tls_args) -> str:
    """Runs `weft serve` with these TLS arguments, expects it to exit non-zero, returns stderr."""
    server = WeftServer(tmp_path / "data", tmp_path / "unused.log")
    result = subprocess.run(
        [str(WEFT_BIN), "serve", "--data-dir", str(server.data_dir), "--listen", f"127.0.0.1:{server.http_port}",
         "--kafka-listen", f"127.0.0.1:{server.kafka_port}", *tls_args],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0, result.stderr
    assert "panicked" not in result.stderr, result.stderr
    return result.stderr


def test_bad_certificate_or_key_files_stop_the_server_with_an_error_naming_the_file(tmp_path):
    files = make_test_certificates(tmp_path / "tls")
    other = make_test_certificates(tmp_path / "other")
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not-pem.txt"
    not_pem.write_text("this is not a certificate\n")
    cases = [
        ((missing, files.key), str(missing)),
        ((not_pem, files.key), str(not_pem)),
        ((files.cert, missing), str(missing)),
        ((files.cert, files.cert), str(files.cert)),  # a certificate where the key should be
        ((files.cert, other.key), str(other.key)),  # a key of another certificate
    ]
    for case_idx, ((cert, key), named) in enumerate(cases):
        stderr = serve_fails(tmp_path / f"case-{case_idx}", "--tls-cert", str(cert), "--tls-key", str(key))
        assert named in stderr and "TLS" in stderr, stderr
    stderr = serve_fails(tmp_path / "half", "--tls-cert", str(files.cert))
    assert "--tls-key" in stderr, stderr


def test_a_key_readable_by_others_is_served_with_a_warning(tmp_path):
    files = make_test_certificates(tmp_path / "tls")
    files.key.chmod(0o644)
    server = WeftServer(tmp_path / "data", tmp_path / "weft.log", tls=files)
    server.start()
    try:
        assert curl("--cacert", str(files.ca), f"{server.http}/healthz").stdout == "ok\n"
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "TLS key is readable by its group or by other users" in log and str(files.key) in log, log


def test_plaintext_on_a_non_loopback_address_warns_that_tokens_travel_in_the_clear(tmp_path):
    server = WeftServer(tmp_path / "data", tmp_path / "weft.log")
    server.kafka_host = "0.0.0.0"
    server.start()
    server.stop()
    log = server.log_path.read_text()
    assert "tokens travel in the clear" in log and "Kafka" in log, log
    assert "HTTP listener is plaintext" not in log, "the loopback HTTP listener does not warn"
