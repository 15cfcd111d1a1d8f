// End-to-end encrypted routed session: two browsers with the same secret see each other's
// camera through the SFU; a third with another secret decodes nothing of theirs, although the
// SFU forwards it the same (encrypted) frames. The secret never reaches the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, inboundStats, receivedColour, nearestColour, screenshot } from "./lib.mjs";

test("e2ee: the right secret decrypts, a wrong one decodes nothing", { timeout: 90000 }, async () => {
  const server = await startServer();
  const red = await launch("red");
  const blue = await launch("blue");
  const eve = await launch("green");
  try {
    const secret = "correct horse battery staple";
    await joinMeeting(red.page, server.base, { name: "Rosa", room: "secret1", mode: "routed", secret });
    await joinMeeting(blue.page, server.base, { name: "Bilal", room: "secret1", mode: "routed", secret });
    await waitForMedia(red.page);
    await waitForMedia(blue.page);
    await red.page.waitForTimeout(1000);
    assert.equal(nearestColour(await receivedColour(red.page)), "blue");
    assert.equal(nearestColour(await receivedColour(blue.page)), "red");
    assert.equal(await red.page.evaluate(() => window.conclaveDemo.session.e2ee), true);

    // Same meeting, wrong secret: packets arrive, frames do not decrypt, nothing is decoded.
    await joinMeeting(eve.page, server.base, { name: "Eve", room: "secret1", mode: "routed", secret: "guess" });
    await eve.page.waitForTimeout(4000);
    const stats = await inboundStats(eve.page);
    assert.ok(stats?.video?.packetsReceived > 0, `the SFU forwards (encrypted) media: ${JSON.stringify(stats)}`);
    assert.equal(stats.video.framesDecoded, 0, "nothing decodes without the key");
    assert.ok(!server.logs().includes(secret), "the secret never reaches the server");
    await screenshot(red.page, "e2ee-red");
    await screenshot(eve.page, "e2ee-wrong-secret");
  } finally {
    for (const b of [red, blue, eve]) await b.browser.close();
    await server.stop();
  }
});
