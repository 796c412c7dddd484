"""Hostile bytes on the Kafka port: each bad frame gets an error response or a closed
connection, never a crash, and the server keeps serving HTTP and Kafka afterwards."""

import random
import socket
import struct
import subprocess
import urllib.request

SOCKET_TIMEOUT_S = 10.0


def connect(weft):
    return socket.create_connection(("127.0.0.1", weft.kafka_port), timeout=SOCKET_TIMEOUT_S)


def read_reply(sock):
    """Returns the response frame, or None when the server closed the connection."""
    chunks = b""
    try:
        while len(chunks) < 4:
            chunk = sock.recv(4 - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        (length,) = struct.unpack(">i", chunks)
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return body
    except ConnectionResetError:
        return None


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def header(api_key: int, version: int, correlation_id: int = 1, client_id: bytes = b"raw") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def assert_closed(sock):
    assert read_reply(sock) is None, "expected the server to close the connection"


def test_truncated_frame_then_close_is_tolerated(weft):
    with connect(weft) as sock:
        sock.sendall(struct.pack(">i", 100) + b"\x00\x03\x00\x01")
        sock.shutdown(socket.SHUT_WR)
        assert_closed(sock)


def test_oversized_length_prefix_closes_the_connection(weft):
    with connect(weft) as sock:
        sock.sendall(struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 16)
        assert_closed(sock)
    with connect(weft) as sock:
        sock.sendall(struct.pack(">i", -5))
        assert_closed(sock)


def test_unknown_api_key_closes_the_connection(weft):
    with connect(weft) as sock:
        sock.sendall(frame(header(999, 0)))
        assert_closed(sock)
    with connect(weft) as sock:  # DescribeAcls: a real API Weft does not answer
        sock.sendall(frame(header(29, 1) + b"\x00" * 16))
        assert_closed(sock)


def test_unsupported_api_versions_version_gets_the_version_table(weft):
    with connect(weft) as sock:
        sock.sendall(frame(header(18, 99, correlation_id=77)))
        reply = read_reply(sock)
        assert reply is not None
        correlation_id, error_code, n_apis = struct.unpack(">ihi", reply[:10])
        assert (correlation_id, error_code) == (77, 35)  # UNSUPPORTED_VERSION
        assert n_apis >= 10
        # The connection stays usable: a valid ApiVersions v0 is answered.
        sock.sendall(frame(header(18, 0, correlation_id=78)))
        reply = read_reply(sock)
        assert struct.unpack(">ih", reply[:6]) == (78, 0)


def test_unsupported_version_of_another_api_closes_the_connection(weft):
    with connect(weft) as sock:
        sock.sendall(frame(header(0, 2) + b"\x00" * 20))  # Produce v2: before RecordBatch v2
        assert_closed(sock)


def test_huge_array_length_is_refused_without_exhausting_memory(weft):
    with connect(weft) as sock:
        # Metadata v1 declaring two billion topics in a 14-byte body.
        sock.sendall(frame(header(3, 1) + struct.pack(">i", 0x7FFFFFFF) + b"\x00\x01"))
        assert_closed(sock)


def test_garbage_frames_are_refused_and_the_server_keeps_serving(weft, kcat):
    rng = random.Random(20261122)
    for _ in range(200):
        with connect(weft) as sock:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
            if rng.random() < 0.5 and len(body) >= 4:
                # A real api key and version followed by garbage.
                body = struct.pack(">hh", rng.choice([0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 22, 32]), rng.randrange(0, 12)) + body[4:]
            sock.sendall(frame(body))
            sock.shutdown(socket.SHUT_WR)
            while read_reply(sock) is not None:
                pass
    weft.create_stream("still.alive", partitions=1)
    with urllib.request.urlopen(f"{weft.http}/healthz", timeout=5) as response:
        assert response.status == 200
    listing = subprocess.run([kcat, *weft.kcat_args(), "-L"], capture_output=True, timeout=30)
    assert listing.returncode == 0 and b"still.alive" in listing.stdout
    assert weft.is_alive()
