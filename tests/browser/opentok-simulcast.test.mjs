// RID simulcast with the official OpenTok.js 2.35.2 in a routed session. Conclave's anvil
// answer sets `streamSimulcastRidEnabled` and its `generateoffer` says `simulcastEnabled`, so a
// publisher with a 640x480 camera sends two layers, rid `f` (640x480) and rid `h` (320x240),
// checked in the publisher's own outbound-rtp stats (through the public
// `publisher.getRtcStatsReport()`) and in its offer. A second OpenTok.js participant
// subscribes: it receives the 640-px layer by default, the 320-px layer within 10 s of
// `setPreferredResolution({width: 320, height: 240})`, and the 640-px layer again within
// 10 s of `setPreferredResolution({width: 640, height: 480})`, and the 640-px layer again when
// the preference is cleared (`setPreferredResolution(null)`, sent as preferredWidth/Height 0).
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The publisher's outbound video streams, by rid, from every PeerConnection it reports. */
async function outboundVideo(p) {
  const reports = await p.call("publisherStats");
  if (!Array.isArray(reports)) return { error: reports?.error ?? "no publisher", byRid: {} };
  const byRid = {};
  for (const r of reports) for (const o of r.outbound) if (o.kind === "video") byRid[o.rid ?? "(none)"] = o;
  return { reports: reports.length, byRid };
}

/** The width of the video a subscriber decodes (inbound-rtp frameWidth, else the element). */
async function receivedWidth(p, streamId) {
  const s = await p.stats(streamId);
  return { width: s?.video?.frameWidth ?? s?.element?.videoWidth ?? 0, stats: s };
}

/** Waits (up to `timeout`) until the subscriber decodes `want`-px-wide frames and keeps doing
 *  so for `hold` ms: a layer switch happens on a keyframe, so a width that is right only
 *  before the switch lands must not count. */
async function waitForWidth(p, streamId, want, { timeout = 10000, hold = 2000, what }) {
  const start = Date.now();
  const deadline = start + timeout + hold;
  const seen = [];
  let last;
  let since = null; // when the width became `want`
  while (Date.now() < deadline) {
    last = await receivedWidth(p, streamId);
    if (seen.at(-1) !== last.width) seen.push(last.width);
    if (last.width !== want) since = null;
    else if (since === null) {
      if (Date.now() - start > timeout) break;
      since = Date.now();
    }
    if (since !== null && Date.now() - since >= hold) return { width: want, seen, ms: since - start };
    await sleep(200);
  }
  throw new Error(`${what}: the subscriber did not settle on ${want}-px-wide frames within ${timeout} ms ` +
    `(widths seen, in order: ${seen.join(" -> ")}; last ${last?.width}): ${JSON.stringify(last?.stats)}`);
}

const rumorBodies = (p, method) => p.trace.filter((f) => f.type === "MESSAGE" && f.body?.method === method);

