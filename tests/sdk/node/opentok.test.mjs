// The official OpenTok Node SDK, unmodified, against a real Conclave server.
//
// Both published versions are installed side by side under npm aliases (see package.json):
//   opentok-2.23.2  JWT client tokens by default, T1 with generateToken(id, opts, true)
//   opentok-2.19.0  T1 client tokens only
// Every check below runs for each of them. Run with `node --test` (scripts/sdk-tests does).
//
// This file starts its own `conclave serve` (see harness.mjs) and stops it at the end.
// Assertions are on behaviour: HTTP statuses and bodies, what the SDK reported, and the claims
// that the server's own verifier (`conclave token verify`) reads back out of each token.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { bot as startBot, call, conclave, sdkClient, startServer, stopServer } from "./harness.mjs";

const require = createRequire(import.meta.url);

const VERSIONS = ["2.23.2", "2.19.0"];
const emitsJwt = (version) => version !== "2.19.0"; // JWT client tokens arrived in 2.21
// Connection data with every character the two SDKs URL-encode differently inside T1 tokens
// (space, ! ' ( ) *), characters that must be encoded (= & : +) and a non-ASCII one.
const DATA = "name=Zoé & co: a+b !'()*";
const LAYOUT = ["focus", "full"];
const ROLES = ["subscriber", "publisher", "publisheronly", "moderator"]; // publisheronly: Node >= 2.18
const nowSeconds = () => Math.floor(Date.now() / 1000);

// --- the server under test ---------------------------------------------------------------------

let server;

/** The server's own token check: { ok: true, body: claims } or { ok: false, body: {code, message} }. */
function verify(sessionId, token) {
  const r = conclave(["token", "verify", "--data-dir", server.data, "--session-id", sessionId, "--token", token]);
  assert.ok(r.status === 0 || r.status === 1, r.stderr);
  return { ok: r.status === 0, body: JSON.parse(r.stdout) };
}

before(async () => {
  server = await startServer();
});

after(() => stopServer(server));

// --- helpers -----------------------------------------------------------------------------------

/** An SDK client of the given version for one of the server's projects, pointed at the server. */
const sdk = (version, project = 0, secret = undefined) => sdkClient(server, version, project, secret);

/** A REST credential (X-OPENTOK-AUTH) with the claims the SDKs send, signed HS256 by hand. */
function restJwt(project, { now = nowSeconds(), secret = project.api_secret } = {}) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: project.api_key, ist: "project", iat: now, exp: now + 180 })}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** Conclave's extension: GET /v2/project/{apiKey}/session/{sessionId}. The credential is
 *  `project`'s; the API key in the path is `pathProject`'s (default: the same). */
async function getSession(sessionId, { project = 0, pathProject = project } = {}) {
  const key = server.projects[pathProject].api_key;
  const r = await fetch(`${server.url}/v2/project/${key}/session/${sessionId}`, {
    headers: { "X-OPENTOK-AUTH": restJwt(server.projects[project]) },
  });
  return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
}

