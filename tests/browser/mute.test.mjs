// Force-mute: after a moderator mutes a participant, the audio the other side receives
// falls silent (no more audio energy), while video keeps flowing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, inboundStats, MODERATOR_PASSWORD } from "./lib.mjs";

async function energyOver(page, ms) {
  const a = await inboundStats(page);
  await page.waitForTimeout(ms);
  const b = await inboundStats(page);
  return { energy: b.audio.totalAudioEnergy - a.audio.totalAudioEnergy, frames: b.video.framesDecoded - a.video.framesDecoded };
}

test("force-mute stops the audio the other side receives", { timeout: 90000 }, async () => {
  const server = await startServer();
  const mod = await launch("green");
  const talker = await launch("blue");
  try {
    await joinMeeting(mod.page, server.base, { name: "Mo", password: MODERATOR_PASSWORD, room: "mute1", mode: "relayed" });
    await joinMeeting(talker.page, server.base, { name: "Tal", room: "mute1", mode: "relayed" });
    await waitForMedia(mod.page);
    const before = await energyOver(mod.page, 1500);
    assert.ok(before.energy > 0, `the fake microphone is audible before: ${JSON.stringify(before)}`);

    await mod.page.click(".force-mute");
    await talker.page.waitForFunction(() => document.getElementById("status").textContent.includes("muted"), null, { timeout: 10000 });
    await mod.page.waitForTimeout(1000); // let the jitter buffer drain
    const after = await energyOver(mod.page, 1500);
    assert.ok(after.energy < before.energy / 100, `audio must fall silent: before ${before.energy}, after ${after.energy}`);
    assert.ok(after.frames > 0, "video keeps flowing");
    // Everyone sees the stream's hasAudio turn false.
    await mod.page.waitForFunction(() => [...window.conclaveDemo.session.streams.values()][0]?.hasAudio === false, null, { timeout: 5000 });
  } finally {
    await mod.browser.close();
    await talker.browser.close();
    await server.stop();
  }
});

test("routed: force-mute is enforced by the SFU, even against a client that ignores it", { timeout: 90000 }, async () => {
  const server = await startServer();
  const mod = await launch("green");
  const talker = await launch("blue");
  try {
    await joinMeeting(mod.page, server.base, { name: "Mo", password: MODERATOR_PASSWORD, room: "mute2", mode: "routed" });
    await joinMeeting(talker.page, server.base, { name: "Tal", room: "mute2", mode: "routed" });
    await waitForMedia(mod.page);
    const before = await energyOver(mod.page, 1500);
    assert.ok(before.energy > 0, `audible before: ${JSON.stringify(before)}`);

    await mod.page.click(".force-mute");
    await talker.page.waitForFunction(() => document.getElementById("status").textContent.includes("muted"), null, { timeout: 10000 });
    // A misbehaving client turns its microphone back on behind the server's back.
    await talker.page.evaluate(() => window.conclaveDemo.publisher.mediaStream.getAudioTracks().forEach((t) => (t.enabled = true)));
    await mod.page.waitForTimeout(1000);
    const after = await energyOver(mod.page, 1500);
    assert.ok(after.energy < before.energy / 100, `the SFU must stop forwarding the audio: before ${before.energy}, after ${after.energy}`);
    assert.ok(after.frames > 0, "video keeps flowing");
  } finally {
    await mod.browser.close();
    await talker.browser.close();
    await server.stop();
  }
});
