"""Fixtures for the official OpenTok Python SDK conformance tests.

Each test module starts its own `conclave serve` on 127.0.0.1 (port 0: the server prints the
port it bound), in a fresh data directory, with two projects, and stops it by PID at the end.
"""
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

import pytest

BIN = os.environ.get("CONCLAVE_BIN", os.path.join(os.path.dirname(__file__), "../../../target/debug/conclave"))


def run(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=60)


class Conclave:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="conclave-sdk-")
        self.data = os.path.join(self.dir, "data")
        self.projects = [self._create_project() for _ in range(2)]
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", self.data, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), f"server did not start: {line!r}"
        self.url = line.split("listening on ", 1)[1].strip()
        self.ws = self.url.replace("http://", "ws://") + "/v1/signal"

    def _create_project(self):
        out = run("project", "create", "--json", "--data-dir", self.data)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def verify(self, session_id, token):
        """Runs the server's own verifier; returns (ok, claims-or-error)."""
        out = run("token", "verify", "--data-dir", self.data, "--session-id", session_id, "--token", token)
        return out.returncode == 0, json.loads(out.stdout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def logs(self):
        with open(os.path.join(self.dir, "server.log")) as f:
            return f.read()


class Bot:
    """A real participant: `conclave client`, printing server messages as JSON lines."""

    def __init__(self, server, session_id, token, publish=None, subscribe_all=False):
        args = [BIN, "client", "--url", server.ws, "--session-id", session_id]
        if publish:
            args += ["--publish", publish]
        if subscribe_all:
            args += ["--subscribe-all"]
        env = dict(os.environ, CONCLAVE_TOKEN=token)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, env=env)
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.welcome = self.wait_for(lambda m: m["type"] in ("connected", "error"))
        assert self.welcome["type"] == "connected", self.welcome
        self.connection_id = self.welcome["connectionId"]
        self.stream_id = self.wait_for(lambda m: m["type"] == "published")["stream"]["streamId"] if publish else None

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put({"type": "_exit"})

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                m = self.events.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if pred(m):
                return m
            if m["type"] == "_exit":
                raise AssertionError("bot exited before the expected event")
        raise AssertionError("timed out waiting for an event")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server():
    s = Conclave()
    yield s
    s.stop()
    # Secrets never appear in the server's log.
    logs = s.logs()
    for p in s.projects:
        assert p["api_secret"] not in logs


@pytest.fixture
def bots():
    started = []

    def start(*args, **kwargs):
        b = Bot(*args, **kwargs)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
