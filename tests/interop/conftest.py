"""Fixtures for the Kafka interop tests: a real `weft serve` process per test.

The server is the debug binary (`target/debug/weft`, or `$WEFT_BIN`), started on free
ports with a fresh data directory, and is ready when `/healthz` answers (polled with a
bounded deadline, never a fixed sleep). Tests talk to it with real Kafka clients
(kcat, confluent-kafka) and over HTTP.

Authentication is on, as in production: after start the fixture reads the admin token the
server wrote to `<data-dir>/admin.token`; HTTP calls send it as a Bearer token, Kafka
clients use SASL/PLAIN (`admin` / the token) over SASL_PLAINTEXT (`kafka_config`,
`kcat_args`), and the schema registry client uses Basic auth (`registry_config`).
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WEFT_BIN = Path(os.environ.get("WEFT_BIN", REPO_ROOT / "target" / "debug" / "weft"))
READY_DEADLINE_S = 20.0
STOP_DEADLINE_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WeftServer:
    """One `weft serve` process; can be killed and started again on the same data dir."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.http_port = free_port()
        self.kafka_port = free_port()
        self.process = None
        self.admin_token = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> None:
        assert WEFT_BIN.exists(), f"{WEFT_BIN} is missing: run cargo build -p weft first"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(WEFT_BIN),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.http_port}",
                "--kafka-listen",
                f"127.0.0.1:{self.kafka_port}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info,weft_kafka=debug")},
        )
        log.close()
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            assert self.process.poll() is None, f"weft exited early; see {self.log_path}"
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1) as response:
                    if response.status == 200:
                        self.admin_token = (self.data_dir / "admin.token").read_text().strip()
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, f"weft not ready after {READY_DEADLINE_S}s; see {self.log_path}"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_S)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # Client configuration

    def kafka_config(self, username="admin", password=None, **extra) -> dict:
        """confluent-kafka configuration: SASL/PLAIN as `username` (admin by default)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": username,
            "sasl.password": self.admin_token if password is None else password,
            **extra,
        }

    def kcat_args(self, username="admin", password=None) -> list:
        """kcat's broker and SASL/PLAIN arguments."""
        password = self.admin_token if password is None else password
        return [
            "-b", self.bootstrap,
            "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanisms=PLAIN",
            "-X", f"sasl.username={username}",
            "-X", f"sasl.password={password}",
        ]

    def registry_config(self, **extra) -> dict:
        """SchemaRegistryClient configuration for Weft's registry, as admin."""
        return {"url": f"{self.http}/registry", "basic.auth.user.info": f"admin:{self.admin_token}", **extra}

    # HTTP helpers

    def request(self, method: str, path: str, body=None, content_type="application/json", token=None):
        data = None
        headers = {"authorization": f"Bearer {token or self.admin_token}"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["content-type"] = content_type
        req = urllib.request.Request(f"{self.http}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def create_stream(self, name: str, partitions: int = 1, key=None, fsync=None) -> None:
        body = {"name": name, "partitions": partitions}
        if key is not None:
            body["key"] = key
        if fsync is not None:
            body["fsync"] = fsync
        status, reply = self.request("POST", "/api/v1/streams", body)
        assert status == 201, reply

    def create_principal(self, name: str) -> str:
        """Creates a principal and returns a new token of it."""
        status, reply = self.request("POST", "/api/v1/principals", {"name": name})
        assert status == 201, reply
        status, reply = self.request("POST", "/api/v1/tokens", {"principal": name})
        assert status == 201, reply
        return reply["token"]

    def apply(self, yaml_text: str):
        status, reply = self.request("POST", "/api/v1/apply", yaml_text.encode(), "application/yaml")
        assert status == 200, reply
        return reply

    def fetch_events(self, name: str, partition: int = 0, offset: int = 0, limit: int = 10_000) -> list:
        status, reply = self.request("GET", f"/api/v1/streams/{name}/events?partition={partition}&offset={offset}&limit={limit}")
        assert status == 200, reply
        return reply["events"]

    def all_events(self, name: str, partitions: int) -> list:
        events = []
        for partition in range(partitions):
            events.extend(self.fetch_events(name, partition))
        return events


@pytest.fixture
def weft(tmp_path):
    server = WeftServer(tmp_path / "data", tmp_path / "weft.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def weft_auth_off(tmp_path):
    """A server started with `--auth off`: plaintext Kafka clients are accepted as admin."""
    server = WeftServer(tmp_path / "data-auth-off", tmp_path / "weft-auth-off.log", extra_args=["--auth", "off"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kcat():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.skip("kcat is not installed (scripts/install-interop-deps)")
    return path
