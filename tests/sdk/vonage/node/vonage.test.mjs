// The official Vonage Video Node SDKs, unmodified, against a live Conclave server: @vonage/video
// 1.31.1 on its own and as `vonage.video` of @vonage/server-sdk 3.30.1, each authenticating
// with a Conclave application's ID and generated private key (RS256 JWTs, `videoHost` pointed
// at the server). Sessions in every mode; client tokens from generateClientToken joined by
// `conclave client` bots; streams, class lists, signals, mutes and force disconnect; archives
// started, re-laid-out, listed, stopped, uploaded to moto and deleted; another application's
// credential refused; what Conclave does not serve answers 501 with a message.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { tokenGenerate } from "@vonage/jwt";
import { Vonage } from "@vonage/server-sdk";
import { MediaMode, ArchiveMode, Video } from "@vonage/video";
import { bot, startMoto, startServer, stopServer } from "./harness.mjs";

const CLIENTS = {
  "@vonage/video": (server, app) => new Video(app, { videoHost: server.url }),
  "@vonage/server-sdk": (server, app) => new Vonage(app, { videoHost: server.url }).video,
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let moto;
before(async () => {
  server = await startServer();
  moto = await startMoto("archives");
});
after(async () => {
  await moto?.stop();
  await stopServer(server);
});

/** A REST call signed the SDKs' way (@vonage/jwt), for Conclave's own endpoints. */
async function rest(app, method, path, body) {
  const headers = { Authorization: `Bearer ${tokenGenerate(app.applicationId, app.privateKey)}` };
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(`${server.url}/v2/project/${app.applicationId}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Runs fn(bots) and stops every bot it started, whatever happens. */
async function withBots(fn) {
  const bots = [];
  try {
    return await fn(bots);
  } finally {
    for (const b of bots) b.stop();
  }
}

const statusOf = async (promise) => {
  try {
    await promise;
    return 200;
  } catch (e) {
    return e.response?.status ?? String(e);
  }
};

for (const [name, make] of Object.entries(CLIENTS)) {
  describe(name, () => {
    const app = () => server.apps[0];
    const video = () => make(server, app());

    test("sessions in every mode, and client tokens that join", async () => {
      const v = video();
      const modes = [
        [{}, "routed", "manual"],
        [{ mediaMode: MediaMode.RELAYED }, "relayed", "manual"],
        [{ mediaMode: MediaMode.ROUTED, archiveMode: ArchiveMode.ALWAYS }, "routed", "always"],
        [{ mediaMode: MediaMode.ROUTED, location: "10.1.2.3" }, "routed", "manual"],
      ];
      for (const [options, media, archive] of modes) {
        const s = await v.createSession(options);
        assert.match(s.sessionId, /^[12]_[A-Za-z0-9_-]+$/);
        // Conclave's session info (an extension) says what the store holds.
        const info = await rest(app(), "GET", `/session/${s.sessionId}`);
        assert.equal(info.status, 200, JSON.stringify(info.body));
        assert.equal(info.body.mediaMode, media);
        assert.equal(info.body.archiveMode, archive);
        // The session ID carries the application ID where OpenTok's carries the API key.
        const decoded = Buffer.from(s.sessionId.slice(2), "base64url").toString("utf8");
        assert.equal(decoded.split("~")[1], app().applicationId);
        await withBots(async (bots) => {
          const token = v.generateClientToken(s.sessionId, { role: "moderator", data: "name=alice", initialLayoutClassList: ["full", "focus"] });
          const alice = await bot(server, s.sessionId, token);
          bots.push(alice);
          assert.ok(alice.connectionId);
          const bob = await bot(server, s.sessionId, v.generateClientToken(s.sessionId));
          bots.push(bob);
          const created = await alice.waitFor((m) => m.type === "connectionCreated");
          assert.equal(created.connection.connectionId, bob.connectionId);
        });
      }
    });

    test("streams, class lists, signals, mutes and force disconnect", async () => {
      const v = video();
      const session = (await v.createSession({ mediaMode: MediaMode.ROUTED })).sessionId;
      await withBots(async (bots) => {
        const join = async (role, data, publish) => {
          const b = await bot(server, session, v.generateClientToken(session, { role, data }), { publish });
          bots.push(b);
          return b;
        };
        const alice = await join("moderator", "alice", "alice-cam");
        const bob = await join("publisher", "bob", "bob-cam");
        const carol = await join("subscriber", "carol");

        const all = await v.getStreamInfo(session);
        assert.equal(all.count, 2);
        assert.deepEqual(all.items.map((s) => s.id).sort(), [alice.streamId, bob.streamId].sort());
        const one = await v.getStreamInfo(session, alice.streamId);
        assert.equal(one.id, alice.streamId);
        assert.equal(one.name, "alice-cam");
        assert.equal(one.videoType, "camera");

        await v.setStreamClassLists(session, [{ id: bob.streamId, layoutClassList: ["focus"] }]);
        await carol.waitFor((m) => m.type === "streamPropertyChanged" && m.streamId === bob.streamId && m.property === "layoutClassList");
        assert.deepEqual((await v.getStreamInfo(session, bob.streamId)).layoutClassList, ["focus"]);

        await v.sendSignal({ type: "chat", data: "to everyone" }, session);
        for (const b of [alice, bob, carol]) await b.waitFor((m) => m.type === "signal" && m.data === "to everyone");
        await v.sendSignal({ type: "chat", data: "carol only" }, session, carol.connectionId);
        await carol.waitFor((m) => m.type === "signal" && m.data === "carol only");

        await v.muteStream(session, alice.streamId);
        await alice.waitFor((m) => m.type === "muteForced" && m.streamId === alice.streamId);
        await v.forceMuteAll(session, [alice.streamId]);
        await bob.waitFor((m) => m.type === "muteForced" && m.streamId === bob.streamId);
        await v.disableForceMute(session);
        await carol.waitFor((m) => m.type === "muteAllChanged" && m.active === false);

        await v.disconnectClient(session, bob.connectionId);
        assert.equal((await bob.waitFor((m) => m.type === "sessionDisconnected")).reason, "forceDisconnected");
        await carol.waitFor((m) => m.type === "connectionDestroyed" && m.connectionId === bob.connectionId);
      });
    });

    test("another application's credential and tokens are refused", async () => {
      const v = video();
      const other = make(server, server.apps[1]);
      const session = (await v.createSession()).sessionId;
      assert.equal(await statusOf(other.getStreamInfo(session)), 404);
      assert.equal(await statusOf(other.sendSignal({ type: "t", data: "d" }, session)), 404);
      // A token signed by the other application's key, for this session, does not join.
      await assert.rejects(bot(server, session, other.generateClientToken(session)));
      // Nor does a key that is not the application's (a stranger claiming its ID).
      const stranger = make(server, { applicationId: app().applicationId, privateKey: server.apps[1].privateKey });
      assert.equal(await statusOf(stranger.getStreamInfo(session)), 403);
      await assert.rejects(bot(server, session, stranger.generateClientToken(session)));
    });

    test("what Conclave does not serve answers 501 with a message", async () => {
      const v = video();
      const session = (await v.createSession()).sessionId;
      for (const call of [
        () => v.intiateSIPCall(session, { sip: { uri: "sip:user@example.com" }, token: v.generateClientToken(session) }),
        () => v.playDTMF(session, "1234"),
        () => v.enableCaptions(session, v.generateClientToken(session)),
        () => v.startExperienceComposerRender(session, v.generateClientToken(session), { url: "https://example.com" }),
      ]) {
        try {
          await call();
          assert.fail("expected a 501");
        } catch (e) {
          assert.equal(e.response?.status, 501, String(e));
          const body = await e.response.json().catch(() => ({}));
          assert.match(body.message ?? "", /does not serve/);
        }
      }
    });

    test("broadcasts: start with HLS, search, get, stop; the playlist is served, then gone", async () => {
      const v = video();
      const session = (await v.createSession({ mediaMode: MediaMode.ROUTED })).sessionId;
      await withBots(async (bots) => {
        const token = v.generateClientToken(session, { role: "publisher", data: "cam" });
        bots.push(await bot(server, session, token, { publish: "cam", realMedia: true }));
        const started = await v.startBroadcast(session, { outputs: { hls: {}, rtmp: [] }, resolution: "640x480" });
        assert.equal(started.status, "started");
        assert.equal(started.sessionId, session);
        assert.equal(started.applicationId, app().applicationId);
        const hls = started.broadcastUrls.hls;
        assert.match(hls, /\/index\.m3u8$/);
        const listed = await v.searchBroadcasts({ sessionId: session });
        assert.equal(listed.count, 1);
        assert.equal(listed.items[0].id, started.id);
        // The playlist lists segments while the broadcast runs.
        let playlist = "";
        for (let i = 0; i < 80 && !/\.ts$/m.test(playlist); i++) {
          await sleep(250);
          const r = await fetch(hls);
          playlist = r.status === 200 ? await r.text() : "";
        }
        assert.match(playlist, /segment-\d+\.ts$/m);
        assert.equal((await v.getBroadcast(started.id)).status, "started");
        const stopped = await v.stopBroadcast(started.id);
        assert.equal(stopped.status, "stopped");
        assert.equal((await fetch(hls)).status, 404);
      });
    });

    test("archives: start, layout, list, stop, upload to S3 (moto), delete", async () => {
      const v = video();
      const storage = await rest(app(), "PUT", "/archive/storage", {
        type: "s3",
        config: { bucket: "archives", endpoint: moto.endpoint, region: "us-east-1", accessKey: "testing", secretKey: "testing" },
        fallback: "conclave",
      });
      assert.equal(storage.status, 200, JSON.stringify(storage.body));
      const session = (await v.createSession({ mediaMode: MediaMode.ROUTED })).sessionId;
      const started = await withBots(async (bots) => {
        const token = v.generateClientToken(session, { role: "publisher", data: "cam" });
        bots.push(await bot(server, session, token, { publish: "cam", realMedia: true }));
        const started = await v.startArchive(session, { name: `vonage ${name}`, outputMode: "composed", layout: { type: "bestFit" } });
        assert.match(started.id, UUID);
        assert.equal(started.status, "started");
        assert.equal(started.sessionId, session);
        assert.equal(started.applicationId, app().applicationId);
        await sleep(1500);
        await v.updateArchiveLayout(started.id, { type: "horizontalPresentation" });
        const got = await v.getArchive(started.id);
        assert.equal(got.status, "started");
        const listed = await v.searchArchives({ sessionId: session });
        assert.equal(listed.count, 1);
        assert.equal(listed.items[0].id, started.id);
        await sleep(1500);
        const stopped = await v.stopArchive(started.id);
        assert.equal(stopped.status, "stopped");
        return started;
      });
      // Processed, then uploaded to the application's bucket.
      const deadline = Date.now() + 90_000;
      let a;
      for (;;) {
        a = await v.getArchive(started.id);
        if (!["stopped", "available"].includes(a.status) || Date.now() > deadline) break;
        await sleep(500);
      }
      assert.equal(a.status, "uploaded", `archive ended as ${a.status} (${a.reason})`);
      assert.ok(a.size > 0 && a.duration >= 1, JSON.stringify(a));
      assert.ok((await moto.keys()).some((k) => k.includes(started.id)), "the archive is in the bucket");
      await v.deleteArchive(started.id);
      assert.equal((await v.getArchive(started.id)).status, "deleted");
      assert.equal((await v.searchArchives({ sessionId: session })).count, 0);
    });
  });
}
