// Mixed sessions: the official OpenTok.js 2.35.2 (red camera) and Conclave's own browser SDK
// (clients/js/conclave.js over /v1/signal, blue camera) in one session. Routed: each sees the
// other's connection (with its token data) and stream, each decodes the other's camera in the
// right colour and receives its audio from the SFU's media port; signals to all and to one,
// both ways, with the sender's connection ID; a Conclave-SDK moderator force-mutes the
// OpenTok.js publisher and the reverse, then an OpenTok.js moderator force-disconnects the
// Conclave-SDK participant. Relayed (media between the two SDKs is documented as unsupported
// there): connections and signals both ways, then a Conclave-SDK moderator force-disconnects
// the OpenTok.js participant.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";
import { conclaveParticipant } from "./conclave-sdk.mjs";
import { nearestColour } from "./lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hasAudio = (streamId, value) => ({ type: "streamPropertyChanged", streamId, changedProperty: "hasAudio", newValue: value });

/** Signals to all and to one connection, from `a` to `b`, checked at both ends. */
async function signalsBetween(a, b, tag) {
  const marks = [await a.mark(), await b.mark()];
  const all = await a.signal({ type: "chat", data: `${tag}: hello, all` });
  assert.equal(all.ok, true, `${a.label} signals everyone: ${JSON.stringify(all)}`);
  for (const [i, p] of [a, b].entries()) {
    const e = await p.waitEvent({ type: "signal", signalType: "chat", data: `${tag}: hello, all` }, { since: marks[i] });
    assert.equal(e.from, a.connectionId, `${p.label}: a signal from ${a.label} (${a.sdk}) has from = its connection ID`);
  }
  const one = await a.signal({ type: "direct", data: `${tag}: for you`, to: b.connectionId });
  assert.equal(one.ok, true, `${a.label} signals ${b.label}: ${JSON.stringify(one)}`);
  const e = await b.waitEvent({ type: "signal", signalType: "direct", data: `${tag}: for you` }, { since: marks[1] });
  assert.equal(e.from, a.connectionId);
  // A signal to all sent after it has arrived back at the sender: the directed one must not have.
  await a.signal({ type: "after", data: tag });
  await a.waitEvent({ type: "signal", signalType: "after", data: tag }, { since: marks[0] });
  assert.deepEqual(await a.events({ type: "signal", signalType: "direct" }, marks[0]), [], `a directed signal does not echo to ${a.label}`);
}

