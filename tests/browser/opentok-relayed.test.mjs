// The official OpenTok.js 2.35.2 (npm @opentok/client, unmodified, pointed at Conclave with
// OT.setProxyUrl) in a relayed session: two browsers with red and blue fake cameras connect,
// publish and subscribe to each other peer to peer; signals to all and to one connection; a
// third, subscriber-only connection checks that a directed signal goes nowhere else; leaving
// ends the connection and stream at the others with reason clientDisconnected.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness, fullMesh } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

describe("OpenTok.js 2.35.2 in a relayed session", () => {
  const h = harness("opentok-relayed");
  let red, blue, green, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "relayed" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("both connect through OT.setProxyUrl, and only Conclave is contacted", { timeout: 60000 }, async () => {
    await red.join(sessionId, h.server.token(sessionId, "publisher", { connectionData: "name=Rosa" }));
    await blue.join(sessionId, h.server.token(sessionId, "publisher", { connectionData: "name=Bilal" }));
    // connectionCreated for the own connection and for the other one, with the token's data.
    const own = await red.waitEvent({ type: "connectionCreated", connectionId: red.connectionId });
    assert.equal(own.own, true);
    assert.equal((await red.waitEvent({ type: "connectionCreated", connectionId: blue.connectionId })).data, "name=Bilal");
    assert.equal((await blue.waitEvent({ type: "connectionCreated", connectionId: red.connectionId })).data, "name=Rosa");
    assert.deepEqual(red.capabilities, { publish: 1, subscribe: 1, forceDisconnect: 0, forceUnpublish: 0, forceMute: 0 }, "publisher role");
    for (const p of [red, blue]) {
      assert.deepEqual(p.foreignUrls(), [], `${p.label} asked for nothing outside Conclave and the app`);
      const anvil = p.requests.find((r) => r.url.startsWith(`${h.server.base}/anvil.opentok.com/session/${sessionId}`));
      assert.ok(anvil, `${p.label} fetched the session info through the proxy: ${JSON.stringify(p.requests.map((r) => r.url))}`);
      assert.equal(anvil.clientVersion, "js-2.35.2");
      assert.ok(p.sockets.some((s) => s.url.startsWith(h.server.base.replace(/^http/, "ws"))), `${p.label}'s Rumor socket is under the proxy: ${JSON.stringify(p.sockets)}`);
    }
  });

  test("each decodes the other's camera and receives its audio, peer to peer", { timeout: 90000 }, async () => {
    await red.publish();
    await blue.publish();
    const stats = await fullMesh([red, blue]);
    assert.equal(nearestColour(await red.waitForColour(blue.streamId, "blue")), "blue", "the red browser shows the blue camera");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red", "the blue browser shows the red camera");
    const created = await red.waitEvent({ type: "streamCreated", streamId: blue.streamId });
    assert.equal(created.connectionId, blue.connectionId);
    assert.equal(created.hasAudio, true);
    assert.equal(created.hasVideo, true);
    assert.equal(created.videoType, "camera");
    assert.equal(created.name, "blue");
    // Relayed: the selected pair's remote end is the other browser (a host candidate, or a
    // peer-reflexive one, whose address Chromium hides, when the candidate came before the
    // offer), never a TURN relay or the server's media port.
    for (const [k, s] of stats) {
      assert.ok(["host", "prflx"].includes(s.pair?.candidateType), `${k}: ${JSON.stringify(s.pair)}`);
      assert.ok(!h.server.mediaPorts.includes(s.pair?.remotePort), `${k} is peer to peer: ${JSON.stringify(s.pair)}`);
    }
    await red.screenshot("opentok-relayed-red");
    await blue.screenshot("opentok-relayed-blue");
  });

  test("a signal to all arrives at everyone, the sender included, with type, data and from", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    const sent = await red.signal({ type: "chat", data: "hello, all" });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    for (const [i, p] of [red, blue].entries()) {
      const e = await p.waitEvent({ type: "signal", signalType: "chat" }, { since: marks[i] });
      assert.equal(e.data, "hello, all");
      assert.equal(e.from, red.connectionId, `${p.label}: from is the sender`);
    }
  });

  test("a signal to one connection arrives only there", { timeout: 60000 }, async () => {
    green = await h.participant({ label: "green", colour: "green" });
    const greenToken = h.server.token(sessionId, "subscriber");
    await green.join(sessionId, greenToken, { subscribe: false });
    assert.equal(green.capabilities.publish, 0, "subscriber role may not publish");
    await red.waitEvent({ type: "connectionCreated", connectionId: green.connectionId });
    const marks = [await red.mark(), await blue.mark(), await green.mark()];
    const sent = await red.signal({ type: "direct", data: JSON.stringify({ n: 1 }), to: blue.connectionId });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const e = await blue.waitEvent({ type: "signal", signalType: "direct" }, { since: marks[1] });
    assert.equal(e.data, '{"n":1}');
    assert.equal(e.from, red.connectionId);
    // A signal to all sent after it arrives at green: the directed one must not have.
    await blue.signal({ type: "after", data: "x" });
    await green.waitEvent({ type: "signal", signalType: "after" }, { since: marks[2] });
    await red.waitEvent({ type: "signal", signalType: "after" }, { since: marks[0] });
    assert.deepEqual(await green.events({ type: "signal", signalType: "direct" }, marks[2]), [], "green got nothing");
    assert.deepEqual(await red.events({ type: "signal", signalType: "direct" }, marks[0]), [], "the sender got nothing back");
  });

  test("leaving ends the connection and the stream at the others (clientDisconnected)", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await green.mark()];
    await blue.call("disconnect");
    await blue.waitEvent({ type: "sessionDisconnected" });
    for (const [i, p] of [red, green].entries()) {
      const c = await p.waitEvent({ type: "connectionDestroyed", connectionId: blue.connectionId }, { since: marks[i] });
      assert.equal(c.reason, "clientDisconnected", p.label);
      const s = await p.waitEvent({ type: "streamDestroyed", streamId: blue.streamId }, { since: marks[i] });
      assert.equal(s.reason, "clientDisconnected", p.label);
    }
  });
});
