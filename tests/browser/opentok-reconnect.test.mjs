// Socket reconnection of the official OpenTok.js 2.35.2 (anvil `properties.reconnection`).
// The red browser reaches Conclave through a TCP proxy that the test controls, so its network
// can be cut from outside without touching the client: the proxy resets the TCP connection of
// the Rumor WebSocket (as a network loss does). The client must come back on a new socket
// with the same socketId and reconnect=true, unnoticed by the others, and keep signalling and
// media. Then the proxy refuses new connections too: the server must drop red for the others
// with reason networkDisconnected, and red ends with sessionDisconnected networkDisconnected.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";

const query = (url) => Object.fromEntries(new URL(url).searchParams);

describe("OpenTok.js 2.35.2 socket reconnection", () => {
  const h = harness("opentok-reconnect");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "relayed" });
    red = await h.participant({ label: "red", colour: "red", proxy: true });
    blue = await h.participant({ label: "blue", colour: "blue" });
    await red.join(sessionId, h.server.token(sessionId, "publisher"));
    await blue.join(sessionId, h.server.token(sessionId, "publisher"));
    await red.publish();
    await blue.publish();
    await red.waitForMedia(blue.streamId, { timeout: 30000 });
    await blue.waitForMedia(red.streamId, { timeout: 30000 });
  }, { timeout: 90000 });
  after(() => h.close(), { timeout: 60000 });

  test("a dropped socket is resumed with the same socketId, unnoticed by the others", { timeout: 60000 }, async () => {
    assert.equal(red.sockets.length, 1, JSON.stringify(red.sockets));
    const first = query(red.sockets[0].url);
    assert.ok(first.socketId, `the first socket carries a socketId (anvil properties.reconnection must be true): ${red.sockets[0].url}`);
    const marks = [await red.mark(), await blue.mark()];
    const before = (await blue.stats(red.streamId)).video.framesDecoded;

    assert.equal(red.proxy.dropWebSockets(), 1, "one Rumor socket cut");
    await red.waitEvent({ type: "sessionReconnecting" }, { since: marks[0], timeout: 15000 });
    await red.waitEvent({ type: "sessionReconnected" }, { since: marks[0], timeout: 30000 });
    const again = red.sockets.slice(1).map((s) => query(s.url));
    assert.ok(again.length >= 1, "a new socket was opened");
    const last = again[again.length - 1];
    assert.equal(last.socketId, first.socketId, "the same socketId");
    assert.equal(last.reconnect, "true");

    // Nobody else noticed.
    await blue.page.waitForTimeout(1500);
    for (const type of ["connectionDestroyed", "streamDestroyed", "connectionCreated", "streamCreated"]) {
      assert.deepEqual(await blue.events({ type }, marks[1]), [], `blue saw no ${type}`);
    }
    assert.deepEqual(await red.events({ type: "sessionDisconnected" }, marks[0]), []);

    // Signalling works both ways on the new socket, with the same connection ID.
    assert.equal((await red.signal({ type: "back", data: "red is back" })).ok, true);
    const e = await blue.waitEvent({ type: "signal", signalType: "back" }, { since: marks[1] });
    assert.equal(e.from, red.connectionId);
    assert.equal((await blue.signal({ type: "welcome", data: "hi", to: red.connectionId })).ok, true);
    await red.waitEvent({ type: "signal", signalType: "welcome", from: blue.connectionId }, { since: marks[0] });
    assert.equal((await red.state()).connectionId, red.connectionId);

    // Media kept flowing.
    await blue.page.waitForTimeout(1000);
    const after = (await blue.stats(red.streamId)).video.framesDecoded;
    assert.ok(after > before, `blue still decodes red: ${before} -> ${after}`);
    await red.screenshot("opentok-reconnect-red");
  });

  test("a client that cannot come back is dropped with networkDisconnected", { timeout: 90000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    red.proxy.block(true);
    assert.equal(red.proxy.dropWebSockets(), 1);
    await red.waitEvent({ type: "sessionReconnecting" }, { since: marks[0], timeout: 15000 });
    const c = await blue.waitEvent({ type: "connectionDestroyed", connectionId: red.connectionId }, { since: marks[1], timeout: 60000 });
    assert.equal(c.reason, "networkDisconnected");
    const s = await blue.waitEvent({ type: "streamDestroyed", streamId: red.streamId }, { since: marks[1] });
    assert.equal(s.reason, "networkDisconnected");
    const d = await red.waitEvent({ type: "sessionDisconnected" }, { since: marks[0], timeout: 60000 });
    assert.equal(d.reason, "networkDisconnected");
    await red.screenshot("opentok-reconnect-lost");
  });
});
