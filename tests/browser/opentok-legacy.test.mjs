// A smoke run of the oldest OpenTok.js known to speak the same protocol, 2.22.5 (npm
// @opentok/client, unmodified): connect, signal, and a relayed call with media between two
// 2.22.5 browsers; then a routed call between 2.22.5 and 2.35.2.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness, fullMesh, OTJS_OLD, OTJS_MAIN } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

describe(`OpenTok.js ${OTJS_OLD} in a relayed session`, () => {
  const h = harness("opentok-legacy");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "relayed" });
    red = await h.participant({ label: "red", colour: "red", version: OTJS_OLD });
    blue = await h.participant({ label: "blue", colour: "blue", version: OTJS_OLD });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("connects through OT.setProxyUrl", { timeout: 30000 }, async () => {
    assert.equal(await red.page.evaluate(() => OT.version), `v${OTJS_OLD}`);
    await red.join(sessionId, h.server.token(sessionId, "publisher", { connectionData: "old=1" }));
    await blue.join(sessionId, h.server.token(sessionId, "publisher"));
    assert.equal((await blue.waitEvent({ type: "connectionCreated", connectionId: red.connectionId })).data, "old=1");
    const anvil = red.requests.find((r) => r.url.startsWith(`${h.server.base}/anvil.opentok.com/session/${sessionId}`));
    assert.equal(anvil?.clientVersion, `js-${OTJS_OLD}`);
    assert.deepEqual(red.foreignUrls(), []);
  });

  test("signals to all and to one", { timeout: 30000 }, async () => {
    const marks = [await red.mark(), await blue.mark()];
    assert.equal((await red.signal({ type: "chat", data: "old hello" })).ok, true);
    for (const [i, p] of [red, blue].entries()) {
      const e = await p.waitEvent({ type: "signal", signalType: "chat" }, { since: marks[i] });
      assert.equal(e.data, "old hello");
      assert.equal(e.from, red.connectionId);
    }
    assert.equal((await blue.signal({ type: "direct", data: "to red", to: red.connectionId })).ok, true);
    assert.equal((await red.waitEvent({ type: "signal", signalType: "direct" }, { since: marks[0] })).from, blue.connectionId);
  });

  test("a relayed call: each decodes the other's camera and receives its audio", { timeout: 90000 }, async () => {
    await red.publish();
    await blue.publish();
    await fullMesh([red, blue]);
    assert.equal(nearestColour(await red.waitForColour(blue.streamId, "blue")), "blue");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");
    await red.screenshot("opentok-legacy-red");
    await blue.screenshot("opentok-legacy-blue");
  });
});

describe(`OpenTok.js ${OTJS_OLD} and ${OTJS_MAIN} in one routed session`, () => {
  const h = harness("opentok-legacy-mixed");
  let old, cur, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    old = await h.participant({ label: "old-red", colour: "red", version: OTJS_OLD });
    cur = await h.participant({ label: "new-blue", colour: "blue", version: OTJS_MAIN });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("each decodes the other through the SFU", { timeout: 90000 }, async () => {
    await old.join(sessionId, h.server.token(sessionId, "publisher"));
    await cur.join(sessionId, h.server.token(sessionId, "publisher"));
    await old.publish();
    await cur.publish();
    await fullMesh([old, cur]);
    assert.equal(nearestColour(await old.waitForColour(cur.streamId, "blue")), "blue");
    assert.equal(nearestColour(await cur.waitForColour(old.streamId, "red")), "red");
    await old.screenshot("opentok-legacy-mixed-old");
  });
});
