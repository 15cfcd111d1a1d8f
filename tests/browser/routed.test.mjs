// Routed session: two browsers with different fake-camera colours see each other through
// Conclave's SFU (framesDecoded > 0, the canvas shows the other side's colour), the selected
// ICE pair ends at the server's media port, and the subscriber counts show 1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, receivedColour, nearestColour, screenshot } from "./lib.mjs";

test("routed: two browsers see each other through the SFU", { timeout: 90000 }, async () => {
  const server = await startServer();
  const red = await launch("red");
  const blue = await launch("blue");
  try {
    await joinMeeting(red.page, server.base, { name: "Rosa", room: "routed1", mode: "routed" });
    await joinMeeting(blue.page, server.base, { name: "Bilal", room: "routed1", mode: "routed" });
    const redStats = await waitForMedia(red.page);
    const blueStats = await waitForMedia(blue.page);
    await red.page.waitForTimeout(1000);
    assert.equal(nearestColour(await receivedColour(red.page)), "blue");
    assert.equal(nearestColour(await receivedColour(blue.page)), "red");
    for (const p of [red.page, blue.page]) {
      await p.waitForFunction(() => document.getElementById("self-count").textContent === "1 watching", null, { timeout: 10000 });
    }
    // Through the SFU: the media path ends at the server's one UDP port.
    for (const s of [redStats, blueStats]) {
      assert.equal(s.pair?.remoteAddress, "127.0.0.1");
      assert.ok(server.mediaPorts.includes(s.pair?.remotePort), JSON.stringify(s.pair));
    }
    await screenshot(red.page, "routed-red");
    await screenshot(blue.page, "routed-blue");
  } finally {
    await red.browser.close();
    await blue.browser.close();
    await server.stop();
  }
});
