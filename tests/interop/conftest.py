"""Fixtures for the Kafka interop tests: a real `weft serve` process per test.

The server is the debug binary (`target/debug/weft`, or `$WEFT_BIN`), started on free
ports with a fresh data directory, and is ready when `/healthz` answers (polled with a
bounded deadline, never a fixed sleep). Tests talk to it with real Kafka clients
(kcat, confluent-kafka) and over HTTP.

Authentication is on, as in production: after start the fixture reads the admin token the
server wrote to `<data-dir>/admin.token`; HTTP calls send it as a Bearer token, Kafka
clients use SASL/PLAIN (`admin` / the token) over SASL_PLAINTEXT (`kafka_config`,
`kcat_args`), and the schema registry client uses Basic auth (`registry_config`).

`weft_tls` starts the server with `--tls-cert`/`--tls-key` from a certificate authority made
for the test (`make_test_certificates`): HTTP is then HTTPS, Kafka clients use SASL_SSL, and
every client trusts that authority only (`WeftServer.tls.ca`).
"""

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
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


@dataclass
class TestCertificates:
    """PEM files of a certificate authority made for one test and a server certificate it signed."""

    ca: Path
    cert: Path
    key: Path


def make_test_certificates(directory: Path) -> TestCertificates:
    """A CA and a server certificate for 127.0.0.1 and localhost (ECDSA P-256, valid one day),
    written to `directory`; the key file is private to its owner, as the server expects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    valid_from, valid_to = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weft interop test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TestCertificates(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)
    return files


class WeftServer:
    """One `weft serve` process; can be killed and started again on the same data dir.
    With `tls`, it serves both listeners over TLS and every client trusts `tls.ca`."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=(), tls: TestCertificates = None):
        self.data_dir = data_dir
        self.tls = tls
        self.extra_args = list(extra_args)
        if tls is not None:
            self.extra_args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        self.log_path = log_path
        self.http_port = free_port()
        self.kafka_port = free_port()
        # Clients always connect over loopback; a test may bind the Kafka listener more widely.
        self.kafka_host = "127.0.0.1"
        self.process = None
        self.admin_token = None
        self.ssl_context = ssl.create_default_context(cafile=str(tls.ca)) if tls is not None else None

    @property
    def http(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

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
                f"{self.kafka_host}:{self.kafka_port}",
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
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1, context=self.ssl_context) as response:
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
        """confluent-kafka configuration: SASL/PLAIN as `username` (admin by default), over
        SASL_SSL trusting the test CA when the server has TLS."""
        tls = {"ssl.ca.location": str(self.tls.ca)} if self.tls is not None else {}
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": username,
            "sasl.password": self.admin_token if password is None else password,
            **tls,
            **extra,
        }

    def kcat_args(self, username="admin", password=None) -> list:
        """kcat's broker and SASL/PLAIN arguments (SASL_SSL with the test CA under TLS)."""
        password = self.admin_token if password is None else password
        tls = ["-X", f"ssl.ca.location={self.tls.ca}"] if self.tls is not None else []
        return [
            "-b", self.bootstrap,
            "-X", f"security.protocol={'SASL_SSL' if self.tls is not None else 'SASL_PLAINTEXT'}",
            "-X", "sasl.mechanisms=PLAIN",
            "-X", f"sasl.username={username}",
            "-X", f"sasl.password={password}",
            *tls,
        ]

    def registry_config(self, **extra) -> dict:
        """SchemaRegistryClient configuration for Weft's registry, as admin."""
        tls = {"ssl.ca.location": str(self.tls.ca)} if self.tls is not None else {}
        return {"url": f"{self.http}/registry", "basic.auth.user.info": f"admin:{self.admin_token}", **tls, **extra}

    # HTTP helpers

    def request(self, method: str, path: str, body=None, content_type="application/json", token=None):
        data = None
        headers = {"authorization": f"Bearer {token or self.admin_token}"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["content-type"] = content_type
        req = urllib.request.Request(f"{self.http}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context) as response:
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


@pytest.fixture
def weft_tls(tmp_path):
    """A server with TLS on both listeners, from a CA made for this test; authentication on."""
    server = WeftServer(tmp_path / "data-tls", tmp_path / "weft-tls.log", tls=make_test_certificates(tmp_path / "tls"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kcat():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.skip("kcat is not installed (scripts/install-interop-deps)")
    return path
