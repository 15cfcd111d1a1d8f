// The official OpenTok Node SDK (2.23.2 and 2.19.0), unmodified, against Conclave:
// sessions, tokens, REST authentication, and (2.23.2) session control with live participants.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, bot, call, require } from "./harness.mjs";

const VERSIONS = ["2.23.2", "2.19.0"];
const DATA = "name=Zoë & co: +!'()*";
let server;

before(async () => { server = await startServer(); });
after(async () => {
  const logs = server.logs();
  await server.stop();
  for (const p of server.projects) assert.ok(!logs.includes(p.api_secret), "a secret reached the log");
});

const sdkFor = (version, project = 0, secret) => {
  const OpenTok = require(`opentok-${version}`);
  const p = server.projects[project];
  return new OpenTok(p.api_key, secret || p.api_secret, { apiUrl: server.url });
};

async function sessionInfo(sessionId, project = 0) {
  const p = server.projects[project];
  const r = await fetch(`${server.url}/v2/project/${p.api_key}/session/${sessionId}`, { headers: { "X-OPENTOK-AUTH": server.restJwt(p) } });
  return { status: r.status, body: await r.json() };
}

for (const version of VERSIONS) {
  test(`node ${version}: session variants are created and stored as requested`, async () => {
    const ot = sdkFor(version);
    const cases = [
      [{}, "relayed", "manual", false, null],
      [{ mediaMode: "routed" }, "routed", "manual", false, null],
      [{ mediaMode: "routed", e2ee: true }, "routed", "manual", true, null],
      [{ mediaMode: "routed", archiveMode: "always", archiveName: "weekly", archiveResolution: "1280x720" }, "routed", "always", false, null],
      [{ mediaMode: "routed", location: "12.34.56.78" }, "routed", "manual", false, "12.34.56.78"],
    ];
    for (const [opts, media, archive, e2ee, location] of cases) {
      const session = await call(ot, "createSession", opts);
      assert.match(session.sessionId, /^1_/);
      const info = await sessionInfo(session.sessionId);
      assert.equal(info.status, 200);
      assert.deepEqual([info.body.mediaMode, info.body.archiveMode, info.body.e2ee, info.body.location], [media, archive, e2ee, location], JSON.stringify(opts));
    }
  });

  test(`node ${version}: every token the SDK mints verifies for its session only`, async () => {
    const ot = sdkFor(version);
    const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
    const other = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
    const expireTime = Math.floor(Date.now() / 1000) + 3600;
    // 2.19 emits T1 only; 2.23 emits JWT by default and T1 with the third argument.
    const formats = version === "2.19.0" ? [["t1", undefined]] : [["jwt", undefined], ["t1", true]];
    for (const role of ["subscriber", "publisher", "publisheronly", "moderator"]) {
      for (const [format, useT1] of formats) {
        const opts = { role, expireTime, data: DATA, initialLayoutClassList: ["focus", "full"] };
        const token = useT1 === undefined ? ot.generateToken(session, opts) : ot.generateToken(session, opts, useT1);
        assert.equal(token.startsWith("T1=="), format === "t1");
        const ok = server.verify(session, token);
        assert.ok(ok.ok, JSON.stringify(ok.body));
        assert.equal(ok.body.format, format);
        assert.equal(ok.body.role, role);
        assert.equal(ok.body.connection_data, DATA);
        assert.deepEqual(ok.body.initial_layout_classes, ["focus", "full"]);
        assert.equal(ok.body.expires_at, expireTime);
        const wrong = server.verify(other, token);
        assert.equal(wrong.ok, false);
        assert.equal(wrong.body.code, "token_wrong_session");
      }
    }
  });

  test(`node ${version}: a wrong secret is refused with 403`, async () => {
    const bad = sdkFor(version, 0, "5e8ff9bf55ba3508199d22e984129be6f0e1c3d2");
    await assert.rejects(call(bad, "createSession", {}), (err) => {
      assert.match(String(err.message || err), /Invalid API key or secret|authentication error occurred: \(403\)/);
      return true;
    });
  });
}

