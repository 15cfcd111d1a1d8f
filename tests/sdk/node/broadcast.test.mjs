// Live streaming (broadcasts) and the Audio Connector with the official OpenTok Node SDKs
// (2.23.2 and 2.19.0, unmodified; both have every broadcast method and websocketConnect)
// against a live server. Two `conclave client` bots publish real media (a test picture and a
// 440 Hz tone, VP8 and Opus) in one routed session per version; the SDK starts, gets, lists,
// re-lays-out, edits (manual stream mode) and stops broadcasts, and the media is checked where
// it lands: the HLS playlist's segments are fetched and probed (H.264 + AAC, 640x480), an RTMP
// output reaches a real RTMP server (ffmpeg listening) whose recording is probed, and an audio
// connection delivers 20 ms L16 frames to a WebSocket server written here on node:http.
// The server allows loopback, plain targets (--allow-private-callbacks --allow-http-callbacks).
// Run with `node --test` (scripts/sdk-tests does); the server comes from harness.mjs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bot, call, freePort, sdkClient, startServer, stopServer } from "./harness.mjs";

const require = createRequire(import.meta.url);
const VERSIONS = ["2.23.2", "2.19.0"];
// Node 2.19's HTTP layer fails only on 400, 403 and 5xx: any other answer (404, 405, 409) is
// handed to the caller as a result (the server's JSON body, e.g. a Broadcast made of
// {message}). 2.23.2 fails on every status outside 2xx.
const rejectsEvery4xx = (version) => version !== "2.19.0";
// Node 2.19's getBroadcast cannot read any answer: its Broadcast constructor JSON.parse()s the
// body that its HTTP layer already parsed (the server labels it application/json, as OpenTok
// does), so it always fails with a SyntaxError. That version reads broadcasts with
// listBroadcasts instead (which stringifies each item first).
const getBroadcastWorks = (version) => version !== "2.19.0";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let tmp;
before(async () => {
  server = await startServer(["--allow-private-callbacks", "--allow-http-callbacks"]);
  tmp = mkdtempSync(join(tmpdir(), "conclave-broadcast-node-"));
});
after(async () => {
  await stopServer(server);
  rmSync(tmp, { recursive: true, force: true });
});

// --- helpers -----------------------------------------------------------------------------------

/** listBroadcasts answers (err, broadcasts, totalCount). */
const list = (ot, options = {}) =>
  new Promise((resolve, reject) =>
    ot.listBroadcasts(options, (err, items, total) => (err ? reject(err) : resolve({ items, total }))));

/** A call that 2.23.2 rejects with `pattern` and 2.19.0 answers with the server's error body
 *  (whose message matches `serverMessage`). */
async function refused(version, promise, pattern, serverMessage) {
  if (rejectsEvery4xx(version)) {
    await assert.rejects(promise, pattern);
  } else {
    const body = await promise;
    assert.equal(body.id, undefined, JSON.stringify(body));
    assert.match(body.message, serverMessage);
  }
}

/** One broadcast as the SDK reads it: getBroadcast, or (2.19.0) its item in listBroadcasts. */
async function get(version, ot, session, id) {
  if (getBroadcastWorks(version)) return call(ot, "getBroadcast", id);
  const found = (await list(ot, { sessionId: session })).items.find((x) => x.id === id);
  assert.ok(found, `${id} is not listed`);
  return found;
}

/** Polls the broadcast until check(broadcast) holds (30 s). */
async function until(version, ot, session, id, what, check) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const b = await get(version, ot, session, id);
    if (check(b)) return b;
    assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(b)}`);
    await sleep(250);
  }
}

const segments = (playlist) => playlist.split("\n").map((l) => l.trim()).filter((l) => l.endsWith(".ts"));

/** The playlist once it lists at least one segment (40 s). */
async function playlistWithSegments(url) {
  const deadline = Date.now() + 40_000;
  let last = "";
  for (;;) {
    const r = await fetch(url);
    if (r.status === 200) {
      last = await r.text();
      if (segments(last).length > 0) return last;
    }
    assert.ok(Date.now() < deadline, `the playlist at ${url} never listed a segment (last: ${r.status} ${last})`);
    await sleep(300);
  }
}

/** ffprobe of a file: codec names (sorted) and the video's size. */
function probe(path) {
  const r = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height:format=duration", "-of", "json", path], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const video = out.streams.find((s) => s.codec_type === "video");
  return { codecs: out.streams.map((s) => s.codec_name).sort(), size: video && [video.width, video.height], duration: Number(out.format.duration) };
}

/** An RTMP server: ffmpeg listening on `port`, writing what it receives to `out` (FLV). */
function rtmpServer(port, key, out) {
  const proc = spawn("ffmpeg", ["-v", "error", "-y", "-listen", "1", "-i", `rtmp://127.0.0.1:${port}/live/${key}`, "-c", "copy", "-f", "flv", out], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  return { proc, exited, stderr: () => stderr };
}

