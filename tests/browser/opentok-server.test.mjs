// Server-originated events reaching the official OpenTok.js 2.35.2: REST signals (to all and
// to one connection, `from` null), a REST-started composed archive of an OpenTok.js publisher
// (archiveStarted / archiveStopped at the clients, also from the join snapshot; the MP4 has a
// video stream of the red camera, not black frames), and a REST force disconnect.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { harness, probeVideo } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

describe("REST calls reaching OpenTok.js 2.35.2 clients", () => {
  const h = harness("opentok-server");
  let red, blue, late, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
    await red.join(sessionId, h.server.token(sessionId, "publisher"));
    await blue.join(sessionId, h.server.token(sessionId, "subscriber"));
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("a REST signal to the session reaches every client, from the server", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    const r = await h.server.signal(sessionId, { type: "announce", data: "from the server" });
    assert.equal(r.status, 204, r.text);
    for (const [i, p] of [red, blue].entries()) {
      const e = await p.waitEvent({ type: "signal", signalType: "announce" }, { since: marks[i] });
      assert.equal(e.data, "from the server");
      assert.equal(e.from, null, `${p.label}: a server signal has no sender connection`);
    }
  });

  test("a REST signal to one connection reaches only that client", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    const r = await h.server.signal(sessionId, { type: "direct", data: "only blue" }, blue.connectionId);
    assert.equal(r.status, 204, r.text);
    const e = await blue.waitEvent({ type: "signal", signalType: "direct" }, { since: marks[1] });
    assert.equal(e.data, "only blue");
    assert.equal(e.from, null);
    assert.equal((await h.server.signal(sessionId, { type: "after", data: "x" })).status, 204);
    await red.waitEvent({ type: "signal", signalType: "after" }, { since: marks[0] });
    assert.deepEqual(await red.events({ type: "signal", signalType: "direct" }, marks[0]), [], "red got nothing");
  });

  test("a composed archive of an OpenTok.js publisher: events at the clients, an MP4 with the red camera", { timeout: 150000 }, async () => {
    await red.publish();
    await blue.waitForMedia(red.streamId, { timeout: 30000 });
    const marks = [await red.mark(), await blue.mark()];
    const started = await h.server.startArchive(sessionId, { name: "otjs-archive" });
    assert.equal(started.status, 200, started.text);
    const id = started.json.id;
    for (const [i, p] of [red, blue].entries()) {
      const e = await p.waitEvent({ type: "archiveStarted", id }, { since: marks[i] });
      assert.equal(e.name, "otjs-archive", p.label);
    }
    // Someone joining while it records learns of it from the join snapshot.
    late = await h.participant({ label: "late", colour: "green" });
    await late.join(sessionId, h.server.token(sessionId, "subscriber"), { subscribe: false });
    await late.waitEvent({ type: "archiveStarted", id });
    await red.page.waitForTimeout(6000);
    const stopped = await h.server.stopArchive(id);
    assert.equal(stopped.status, 200, stopped.text);
    for (const p of [red, blue, late]) await p.waitEvent({ type: "archiveStopped", id });

    const done = await h.server.waitArchive(id, 90000);
    assert.equal(done.status, "available", JSON.stringify(done));
    const res = await fetch(done.url, { signal: AbortSignal.timeout(30000) });
    assert.equal(res.status, 200, `download ${done.url}`);
    const mp4 = join(mkdtempSync(join(tmpdir(), "conclave-otjs-archive-")), "composed.mp4");
    writeFileSync(mp4, Buffer.from(await res.arrayBuffer()));
    const probe = probeVideo(mp4);
    assert.ok(probe.video, `a video stream: ${JSON.stringify(probe.streams)}`);
    assert.ok(probe.duration >= 3, `${probe.duration} s`);
    assert.ok(probe.rgb && Math.max(...probe.rgb) > 60, `a frame from the middle is not black: ${probe.rgb}`);
    assert.equal(nearestColour(probe.rgb), "red", `the recorded camera is red: ${probe.rgb}`);
  });

  test("a REST force disconnect ends that client's session (forceDisconnected)", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await late.mark()];
    const r = await h.server.forceDisconnect(sessionId, late.connectionId);
    assert.equal(r.status, 204, r.text);
    const e = await late.waitEvent({ type: "sessionDisconnected" }, { since: marks[1] });
    assert.equal(e.reason, "forceDisconnected");
    const c = await red.waitEvent({ type: "connectionDestroyed", connectionId: late.connectionId }, { since: marks[0] });
    assert.equal(c.reason, "forceDisconnected");
  });
});
