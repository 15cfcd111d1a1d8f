"""Live streaming (broadcasts) and the Audio Connector with the official Python SDK (3.15.0 and
3.10.0: the same file runs in both virtualenvs; both have every broadcast method and
connect_audio_to_websocket, neither has list_broadcasts nor a way to stop an audio connection)
against a live server. Two `conclave client` bots publish real media (a test picture and a
440 Hz tone, VP8 and Opus) in one routed session that the module's tests share; the SDK starts,
gets, re-lays-out, edits (manual stream mode) and stops broadcasts, the HLS playlist is fetched
and a segment probed (H.264 + AAC, 640x480), and audio connections deliver 20 ms L16 frames
(640 bytes at 16 kHz, 320 at 8 kHz) to a WebSocket server written here on the stdlib.
The server allows loopback, plain targets (SERVER_ARGS, read by conftest's `server`)."""
import base64
import hashlib
import json
import math
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import opentok
import pytest
from opentok import BroadcastStreamModes, MediaModes, OpenTok, Roles
from opentok.exceptions import (
    AuthError,
    BroadcastError,
    BroadcastHLSOptionsError,
    BroadcastOptionsError,
    InvalidMediaModeError,
    InvalidWebSocketOptionsError,
    RequestError,
)

SERVER_ARGS = ("--allow-private-callbacks", "--allow-http-callbacks")
SDK = tuple(int(x) for x in opentok.__version__.split(".")[:3])
UNKNOWN_SESSION = "1_MX4xMjM0NX5-MTcwMDAwMDAwMDAwMH5ub3BlfjB-"


def sdk(server, project=0):
    p = server.projects[project]
    return OpenTok(p["api_key"], p["api_secret"], api_url=server.url)


class Live:
    """The module's routed session with two publishing bots, and the broadcasts its tests
    started (whatever a failed test leaves running is stopped after it: the node composes two
    broadcasts at most)."""

    def __init__(self, server, module_bots):
        self.server = server
        self.ot = sdk(server)
        self.session = self.ot.create_session(media_mode=MediaModes.routed).session_id
        token = lambda data: self.ot.generate_token(self.session, role=Roles.publisher, data=data)  # noqa: E731
        self.alice = module_bots(server, self.session, token("alice"), publish="alice-cam", real_media=True)
        self.bob = module_bots(server, self.session, token("bob"), publish="bob-cam", real_media=True)
        self.started = []

    def start(self, options, **kwargs):
        b = self.ot.start_broadcast(self.session, options, **kwargs)
        self.started.append(b.id)
        return b

    def stop_leftovers(self):
        for broadcast_id in self.started:
            try:
                if self.ot.get_broadcast(broadcast_id).status == "started":
                    self.ot.stop_broadcast(broadcast_id)
            except Exception:  # noqa: BLE001 - best effort after a failure
                pass


@pytest.fixture(scope="module")
def live_module(server, module_bots):
    return Live(server, module_bots)


@pytest.fixture
def live(live_module):
    yield live_module
    live_module.stop_leftovers()


