"""Fixtures for the official Vonage Video Python SDK conformance tests (vonage-video and
vonage, from PyPI, unmodified).

Each test module gets its own `conclave serve --tls-self-signed` (the Python SDK builds only
https:// URLs): a fresh temporary data directory, two applications (the second one is
"someone else's"), a free loopback port, the server's certificate trusted through
REQUESTS_CA_BUNDLE (the SDK's requests) and SSL_CERT_FILE (the `conclave client` bots), a moto
S3 server for archive uploads, and a stop by PID (SIGTERM, then SIGKILL after 5 s) at the end.

The binary comes from $CONCLAVE_BIN, moto from $MOTO_SERVER_BIN.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
BIN = os.environ.get("CONCLAVE_BIN") or os.path.join(REPO, "target", "debug", "conclave")


def _opentok_conftest():
    """The OpenTok suite's fixtures module, loaded under its own name (both files are conftest)."""
    import importlib.util

    path = os.path.join(REPO, "tests", "sdk", "python", "conftest.py")
    spec = importlib.util.spec_from_file_location("conclave_opentok_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The OpenTok suite's bot (`conclave client` as a participant) is reused as is.
Bot = _opentok_conftest().Bot


def conclave(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc):
    """SIGTERM by PID, SIGKILL if still running after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class VonageServer:
    """A running `conclave serve --tls-self-signed` with two applications."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="conclave-sdk-vonage-py-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.apps = [self._create_app(i) for i in range(2)]
        self.proc = None
        for _attempt in range(3):
            if self._start(free_port()):
                return
        raise RuntimeError("conclave serve did not become ready:\n" + self.logs()[-4000:])

    def _create_app(self, i):
        out = conclave("application", "create", "--data-dir", self.data, "--name", f"app{i}", "--json")
        assert out.returncode == 0, out.stderr
        v = json.loads(out.stdout.strip().splitlines()[-1])
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", v["application_id"])
        assert v["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
        return v

    def _start(self, port):
        self.host = f"127.0.0.1:{port}"
        self.url = f"https://{self.host}"
        self.ws = f"wss://{self.host}/v1/signal"
        args = [BIN, "serve", "--data-dir", self.data, "--listen", self.host, "--tls-self-signed",
                "--allow-private-callbacks", "--allow-http-callbacks"]
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.cert = os.path.join(self.data, "tls", "self-signed.crt")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                ctx = ssl.create_default_context(cafile=self.cert)
                with urllib.request.urlopen(self.url + "/healthz", timeout=1, context=ctx) as r:
                    if r.status == 200:
                        return True
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.1)
        stop_process(self.proc)
        return False

    def stop(self):
        stop_process(self.proc)

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Moto:
    """A moto S3 server on a free loopback port (no authentication checks), with one bucket."""

    def __init__(self, bucket):
        self.bucket = bucket
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([os.environ.get("MOTO_SERVER_BIN", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                req = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline and self.proc.poll() is None, "moto did not start"
            time.sleep(0.1)

    def keys(self):
        with urllib.request.urlopen(f"{self.endpoint}/{self.bucket}?list-type=2", timeout=10) as r:
            return re.findall(r"<Key>([^<]*)</Key>", r.read().decode())

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(scope="module")
def server():
    s = VonageServer()
    # The SDK (requests) and the bots (rustls with the platform's roots) trust the server.
    old = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    os.environ["REQUESTS_CA_BUNDLE"] = s.cert
    os.environ["SSL_CERT_FILE"] = s.cert
    try:
        yield s
    finally:
        s.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    logs = s.logs()
    for a in s.apps:
        assert a["private_key"].splitlines()[1] not in logs, "a private key reached the server log"
        assert a["webhook_secret"] not in logs, "a webhook secret reached the server log"
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def moto():
    m = Moto("archives")
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def bots():
    """bots(server, session_id, token, publish=..., real_media=...) starts a Bot; all are stopped
    at the end of the test."""
    started = []

    def start(*args, **kwargs):
        b = Bot(*args, **kwargs)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