describe("OpenTok.js 2.35.2 and Conclave's browser SDK in one routed session", () => {
  const h = harness("opentok-mixed");
  let ot, cv, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    ot = await h.participant({ label: "otjs-red", colour: "red" });
    ot.sdk = "opentok.js";
    cv = await conclaveParticipant(h, { label: "conclave-blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("each sees the other's connection, with its token data", { timeout: 60000 }, async () => {
    // Both are moderators, so each can moderate the other below. OpenTok.js gets a T1 token
    // (as the OpenTok server SDKs mint), the Conclave SDK the CLI's default JWT.
    await ot.join(sessionId, h.server.token(sessionId, "moderator", { connectionData: "sdk=opentok.js" }));
    await cv.join(sessionId, h.server.token(sessionId, "moderator", { connectionData: "sdk=conclave", format: "jwt" }));
    assert.equal(cv.mediaMode, "routed", "the Conclave SDK is told the session is routed");
    assert.equal(ot.capabilities.forceMute, 1, "the OpenTok.js moderator may force-mute");
    assert.equal(cv.capabilities.forceDisconnect, true, "the Conclave-SDK moderator may force-disconnect");
    const seenByOt = await ot.waitEvent({ type: "connectionCreated", connectionId: cv.connectionId });
    assert.equal(seenByOt.data, "sdk=conclave");
    assert.equal(seenByOt.own, false);
    const seenByCv = await cv.waitEvent({ type: "connectionCreated", connectionId: ot.connectionId });
    assert.equal(seenByCv.data, "sdk=opentok.js");
    // Nobody else: the media server never shows up as a connection in either SDK.
    assert.deepEqual((await ot.events({ type: "connectionCreated" })).map((e) => e.connectionId).sort(), [ot.connectionId, cv.connectionId].sort());
    assert.deepEqual((await cv.events({ type: "connectionCreated" })).map((e) => e.connectionId), [ot.connectionId]);
  });

  test("each sees the other's stream and decodes its camera and audio through the SFU", { timeout: 90000 }, async () => {
    await ot.publish();
    await cv.publish();
    const otStream = await cv.waitEvent({ type: "streamCreated", streamId: ot.streamId }, { timeout: 20000 });
    assert.equal(otStream.connectionId, ot.connectionId, "the OpenTok.js stream belongs to its connection");
    assert.equal(otStream.name, "otjs-red");
    assert.equal(otStream.hasAudio, true);
    assert.equal(otStream.hasVideo, true);
    assert.equal(otStream.videoType, "camera");
    const cvStream = await ot.waitEvent({ type: "streamCreated", source: "session", streamId: cv.streamId }, { timeout: 20000 });
    assert.equal(cvStream.connectionId, cv.connectionId, "the Conclave-SDK stream belongs to its connection");
    assert.equal(cvStream.name, "conclave-blue");
    assert.equal(cvStream.hasAudio, true);
    assert.equal(cvStream.hasVideo, true);
    assert.equal(cvStream.videoType, "camera");

    const otGets = await ot.waitForMedia(cv.streamId, { timeout: 30000 });
    const cvGets = await cv.waitForMedia(ot.streamId, { timeout: 30000 });
    const blue = await ot.waitForColour(cv.streamId, "blue");
    const red = await cv.waitForColour(ot.streamId, "red");
    await ot.screenshot("opentok-mixed-otjs-red");
    await cv.screenshot("opentok-mixed-conclave-blue");
    assert.equal(nearestColour(blue ?? [0, 0, 0]), "blue", `OpenTok.js shows the Conclave SDK's blue camera: ${blue}`);
    assert.equal(nearestColour(red ?? [0, 0, 0]), "red", `the Conclave SDK shows OpenTok.js's red camera: ${red}`);
    for (const [k, s] of [["otjs<-conclave", otGets], ["conclave<-otjs", cvGets]]) {
      assert.ok(s.audio?.packetsReceived > 0, `${k}: audio arrives: ${JSON.stringify(s)}`);
      assert.ok(s.pair, `${k}: a selected candidate pair: ${JSON.stringify(s)}`);
      assert.ok(h.server.mediaPorts.includes(s.pair.remotePort), `${k} comes from the SFU's media port: ${JSON.stringify(s.pair)}`);
    }
  });

  test("signals to all and to one, both ways, with the sender's connection ID", { timeout: 30000 }, async () => {
    await signalsBetween(ot, cv, "from OpenTok.js");
    await signalsBetween(cv, ot, "from Conclave");
  });

  test("a Conclave-SDK moderator force-mutes the OpenTok.js publisher: muteForced, and its audio stops at the SFU", { timeout: 30000 }, async () => {
    const audioIn = async () => (await cv.stats(ot.streamId))?.audio?.packetsReceived ?? 0;
    const before = await audioIn();
    await sleep(1000);
    const flowing = await audioIn();
    assert.ok(flowing > before, `before the mute, OpenTok.js's audio reaches the Conclave SDK (${before} -> ${flowing} packets in 1 s)`);
    const marks = [await ot.mark(), await cv.mark()];
    const r = await cv.call("forceMuteStream", ot.streamId);
    assert.equal(r.ok, true, JSON.stringify(r));
    await ot.waitEvent({ type: "muteForced", source: "publisher" }, { since: marks[0] });
    assert.equal((await ot.state()).publisherHasAudio, false, "OpenTok.js's publisher stopped sending audio");
    await cv.waitEvent(hasAudio(ot.streamId, false), { since: marks[1] });
    assert.deepEqual(await cv.events({ type: "muteForced", source: "publisher" }, marks[1]), [], "the moderator's own publisher was not muted");
    // The SFU no longer forwards that stream's audio to the Conclave SDK.
    await sleep(1000);
    const a = await audioIn();
    await sleep(2000);
    const b = await audioIn();
    assert.ok(a >= flowing, `the audio stats of the muted stream are still there (${a} packets)`);
    assert.ok(b - a <= 2, `no audio packets of the muted stream reach the Conclave SDK (${a} -> ${b} in 2 s)`);
  });

  test("an OpenTok.js moderator force-mutes the Conclave-SDK publisher: muteForced", { timeout: 30000 }, async () => {
    const marks = [await ot.mark(), await cv.mark()];
    const r = await ot.call("forceMuteStream", cv.streamId);
    assert.equal(r.ok, true, JSON.stringify(r));
    await cv.waitEvent({ type: "muteForced", source: "publisher" }, { since: marks[1] });
    const st = await cv.state();
    assert.equal(st.publisherAudio, false, "the Conclave SDK's publisher turned its audio off");
    assert.equal(st.publisherAudioTrackEnabled, false);
    await ot.waitEvent(hasAudio(cv.streamId, false), { since: marks[0] });
  });

  test("an OpenTok.js moderator force-disconnects the Conclave-SDK participant: forceDisconnected", { timeout: 30000 }, async () => {
    const marks = [await ot.mark(), await cv.mark()];
    const r = await ot.call("forceDisconnect", cv.connectionId);
    assert.equal(r.ok, true, JSON.stringify(r));
    const gone = await cv.waitEvent({ type: "sessionDisconnected" }, { since: marks[1] });
    assert.equal(gone.reason, "forceDisconnected");
    const c = await ot.waitEvent({ type: "connectionDestroyed", connectionId: cv.connectionId }, { since: marks[0] });
    assert.equal(c.reason, "forceDisconnected");
    const s = await ot.waitEvent({ type: "streamDestroyed", streamId: cv.streamId }, { since: marks[0] });
    assert.equal(s.reason, "forceDisconnected");
    assert.equal((await ot.state()).connected, true, "the moderator stays connected");
    await ot.screenshot("opentok-mixed-otjs-after-remove");
    await cv.screenshot("opentok-mixed-conclave-removed");
  });
});

