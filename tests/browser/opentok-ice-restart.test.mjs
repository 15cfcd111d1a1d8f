// ICE restarts of the official OpenTok.js 2.35.2 in a routed session. A network blackout on
// the media path (the test's network namespace refuses UDP to and from the SFU's port, by a
// policy-routing rule; signalling over TCP is untouched) makes both browsers' PeerConnections
// go `disconnected`. OpenTok.js then restarts ICE on its own: each publisher offers again on
// its stream, and each subscriber sends its own offer on its subscriber URI (anvil
// `renegotiation: true`). Conclave must answer each with new ICE credentials on the peer it
// has; when the blackout ends, media flows again on the same streams, and nobody saw a stream
// or connection go away.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { harness, fullMesh } from "./otjs.mjs";
import { nearestColour } from "./lib.mjs";

const ip = (...args) => execFileSync("ip", args, { encoding: "utf8" });

/** Refuses UDP to and from `ports` in this network namespace (the browsers' and the server's). */
function blackout(ports) {
  // Policy rules run before the `local` table only once it moves behind them.
  if (!/^100:/m.test(ip("rule"))) {
    ip("rule", "add", "pref", "100", "lookup", "local");
    ip("rule", "del", "pref", "0");
  }
  const prefs = [];
  ports.forEach((port, i) => {
    const pref = 10 + 2 * i;
    ip("rule", "add", "pref", String(pref), "ipproto", "udp", "dport", String(port), "prohibit");
    ip("rule", "add", "pref", String(pref + 1), "ipproto", "udp", "sport", String(port), "prohibit");
    prefs.push(pref, pref + 1);
  });
  return () => prefs.forEach((pref) => ip("rule", "del", "pref", String(pref)));
}

const ufrag = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp ?? "")?.[1] ?? null;

/** Raptor `offer`/`answer` messages in a participant's Rumor trace. */
function descriptions(p, { dir, method, uri, since = 0 }) {
  return p.trace.filter((f) => f.t >= since && f.dir === dir && f.type === "MESSAGE" && f.body?.method === method && uri.test(f.body?.uri ?? ""));
}

async function waitFor(what, f, timeout = 30000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("OpenTok.js 2.35.2 ICE restarts through the SFU", () => {
  const h = harness("opentok-ice-restart");
  let red, blue, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
    await red.join(sessionId, h.server.token(sessionId, "publisher"));
    await blue.join(sessionId, h.server.token(sessionId, "publisher"));
    await red.publish();
    await blue.publish();
    await fullMesh([red, blue]);
  }, { timeout: 120000 });
  after(() => h.close(), { timeout: 60000 });

  test("after a media blackout, publishers and subscribers restart ICE and media comes back", { timeout: 120000 }, async () => {
    assert.ok(h.server.mediaPorts.length > 0, "the server printed its media ports");
    const subUri = new RegExp(`/stream/${blue.streamId}/subscriber/[^/]+$`);
    const pubUri = new RegExp(`/stream/${red.streamId}$`);
    // The SFU's first descriptions: its offer to red's subscriber, its answer to red's publisher.
    const firstOffer = descriptions(red, { dir: "in", method: "offer", uri: subUri })[0];
    const firstAnswer = descriptions(red, { dir: "in", method: "answer", uri: pubUri })[0];
    assert.ok(firstOffer && firstAnswer, "the routed set-up went through the Rumor trace");
    const before = { red: (await red.stats(blue.streamId)).video.framesDecoded, blue: (await blue.stats(red.streamId)).video.framesDecoded };
    const marks = [await red.mark(), await blue.mark()];
    const since = Date.now();

    const lift = blackout(h.server.mediaPorts);
    let restarted;
    try {
      restarted = await waitFor("red's publisher and subscriber to offer again and be answered", () => {
        const subOffer = descriptions(red, { dir: "out", method: "offer", uri: subUri, since })[0];
        const subAnswer = descriptions(red, { dir: "in", method: "answer", uri: subUri, since })[0];
        const pubOffer = descriptions(red, { dir: "out", method: "offer", uri: pubUri, since })[0];
        const pubAnswer = descriptions(red, { dir: "in", method: "answer", uri: pubUri, since })[0];
        return subOffer && subAnswer && pubOffer && pubAnswer && { subOffer, subAnswer, pubOffer, pubAnswer };
      }, 45000);
    } finally {
      lift();
    }
    const { subOffer, subAnswer, pubOffer, pubAnswer } = restarted;
    // The client's offers restart ICE (new credentials of its own), and so do the answers.
    assert.equal(subOffer.body.content.sourceStreamId, "MANTIS");
    assert.match(subOffer.body.content.sdp, /a=ice-ufrag:/);
    assert.notEqual(ufrag(subAnswer.body.content.sdp), ufrag(firstOffer.body.content.sdp), "the subscriber's peer answers with new ICE credentials");
    assert.notEqual(ufrag(pubAnswer.body.content.sdp), ufrag(firstAnswer.body.content.sdp), "the publisher's peer answers with new ICE credentials");
    assert.equal(subAnswer.body.content.peerId, subOffer.body.content.peerId, "the answer carries the offer's peerId");
    assert.equal(pubAnswer.body.content.peerId, pubOffer.body.content.peerId);

    // Media comes back on the same streams, both ways.
    await red.page.waitForTimeout(4000);
    const after = { red: (await red.stats(blue.streamId)).video.framesDecoded, blue: (await blue.stats(red.streamId)).video.framesDecoded };
    assert.ok(after.red > before.red + 20, `red decodes blue again: ${before.red} -> ${after.red}`);
    assert.ok(after.blue > before.blue + 20, `blue decodes red again: ${before.blue} -> ${after.blue}`);
    assert.equal(nearestColour(await red.waitForColour(blue.streamId, "blue")), "blue");
    assert.equal(nearestColour(await blue.waitForColour(red.streamId, "red")), "red");

    // Nobody saw anything go away, and no error reply reached the clients.
    for (const [i, p] of [red, blue].entries()) {
      for (const type of ["streamDestroyed", "connectionDestroyed", "sessionDisconnected"]) {
        assert.deepEqual(await p.events({ type }, marks[i]), [], `${p.label} saw no ${type}`);
      }
      const errors = p.trace.filter((f) => f.t >= since && f.dir === "in" && f.type === "STATUS" && Number(f.headers?.STATUS) >= 400);
      assert.deepEqual(errors.map((f) => [f.headers.STATUS, f.body]), [], `${p.label} got no error replies`);
    }
    await red.screenshot("opentok-ice-restart-red");
  });
});
