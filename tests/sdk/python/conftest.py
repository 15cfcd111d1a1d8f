"""Fixtures for the official OpenTok Python SDK conformance tests.

Each test module gets its own `conclave serve`: a fresh temporary data directory, two
projects (the second one is "someone else's" for isolation checks), a free loopback port,
and a graceful stop (SIGTERM, then SIGKILL after 5 s) when the module is done.

The binary comes from $CONCLAVE_BIN (default: target/debug/conclave in this repo).
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("CONCLAVE_BIN") or os.path.join(REPO, "target", "debug", "conclave")


def pytest_configure(config):
    # The SDK deprecates `OpenTok` in favour of `Client` (same arguments) and some method names
    # (signal -> send_signal). The tests use the names that every tested version and most
    # existing applications use, so keep the output free of those notices.
    config.addinivalue_line("filterwarnings", "ignore:.* is deprecated:DeprecationWarning")


def conclave(*args, env=None):
    """Runs one `conclave` CLI command and returns the CompletedProcess."""
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=60)


def free_port():
    """A loopback port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConclaveServer:
    """A running `conclave serve` plus the projects created in its data directory."""

    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="conclave-sdk-py-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        # Two projects: projects[0] is ours, projects[1] belongs to "someone else".
        self.projects = [self._create_project() for _ in range(2)]
        self.proc = None
        for _attempt in range(3):  # another process may grab the port between probe and bind
            if self._start(free_port()):
                return
        raise RuntimeError("conclave serve did not become ready:\n" + self.logs()[-4000:])

    def _create_project(self):
        out = conclave("project", "create", "--data-dir", self.data, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def _start(self, port):
        self.url = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/v1/signal"
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{port}", *self.extra_args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # exited (port taken?): the caller retries on another port
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        return False

    def verify(self, session_id, token):
        """The server's own token check: (True, claims) or (False, {"code", "message"})."""
        out = conclave("token", "verify", "--data-dir", self.data, "--session-id", session_id, "--token", token)
        assert out.returncode in (0, 1), out.stderr
        return out.returncode == 0, json.loads(out.stdout)

    def stop(self):
        """SIGTERM by PID (graceful shutdown), SIGKILL if still running after 5 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def server(request):
    """The module's server; a module may add `serve` arguments with a SERVER_ARGS tuple (e.g.
    the outbound policy flags that let broadcasts reach loopback RTMP/WebSocket servers)."""
    s = ConclaveServer(getattr(request.module, "SERVER_ARGS", ()))
    try:
        yield s
    finally:
        s.stop()
    # API secrets never reach the server's log.
    logs = s.logs()
    for p in s.projects:
        assert p["api_secret"] not in logs
    shutil.rmtree(s.dir, ignore_errors=True)


class Bot:
    """A real participant: `conclave client`, which prints server messages as JSON lines.
    Used by the session-control and archive tests. With real_media, the published stream
    carries real encoded VP8 and Opus (generated with ffmpeg), so that archives of it decode."""

    def __init__(self, server, session_id, token, publish=None, subscribe_all=False, real_media=False):
        args = [BIN, "client", "--url", server.ws, "--session-id", session_id]
        if publish:
            args += ["--publish", publish]
        if real_media:
            args += ["--real-media"]
        if subscribe_all:
            args += ["--subscribe-all"]
        env = dict(os.environ, CONCLAVE_TOKEN=token)  # never on the command line
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                     stderr=open(os.environ.get("CONCLAVE_BOT_STDERR", os.devnull), "a"), text=True, env=env)
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.welcome = self.wait_for(lambda m: m["type"] in ("connected", "error"))
        assert self.welcome["type"] == "connected", self.welcome
        self.connection_id = self.welcome["connectionId"]
        self.stream_id = None
        if publish:
            self.stream_id = self.wait_for(lambda m: m["type"] == "published")["stream"]["streamId"]

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put({"type": "_exit"})

    def wait_for(self, pred, timeout=10):
        """The next message matching pred (earlier, non-matching messages are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for an event")
            try:
                m = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if pred(m):
                return m
            if m["type"] == "_exit":
                raise AssertionError("bot exited before the expected event")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _bot_starter():
    started = []

    def start(*args, **kwargs):
        b = Bot(*args, **kwargs)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def bots():
    """bots(server, session_id, token, publish=..., subscribe_all=..., real_media=...) starts a Bot; all are
    stopped at the end of the test."""
    yield from _bot_starter()


@pytest.fixture(scope="module")
def module_bots():
    """Like `bots`, but its bots live until the module's tests are done (for a session that
    several tests share)."""
    yield from _bot_starter()