def http_get(url):
    """(status, body) of a GET, without raising on 4xx."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def segments(playlist):
    return [line.strip() for line in playlist.splitlines() if line.strip().endswith(".ts")]


def playlist_with_segments(url, timeout=40):
    deadline = time.monotonic() + timeout
    while True:
        status, body = http_get(url)
        if status == 200 and segments(body.decode()):
            return body.decode()
        assert time.monotonic() < deadline, f"the playlist at {url} never listed a segment ({status} {body[:200]!r})"
        time.sleep(0.3)


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    streams = json.loads(out.stdout)["streams"]
    video = next((s for s in streams if s["codec_type"] == "video"), None)
    return sorted(s["codec_name"] for s in streams), video and (video["width"], video["height"])


def segment_url(playlist_url, name):
    return playlist_url.rsplit("/", 1)[0] + "/" + name


# --- a minimal WebSocket server (RFC 6455) ---------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


class WebSocketServer:
    """Accepts one connection and keeps what it is sent: the upgrade request, text and binary
    messages, whether every frame was masked, the close. With bad_accept, it answers the upgrade
    with a wrong Sec-WebSocket-Accept."""

    def __init__(self, bad_accept=False):
        self.bad_accept = bad_accept
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.uri = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/audio?call=1"
        self.request_line = None
        self.headers = {}
        self.texts, self.binaries = [], []
        self.unmasked = 0
        self.close_frame = False
        self.closed = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    self.closed.set()
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            self.headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
            self.request_line = lines[0]
            guid = "wrong" if self.bad_accept else WS_GUID
            accept = base64.b64encode(hashlib.sha1((self.headers["sec-websocket-key"] + guid).encode()).digest()).decode()
            conn.sendall(
                ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()
            )
            partial = None  # (opcode, [parts]) of a fragmented message
            while True:
                frame, buf = self._frame(buf)
                if frame is None:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    continue
                fin, opcode, payload = frame
                if opcode == 8:
                    self.close_frame = True
                    conn.sendall(b"\x88\x00")  # our close in answer
                    break
                if opcode == 9:  # ping -> pong
                    conn.sendall(bytes([0x8A, len(payload)]) + payload)
                    continue
                if opcode in (1, 2):
                    partial = (opcode, [payload])
                elif opcode == 0 and partial:
                    partial[1].append(payload)
                else:
                    continue
                if fin:
                    message = b"".join(partial[1])
                    with self.lock:
                        if partial[0] == 1:
                            self.texts.append(message.decode())
                        else:
                            self.binaries.append(message)
                    partial = None
        self.closed.set()

    def _frame(self, buf):
        """(fin, opcode, unmasked payload) and the rest, or (None, buf) when incomplete."""
        if len(buf) < 2:
            return None, buf
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        masked, length, at = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None, buf
            length, at = struct.unpack(">H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None, buf
            length, at = struct.unpack(">Q", buf[2:10])[0], 10
        mask = buf[at:at + 4] if masked else b""
        at += len(mask)
        if len(buf) < at + length:
            return None, buf
        payload = buf[at:at + length]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        else:
            self.unmasked += 1
        return (fin, opcode, payload), buf[at + length:]

    def loud_frames(self):
        with self.lock:
            return sum(1 for f in self.binaries if any(f))

    def close(self):
        self.listener.close()


def power(samples, rate, freq):
    """The power of `freq` in `samples` (Goertzel)."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def stop_connection(server, ot, connection_id):
    """POST /v2/project/{apiKey}/connect/{id}/stop (no SDK method) with the SDK's own credential."""
    url = f"{server.url}/v2/project/{server.projects[0]['api_key']}/connect/{connection_id}/stop"
    req = urllib.request.Request(url, data=b"", method="POST", headers=ot.get_headers())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- the tests ---------------------------------------------------------------------------------


def test_hls_broadcast_lifecycle(live, tmp_path):
    ot, session = live.ot, live.session
    before = time.time()
    b = live.start({"outputs": {"hls": {}}, "layout": {"type": "pip"}, "resolution": "640x480", "maxDuration": 300})
    assert b.status == "started"
    assert b.id and b.sessionId == session
    assert b.projectId == int(live.server.projects[0]["api_key"])
    assert (b.resolution, b.maxDuration, b.stream_mode, b.streams) == ("640x480", 300, "auto", [])
    assert (b.hasAudio, b.hasVideo) == (True, True)
    assert abs(b.createdAt / 1000 - before) < 60  # milliseconds
    url = b.broadcastUrls["hls"]
    assert url.startswith(live.server.url + "/hls/") and url.endswith("/index.m3u8"), url
    assert b.broadcastUrls["rtmp"] == []

    got = ot.get_broadcast(b.id)
    assert (got.id, got.status, got.sessionId, got.broadcastUrls["hls"]) == (b.id, "started", session, url)

    with pytest.raises(BroadcastError, match="already started"):  # 409: no distinct multiBroadcastTag
        ot.start_broadcast(session, {"outputs": {"hls": {}}})
    with pytest.raises(RequestError) as e:  # 405: auto stream mode
        ot.add_broadcast_stream(b.id, live.alice.stream_id)
    assert e.value.args[1] == 405

    # The playlist lists segments; one of them is H.264 + AAC at the asked resolution.
    playlist = playlist_with_segments(url)
    assert playlist.startswith("#EXTM3U")
    seg_url = segment_url(url, segments(playlist)[-1])
    status, data = http_get(seg_url)
    assert status == 200
    (tmp_path / "segment.ts").write_bytes(data)
    assert probe(tmp_path / "segment.ts") == (["aac", "h264"], (640, 480))
    assert ot.get_broadcast(b.id).broadcastUrls["hlsStatus"] == "live"

    # Layouts: the SDK requires exactly 200 and returns nothing; an unknown type is a 400.
    before_layout = time.time()
    assert ot.set_broadcast_layout(b.id, "bestFit", screenshare_type="pip") is None
    assert ot.get_broadcast(b.id).updatedAt / 1000 >= before_layout - 0.01
    assert ot.set_broadcast_layout(b.id, "pip") is None
    assert ot.set_broadcast_layout(b.id, "custom", stylesheet="stream.instructor {position: absolute; width: 100%; height: 50%;}") is None
    with pytest.raises(BroadcastError):
        ot.set_broadcast_layout(b.id, "no-such-layout")

    stopped = ot.stop_broadcast(b.id)  # the SDK requires exactly 200
    assert (stopped.id, stopped.status, stopped.broadcastUrls["hlsStatus"]) == (b.id, "stopped", "ended")
    assert ot.get_broadcast(b.id).status == "stopped"
    assert http_get(url)[0] == 404, "the playlist goes after stop (no DVR)"
    assert http_get(seg_url)[0] == 404, "and its segments"
    with pytest.raises(BroadcastError, match="already stopped"):  # 409
        ot.stop_broadcast(b.id)


