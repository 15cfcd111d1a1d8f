// Relayed session: two browsers with different fake-camera colours see each other peer to
// peer (framesDecoded > 0, the canvas shows the other side's colour), subscriber counts show
// 1, and the media path is browser-to-browser, never through the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, receivedColour, nearestColour, screenshot } from "./lib.mjs";

test("relayed: two browsers see each other peer to peer", { timeout: 90000 }, async () => {
  const server = await startServer();
  const red = await launch("red");
  const blue = await launch("blue");
  try {
    await joinMeeting(red.page, server.base, { name: "Rosa", room: "relayed1", mode: "relayed" });
    await joinMeeting(blue.page, server.base, { name: "Bilal", room: "relayed1", mode: "relayed" });
    const redStats = await waitForMedia(red.page);
    const blueStats = await waitForMedia(blue.page);
    await red.page.waitForTimeout(1000);
    assert.equal(nearestColour(await receivedColour(red.page)), "blue", "the red browser shows the blue camera");
    assert.equal(nearestColour(await receivedColour(blue.page)), "red", "the blue browser shows the red camera");
    for (const p of [red.page, blue.page]) {
      await p.waitForFunction(() => document.getElementById("self-count").textContent === "1 watching", null, { timeout: 10000 });
    }
    // Peer to peer: the selected pair's remote end is the other browser (a host candidate),
    // and the server never opened a media port.
    for (const s of [redStats, blueStats]) {
      assert.equal(s.pair?.candidateType, "host", JSON.stringify(s.pair));
      assert.equal(s.pair?.remoteAddress, "127.0.0.1");
    }
    assert.ok(!/rtc|udp/i.test(server.logs().split("\n").filter((l) => l.includes("listening")).join("\n")), "relayed media needs no server media port");
    await screenshot(red.page, "relayed-red");
    await screenshot(blue.page, "relayed-blue");
  } finally {
    await red.browser.close();
    await blue.browser.close();
    await server.stop();
  }
});
