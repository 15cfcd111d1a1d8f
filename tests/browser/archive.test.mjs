// Archiving real browser media: two Chromium participants (red and blue fake cameras, the
// browser SDK's simulcast) in a routed demo meeting are recorded over the REST archive API,
// composed and individually; the files are downloaded through the signed URL and checked with
// ffprobe (codecs, size, duration) and decoded with ffmpeg without errors. A frame from the
// middle of the composed video must show both cameras' colours side by side.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { BIN, startServer, launch, joinMeeting, waitForMedia } from "./lib.mjs";

const b64url = (b) => Buffer.from(b).toString("base64url");

/** The REST credential the official SDKs send (X-OPENTOK-AUTH, compat doc 5.1). */
function restJwt(apiKey, secret) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ iss: apiKey, ist: "project", iat: now, exp: now + 300, jti: randomUUID() }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

function cli(...args) {
  const r = spawnSync(BIN, args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function ffprobe(file) {
  const r = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name,width,height:format=duration", "-of", "json", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  return { codecs: v.streams.map((s) => s.codec_name).sort(), duration: Number(v.format.duration), video: v.streams.find((s) => s.width) };
}

function decodeErrors(file) {
  return spawnSync("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"], { encoding: "utf8" }).stderr;
}

test("archiving records real browser media, composed and individual", { timeout: 150000 }, async () => {
  const server = await startServer();
  const red = await launch("red");
  const blue = await launch("blue");
  const work = mkdtempSync(join(tmpdir(), "conclave-archive-e2e-"));
  try {
    await joinMeeting(red.page, server.base, { name: "Rosa", room: "rec1", mode: "routed" });
    await joinMeeting(blue.page, server.base, { name: "Bilal", room: "rec1", mode: "routed" });
    await waitForMedia(red.page);
    await waitForMedia(blue.page);
    const sessionId = await red.page.evaluate(() => window.conclaveDemo.sessionId);
    // The demo's project: a rotated secret gives this test a REST credential.
    const data = join(server.dir, "data");
    const [project] = JSON.parse(cli("project", "list", "--json", "--data-dir", data));
    const { api_secret: secret } = JSON.parse(cli("project", "rotate-secret", "--api-key", project.api_key, "--json", "--data-dir", data));
    const api = async (method, path, body) => {
      const r = await fetch(`${server.base}/v2/project/${project.api_key}/${path}`, {
        method, headers: { "X-OPENTOK-AUTH": restJwt(project.api_key, secret), "Content-Type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: r.status, json: r.status === 204 ? null : await r.json() };
    };
    const composed = await api("POST", "archive", { sessionId, resolution: "1280x720" });
    assert.equal(composed.status, 200, JSON.stringify(composed.json));
    const individual = await api("POST", "archive", { sessionId, outputMode: "individual", multiArchiveTag: "per-stream" });
    assert.equal(individual.status, 200, JSON.stringify(individual.json));
    await red.page.waitForTimeout(6000);
    for (const a of [composed, individual]) assert.equal((await api("POST", `archive/${a.json.id}/stop`)).status, 200);
    const done = async (id) => {
      for (let i = 0; i < 300; i++) {
        const { json } = await api("GET", `archive/${id}`);
        if (!["started", "paused", "stopped"].includes(json.status)) return json;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error("archive not ready: " + server.logs().slice(-3000));
    };
    const c = await done(composed.json.id);
    assert.equal(c.status, "available", JSON.stringify(c));
    const mp4 = join(work, "composed.mp4");
    writeFileSync(mp4, Buffer.from(await (await fetch(c.url)).arrayBuffer()));
    const probe = ffprobe(mp4);
    assert.deepEqual(probe.codecs, ["aac", "h264"]);
    assert.equal(probe.video.width, 1280);
    assert.equal(probe.video.height, 720);
    assert.ok(Math.abs(probe.duration - c.duration) <= 1, `ffprobe ${probe.duration} vs ${c.duration}`);
    assert.ok(probe.duration >= 4, `${probe.duration} s`);
    assert.equal(decodeErrors(mp4), "");
    // A frame from the middle: the left tile is one camera, the right tile the other.
    const frame = spawnSync("ffmpeg", ["-v", "error", "-ss", String(probe.duration / 2), "-i", mp4, "-frames:v", "1", "-vf", "scale=4:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    const px = [...frame.stdout];
    const colour = (i) => { const [r, g, b] = px.slice(i * 3, i * 3 + 3); return r > b ? "red" : "blue"; };
    assert.deepEqual(new Set([colour(0), colour(3)]), new Set(["red", "blue"]), `pixels ${px}`);

    const ind = await done(individual.json.id);
    assert.equal(ind.status, "available", JSON.stringify(ind));
    const zip = join(work, "individual.zip");
    writeFileSync(zip, Buffer.from(await (await fetch(ind.url)).arrayBuffer()));
    const out = join(work, "unzipped");
    assert.equal(spawnSync("python3", ["-m", "zipfile", "-e", zip, out]).status, 0);
    const list = spawnSync("python3", ["-c", "import sys,zipfile;print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))", zip], { encoding: "utf8" }).stdout.trim().split("\n");
    const webms = list.filter((n) => n.endsWith(".webm"));
    assert.equal(webms.length, 2, list.join(","));
    for (const w of webms) {
      const p = ffprobe(join(out, w));
      assert.deepEqual(p.codecs, ["opus", "vp8"], w);
      assert.ok(p.duration >= 4, `${w}: ${p.duration} s`);
      assert.equal(decodeErrors(join(out, w)), "", w);
    }
  } finally {
    await red.browser.close();
    await blue.browser.close();
    await server.stop();
  }
});
