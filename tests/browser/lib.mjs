// Shared helpers for the browser end-to-end tests: start `conclave serve --demo` on
// loopback, launch Debian Chromium with a fake camera of a given colour, log in, and read
// WebRTC stats and the colour of the video each page receives.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, existsSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.CONCLAVE_BIN || join(here, "../../target/debug/conclave");
export const ARTIFACTS = process.env.CONCLAVE_ARTIFACTS || join(here, "artifacts");
export const PASSWORD = "participant-pass-1";
export const MODERATOR_PASSWORD = "moderator-pass-2";
const COLOURS = { red: [255, 0, 0], blue: [0, 0, 255], green: [0, 255, 0] };

/** A solid-colour y4m file for Chromium's fake camera (made once with ffmpeg). */
export function colourFile(name, size = "320x240", fps = 15) {
  const dir = join(tmpdir(), "conclave-e2e-media");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${size}-${fps}.y4m`);
  if (!existsSync(file)) {
    const r = spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `color=c=${name}:s=${size}:r=${fps}`, "-t", "2", "-pix_fmt", "yuv420p", file]);
    if (r.status !== 0) throw new Error("ffmpeg failed: " + r.stderr);
  }
  return file;
}

export async function startServer(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), "conclave-e2e-"));
  const log = join(dir, "server.log");
  const proc = spawn(BIN, ["serve", "--demo", "--data-dir", join(dir, "data"), "--listen", "127.0.0.1:0", ...extraArgs], {
    env: { ...process.env, CONCLAVE_DEMO_PASSWORD: PASSWORD, CONCLAVE_DEMO_MODERATOR_PASSWORD: MODERATOR_PASSWORD },
    stdio: ["ignore", "pipe", openSync(log, "w")],
  });
  // Every media worker's UDP port (a session's media uses one of them).
  let mediaPorts = [];
  const base = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (l) => {
      if (l.startsWith("media on ")) mediaPorts = [...l.matchAll(/udp:\/\/[^ ]+:(\d+)/g)].map((x) => Number(x[1]));
      if (l.startsWith("listening on ")) resolve(l.slice(13).trim());
    });
    proc.on("exit", () => reject(new Error("server exited: " + readFileSync(log, "utf8"))));
  });
  return {
    base, dir, proc, mediaPorts,
    logs: () => readFileSync(log, "utf8"),
    async stop() { proc.kill("SIGTERM"); await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r))); },
  };
}

export async function launch(colour, size, fps) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      "--allow-loopback-in-peer-connection", `--use-file-for-fake-video-capture=${colourFile(colour, size, fps)}`,
    ],
  });
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${colour}] page error:`, e.message));
  return { browser, page };
}

/** Logs in through the demo's login form, then opens the meeting page. */
export async function joinMeeting(page, base, { name, password = PASSWORD, room, mode, secret }) {
  await page.goto(`${base}/demo/${mode ? `?mode=${mode}` : ""}${secret ? `#secret=${encodeURIComponent(secret)}` : ""}`);
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", password);
  await page.fill("input[name=room]", room);
  await Promise.all([page.waitForURL(/meeting\.html/), page.click("button[type=submit]")]);
  await page.waitForFunction(() => window.conclaveDemo?.publisher?.stream, null, { timeout: 15000 });
}

/** Inbound stats of the first subscriber on the page. */
export function inboundStats(page) {
  return page.evaluate(async () => {
    const sub = [...(window.conclaveDemo?.subscribers?.values() ?? [])][0];
    if (!sub) return null;
    const out = { video: null, audio: null, pair: null };
    const stats = await sub.getStats();
    const byId = new Map([...stats.values()].map((s) => [s.id, s]));
    for (const s of stats.values()) {
      if (s.type === "inbound-rtp") out[s.kind] = { framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0, totalAudioEnergy: s.totalAudioEnergy ?? 0 };
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        const remote = byId.get(s.remoteCandidateId);
        out.pair = { remoteAddress: remote?.address ?? remote?.ip, remotePort: remote?.port, candidateType: remote?.candidateType };
      }
    }
    return out;
  });
}

export async function waitForMedia(page, ms = 20000) {
  const deadline = Date.now() + ms;
  let last = null;
  while (Date.now() < deadline) {
    last = await inboundStats(page);
    if (last?.video?.framesDecoded > 0 && last?.audio?.packetsReceived > 0) return last;
    await page.waitForTimeout(250);
  }
  throw new Error("no media decoded in time: " + JSON.stringify(last));
}

/** Mean RGB of the first received video, drawn into a canvas. */
export function receivedColour(page) {
  return page.evaluate(() => {
    const v = document.querySelector("video.conclave-subscriber");
    const c = document.createElement("canvas");
    c.width = v.videoWidth || 320; c.height = v.videoHeight || 240;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, c.width, c.height);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
    const n = d.length / 4;
    return sum.map((x) => Math.round(x / n));
  });
}

/** The named colour closest to an RGB triple. */
export function nearestColour(rgb) {
  let best = null;
  for (const [name, ref] of Object.entries(COLOURS)) {
    const dist = ref.reduce((acc, v, i) => acc + (v - rgb[i]) ** 2, 0);
    if (!best || dist < best.dist) best = { name, dist };
  }
  return best.name;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}
