// The official OpenTok.js 2.35.2 in routed sessions (p2p.preference=disabled): media goes
// through Conclave's SFU. A call of two (red and blue cameras: each decodes the other's video
// and its audio, from the server's media port; signals to all and to one), then a session of
// three (red, blue, green: each receives the other two, in the right colours).
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness, fullMesh } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

const COLOURS = ["red", "blue", "green"];

function assertRouted(h, stats) {
  for (const [k, s] of stats) {
    assert.ok(s.pair, `${k}: a selected candidate pair`);
    assert.ok(h.server.mediaPorts.includes(s.pair.remotePort), `${k} comes from the SFU's media port: ${JSON.stringify(s.pair)}`);
  }
}

describe("OpenTok.js 2.35.2 in a routed call of two", () => {
  const h = harness("opentok-routed");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("each decodes the other's camera and receives its audio through the SFU", { timeout: 90000 }, async () => {
    await red.join(sessionId, h.server.token(sessionId, "publisher"));
    await blue.join(sessionId, h.server.token(sessionId, "publisher"));
    await red.publish();
    await blue.publish();
    // publish() completes only once the server has announced the stream to its owner too.
    await red.waitEvent({ type: "streamCreated", source: "publisher", streamId: red.streamId });
    const stats = await fullMesh([red, blue]);
    assert.equal(nearestColour(await red.waitForColour(blue.streamId, "blue")), "blue", "the red browser shows the blue camera");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red", "the blue browser shows the red camera");
    assertRouted(h, stats);
    // The media server never shows up as a connection.
    for (const p of [red, blue]) {
      const ids = (await p.events({ type: "connectionCreated" })).map((e) => e.connectionId).sort();
      assert.deepEqual(ids, [red.connectionId, blue.connectionId].sort(), `${p.label} sees exactly the two people`);
      assert.deepEqual(p.foreignUrls(), [], `${p.label} asked for nothing outside Conclave and the app`);
    }
    await red.screenshot("opentok-routed-red");
    await blue.screenshot("opentok-routed-blue");
  });

  test("signals to all and to one connection", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    assert.equal((await blue.signal({ type: "chat", data: "routed hello" })).ok, true);
    for (const [i, p] of [red, blue].entries()) {
      const e = await p.waitEvent({ type: "signal", signalType: "chat" }, { since: marks[i] });
      assert.equal(e.data, "routed hello");
      assert.equal(e.from, blue.connectionId);
    }
    assert.equal((await blue.signal({ type: "direct", data: "for red", to: red.connectionId })).ok, true);
    const e = await red.waitEvent({ type: "signal", signalType: "direct" }, { since: marks[0] });
    assert.equal(e.from, blue.connectionId);
    assert.equal(e.data, "for red");
    await blue.signal({ type: "after", data: "" });
    await blue.waitEvent({ type: "signal", signalType: "after" }, { since: marks[1] });
    assert.deepEqual(await blue.events({ type: "signal", signalType: "direct" }, marks[1]), [], "a directed signal does not echo to the sender");
  });

  test("unpublishing ends the stream at the other side (clientDisconnected)", { timeout: 30000 }, async () => {
    const mark = await red.mark();
    await blue.call("unpublish");
    const e = await red.waitEvent({ type: "streamDestroyed", streamId: blue.streamId }, { since: mark });
    assert.equal(e.reason, "clientDisconnected");
    assert.equal((await blue.state()).connected, true, "blue is still connected");
  });
});

describe("OpenTok.js 2.35.2 in a routed session of three", () => {
  const h = harness("opentok-routed-three");
  let people, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    people = [];
    for (const colour of COLOURS) people.push(await h.participant({ label: colour, colour }));
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("each of three receives the other two, each in its own colour", { timeout: 120000 }, async () => {
    for (const p of people) {
      await p.join(sessionId, h.server.token(sessionId, "publisher"));
      await p.publish();
    }
    const stats = await fullMesh(people, { timeout: 45000 });
    assertRouted(h, stats);
    for (const p of people) {
      for (const q of people) {
        if (p === q) continue;
        const rgb = await p.waitForColour(q.streamId, q.label);
        assert.equal(nearestColour(rgb ?? [0, 0, 0]), q.label, `${p.label} shows ${q.label}'s camera as ${q.label}: ${rgb}`);
      }
      assert.equal((await p.state()).subscribers.length, 2, `${p.label} subscribes to two streams`);
      await p.screenshot(`opentok-routed-three-${p.label}`);
    }
  });
});
