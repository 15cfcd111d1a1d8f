// Failures the official OpenTok.js 2.35.2 must report with the right codes: a bad token, an
// expired one and a token of another session (1004, from the anvil 403 error node), a session the server never
// made (1005, anvil 404), a subscriber-role token (no publish, 1500), and a
// session created with maxParticipants=2 (a Conclave extension) refusing the third connection
// with 1027 OT_CONNECTION_LIMIT_EXCEEDED, until a seat is free again.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { harness } from "./otjs.mjs";

describe("OpenTok.js 2.35.2 connect errors", () => {
  const h = harness("opentok-errors");
  let a, b, c, sessionId;

  // A refusal means something only if the same page then connects with a good token.
  async function control(p, session = sessionId, token = h.server.token(session, "publisher")) {
    const mark = await p.mark();
    await p.join(session, token);
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

  test("an invalid token fails connect with 1004 OT_AUTHENTICATION_ERROR", { timeout: 30000 }, async () => {
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
      assert.equal(r.code, 1004, `code ${r.code} (${r.name}: ${r.message})`);
    }
    await a.screenshot("opentok-errors-invalid-token");
    await control(a);
  });

  test("an expired token fails connect with 1004", { timeout: 30000 }, async () => {
    await a.init(sessionId);
    // Ten minutes past its expiry: well beyond any clock-skew allowance.
    const r = await a.connect(h.server.mintT1(sessionId, "publisher", { createdAgo: 7200, expiresIn: -600 }));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, 1004, `code ${r.code} (${r.name}: ${r.message})`);
    await control(a, sessionId, h.server.mintT1(sessionId, "publisher"));
  });

  test("a token of another session fails connect with 1004", { timeout: 30000 }, async () => {
    const other = await h.server.createSession({ mediaMode: "relayed" });
    await a.init(sessionId);
    const r = await a.connect(h.server.token(other, "publisher"));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, 1004, `code ${r.code} (${r.name}: ${r.message})`);
    await control(a, other);
  });

  test("a well-signed token for a session the server never made fails connect with 1005 OT_INVALID_SESSION_ID", { timeout: 30000 }, async () => {
    // The token is minted here with the project's secret, as a customer's server SDK would.
    const minted = h.server.mintT1(sessionId);
    await control(a, sessionId, minted); // the minting is right: it works for a real session
    const unknown = h.server.unknownSessionId();
    await a.init(unknown);
    const r = await a.connect(h.server.mintT1(unknown));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, 1005, `code ${r.code} (${r.name}: ${r.message})`);
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