def test_manual_stream_mode(live):
    ot, alice, bob = live.ot, live.alice, live.bob
    b = live.start({"outputs": {"hls": {}}}, stream_mode=BroadcastStreamModes.manual)
    assert (b.status, b.stream_mode, b.streams) == ("started", "manual", [])

    def streams():
        return sorted((s["streamId"], s["hasAudio"], s["hasVideo"]) for s in ot.get_broadcast(b.id).streams)

    assert ot.add_broadcast_stream(b.id, alice.stream_id) is None  # 204
    assert streams() == [(alice.stream_id, True, True)]
    # Python can leave a track out (Node's SDK always sends true).
    assert ot.add_broadcast_stream(b.id, bob.stream_id, has_audio=True, has_video=False) is None
    assert streams() == sorted([(alice.stream_id, True, True), (bob.stream_id, True, False)])
    assert ot.remove_broadcast_stream(b.id, alice.stream_id) is None
    assert streams() == [(bob.stream_id, True, False)]
    with pytest.raises(RequestError) as e:  # 404: not a stream of the session
        ot.add_broadcast_stream(b.id, "no-such-stream")
    assert e.value.args[1] == 404
    assert streams() == [(bob.stream_id, True, False)]

    stopped = ot.stop_broadcast(b.id)
    assert (stopped.status, stopped.streams) == ("stopped", [])
    with pytest.raises(RequestError) as e:  # 409: stopped
        ot.remove_broadcast_stream(b.id, bob.stream_id)
    assert e.value.args[1] == 409


def test_start_refusals_and_unknown_ids(live, server):
    ot, session = live.ot, live.session
    hls = {"outputs": {"hls": {}}}
    # Client-side: outputs are required (the SDK reads them), dvr with lowLatency, maxBitrate.
    with pytest.raises(KeyError):
        ot.start_broadcast(session, {})
    with pytest.raises(BroadcastHLSOptionsError):
        ot.start_broadcast(session, {"outputs": {"hls": {"dvr": True, "lowLatency": True}}})
    with pytest.raises(BroadcastOptionsError):
        ot.start_broadcast(session, {"outputs": {"hls": {}}, "maxBitrate": 50})
    # Server-side.
    with pytest.raises(RequestError) as e:  # 404: unknown session
        ot.start_broadcast(UNKNOWN_SESSION, hls)
    assert e.value.args[1] == 404
    with pytest.raises(RequestError) as e:  # 404: another project's session
        ot.start_broadcast(sdk(server, 1).create_session(media_mode=MediaModes.routed).session_id, hls)
    assert e.value.args[1] == 404
    with pytest.raises(BroadcastError, match="already started"):  # 409, which the SDK names thus
        ot.start_broadcast(ot.create_session().session_id, hls)  # a relayed session
    for bad in ({"outputs": {"rtmp": []}}, {"outputs": {"hls": {}}, "resolution": "1x1"},
                {"outputs": {"hls": {}}, "maxDuration": 10},
                {"outputs": {"rtmp": [{"serverUrl": "http://127.0.0.1/live", "streamName": "k"}]}}):
        with pytest.raises(BroadcastError, match="Invalid request"):  # 400
            ot.start_broadcast(session, bad)
    # Unknown IDs: 404, which these methods report as a generic RequestError.
    for method in (ot.get_broadcast, ot.stop_broadcast):
        with pytest.raises(RequestError) as e:
            method("0" * 32)
        assert e.value.args[1] == 404
    # Another project's credential finds nothing of ours.
    b = live.start(hls)
    with pytest.raises(RequestError) as e:
        sdk(server, 1).get_broadcast(b.id)
    assert e.value.args[1] == 404
    assert ot.stop_broadcast(b.id).status == "stopped"


def _assert_pcm(ws, rate, bytes_per_frame):
    with ws.lock:
        frames = list(ws.binaries)
        texts = list(ws.texts)
    assert texts, "a first text message"
    first = json.loads(texts[0])
    assert first == {"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}", "customer": "acme"}
    assert ws.unmasked == 0, "a client masks every frame"
    assert {len(f) for f in frames} == {bytes_per_frame}, "20 ms of 16-bit mono per message"
    pcm = [s for f in frames for s in struct.unpack(f"<{len(f) // 2}h", f)]
    start = next(i for i, s in enumerate(pcm) if s != 0)
    sound = pcm[start:start + rate]
    assert len(sound) == rate, "a second of sound"
    peak = power(sound, rate, 440)
    for other in (220, 660, 1000, 2500 if rate > 8000 else 1800):
        assert peak > 20 * power(sound, rate, other), f"the peak is at 440 Hz, not {other} Hz"


