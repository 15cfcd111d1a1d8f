// Archiving with the official OpenTok Node SDKs (2.23.2 and 2.19.0, unmodified) against a live
// server (compat doc 6.2 and 7). `conclave client` bots publish real media (VP8 and Opus) in
// routed sessions; the SDK starts, stops, gets, lists and deletes archives, and the finished
// files are downloaded through the signed URL and checked: a composed MP4 that ffprobe
// decodes, an individual ZIP with one file per stream. Every check runs for both versions.
// Run with `node --test` (scripts/sdk-tests does); the server comes from harness.mjs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bot, call, sdkClient, startServer, stopServer } from "./harness.mjs";

const VERSIONS = ["2.23.2", "2.19.0"];
// Node <= 2.19 sends a fixed set of start fields; >= 2.21 sends the caller's options verbatim.
const sendsAllStartOptions = (version) => version !== "2.19.0";
const RECORD_MS = 3000; // long enough for a duration of at least 1 s and a few keyframes
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
before(async () => {
  server = await startServer();
});
after(() => stopServer(server));

// --- helpers -----------------------------------------------------------------------------------

/** listArchives answers (err, archives, totalCount). */
const list = (ot, options = {}) =>
  new Promise((resolve, reject) =>
    ot.listArchives(options, (err, items, total) => (err ? reject(err) : resolve({ items, total }))));

/** A routed session with one real-media publishing bot per name; `bots` collects them. */
async function routedSession(ot, bots, publishers = ["alice-cam"]) {
  const session = (await call(ot, "createSession", { mediaMode: "routed" })).sessionId;
  const started = [];
  for (const name of publishers) {
    const token = ot.generateToken(session, { role: "publisher", data: name });
    const b = await bot(server, session, token, { publish: name, realMedia: true });
    bots.push(b);
    started.push(b);
  }
  return { session, publishers: started };
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

/** Polls getArchive until the stopped archive has been processed; returns the last one. */
async function waitUntilProcessed(ot, id, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const a = await call(ot, "getArchive", id);
    if (a.status !== "stopped" || Date.now() > deadline) return a;
    await sleep(250);
  }
}

async function download(url) {
  const r = await fetch(url);
  assert.equal(r.status, 200, `download answered ${r.status}`);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(Number(r.headers.get("content-length")), body.length);
  return body;
}

/** What startArchive returns (compat 7.1). */
function assertFresh(a, session, { name, outputMode, startedAt }) {
  const apiKey = Number(server.projects[0].api_key);
  assert.equal(a.status, "started");
  assert.match(a.id, UUID);
  assert.equal(a.sessionId, session);
  assert.equal(a.name, name);
  assert.equal(a.outputMode, outputMode);
  assert.deepEqual([a.hasAudio, a.hasVideo], [true, true]);
  assert.deepEqual([a.projectId, a.partnerId], [apiKey, apiKey]);
  assert.equal(typeof a.createdAt, "number");
  assert.ok(Math.abs(a.createdAt - startedAt) < 60_000, `createdAt ${a.createdAt} is not ms near ${startedAt}`);
  assert.deepEqual([a.size, a.duration, a.url, a.reason], [0, 0, null, ""]);
}

