// Temporal layers: a 30 fps camera is published with three VP8 temporal layers; a subscriber
// asking for 7.5 fps gets about a quarter of the frames (the SFU drops the upper temporal
// layers), and the full rate again when it asks for no limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, inboundStats } from "./lib.mjs";

async function fps(page, ms = 3000) {
  const a = await inboundStats(page);
  await page.waitForTimeout(ms);
  const b = await inboundStats(page);
  return ((b.video.framesDecoded - a.video.framesDecoded) * 1000) / ms;
}

const setRate = (page, rate) => page.evaluate((r) => [...window.conclaveDemo.subscribers.values()][0].setPreferredFrameRate(r ?? undefined), rate);

test("setPreferredFrameRate lowers and restores the received frame rate", { timeout: 120000 }, async () => {
  const server = await startServer();
  const pub = await launch("red", "640x360", 30);
  const sub = await launch("blue");
  try {
    await joinMeeting(pub.page, server.base, { name: "Pia", room: "fps1", mode: "routed" });
    await joinMeeting(sub.page, server.base, { name: "Sol", room: "fps1", mode: "routed" });
    await waitForMedia(sub.page);
    await sub.page.waitForTimeout(2000);
    const full = await fps(sub.page);
    await setRate(sub.page, 7.5);
    await sub.page.waitForTimeout(1000);
    const low = await fps(sub.page);
    await setRate(sub.page, null);
    await sub.page.waitForTimeout(1000);
    const again = await fps(sub.page);
    console.log(`fps: full ${full.toFixed(1)}, at 7.5 ${low.toFixed(1)}, restored ${again.toFixed(1)}`);
    assert.ok(full > 18, `the full rate arrives first (${full})`);
    assert.ok(low < full / 2 && low > 3, `about a quarter at 7.5 fps (${low} vs ${full})`);
    assert.ok(again > full * 0.7, `restored (${again})`);
  } finally {
    await pub.browser.close();
    await sub.browser.close();
    await server.stop();
  }
});
