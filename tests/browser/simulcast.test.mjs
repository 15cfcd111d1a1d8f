// Simulcast: a 1280x720 camera publishes three layers to the SFU; a subscriber gets the best
// layer by default, a small one after setPreferredResolution({width: 320}), and the best
// again after asking for 1280x720. The received frame width proves which layer arrives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia } from "./lib.mjs";

async function receivedWidth(page) {
  return page.evaluate(async () => {
    const sub = [...window.conclaveDemo.subscribers.values()][0];
    for (const s of (await sub.getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "video") return s.frameWidth ?? 0;
    return 0;
  });
}

async function waitForWidth(page, pred, what) {
  const deadline = Date.now() + 20000;
  let w = 0;
  while (Date.now() < deadline) {
    w = await receivedWidth(page);
    if (pred(w)) return w;
    await page.waitForTimeout(300);
  }
  throw new Error(`${what}: received width stayed ${w}`);
}

test("simulcast: the subscriber's preferred resolution picks the layer", { timeout: 120000 }, async () => {
  const server = await startServer();
  const pub = await launch("red", "1280x720");
  const sub = await launch("blue");
  try {
    await joinMeeting(pub.page, server.base, { name: "Pia", room: "sim1", mode: "routed" });
    await joinMeeting(sub.page, server.base, { name: "Sol", room: "sim1", mode: "routed" });
    await waitForMedia(sub.page);
    const best = await waitForWidth(sub.page, (w) => w > 400, "best layer by default");
    await sub.page.evaluate(() => [...window.conclaveDemo.subscribers.values()][0].setPreferredResolution({ width: 320, height: 180 }));
    const low = await waitForWidth(sub.page, (w) => w > 0 && w <= 400, "low layer on request");
    await sub.page.evaluate(() => [...window.conclaveDemo.subscribers.values()][0].setPreferredResolution({ width: 1280, height: 720 }));
    const high = await waitForWidth(sub.page, (w) => w > 400, "high layer again");
    console.log(`widths: default ${best}, low ${low}, high ${high}`);
    assert.ok(low < best && high > low);
  } finally {
    await pub.browser.close();
    await sub.browser.close();
    await server.stop();
  }
});