test("an expired REST credential and participant tokens are refused with 403 JSON", async () => {
  const p = server.projects[0];
  const post = (auth) =>
    fetch(`${server.url}/session/create`, { method: "POST", headers: { "X-OPENTOK-AUTH": auth, Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" }, body: "p2p.preference=disabled" });
  // Hand-minted with the SDKs' claim set but an hour old: patching Node's clock inside the
  // SDK is impractical, and the bytes are the same.
  let r = await post(server.restJwt(p, Math.floor(Date.now() / 1000) - 3600));
  assert.equal(r.status, 403);
  assert.match((await r.json()).message, /expired/);
  const ot = sdkFor("2.23.2");
  const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
  const soon = Math.floor(Date.now() / 1000) + 120;
  for (const token of [ot.generateToken(session, { role: "moderator", expireTime: soon }), ot.generateToken(session, { role: "moderator", expireTime: soon }, true)]) {
    r = await post(token);
    assert.equal(r.status, 403);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.match((await r.json()).message, /client tokens cannot be used/);
  }
});

test("another project's session is not found", async () => {
  const theirs = (await call(sdkFor("2.23.2", 1), "createSession", { mediaMode: "routed" })).sessionId;
  const info = await sessionInfo(theirs, 0);
  assert.equal(info.status, 404);
  assert.equal(info.body.message, "session not found");
});

test("node 2.23.2: session control reaches live participants", async () => {
  const ot = sdkFor("2.23.2");
  const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
  // A T1 token (third argument) and a JWT from this SDK both connect.
  const alice = await bot(server, session, ot.generateToken(session, { role: "publisher", data: "alice" }, true), { publish: "alice-cam" });
  const bob = await bot(server, session, ot.generateToken(session, { role: "publisher", data: "bob" }), { publish: "bob-cam" });
  const carol = await bot(server, session, ot.generateToken(session, { role: "subscriber", data: "carol" }), { subscribeAll: true });
  try {
    await alice.waitFor((m) => m.type === "subscriberCount" && m.streamId === alice.streamId && m.count === 1);

    const list = await call(ot, "listStreams", session);
    assert.deepEqual(list.map((s) => s.id).sort(), [alice.streamId, bob.streamId].sort());
    const stream = await call(ot, "getStream", session, alice.streamId);
    assert.equal(stream.id, alice.streamId);
    assert.equal(stream.name, "alice-cam");
    assert.equal(stream.videoType, "camera");

    await call(ot, "setStreamClassLists", session, [{ id: bob.streamId, layoutClassList: ["focus"] }]);
    await carol.waitFor((m) => m.type === "streamPropertyChanged" && m.streamId === bob.streamId && m.property === "layoutClassList");

    await call(ot, "signal", session, null, { type: "notice", data: "to everyone" });
    for (const b of [alice, bob, carol]) await b.waitFor((m) => m.type === "signal" && m.data === "to everyone");
    await call(ot, "signal", session, carol.connectionId, { type: "dm", data: "carol only" });
    await carol.waitFor((m) => m.type === "signal" && m.data === "carol only");

    await call(ot, "forceMuteStream", session, alice.streamId);
    await alice.waitFor((m) => m.type === "muteForced" && m.streamId === alice.streamId);
    await call(ot, "forceMuteAll", session, { excludedStreamIds: [alice.streamId] });
    await bob.waitFor((m) => m.type === "muteForced" && m.streamId === bob.streamId);
    await call(ot, "disableForceMute", session);
    await carol.waitFor((m) => m.type === "muteAllChanged" && m.active === false);

    await call(ot, "forceDisconnect", session, bob.connectionId);
    const bye = await bob.waitFor((m) => m.type === "sessionDisconnected");
    assert.equal(bye.reason, "forceDisconnected");
    await carol.waitFor((m) => m.type === "connectionDestroyed" && m.connectionId === bob.connectionId && m.reason === "forceDisconnected");
  } finally {
    for (const b of [alice, bob, carol]) b.stop();
  }
});