def test_audio_connector(live, server):
    ot, session = live.ot, live.session
    at_16k, at_8k = WebSocketServer(), WebSocketServer()
    try:
        token = lambda data: ot.generate_token(session, role=Roles.publisher, data=data)  # noqa: E731
        # The default rate (no audioRate) and 8 kHz, side by side.
        wide = ot.connect_audio_to_websocket(session, token("ac-16k"), {"uri": at_16k.uri, "headers": {"customer": "acme"}})
        narrow = ot.connect_audio_to_websocket(
            session, token("ac-8k"), {"uri": at_8k.uri, "audioRate": 8000, "headers": {"customer": "acme"}}
        )
        for c in (wide, narrow):
            assert c.id and c.connectionId, c.__dict__
            if SDK >= (3, 15, 0):
                assert c.bidirectional is None  # not asked for, not answered
            else:
                assert not hasattr(c, "bidirectional")
        assert len({wide.id, narrow.id, wide.connectionId, narrow.connectionId}) == 4
        # Each is a participant that the bots see join.
        for c, data in ((wide, "ac-16k"), (narrow, "ac-8k")):
            m = live.alice.wait_for(lambda m: m["type"] == "connectionCreated" and m["connection"]["connectionId"] == c.connectionId)
            assert m["connection"]["data"] == data
        # The upgrade request names the session and the connection.
        assert at_16k.request_line == "GET /audio?call=1 HTTP/1.1"
        assert (at_16k.headers["x-opentok-ws-sessionid"], at_16k.headers["x-opentok-ws-connectionid"]) == (session, wide.connectionId)
        assert at_8k.headers["x-opentok-ws-connectionid"] == narrow.connectionId

        deadline = time.monotonic() + 20
        while min(at_16k.loud_frames(), at_8k.loud_frames()) < 75:  # 1.5 s of sound each
            assert time.monotonic() < deadline, f"not enough sound: {at_16k.loud_frames()} / {at_8k.loud_frames()} frames"
            time.sleep(0.2)
        _assert_pcm(at_16k, 16000, 640)
        _assert_pcm(at_8k, 8000, 320)

        # No SDK method stops a connection: the REST call, signed with the SDK's credential.
        assert stop_connection(server, ot, wide.id) == 204
        assert at_16k.closed.wait(10), "the socket closes after stop"
        assert at_16k.close_frame, "with a close frame"
        live.alice.wait_for(lambda m: m["type"] == "connectionDestroyed" and m["connectionId"] == wide.connectionId)
        assert not at_8k.closed.is_set(), "the other connection goes on"
        assert stop_connection(server, ot, wide.id) == 404, "a second stop finds nothing"
        assert stop_connection(server, ot, narrow.id) == 204
        assert at_8k.closed.wait(10)
    finally:
        at_16k.close()
        at_8k.close()


def test_audio_connector_refusals(live):
    ot, session = live.ot, live.session
    ws, liar = WebSocketServer(), WebSocketServer(bad_accept=True)
    try:
        relayed = ot.create_session().session_id
        relayed_token = ot.generate_token(relayed, role=Roles.publisher)
        token = ot.generate_token(session, role=Roles.publisher)
        with pytest.raises(InvalidWebSocketOptionsError):  # client-side: no uri
            ot.connect_audio_to_websocket(session, token, {"headers": {}})
        with pytest.raises(InvalidMediaModeError):  # 409
            ot.connect_audio_to_websocket(relayed, relayed_token, {"uri": ws.uri})
        with pytest.raises(RequestError, match="audioRate"):  # 400, the server's message surfaces
            ot.connect_audio_to_websocket(session, token, {"uri": ws.uri, "audioRate": 44100})
        with pytest.raises(AuthError):  # 403: the token is another session's
            ot.connect_audio_to_websocket(session, relayed_token, {"uri": ws.uri})
        with pytest.raises(RequestError) as e:  # 404: unknown session
            ot.connect_audio_to_websocket(UNKNOWN_SESSION, token, {"uri": ws.uri})
        assert e.value.args[1] == 404
        assert ws.request_line is None, "nothing reached the WebSocket server"
        with pytest.raises(RequestError) as e:  # 502: a wrong Sec-WebSocket-Accept
            ot.connect_audio_to_websocket(session, token, {"uri": liar.uri})
        assert e.value.args[1] == 502
        assert liar.request_line, "the upgrade was tried"
    finally:
        ws.close()
        liar.close()