describe("OpenTok.js 2.35.2 RID simulcast in a routed session", () => {
  const h = harness("opentok-simulcast");
  let pub, sub, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    pub = await h.participant({ label: "publisher", colour: "red", size: "640x480", fps: 15 });
    sub = await h.participant({ label: "subscriber", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  const sent = []; // the preferences asked for, in order
  const prefer = async (resolution) => {
    sent.push(resolution);
    const r = await sub.call("setPreferredResolution", pub.streamId, resolution);
    assert.equal(r.ok, true, JSON.stringify(r));
  };

  test("a 640x480 publisher sends two RID layers, f (640x480) and h (320x240)", { timeout: 60000 }, async () => {
    await pub.join(sessionId, h.server.token(sessionId, "publisher"));
    await pub.publish({ resolution: "640x480" });

    // What the server asked for and what the client offered (the Rumor trace).
    const gen = rumorBodies(pub, "generateoffer").filter((f) => f.dir === "in");
    assert.equal(gen.length, 1, "one generateoffer for the publisher");
    assert.equal(gen[0].body.content.simulcastEnabled, true, `generateoffer enables simulcast: ${JSON.stringify(gen[0].body.content)}`);
    const offer = rumorBodies(pub, "offer").find((f) => f.dir === "out");
    const sdp = offer?.body?.content?.sdp ?? "";
    assert.match(sdp, /a=simulcast:send f;h\r?\n/, "the publisher's offer has RID simulcast f;h");
    assert.match(sdp, /a=rid:f send/);
    assert.match(sdp, /a=rid:h send/);

    // Both layers are sending, at their sizes, with bytesSent growing.
    const deadline = Date.now() + 20000;
    let first;
    while (Date.now() < deadline) {
      first = await outboundVideo(pub);
      const { f, h: half } = first.byRid;
      if (f?.bytesSent > 0 && half?.bytesSent > 0 && f.frameWidth === 640 && half.frameWidth === 320) break;
      await sleep(500);
    }
    assert.deepEqual(Object.keys(first.byRid).sort(), ["f", "h"], `two outbound video streams, rids f and h: ${JSON.stringify(first)}`);
    assert.equal(first.reports, 1, "one PeerConnection, to the media server");
    const { f, h: half } = first.byRid;
    assert.equal(f.frameWidth, 640, `rid f is 640 px wide: ${JSON.stringify(f)}`);
    assert.equal(f.frameHeight, 480);
    assert.equal(half.frameWidth, 320, `rid h is 320 px wide: ${JSON.stringify(half)}`);
    assert.equal(half.frameHeight, 240);
    await sleep(2000);
    const later = (await outboundVideo(pub)).byRid;
    for (const rid of ["f", "h"]) {
      assert.ok(later[rid].bytesSent > first.byRid[rid].bytesSent, `rid ${rid} keeps sending: ${first.byRid[rid].bytesSent} -> ${later[rid].bytesSent} bytes`);
      assert.notEqual(later[rid].active, false, `rid ${rid} is active`);
    }
    await pub.screenshot("opentok-simulcast-publisher");
    console.log(`publisher layers: ${JSON.stringify(later)}`);
  });

  test("a second participant subscribes and receives the 640-px layer", { timeout: 60000 }, async () => {
    await sub.join(sessionId, h.server.token(sessionId, "subscriber"));
    await sub.waitEvent({ type: "streamCreated", streamId: pub.streamId });
    await sub.waitEvent({ type: "subscribed", streamId: pub.streamId }, { timeout: 20000 });
    const deadline = Date.now() + 20000;
    let s;
    while (Date.now() < deadline) {
      s = await sub.stats(pub.streamId);
      if (s?.video?.framesDecoded > 0) break;
      await sleep(250);
    }
    assert.ok(s?.video?.framesDecoded > 0, `the subscriber decodes video: ${JSON.stringify(s)}`);
    const rgb = await sub.waitForColour(pub.streamId, "red");
    assert.equal(nearestColour(rgb ?? [0, 0, 0]), "red", `the subscriber shows the red camera: ${rgb}`);
    const best = await waitForWidth(sub, pub.streamId, 640, { timeout: 15000, what: "by default (best layer)" });
    await sub.screenshot("opentok-simulcast-subscriber-640");
    console.log(`default: ${JSON.stringify(best)}`);
  });

  test("setPreferredResolution({width: 320, height: 240}): 320-px frames within 10 s", { timeout: 30000 }, async () => {
    await prefer({ width: 320, height: 240 });
    const low = await waitForWidth(sub, pub.streamId, 320, { timeout: 10000, what: "after setPreferredResolution(320x240)" })
      .finally(() => sub.screenshot("opentok-simulcast-subscriber-320"));
    assert.equal(nearestColour((await sub.colour(pub.streamId)) ?? [0, 0, 0]), "red", "the small layer is the same camera");
    console.log(`320x240: ${JSON.stringify(low)}`);
  });

  test("setPreferredResolution({width: 640, height: 480}): 640-px frames again within 10 s", { timeout: 30000 }, async () => {
    await prefer({ width: 640, height: 480 });
    const high = await waitForWidth(sub, pub.streamId, 640, { timeout: 10000, what: "after setPreferredResolution(640x480)" })
      .finally(() => sub.screenshot("opentok-simulcast-subscriber-640-again"));
    console.log(`640x480: ${JSON.stringify(high)}`);
  });

  test("setPreferredResolution(null) after 320x240: back to the best layer (640 px) within 10 s", { timeout: 40000 }, async () => {
    await prefer({ width: 320, height: 240 });
    // Precondition: on the small layer, so that returning to 640 px proves the clearing worked.
    await waitForWidth(sub, pub.streamId, 320, { timeout: 10000, what: "precondition: after setPreferredResolution(320x240), before clearing it" });
    await prefer(null);
    const best = await waitForWidth(sub, pub.streamId, 640, { timeout: 10000, what: "after setPreferredResolution(null)" })
      .finally(() => sub.screenshot("opentok-simulcast-subscriber-cleared"));
    console.log(`cleared: ${JSON.stringify(best)}`);
  });

  test("the preferences went out as channel updates (opentokjs-protocol.md §7.5), and nothing failed", async () => {
    const prefs = sub.trace.filter((f) => f.dir === "out" && f.body?.method === "update" && /channel\/video1$/.test(f.body?.uri ?? "") && "preferredWidth" in (f.body?.content ?? {}));
    // OpenTok.js sends a cleared preference (null) as 0x0.
    assert.deepEqual(prefs.map((f) => [f.body.content.preferredWidth, f.body.content.preferredHeight]), sent.map((r) => (r ? [r.width, r.height] : [0, 0])));
    assert.ok(sent.length >= 3, `the tests above asked for at least three preferences: ${JSON.stringify(sent)}`);
    assert.deepEqual(await sub.events({ type: "subscribeFailed" }), []);
    assert.deepEqual(await sub.events({ type: "streamDestroyed" }), []);
  });
});
