// Failures the official OpenTok.js 2.35.2 must report with the right codes: a bad token, a
// token of another session, an unknown session, a subscriber-role token (no publish), and a
// session created with maxParticipants=2 (a Conclave extension) refusing the third connection
// with 1027 OT_CONNECTION_LIMIT_EXCEEDED, until a seat is free again.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";

describe("OpenTok.js 2.35.2 connect errors", () => {
  const h = harness("opentok-errors");
  let a, b, c, sessionId;

  // A refusal means something only if the same page then connects with a good token.
  async function control(p, session = sessionId) {
    const mark = await p.mark();
    await p.join(session, h.server.token(session, "publisher"));
    await p.call("disconnect");
    await p.waitEvent({ type: "sessionDisconnected" }, { since: mark });
  }

  before(async () => {
    await h.start();
    sessionId = await h.server.createSession({ mediaMode: "relayed" });
    a = await h.participant({ label: "a", colour: "red" });
    b = await h.participant({ label: "b", colour: "blue" });
    c = await h.participant({ label: "c", colour: "green" });
  }, { timeout: 60000 });
  after(() => h.close(), { timeout: 60000 });

  test("an invalid token fails connect with 1004 or 1006", { timeout: 30000 }, async () => {
    const good = h.server.token(sessionId, "publisher");
    // The same shape as a real T1 token ("T1==" + base64 of "partner_id=…&sig=HEX:…"), with
    // one hex digit of its signature changed.
    const body = Buffer.from(good.slice(4), "base64").toString("utf8");
    assert.match(body, /sig=[0-9a-f]/, "a T1 token");
    const forgedBody = body.replace(/sig=([0-9a-f])/, (_, d) => `sig=${d === "0" ? "1" : "0"}`);
    const forged = "T1==" + Buffer.from(forgedBody).toString("base64");
    for (const token of ["not-a-token", forged]) {
      await a.init(sessionId);
      const r = await a.connect(token);
      assert.equal(r.ok, false, `connect with ${token.slice(0, 16)}…: ${JSON.stringify(r)}`);
      assert.ok([1004, 1006].includes(r.code), `code ${r.code} (${r.name}: ${r.message})`);
    }
    await a.screenshot("opentok-errors-invalid-token");
    await control(a);
  });

  test("a token of another session fails connect with 1004 or 1006", { timeout: 30000 }, async () => {
    const other = await h.server.createSession({ mediaMode: "relayed" });
    await a.init(sessionId);
    const r = await a.connect(h.server.token(other, "publisher"));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.ok([1004, 1006].includes(r.code), `code ${r.code} (${r.name}: ${r.message})`);
    await control(a, other);
  });

  test("an unknown session ID fails connect with 1004 or 1005", { timeout: 30000 }, async () => {
    const unknown = `1_MX4${h.server.apiKey}fn4xNzAwMDAwMDAwMDAwfk5vU3VjaFNlc3Npb25+UH5-`;
    await a.init(unknown);
    const r = await a.connect(h.server.token(sessionId, "publisher"));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.ok([1004, 1005].includes(r.code), `code ${r.code} (${r.name}: ${r.message})`);
    await control(a);
  });

  test("a subscriber-role token connects but may not publish (1500)", { timeout: 30000 }, async () => {
    await a.join(sessionId, h.server.token(sessionId, "subscriber"));
    assert.equal(a.capabilities.publish, 0);
    assert.equal(a.capabilities.subscribe, 1);
    const r = await a.call("publish", { name: "nope" });
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, 1500, JSON.stringify(r));
    await a.call("disconnect");
    await a.waitEvent({ type: "sessionDisconnected", reason: "clientDisconnected" });
  });

  test("maxParticipants=2 refuses the third connection with 1027, and frees the seat on leave", { timeout: 60000 }, async () => {
    const small = await h.server.createSession({ mediaMode: "relayed", maxParticipants: 2 });
    const start = await a.mark();
    await a.join(small, h.server.token(small, "publisher"));
    await b.join(small, h.server.token(small, "publisher"));
    await c.init(small);
    const token = h.server.token(small, "publisher");
    const r = await c.connect(token);
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, 1027, `OT_CONNECTION_LIMIT_EXCEEDED expected: ${JSON.stringify(r)}`);
    assert.equal(r.name, "OT_CONNECTION_LIMIT_EXCEEDED");
    assert.deepEqual((await a.events({ type: "connectionCreated", own: false }, start)).map((e) => e.connectionId), [b.connectionId], "a never saw the refused one");
    await c.screenshot("opentok-errors-limit");

    const mark = await a.mark();
    await b.call("disconnect");
    await a.waitEvent({ type: "connectionDestroyed", connectionId: b.connectionId }, { since: mark });
    await c.join(small, h.server.token(small, "publisher"));
    await a.waitEvent({ type: "connectionCreated", connectionId: c.connectionId }, { since: mark });
  });
});