function assertAvailable(a, id, outputMode) {
  assert.equal(a.id, id);
  assert.equal(a.status, "available", `archive ended as ${a.status} (${a.reason})`);
  assert.equal(a.outputMode, outputMode);
  assert.ok(Number.isInteger(a.size) && a.size > 0, `size ${a.size}`);
  assert.ok(Number.isInteger(a.duration) && a.duration >= 1, `duration ${a.duration}`);
  assert.match(a.url, /^https?:\/\//);
}

function ffprobe(data) {
  const dir = mkdtempSync(join(tmpdir(), "conclave-archive-"));
  try {
    const path = join(dir, "archive.mp4");
    writeFileSync(path, data);
    const r = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height:format=duration", "-of", "json", path], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The names in a ZIP's central directory (ZIP64 aware), without extracting anything. */
function zipNames(buf) {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(eocd >= 0, "no end of central directory");
  let entries = buf.readUInt16LE(eocd + 10);
  let offset = buf.readUInt32LE(eocd + 16);
  if (offset === 0xffffffff || entries === 0xffff) {
    const locator = eocd - 20;
    assert.equal(buf.readUInt32LE(locator), 0x07064b50, "no ZIP64 locator");
    const z64 = Number(buf.readBigUInt64LE(locator + 8));
    assert.equal(buf.readUInt32LE(z64), 0x06064b50, "no ZIP64 end of central directory");
    entries = Number(buf.readBigUInt64LE(z64 + 32));
    offset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  const names = [];
  for (let i = 0; i < entries; i++) {
    assert.equal(buf.readUInt32LE(offset), 0x02014b50, "bad central directory entry");
    const [nameLen, extraLen, commentLen] = [28, 30, 32].map((o) => buf.readUInt16LE(offset + o));
    names.push(buf.subarray(offset + 46, offset + 46 + nameLen).toString("utf8"));
    offset += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

// --- the tests ---------------------------------------------------------------------------------

for (const version of VERSIONS) {
  describe(`opentok ${version} archives`, () => {
    const sdk = (project = 0) => sdkClient(server, version, project);

    test("composed: start, get, stop, download the MP4, list, delete", () => withBots(async (bots) => {
      const ot = sdk();
      const { session } = await routedSession(ot, bots, ["alice-cam", "bob-cam"]);
      const name = `node ${version} composed`;

      const startedAt = Date.now();
      const a = await call(ot, "startArchive", session, { name, outputMode: "composed", resolution: "640x480" });
      assertFresh(a, session, { name, outputMode: "composed", startedAt });
      assert.equal(a.resolution, "640x480");
      assert.equal((await call(ot, "getArchive", a.id)).status, "started");
      await sleep(RECORD_MS);

      const stopped = await call(ot, "stopArchive", a.id);
      assert.deepEqual([stopped.id, stopped.status, stopped.url, stopped.reason], [a.id, "stopped", null, "user initiated"]);
      await assert.rejects(call(ot, "stopArchive", a.id), /started state/); // 409: not recording

      const done = await waitUntilProcessed(ot, a.id);
      assertAvailable(done, a.id, "composed");
      assert.deepEqual([done.name, done.sessionId, done.createdAt], [name, session, a.createdAt]);
      const data = await download(done.url);
      assert.equal(data.length, done.size);
      assert.equal(data.subarray(4, 8).toString("latin1"), "ftyp");
      const probe = ffprobe(data);
      const video = probe.streams.find((s) => s.codec_type === "video");
      assert.deepEqual(probe.streams.map((s) => s.codec_type).sort(), ["audio", "video"]);
      assert.deepEqual([video.width, video.height], [640, 480]);
      assert.ok(Number(probe.format.duration) >= 1, probe.format.duration);

      let listed = await list(ot, { sessionId: session });
      assert.equal(listed.total, 1);
      assert.deepEqual(listed.items.map((x) => [x.id, x.status]), [[a.id, "available"]]);
      assert.match(listed.items[0].url, /^https?:\/\//);
      assert.ok((await list(ot, { count: 1000 })).items.some((x) => x.id === a.id));

      assert.equal(await call(ot, "deleteArchive", a.id), undefined);
      assert.equal((await call(ot, "getArchive", a.id)).status, "deleted");
      listed = await list(ot, { sessionId: session });
      assert.deepEqual([listed.total, listed.items], [0, []]);
      assert.ok(!(await list(ot, { count: 1000 })).items.some((x) => x.id === a.id));
      assert.equal((await fetch(done.url)).status, 404); // the file went with it
    }));

    test("individual: the Archive object's stop and delete, a ZIP with one file per stream", () => withBots(async (bots) => {
      const ot = sdk();
      const { session, publishers } = await routedSession(ot, bots, ["carol-cam", "dave-cam"]);
      const name = `node ${version} individual`;

      const startedAt = Date.now();
      const a = await call(ot, "startArchive", session, { name, outputMode: "individual" });
      assertFresh(a, session, { name, outputMode: "individual", startedAt });
      await sleep(RECORD_MS);

      const stopped = await call(a, "stop"); // the Archive object's own method
      assert.equal(stopped.status, "stopped");
      const done = await waitUntilProcessed(ot, a.id);
      assertAvailable(done, a.id, "individual");
      const data = await download(done.url);
      assert.equal(data.length, done.size);
      assert.equal(data.subarray(0, 2).toString("latin1"), "PK");
      const names = zipNames(data);
      const media = names.filter((n) => !n.endsWith(".json"));
      assert.equal(names.filter((n) => n.endsWith(".json")).length, 1, names.join(", "));
      assert.deepEqual(media.map((n) => n.replace(/\.[^.]+$/, "")).sort(), publishers.map((b) => b.streamId).sort());

      const listed = await list(ot, { sessionId: session });
      assert.deepEqual([listed.total, listed.items.map((x) => x.id), listed.items[0].outputMode], [1, [a.id], "individual"]);

      await call(done, "delete"); // the Archive object's own method
      assert.equal((await call(ot, "getArchive", a.id)).status, "deleted");
      assert.equal((await list(ot, { sessionId: session })).total, 0);
    }));

    test("start refusals (relayed, another project's session, already recording) and multiArchiveTag", () => withBots(async (bots) => {
      const ot = sdk();
      // 409 on a relayed session. Node 2.19 maps it to its own message; 2.23.2 (through an
      // argument-order bug, compat 6.2) reports the server's message in a generic error.
      const conflict = (serverMessage) =>
        version === "2.19.0" ? /Recording already in progress or session not using OpenTok Media Router/ : new RegExp(`Unexpected response from OpenTok: .*${serverMessage}`);
      const relayed = (await call(ot, "createSession", {})).sessionId;
      await assert.rejects(call(ot, "startArchive", relayed, {}), conflict("routed"));
      const theirs = (await call(sdk(1), "createSession", { mediaMode: "routed" })).sessionId;
      await assert.rejects(call(ot, "startArchive", theirs, {}), /Session not found/); // 404

      // One archive per multiArchiveTag; no tag counts as a tag of its own (an automatic,
      // untagged archive can run beside a manual one with a tag).
      const { session } = await routedSession(ot, bots);
      const first = await call(ot, "startArchive", session, {});
      assert.deepEqual([first.status, first.name ?? null, first.outputMode], ["started", null, "composed"]);
      await assert.rejects(call(ot, "startArchive", session, {}), conflict("already")); // 409, no tag

      const one = await call(ot, "startArchive", session, { name: "one", multiArchiveTag: "one", maxBitrate: 2_000_000 });
      const two = await call(ot, "startArchive", session, { name: "two", multiArchiveTag: "two" });
      assert.deepEqual([one.status, two.status], ["started", "started"]);
      assert.equal(new Set([first.id, one.id, two.id]).size, 3);
      // maxBitrate is only sent by SDKs that pass the caller's options through.
      assert.equal(one.maxBitrate ?? null, sendsAllStartOptions(version) ? 2_000_000 : null);
      await assert.rejects(call(ot, "startArchive", session, { multiArchiveTag: "one" }), conflict("already")); // same tag
      await assert.rejects(call(ot, "startArchive", session, {}), conflict("already")); // still one untagged
      const running = (await list(ot, { sessionId: session })).items.filter((x) => x.status === "started");
      assert.deepEqual(running.map((x) => x.id).sort(), [first.id, one.id, two.id].sort());

      // A recording archive cannot be deleted (409) and keeps recording.
      await assert.rejects(call(ot, "deleteArchive", one.id));
      assert.equal((await call(ot, "getArchive", one.id)).status, "started");
      for (const x of [first, one, two]) assert.equal((await call(ot, "stopArchive", x.id)).status, "stopped");
      // With the tag free again, it can be used again.
      const again = await call(ot, "startArchive", session, { multiArchiveTag: "one" });
      assert.equal((await call(ot, "stopArchive", again.id)).status, "stopped");
    }));

    test("list: newest first, count is the total, offset/count paging, sessionId filter", () => withBots(async (bots) => {
      const ot = sdk();
      const { session } = await routedSession(ot, bots);
      const { session: other } = await routedSession(ot, bots, ["other-cam"]);
      const ids = [];
      for (const name of ["p0", "p1", "p2"]) {
        const a = await call(ot, "startArchive", session, { name });
        await sleep(1000);
        await call(ot, "stopArchive", a.id);
        ids.push(a.id);
      }
      const elsewhere = await call(ot, "startArchive", other, { name: "elsewhere" });
      const newestFirst = [...ids].reverse();

      const all = await list(ot, { sessionId: session });
      assert.equal(all.total, 3);
      assert.deepEqual(all.items.map((x) => x.id), newestFirst);
      assert.deepEqual(all.items.map((x) => x.name), ["p2", "p1", "p0"]);
      assert.ok(all.items.every((x) => x.sessionId === session));

      // total is everything that matched, not the page size (the SDK omits offset 0).
      let page = await list(ot, { offset: 1, count: 1, sessionId: session });
      assert.deepEqual([page.total, page.items.map((x) => x.id)], [3, [newestFirst[1]]]);
      page = await list(ot, { offset: 0, count: 2, sessionId: session });
      assert.deepEqual([page.total, page.items.map((x) => x.id)], [3, newestFirst.slice(0, 2)]);
      page = await list(ot, { offset: 2, count: 50, sessionId: session });
      assert.deepEqual([page.total, page.items.map((x) => x.id)], [3, newestFirst.slice(2)]);
      page = await list(ot, { offset: 3, sessionId: session });
      assert.deepEqual([page.total, page.items], [3, []]);

      // Without a filter: the whole project, newest first.
      const project = await list(ot);
      assert.ok(project.total >= 4, String(project.total));
      assert.deepEqual(project.items.slice(0, 4).map((x) => x.id), [elsewhere.id, ...newestFirst]);
      const top = await list(ot, { count: 1 });
      assert.deepEqual([top.total, top.items.map((x) => x.id)], [project.total, [elsewhere.id]]);
      assert.deepEqual((await list(ot, { sessionId: other })).items.map((x) => x.id), [elsewhere.id]);
      await call(ot, "stopArchive", elsewhere.id);
    }));

    test("another project's archive and unknown IDs are not found (404)", () => withBots(async (bots) => {
      const [ot, theirs] = [sdk(), sdk(1)];
      const { session } = await routedSession(ot, bots);
      const ours = await call(ot, "startArchive", session, { name: "ours" });

      await assert.rejects(call(theirs, "getArchive", ours.id), /Archive not found/);
      await assert.rejects(call(theirs, "stopArchive", ours.id), /Archive not found/);
      await assert.rejects(call(theirs, "deleteArchive", ours.id), /Archive not found/);
      assert.ok(!(await list(theirs, { count: 1000 })).items.some((x) => x.id === ours.id));
      assert.equal((await list(theirs, { sessionId: session })).total, 0);
      assert.equal((await call(ot, "getArchive", ours.id)).status, "started"); // untouched

      const unknown = randomUUID();
      for (const method of ["getArchive", "stopArchive", "deleteArchive"]) {
        await assert.rejects(call(ot, method, unknown), /Archive not found/, method);
      }
      await assert.rejects(call(ot, "getArchive", "not-an-archive-id"), /Archive not found/);
      assert.equal((await call(ot, "stopArchive", ours.id)).status, "stopped");
    }));
  });
}