/** POST /session/create by hand (form body, as the SDKs send it). */
async function createSessionRaw(auth, form) {
  const r = await fetch(`${server.url}/session/create`, {
    method: "POST",
    headers: { "X-OPENTOK-AUTH": auth, Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
}

/** The error contract: the expected status, a JSON body, and a `message` string in it. */
function assertJsonError(res, status) {
  assert.equal(res.status, status, res.text);
  assert.equal((res.type || "").split(";")[0].trim(), "application/json");
  const body = JSON.parse(res.text);
  assert.equal(typeof body.message, "string", res.text);
  assert.ok(body.message.length > 0);
  return body;
}

/** The SDK reported its authentication error for a 403. 2.23 maps 401/403 to AuthError
 *  ("Invalid API key or secret"); 2.19 reports "An authentication error occurred: (403) <body>",
 *  which also lets us check the body it got. */
function assertSdkAuthError(version, err) {
  const text = String(err?.message ?? err);
  if (version === "2.19.0") {
    const m = text.match(/An authentication error occurred: \(403\) (.*)$/s);
    assert.ok(m, text);
    assertJsonError({ status: 403, type: "application/json", text: m[1] }, 403);
  } else {
    assert.match(text, /Invalid API key or secret/);
  }
  return true;
}

/** Runs fn with the global clock (`new Date()`, `Date.now()`) shifted; restores it right after
 *  fn returns. The SDKs sign their REST credential synchronously inside the call, with
 *  Math.floor(new Date() / 1000), so this is the clock they sign with. */
function withClockShift(seconds, fn) {
  const RealDate = globalThis.Date;
  const shift = seconds * 1000;
  class ShiftedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(RealDate.now() + shift);
      else super(...args);
    }
    static now() {
      return RealDate.now() + shift;
    }
  }
  globalThis.Date = ShiftedDate;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

/** A well-formed session ID (the SDKs' format) that the server never issued. */
function fakeSessionId(apiKey) {
  const raw = `1~${apiKey}~~${Date.now()}~${randomBytes(18).toString("base64url")}~~~`;
  return "1_" + Buffer.from(raw).toString("base64url");
}

// --- the checks, for each SDK version ------------------------------------------------------------

const SESSION_CASES = {
  // name: [createSession options, what GET must report: mediaMode, archiveMode, e2ee, location]
  "relayed (default)": [{}, ["relayed", "manual", false, null]],
  routed: [{ mediaMode: "routed" }, ["routed", "manual", false, null]],
  "routed + e2ee": [{ mediaMode: "routed", e2ee: true }, ["routed", "manual", true, null]],
  // Both versions forward archiveName and archiveResolution as given.
  "routed + archiveMode always": [
    { mediaMode: "routed", archiveMode: "always", archiveName: "weekly-standup", archiveResolution: "1280x720" },
    ["routed", "always", false, null],
  ],
  "routed + location": [{ mediaMode: "routed", location: "12.34.56.78" }, ["routed", "manual", false, "12.34.56.78"]],
};

for (const version of VERSIONS) {
  describe(`opentok ${version}`, () => {
    const formats = emitsJwt(version) ? ["jwt", "t1"] : ["t1"];
    /** generateToken in the requested format, the way an application would call it. */
    const mint = (ot, sessionId, opts, format) =>
      emitsJwt(version) && format === "t1" ? ot.generateToken(sessionId, opts, true) : ot.generateToken(sessionId, opts);

    describe("create session", () => {
      for (const [name, [opts, [media, archive, e2ee, location]]] of Object.entries(SESSION_CASES)) {
        test(`${name} is stored as requested`, async () => {
          const beforeMs = Date.now();
          const session = await call(sdk(version), "createSession", { ...opts });
          const afterMs = Date.now();
          assert.match(session.sessionId, /^[12]_/);
          const info = await getSession(session.sessionId);
          assert.equal(info.status, 200, info.text);
          const body = JSON.parse(info.text);
          assert.equal(body.sessionId, session.sessionId);
          assert.equal(String(body.projectId), server.projects[0].api_key);
          assert.deepEqual([body.mediaMode, body.archiveMode, body.e2ee, body.location], [media, archive, e2ee, location]);
          assert.equal(body.maxParticipants, null);
          assert.equal(body.endedAt, null);
          assert.ok(body.createdAt >= beforeMs - 5000 && body.createdAt <= afterMs + 5000, String(body.createdAt));
        });
      }

      test("e2ee on a relayed session is refused (400 from the server)", async () => {
        // The SDK forwards e2ee without checking the media mode; the server refuses it.
        await assert.rejects(call(sdk(version), "createSession", { e2ee: true }));
      });
    });

    describe("client tokens", () => {
      let session;
      let other;
      before(async () => {
        const ot = sdk(version);
        session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
        other = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
      });

      for (const role of ROLES) {
        for (const format of formats) {
          test(`${role} ${format} token verifies with the claims it was minted with`, () => {
            const expireTime = nowSeconds() + 3600;
            const opts = { role, expireTime, data: DATA, initialLayoutClassList: LAYOUT };
            const before = nowSeconds();
            const token = mint(sdk(version), session, opts, format);
            const after = nowSeconds();
            assert.equal(token.startsWith("T1=="), format === "t1");

            const v = verify(session, token);
            assert.ok(v.ok, JSON.stringify(v.body));
            const expected = {
              format,
              api_key: server.projects[0].api_key,
              session_id: session,
              role,
              expires_at: expireTime,
              connection_data: DATA,
              initial_layout_classes: LAYOUT,
            };
            assert.deepEqual(Object.fromEntries(Object.keys(expected).map((k) => [k, v.body[k]])), expected);
            // Node rounds the T1 create_time (Math.round), so allow a second either way.
            assert.ok(v.body.issued_at >= before - 1 && v.body.issued_at <= after + 1, String(v.body.issued_at));

            // The same token for another session of the same project is refused.
            const wrong = verify(other, token);
            assert.equal(wrong.ok, false);
            assert.equal(wrong.body.code, "token_wrong_session");
          });
        }
      }

      test("default token: publisher, 24 h, no data", () => {
        const now = nowSeconds();
        const token = sdk(version).generateToken(session);
        const v = verify(session, token);
        assert.ok(v.ok, JSON.stringify(v.body));
        assert.equal(v.body.format, formats[0]);
        assert.equal(v.body.role, "publisher");
        assert.equal(v.body.connection_data, null);
        assert.deepEqual(v.body.initial_layout_classes, []);
        assert.ok(Math.abs(v.body.expires_at - (now + 86400)) <= 2, String(v.body.expires_at));
        assert.equal(verify(other, token).body.code, "token_wrong_session");
      });
    });

    describe("REST authentication", () => {
      test("a wrong secret is refused (403)", async () => {
        const bad = sdk(version, 0, randomBytes(20).toString("hex")); // right key, wrong secret
        await assert.rejects(call(bad, "createSession", {}), (err) => assertSdkAuthError(version, err));
      });

      test("an expired REST credential is refused (403)", async () => {
        const ot = sdk(version);
        // The SDK signs with the global clock: an hour behind, its credential expired ~55 min ago.
        const signed = withClockShift(-3600, () => require(`opentok-${version}/lib/generateJwt.js`)(ot.client.c));
        const claims = JSON.parse(Buffer.from(signed.split(".")[1], "base64url").toString());
        assert.ok(claims.exp < nowSeconds() - 3000, JSON.stringify(claims));
        const refused = withClockShift(-3600, () => call(ot, "createSession", {}));
        await assert.rejects(refused, (err) => assertSdkAuthError(version, err));
        // The same SDK object with the right clock works.
        assert.ok((await call(ot, "createSession", {})).sessionId);
      });

      test("participant tokens are not REST credentials (403)", async () => {
        const ot = sdk(version);
        const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
        const soon = nowSeconds() + 120; // short-lived, like a REST credential
        for (const format of formats) {
          const token = mint(ot, session, { role: "moderator", expireTime: soon }, format);
          assert.ok(verify(session, token).ok, "a perfectly good client token...");
          const res = await createSessionRaw(token, { archiveMode: "manual", "p2p.preference": "disabled" });
          assertJsonError(res, 403); // ...but not a REST credential
        }
      });
    });

    describe("project isolation", () => {
      test("another project's session is not found (404)", async () => {
        const theirs = (await call(sdk(version, 1), "createSession", { mediaMode: "routed" })).sessionId;
        assert.equal((await getSession(theirs, { project: 1 })).status, 200); // its owner sees it
        const body = assertJsonError(await getSession(theirs, { project: 0 }), 404);
        assert.ok("code" in body, JSON.stringify(body));
        assertJsonError(await getSession(fakeSessionId(server.projects[0].api_key), { project: 0 }), 404);
        // Project 0's credential under project 1's API key is an authentication failure.
        assertJsonError(await getSession(theirs, { project: 0, pathProject: 1 }), 403);
      });
    });
  });
}

// --- the same refusals by hand, with the bodies the SDKs do not show --------------------------------

describe("server rules (raw HTTP)", () => {
  test("refusals are 403 with a JSON message: wrong secret, expired credential", async () => {
    const p = server.projects[0];
    const form = { archiveMode: "manual", "p2p.preference": "enabled" };
    assertJsonError(await createSessionRaw(restJwt(p, { secret: randomBytes(20).toString("hex") }), form), 403);
    assertJsonError(await createSessionRaw(restJwt(p, { now: nowSeconds() - 3600 }), form), 403);
  });

  test("e2ee and archiveMode=always need a routed session (400 with a JSON message)", async () => {
    const auth = () => restJwt(server.projects[0]);
    assertJsonError(await createSessionRaw(auth(), { archiveMode: "manual", "p2p.preference": "enabled", e2ee: "true" }), 400);
    assertJsonError(await createSessionRaw(auth(), { archiveMode: "always", "p2p.preference": "enabled" }), 400);
  });
});

// --- session control with live participants (newest SDK) ---------------------------------------

/** A real participant (`conclave client`) in this file's server. */
const bot = (sessionId, token, opts) => startBot(server, sessionId, token, opts);

test("opentok 2.23.2: session control reaches live participants", async () => {
  const ot = sdk("2.23.2");
  const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
  const bots = [];
  try {
    // A T1 token (third argument) and JWTs from this SDK all connect.
    const alice = await bot(session, ot.generateToken(session, { role: "publisher", data: "alice" }, true), { publish: "alice-cam" });
    bots.push(alice);
    const bob = await bot(session, ot.generateToken(session, { role: "publisher", data: "bob" }), { publish: "bob-cam" });
    bots.push(bob);
    const carol = await bot(session, ot.generateToken(session, { role: "subscriber", data: "carol" }), { subscribeAll: true });
    bots.push(carol);
    await alice.waitFor((m) => m.type === "subscriberCount" && m.streamId === alice.streamId && m.count === 1);

    const list = await call(ot, "listStreams", session);
    assert.deepEqual(list.map((s) => s.id).sort(), [alice.streamId, bob.streamId].sort());
    const stream = await call(ot, "getStream", session, alice.streamId);
    assert.deepEqual([stream.id, stream.name, stream.videoType], [alice.streamId, "alice-cam", "camera"]);

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
    assert.equal((await bob.waitFor((m) => m.type === "sessionDisconnected")).reason, "forceDisconnected");
    await carol.waitFor((m) => m.type === "connectionDestroyed" && m.connectionId === bob.connectionId && m.reason === "forceDisconnected");
  } finally {
    for (const b of bots) b.stop();
  }
});