/** Is something listening on 127.0.0.1:port (without connecting to it: ffmpeg takes one client)? */
function listening(port) {
  const r = spawnSync("ss", ["-Htln", `sport = :${port}`], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim().length > 0;
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455, section 1.3

/** A minimal WebSocket server (RFC 6455, node:http only) that keeps what it is sent: the
 *  upgrade request, text and binary messages, whether every frame was masked, and the close.
 *  With `badAccept` it answers the upgrade with a wrong Sec-WebSocket-Accept. */
async function websocketServer({ badAccept = false } = {}) {
  const heard = { request: null, texts: [], binaries: [], unmasked: 0, closeFrame: false, closed: false };
  let onClosed;
  heard.closedP = new Promise((r) => (onClosed = r));
  const http = createHttpServer((req, res) => {
    res.writeHead(426);
    res.end();
  });
  http.on("upgrade", (req, socket, head) => {
    heard.request = { url: req.url, headers: req.headers };
    const key = req.headers["sec-websocket-key"];
    const accept = createHash("sha1").update(key + (badAccept ? "x" : WS_GUID)).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let buf = Buffer.from(head);
    let partial = null; // a fragmented message: { opcode, parts }
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const fin = (buf[0] & 0x80) !== 0;
        const opcode = buf[0] & 0x0f;
        const masked = (buf[1] & 0x80) !== 0;
        let len = buf[1] & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          at = 10;
        }
        const maskAt = at;
        if (masked) at += 4;
        if (buf.length < at + len) return;
        const payload = Buffer.from(buf.subarray(at, at + len));
        if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i % 4)];
        else heard.unmasked++;
        buf = buf.subarray(at + len);
        if (opcode === 8) {
          heard.closeFrame = true;
          socket.end(Buffer.from([0x88, 0x00])); // our close in answer
          return;
        }
        if (opcode === 9) { // ping → pong
          socket.write(Buffer.concat([Buffer.from([0x8a, payload.length]), payload]));
          continue;
        }
        if (opcode === 1 || opcode === 2) partial = { opcode, parts: [payload] };
        else if (opcode === 0 && partial) partial.parts.push(payload);
        else continue;
        if (!fin) continue;
        const message = Buffer.concat(partial.parts);
        if (partial.opcode === 1) heard.texts.push(message.toString("utf8"));
        else heard.binaries.push(message);
        partial = null;
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      heard.closed = true;
      onClosed();
    });
  });
  const port = await freePort();
  await new Promise((r) => http.listen(port, "127.0.0.1", r));
  return { uri: `ws://127.0.0.1:${port}/audio?call=1`, heard, close: () => http.close() };
}

/** The power of `freq` in 16-bit samples (Goertzel). */
function power(samples, rate, freq) {
  const k = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let [s1, s2] = [0, 0];
  for (const x of samples) [s1, s2] = [x + k * s1 - s2, s1];
  return s1 * s1 + s2 * s2 - k * s1 * s2;
}

// --- the tests ---------------------------------------------------------------------------------

