// Moderation with the official OpenTok.js 2.35.2 in a routed session: a moderator (green,
// subscribing only) and two publishers (red, blue). forceMuteStream, forceMuteAll and
// disableForceMute, forceUnpublish, and forceDisconnect, each checked by the events every
// client's app sees; a disconnected client cannot come back with the same token.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";

describe("OpenTok.js 2.35.2 moderation in a routed session", () => {
  const h = harness("opentok-moderation");
  let mod, red, blue, sessionId, redToken;
  const hasAudio = (streamId, value) => ({ type: "streamPropertyChanged", streamId, changedProperty: "hasAudio", newValue: value });

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "routed" });
    mod = await h.participant({ label: "moderator", colour: "green" });
    red = await h.participant({ label: "red", colour: "red" });
    blue = await h.participant({ label: "blue", colour: "blue" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("a moderator and two publishers join; roles give the right capabilities", { timeout: 90000 }, async () => {
    await mod.join(sessionId, h.server.token(sessionId, "moderator"));
    redToken = h.server.token(sessionId, "publisher");
    await red.join(sessionId, redToken);
    await blue.join(sessionId, h.server.token(sessionId, "publisher"));
    assert.deepEqual(mod.capabilities, { publish: 1, subscribe: 1, forceDisconnect: 1, forceUnpublish: 1, forceMute: 1 });
    assert.deepEqual(red.capabilities, { publish: 1, subscribe: 1, forceDisconnect: 0, forceUnpublish: 0, forceMute: 0 });
    await red.publish();
    await blue.publish();
    await mod.waitForMedia(red.streamId, { timeout: 30000 });
    await mod.waitForMedia(blue.streamId, { timeout: 30000 });
    await red.waitEvent({ type: "subscribed", streamId: blue.streamId }, { timeout: 30000 });
    await blue.waitEvent({ type: "subscribed", streamId: red.streamId }, { timeout: 30000 });
    await mod.screenshot("opentok-moderation-before");
  });

  test("forceMuteStream: the owner's publisher gets muteForced, the others see hasAudio false", { timeout: 30000 }, async () => {
    const marks = [await mod.mark(), await red.mark(), await blue.mark()];
    const r = await mod.call("forceMuteStream", red.streamId);
    assert.equal(r.ok, true, JSON.stringify(r));
    await red.waitEvent({ type: "muteForced", source: "publisher" }, { since: marks[1] });
    assert.equal((await red.state()).publisherHasAudio, false, "red's publisher stopped sending audio");
    await mod.waitEvent(hasAudio(red.streamId, false), { since: marks[0] });
    await blue.waitEvent(hasAudio(red.streamId, false), { since: marks[2] });
    assert.deepEqual(await blue.events({ type: "muteForced" }, marks[2]), [], "blue was not muted");
  });

  test("forceMuteAll mutes every publisher and tells every session; disableForceMute ends it", { timeout: 30000 }, async () => {
    // Red may unmute itself after a single-stream force mute.
    let mark = await mod.mark();
    await red.call("publishAudio", true);
    await mod.waitEvent(hasAudio(red.streamId, true), { since: mark });

    const marks = [await mod.mark(), await red.mark(), await blue.mark()];
    const r = await mod.call("forceMuteAll", []);
    assert.equal(r.ok, true, JSON.stringify(r));
    for (const [i, p] of [[1, red], [2, blue]]) {
      await p.waitEvent({ type: "muteForced", source: "publisher" }, { since: marks[i] });
      const s = await p.waitEvent({ type: "muteForced", source: "session" }, { since: marks[i] });
      assert.equal(s.active, true, `${p.label}'s session muteForced is active`);
      assert.equal((await p.state()).publisherHasAudio, false);
    }
    await mod.waitEvent(hasAudio(red.streamId, false), { since: marks[0] });
    await mod.waitEvent(hasAudio(blue.streamId, false), { since: marks[0] });

    mark = [await red.mark(), await blue.mark()];
    const d = await mod.call("disableForceMute");
    assert.equal(d.ok, true, JSON.stringify(d));
    for (const [i, p] of [red, blue].entries()) {
      const s = await p.waitEvent({ type: "muteForced", source: "session", active: false }, { since: mark[i] });
      assert.equal(s.active, false);
    }
  });

  test("forceUnpublish: the owner's publisher gets streamDestroyed forceUnpublished", { timeout: 30000 }, async () => {
    const marks = [await mod.mark(), await red.mark(), await blue.mark()];
    const r = await mod.call("forceUnpublish", blue.streamId);
    assert.equal(r.ok, true, JSON.stringify(r));
    const own = await blue.waitEvent({ type: "streamDestroyed", source: "publisher" }, { since: marks[2] });
    assert.equal(own.reason, "forceUnpublished");
    for (const [i, p] of [[0, mod], [1, red]]) {
      const e = await p.waitEvent({ type: "streamDestroyed", source: "session", streamId: blue.streamId }, { since: marks[i] });
      assert.equal(e.reason, "forceUnpublished", p.label);
    }
    assert.equal((await blue.state()).connected, true, "blue stays connected");
    assert.deepEqual(await mod.events({ type: "connectionDestroyed" }, marks[0]), []);
    await blue.screenshot("opentok-moderation-unpublished");
  });

  test("forceDisconnect: the target sees forceDisconnected, the others connectionDestroyed; its token is dead", { timeout: 60000 }, async () => {
    const marks = [await mod.mark(), await red.mark(), await blue.mark()];
    const r = await mod.call("forceDisconnect", red.connectionId);
    assert.equal(r.ok, true, JSON.stringify(r));
    const gone = await red.waitEvent({ type: "sessionDisconnected" }, { since: marks[1] });
    assert.equal(gone.reason, "forceDisconnected");
    for (const [i, p] of [[0, mod], [2, blue]]) {
      const c = await p.waitEvent({ type: "connectionDestroyed", connectionId: red.connectionId }, { since: marks[i] });
      assert.equal(c.reason, "forceDisconnected", p.label);
      const s = await p.waitEvent({ type: "streamDestroyed", streamId: red.streamId }, { since: marks[i] });
      assert.equal(s.reason, "forceDisconnected", p.label);
    }
    await red.screenshot("opentok-moderation-removed");

    // Connecting again with the same token fails (a fresh Session object on the same page).
    await red.init(sessionId);
    const again = await red.connect(redToken);
    assert.equal(again.ok, false, `reconnecting with the same token must fail: ${JSON.stringify(again)}`);
    assert.ok([1004, 1006].includes(again.code), `code ${again.code} (${again.message})`);
    assert.deepEqual(await mod.events({ type: "connectionCreated" }, marks[0]), [], "nobody saw red come back");
  });
});