describe("OpenTok.js 2.35.2 and Conclave's browser SDK in one relayed session (connections and signals)", () => {
  const h = harness("opentok-mixed-relayed");
  let ot, cv, sessionId;

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "relayed" });
    ot = await h.participant({ label: "otjs-red", colour: "red" });
    ot.sdk = "opentok.js";
    cv = await conclaveParticipant(h, { label: "conclave-blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("each sees the other's connection, with its token data", { timeout: 60000 }, async () => {
    await ot.join(sessionId, h.server.token(sessionId, "publisher", { connectionData: "sdk=opentok.js" }));
    await cv.join(sessionId, h.server.token(sessionId, "moderator", { connectionData: "sdk=conclave", format: "jwt" }));
    assert.equal(cv.mediaMode, "relayed");
    assert.equal((await ot.waitEvent({ type: "connectionCreated", connectionId: cv.connectionId })).data, "sdk=conclave");
    assert.equal((await cv.waitEvent({ type: "connectionCreated", connectionId: ot.connectionId })).data, "sdk=opentok.js");
  });

  test("signals to all and to one, both ways, with the sender's connection ID", { timeout: 30000 }, async () => {
    await signalsBetween(ot, cv, "from OpenTok.js");
    await signalsBetween(cv, ot, "from Conclave");
  });

  test("a Conclave-SDK moderator force-disconnects the OpenTok.js participant: forceDisconnected", { timeout: 30000 }, async () => {
    const marks = [await ot.mark(), await cv.mark()];
    const r = await cv.call("forceDisconnect", ot.connectionId);
    assert.equal(r.ok, true, JSON.stringify(r));
    const gone = await ot.waitEvent({ type: "sessionDisconnected" }, { since: marks[0] });
    assert.equal(gone.reason, "forceDisconnected");
    const c = await cv.waitEvent({ type: "connectionDestroyed", connectionId: ot.connectionId }, { since: marks[1] });
    assert.equal(c.reason, "forceDisconnected");
    await ot.screenshot("opentok-mixed-relayed-otjs-removed");
    await cv.screenshot("opentok-mixed-relayed-conclave");
  });
});