for (const version of VERSIONS) {
  describe(`opentok ${version} live streaming and the Audio Connector`, () => {
    const apiKey = () => server.projects[0].api_key;
    let ot;
    let session;
    let alice;
    let bob;
    before(async () => {
      ot = sdkClient(server, version);
      session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
      const token = (data) => ot.generateToken(session, { role: "publisher", data });
      alice = await bot(server, session, token("alice"), { publish: "alice-cam", realMedia: true });
      bob = await bot(server, session, token("bob"), { publish: "bob-cam", realMedia: true });
    });
    after(() => {
      alice?.stop();
      bob?.stop();
    });
    const read = (id) => get(version, ot, session, id);

    /** A test after which nothing it started still runs, even when it fails (the node composes
     *  two broadcasts at most). */
    const live = (name, fn) =>
      test(name, async () => {
        try {
          await fn();
        } finally {
          for (const x of (await list(ot, { sessionId: session })).items) {
            if (x.status === "started") await call(ot, "stopBroadcast", x.id).catch(() => {});
          }
        }
      });

    live("HLS: start, get, list, layouts, segments that decode (H.264 + AAC, 640x480), stop, the files go", async () => {
      const startedAt = Date.now();
      const b = await call(ot, "startBroadcast", session, { outputs: { hls: {} }, layout: { type: "pip" }, resolution: "640x480", maxDuration: 300 });
      assert.equal(b.status, "started", JSON.stringify(b));
      assert.match(b.id, /^[0-9a-f-]{32,36}$/);
      assert.equal(b.sessionId, session);
      assert.equal(b.projectId, Number(apiKey()));
      assert.deepEqual([b.resolution, b.maxDuration, b.streamMode], ["640x480", 300, "auto"]);
      assert.ok(Math.abs(b.createdAt - startedAt) < 60_000, `createdAt ${b.createdAt} is not ms near ${startedAt}`);
      assert.equal(typeof b.stop, "function"); // a Broadcast object
      const url = b.broadcastUrls.hls;
      assert.ok(url.startsWith(`${server.url}/hls/`) && url.endsWith("/index.m3u8"), url);
      assert.deepEqual(b.broadcastUrls.rtmp, []);

      if (getBroadcastWorks(version)) {
        const got = await call(ot, "getBroadcast", b.id);
        assert.deepEqual([got.id, got.status, got.sessionId, got.broadcastUrls.hls], [b.id, "started", session, url]);
      } else {
        await assert.rejects(call(ot, "getBroadcast", b.id), /Failed to get broadcast\. SyntaxError/);
      }

      // A second broadcast of the session without a distinct multiBroadcastTag: 409.
      await refused(version, call(ot, "startBroadcast", session, { outputs: { hls: {} } }), /Failed to start broadcast.*already started/, /already started/);
      // Streams cannot be added to an auto-mode broadcast: 405.
      await refused(version, call(ot, "addBroadcastStream", b.id, alice.streamId), /Unexpected response from OpenTok.*manual stream mode/, /manual stream mode/);

      let listed = await list(ot, { sessionId: session });
      assert.equal(listed.total, 1);
      assert.deepEqual(listed.items.map((x) => [x.id, x.status, x.broadcastUrls.hls]), [[b.id, "started", url]]);
      assert.ok((await list(ot)).items.some((x) => x.id === b.id));

      // The playlist lists segments; one of them is H.264 + AAC at the asked resolution.
      const playlist = await playlistWithSegments(url);
      assert.ok(playlist.startsWith("#EXTM3U"), playlist);
      const segUrl = new URL(segments(playlist).at(-1), url).href;
      const seg = await fetch(segUrl);
      assert.equal(seg.status, 200);
      const segPath = join(tmp, `${version}-segment.ts`);
      writeFileSync(segPath, Buffer.from(await seg.arrayBuffer()));
      const p = probe(segPath);
      assert.deepEqual([p.codecs, p.size], [["aac", "h264"], [640, 480]]);
      assert.equal((await read(b.id)).broadcastUrls.hlsStatus, "live");
      // The URL is the capability: another secret finds nothing.
      const parts = url.split("/");
      parts[parts.length - 2] = "0".repeat(parts[parts.length - 2].length);
      assert.equal((await fetch(parts.join("/"))).status, 404);

      // Layouts: bestFit (with a screen-share layout), back to pip; an unknown type is refused (400).
      const beforeLayout = Date.now();
      await call(ot, "setBroadcastLayout", b.id, "bestFit", null, "pip");
      assert.ok((await read(b.id)).updatedAt >= beforeLayout - 5, "the layout change updates the broadcast");
      await call(ot, "setBroadcastLayout", b.id, "pip");
      await assert.rejects(call(ot, "setBroadcastLayout", b.id, "no-such-layout"));

      const stopped = await call(ot, "stopBroadcast", b.id);
      assert.deepEqual([stopped.id, stopped.status, stopped.broadcastUrls.hlsStatus], [b.id, "stopped", "ended"]);
      assert.equal((await read(b.id)).status, "stopped");
      assert.equal((await fetch(url)).status, 404, "the playlist goes after stop (no DVR)");
      assert.equal((await fetch(segUrl)).status, 404, "and its segments");
      // A second stop: 409; a layout for a stopped broadcast: 409.
      await refused(version, call(ot, "stopBroadcast", b.id), /Failed to stop broadcast.*already stopped/, /already stopped/);
      await refused(version, call(ot, "setBroadcastLayout", b.id, "bestFit"), /Unexpected response from OpenTok.*stopped/, /stopped/);
      listed = await list(ot, { sessionId: session });
      assert.deepEqual([listed.total, listed.items.map((x) => [x.id, x.status])], [1, [[b.id, "stopped"]]]);
    });

    live("RTMP: the output goes live on a real RTMP server whose recording decodes", async () => {
      const port = await freePort();
      const key = `stream-${randomBytes(8).toString("hex")}`;
      const flv = join(tmp, `${version}-rtmp.flv`);
      const rtmp = rtmpServer(port, key, flv);
      try {
        for (let i = 0; i < 50 && !listening(port); i++) await sleep(100);
        assert.ok(listening(port), `ffmpeg does not listen: ${rtmp.stderr()}`);
        const b = await call(ot, "startBroadcast", session, {
          outputs: { rtmp: [{ id: "local", serverUrl: `rtmp://127.0.0.1:${port}/live`, streamName: key }] },
          maxDuration: 300,
        });
        assert.equal(b.status, "started", JSON.stringify(b));
        assert.equal(b.broadcastUrls.hls, undefined);
        assert.deepEqual(b.broadcastUrls.rtmp.map((r) => [r.id, r.serverUrl, r.streamName, r.status]), [["local", `rtmp://127.0.0.1:${port}/live`, key, "connecting"]]);

        await until(version, ot, session, b.id, "the RTMP output goes live", (x) => x.broadcastUrls.rtmp[0].status === "live");
        await sleep(3000);
        const stopped = await call(ot, "stopBroadcast", b.id);
        assert.equal(stopped.status, "stopped");
        // The stream ends, so the RTMP server finishes its file and exits.
        const end = await Promise.race([rtmp.exited.then(() => "exited"), sleep(15_000).then(() => "timeout")]);
        assert.equal(end, "exited", `ffmpeg still runs after the broadcast stopped: ${rtmp.stderr()}`);
        assert.ok(existsSync(flv) && statSync(flv).size > 0, `no recording: ${rtmp.stderr()}`);
        const p = probe(flv);
        assert.deepEqual([p.codecs, p.size], [["aac", "h264"], [640, 480]]);
        assert.ok(p.duration >= 2, `duration ${p.duration}`);
        assert.ok(!readFileSync(server.logPath, "utf8").includes(key), "the stream key reached the server log");
      } finally {
        if (rtmp.proc.exitCode === null && rtmp.proc.signalCode === null) rtmp.proc.kill("SIGKILL");
      }
    });

    live("manual stream mode: addBroadcastStream and removeBroadcastStream choose the streams", async () => {
      const b = await call(ot, "startBroadcast", session, { outputs: { hls: {} }, streamMode: "manual" });
      assert.deepEqual([b.status, b.streamMode], ["started", "manual"], JSON.stringify(b));
      const streams = async () => (await read(b.id)).streams.map((s) => [s.streamId, s.hasAudio, s.hasVideo]).sort();
      assert.deepEqual(await streams(), []);

      await call(ot, "addBroadcastStream", b.id, alice.streamId);
      assert.deepEqual(await streams(), [[alice.streamId, true, true]]);
      await call(ot, "addBroadcastStream", b.id, bob.streamId, { hasAudio: true, hasVideo: true });
      assert.deepEqual(await streams(), [[alice.streamId, true, true], [bob.streamId, true, true]].sort());
      await call(ot, "removeBroadcastStream", b.id, alice.streamId);
      assert.deepEqual(await streams(), [[bob.streamId, true, true]]);

      // A stream that is not in the session: 404.
      await refused(version, call(ot, "addBroadcastStream", b.id, "no-such-stream"), /Not Found/, /Stream not found/);
      assert.deepEqual(await streams(), [[bob.streamId, true, true]]);

      // The chosen stream is composed: the playlist has segments with picture and sound.
      const playlist = await playlistWithSegments(b.broadcastUrls.hls);
      const seg = await fetch(new URL(segments(playlist).at(-1), b.broadcastUrls.hls));
      const segPath = join(tmp, `${version}-manual.ts`);
      writeFileSync(segPath, Buffer.from(await seg.arrayBuffer()));
      assert.deepEqual(probe(segPath).codecs, ["aac", "h264"]);

      const stopped = await call(ot, "stopBroadcast", b.id);
      assert.deepEqual([stopped.status, stopped.streams], ["stopped", []]);
      // Streams of a stopped broadcast cannot change: 409.
      await refused(version, call(ot, "addBroadcastStream", b.id, alice.streamId), /Unexpected response from OpenTok.*stopped/, /stopped/);
    });

    live("start refusals: unknown, relayed and another project's sessions, no outputs", async () => {
      const unknown = "1_MX4xMjM0NX5-MTcwMDAwMDAwMDAwMH5ub3BlfjB-";
      await refused(version, call(ot, "startBroadcast", unknown, { outputs: { hls: {} } }), /Failed to start broadcast.*Not Found/, /Session not found/);
      const relayed = (await call(ot, "createSession", {})).sessionId;
      await refused(version, call(ot, "startBroadcast", relayed, { outputs: { hls: {} } }), /Failed to start broadcast.*routed/, /routed/);
      const theirs = (await call(sdkClient(server, version, 1), "createSession", { mediaMode: "routed" })).sessionId;
      await refused(version, call(ot, "startBroadcast", theirs, { outputs: { hls: {} } }), /Failed to start broadcast.*Not Found/, /Session not found/);
      // 400 (outputs are required; a bad resolution): both versions fail with their fixed 400 message.
      await assert.rejects(call(ot, "startBroadcast", session, {}), /Failed to start broadcast.*Bad session ID/);
      await assert.rejects(call(ot, "startBroadcast", session, { outputs: { hls: {} }, resolution: "1x1" }), /Bad session ID/);
      // dvr with lowLatency never leaves the SDK.
      await assert.rejects(call(ot, "startBroadcast", session, { outputs: { hls: { dvr: true, lowLatency: true } } }), /Cannot set both dvr and lowLatency/);
      // Nothing started; nothing to get or stop under an unknown ID (404).
      assert.equal((await list(ot, { sessionId: relayed })).total, 0);
      assert.ok((await list(ot, { sessionId: session })).items.every((x) => x.status === "stopped"));
      const nobody = "0".repeat(32);
      await assert.rejects(call(ot, "getBroadcast", nobody), getBroadcastWorks(version) ? /Failed to get broadcast.*Not Found/ : /SyntaxError/);
      await refused(version, call(ot, "stopBroadcast", nobody), /Failed to stop broadcast.*Not Found/, /No matching broadcast/);
      // Another project's credential finds nothing of ours.
      const b = await call(ot, "startBroadcast", session, { outputs: { hls: {} } });
      await refused(version, call(sdkClient(server, version, 1), "stopBroadcast", b.id), /Failed to stop broadcast.*Not Found/, /No matching broadcast/);
      assert.equal((await list(sdkClient(server, version, 1), { sessionId: session })).total, 0);
      assert.equal((await call(ot, "stopBroadcast", b.id)).status, "stopped"); // untouched until now
    });

    test("websocketConnect: websocket:connected, then 20 ms L16 frames at 16 kHz (a 440 Hz tone); stopped over REST", async () => {
      const ws = await websocketServer();
      try {
        const token = ot.generateToken(session, { role: "publisher", data: "audio-connector" });
        const res = await call(ot, "websocketConnect", session, token, ws.uri, { headers: { customer: "acme", "x-call": "42" } });
        assert.equal(typeof res.id, "string");
        assert.ok(res.id.length > 0 && typeof res.connectionId === "string" && res.connectionId.length > 0, JSON.stringify(res));

        // The connection is a participant others see.
        const joined = await alice.waitFor((m) => m.type === "connectionCreated" && m.connection.connectionId === res.connectionId);
        assert.equal(joined.connection.data, "audio-connector");

        // The upgrade request names the session and the connection.
        assert.equal(ws.heard.request.url, "/audio?call=1");
        assert.equal(ws.heard.request.headers["x-opentok-ws-connectionid"], res.connectionId);
        assert.equal(ws.heard.request.headers["x-opentok-ws-sessionid"], session);

        // 1.5 s of sound (not silence).
        const deadline = Date.now() + 20_000;
        const loud = () => ws.heard.binaries.filter((f) => f.some((x) => x !== 0)).length;
        while (loud() < 75) {
          assert.ok(Date.now() < deadline, `not enough sound: ${ws.heard.binaries.length} frames, ${loud()} not silent`);
          await sleep(200);
        }
        assert.ok(ws.heard.texts.length >= 1, "a first text message");
        // Node's SDK sends no audioRate: the default is 16 kHz.
        assert.deepEqual(JSON.parse(ws.heard.texts[0]), { event: "websocket:connected", "content-type": "audio/l16;rate=16000", customer: "acme", "x-call": "42" });
        assert.equal(ws.heard.unmasked, 0, "a client masks every frame");
        const sizes = new Set(ws.heard.binaries.map((f) => f.length));
        assert.deepEqual([...sizes], [640], "20 ms of 16-bit mono at 16 kHz per message");
        const pcm = [];
        for (const f of ws.heard.binaries) for (let i = 0; i < f.length; i += 2) pcm.push(f.readInt16LE(i));
        const sound = pcm.slice(pcm.findIndex((x) => x !== 0)).slice(0, 16_000);
        assert.ok(sound.length >= 16_000, "a second of sound");
        const peak = power(sound, 16_000, 440);
        for (const other of [220, 660, 1000, 2500]) assert.ok(peak > 20 * power(sound, 16_000, other), `the peak is at 440 Hz, not ${other} Hz`);

        // No SDK method stops it: POST /v2/project/{apiKey}/connect/{id}/stop with the SDK's own credential.
        const auth = () => require(`opentok-${version}/lib/generateJwt.js`)(ot.client.c);
        const stop = (id) => fetch(`${server.url}/v2/project/${apiKey()}/connect/${id}/stop`, { method: "POST", headers: { "X-OPENTOK-AUTH": auth() } });
        assert.equal((await stop(res.id)).status, 204);
        const closed = await Promise.race([ws.heard.closedP.then(() => "closed"), sleep(10_000).then(() => "timeout")]);
        assert.equal(closed, "closed", "the socket closes after stop");
        assert.ok(ws.heard.closeFrame, "with a close frame");
        const left = await alice.waitFor((m) => m.type === "connectionDestroyed" && m.connectionId === res.connectionId);
        assert.ok(left, "the connector's participant leaves");
        assert.equal((await stop(res.id)).status, 404, "a second stop finds nothing");
        assert.equal((await stop("no-such-connection")).status, 404);
      } finally {
        ws.close();
      }
    });

    test("websocketConnect refusals: relayed (409) and unknown (404) sessions, another session's token (403), a bad handshake (502)", async () => {
      const ws = await websocketServer();
      const liar = await websocketServer({ badAccept: true });
      try {
        const relayed = (await call(ot, "createSession", {})).sessionId;
        const relayedToken = ot.generateToken(relayed, { role: "publisher" });
        const connect = (sid, token, uri = ws.uri) => call(ot, "websocketConnect", sid, token, uri);
        // 2.19.0 hands a 404 or 409 answer over as its result (the server's {message}).
        await refused(version, connect(relayed, relayedToken), /Error connecting to websocket: .*routed/, /routed/);
        await refused(version, connect("1_MX4xMjM0NX5-MTcwMDAwMDAwMDAwMH5ub3BlfjB-", relayedToken), /Error connecting to websocket: Not Found/, /Session not found/);
        await assert.rejects(connect(session, relayedToken), version === "2.19.0" ? /Error connecting to websocket: An authentication error occurred: \(403\)/ : /Error connecting to websocket: Invalid API key or secret/);
        assert.equal(ws.heard.request, null, "nothing reached the WebSocket server");
        // A server whose upgrade answer is wrong (Sec-WebSocket-Accept) is not connected: 502.
        const token = ot.generateToken(session, { role: "publisher", data: "refused-connector" });
        await assert.rejects(connect(session, token, liar.uri), version === "2.19.0" ? /A server error occurred: \(502\).*did not accept/ : /Unexpected response from OpenTok.*did not accept/);
        assert.ok(liar.heard.request, "the upgrade was tried");
      } finally {
        ws.close();
        liar.close();
      }
    });
  });
}
