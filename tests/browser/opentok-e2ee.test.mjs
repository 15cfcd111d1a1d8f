// OpenTok.js's own end-to-end encryption (`initSession(…, {encryptionSecret})`, SFrame over
// insertable streams) in a routed session created with e2ee=true: the SFU forwards frames it
// cannot read, and each side still decodes the other's camera in the right colour. A third
// participant with the wrong secret receives the stream but cannot show the camera.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness, fullMesh } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

describe("OpenTok.js 2.35.2 end-to-end encryption through the SFU", () => {
  const h = harness("opentok-e2ee");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed", extra: { e2ee: "true" } });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("with the same secret each decodes the other's camera", { timeout: 90000 }, async () => {
    const secret = "correct horse battery staple 42";
    await red.join(sessionId, h.server.token(sessionId, "publisher"), { encryptionSecret: secret });
    await blue.join(sessionId, h.server.token(sessionId, "publisher"), { encryptionSecret: secret });
    await red.publish();
    await blue.publish();
    await fullMesh([red, blue]);
    assert.equal(nearestColour(await red.waitForColour(blue.streamId, "blue")), "blue");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");
    await red.screenshot("opentok-e2ee-red");
  });

  test("with another secret the camera cannot be shown: the SFU never had the key", { timeout: 60000 }, async () => {
    const green = await h.participant({ label: "green", colour: "green" });
    await green.join(sessionId, h.server.token(sessionId, "subscriber"), { encryptionSecret: "another secret entirely 7" });
    await green.waitEvent({ type: "subscribed", streamId: red.streamId }, { timeout: 20000 });
    // Media arrives (the SFU forwards what it cannot read) but never shows the red camera.
    const rgb = await green.waitForColour(red.streamId, "red", { timeout: 8000 });
    const shown = rgb && nearestColour(rgb) === "red" && Math.max(...rgb) > 100;
    assert.ok(!shown, `the wrong secret showed the camera: ${JSON.stringify(rgb)}`);
    const st = await green.stats(red.streamId);
    assert.ok(st?.video?.packetsReceived > 0, `video packets do arrive: ${JSON.stringify(st)}`);
    await green.screenshot("opentok-e2ee-wrong-secret");
  });
});
