// Subscriber audio fallback of the official OpenTok.js 2.35.2 in a routed session. The
// test's network namespace squeezes everything the SFU sends (UDP from its port) through an
// 80 kbit/s bottleneck (an htb class with a u32 filter on the source port; the browsers'
// uplinks and the signalling are untouched). The SFU's bandwidth estimate for the subscriber
// collapses, it stops sending video and tells OpenTok.js so (`update
// …/subscriber/{sub}/channel/video1 {active:false}`); the app sees `videoDisabled` with
// reason "quality" while audio keeps playing. When the bottleneck goes, the estimate
// recovers, the SFU resumes video from a keyframe and the app sees `videoEnabled` ("quality").
// And the app's own `subscribeToVideo(false)` / `subscribeToAudio(false)` stop the SFU sending
// that track to this subscriber (bytes stop arriving), and `true` brings it back.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { harness } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

const tc = (...args) => execFileSync("tc", args, { encoding: "utf8" });

/** Limits UDP from `ports` on this namespace's loopback to `rate`; returns the undo. */
function bottleneck(ports, rate) {
  tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit", "quantum", "60000");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate, "quantum", "1514");
  tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "tbf", "rate", rate, "burst", "4kb", "latency", "250ms");
  for (const port of ports) {
    tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
      "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", String(port), "0xffff", "flowid", "1:20");
  }
  return () => tc("qdisc", "del", "dev", "lo", "root");
}

describe("OpenTok.js 2.35.2 subscriber audio fallback through the SFU", () => {
  const h = harness("opentok-audio-fallback");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
    await red.join(sessionId, h.server.token(sessionId, "publisher"));
    await blue.join(sessionId, h.server.token(sessionId, "subscriber"));
    await red.publish();
    await blue.waitEvent({ source: "session", type: "streamCreated" }, { timeout: 30000 });
    const r = await blue.subscribe(red.streamId);
    assert.ok(r.ok, `blue subscribes to red: ${JSON.stringify(r)}`);
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");
  }, { timeout: 120000 });
  after(() => h.close(), { timeout: 60000 });

  test("subscribeToVideo and subscribeToAudio stop and restart what the SFU sends this subscriber", { timeout: 90000 }, async () => {
    // Counted at the receiver's RTP layer, not its playback: OpenTok.js's own toggles only
    // disable the track, so frames and audio bytes would keep arriving unless the SFU stops.
    const count = async (kind) => {
      const s = (await blue.stats(red.streamId))[kind];
      return (kind === "video" ? s?.framesReceived : s?.bytesReceived) ?? 0;
    };
    const growth = async (kind, ms = 3000) => {
      const c0 = await count(kind);
      await blue.page.waitForTimeout(ms);
      return (await count(kind)) - c0;
    };
    assert.ok(await growth("video") > 15, "video frames arrive before");
    assert.ok((await blue.call("subscribeTo", red.streamId, "video", false)).ok);
    await blue.page.waitForTimeout(1500);
    assert.ok(await growth("video") <= 1, "no video frames arrive while paused");
    assert.ok(await growth("audio") > 2000, "audio goes on");
    assert.ok((await blue.call("subscribeTo", red.streamId, "video", true)).ok);
    await blue.page.waitForTimeout(1500);
    assert.ok(await growth("video") > 15, "video frames arrive again");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");

    assert.ok((await blue.call("subscribeTo", red.streamId, "audio", false)).ok);
    await blue.page.waitForTimeout(1500);
    assert.equal(await growth("audio"), 0, "no audio bytes arrive while paused");
    assert.ok(await growth("video") > 15, "video goes on");
    assert.ok((await blue.call("subscribeTo", red.streamId, "audio", true)).ok);
    await blue.page.waitForTimeout(1000);
    assert.ok(await growth("audio") > 2000, "audio flows again");
  });

  test("a collapsed downlink turns the subscriber's video off with reason quality, and recovery turns it back on", { timeout: 150000 }, async () => {
    assert.ok(h.server.mediaPorts.length > 0, "the server printed its media ports");
    const mark = await blue.mark();
    const lift = bottleneck(h.server.mediaPorts, "80kbit");
    let disabled;
    try {
      disabled = await blue.waitEvent({ source: "subscriber", type: "videoDisabled" }, { since: mark, timeout: 45000 });
      // Audio still arrives while video is off.
      const a0 = (await blue.stats(red.streamId)).audio?.packetsReceived ?? 0;
      await blue.page.waitForTimeout(2000);
      const a1 = (await blue.stats(red.streamId)).audio?.packetsReceived ?? 0;
      assert.ok(a1 > a0 + 20, `audio keeps flowing during the fallback: ${a0} -> ${a1}`);
    } finally {
      lift();
    }
    assert.equal(disabled.reason, "quality", "the app is told it is the network, not the publisher");
    const update = blue.trace.find((f) => f.dir === "in" && f.body?.method === "update"
      && /\/subscriber\/[^/]+\/channel\/video1$/.test(f.body?.uri ?? "") && f.body?.content?.active === false);
    assert.ok(update, "the server sent update …/channel/video1 {active:false}");

    const enabled = await blue.waitEvent({ source: "subscriber", type: "videoEnabled" }, { since: disabled.seq, timeout: 60000 });
    assert.equal(enabled.reason, "quality");
    const f0 = (await blue.stats(red.streamId)).video.framesDecoded;
    await blue.page.waitForTimeout(3000);
    const f1 = (await blue.stats(red.streamId)).video.framesDecoded;
    assert.ok(f1 > f0 + 20, `video is decoded again: ${f0} -> ${f1}`);
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");
    for (const type of ["streamDestroyed", "connectionDestroyed", "sessionDisconnected"]) {
      assert.deepEqual(await blue.events({ type }, mark), [], `blue saw no ${type}`);
    }
    await blue.screenshot("opentok-audio-fallback-blue");
  });
});
