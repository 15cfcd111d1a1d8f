// A participant on Conclave's own browser SDK (clients/js/conclave.js, protocol v1 over
// /v1/signal) for the mixed-session tests, next to OpenTok.js participants (otjs.mjs). One
// headless Chromium with a fake camera colour (lib.mjs `launch`) opens the page the harness's
// app server serves at /conclave/ (conclave-page.js: `window.cvTest`), and records every v1
// signaling frame both ways (tokens and SDP bodies shortened), written to the artifacts dir
// with its events and console when the harness closes. Same method names and event records
// as otjs.mjs's `Participant`, so a test drives both SDKs alike.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, launch, nearestColour } from "./lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function shorten(msg) {
  if (!msg || typeof msg !== "object") return msg;
  const m = { ...msg };
  if (typeof m.token === "string" && m.token.length > 40) m.token = `${m.token.slice(0, 12)}…(${m.token.length} chars)`;
  if (typeof m.resumeToken === "string") m.resumeToken = "…";
  if (typeof m.sdp === "string") {
    const lines = m.sdp.split(/\r?\n/);
    // Keep what matters for media debugging: m-lines, directions, mids, rids, simulcast, msid.
    m.sdp = lines.filter((l) => /^(m=|a=(mid|sendonly|recvonly|sendrecv|inactive|rid|simulcast|msid|ssrc-group)|a=candidate)/.test(l)).join(" | ");
  }
  return m;
}

export class ConclaveParticipant {
  constructor({ label, browser, page, server, app }) {
    Object.assign(this, { label, browser, page, server, app });
    this.console = [];
    this.trace = []; // v1 signaling frames, both ways
    this.sockets = [];
    this.closed = false;
    this.callTimeout = 20000;
    this.sdk = "conclave";
  }

  static async open({ label, colour, server, app, size, fps }) {
    const { browser, page } = await launch(colour, size, fps);
    const p = new ConclaveParticipant({ label, browser, page, server, app });
    page.on("console", (m) => p.console.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => p.console.push(`pageerror: ${e.message}`));
    page.on("websocket", (ws) => {
      p.sockets.push({ t: Date.now(), url: ws.url() });
      const rec = (dir) => (f) => {
        let d;
        try { d = shorten(JSON.parse(f.payload)); } catch { d = { text: String(f.payload).slice(0, 500) }; }
        if (d?.type === "ping" || d?.type === "pong") return;
        if (p.trace.length < 5000) p.trace.push({ t: Date.now(), dir, msg: d });
      };
      ws.on("framesent", rec("out"));
      ws.on("framereceived", rec("in"));
      ws.on("close", () => p.trace.push({ t: Date.now(), dir: "close", url: ws.url() }));
    });
    await page.goto(app.conclavePageUrl());
    await page.waitForFunction(() => !!window.cvTest, null, { timeout: 15000 });
    return p;
  }

  /** The server's protocol-v1 signaling URL. */
  get signalUrl() { return `${this.server.base.replace(/^http/, "ws")}/v1/signal`; }

  async call(name, ...args) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label}: cvTest.${name}() did not settle in ${this.callTimeout} ms`)), this.callTimeout);
    });
    try {
      return await Promise.race([this.page.evaluate(([n, a]) => window.cvTest[n](...a), [name, args]), timeout]);
    } catch (e) {
      if (String(e.message).includes("did not settle")) throw new Error(`${e.message}\n${await this.describe()}`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  init(sessionId, { subscribe = true } = {}) {
    this.sessionId = sessionId;
    return this.call("init", { url: this.signalUrl, apiKey: this.server.apiKey, sessionId, subscribe });
  }

  connect(token) { return this.call("connect", token); }

  /** init + connect, and fail unless connected. Returns the connectionId. */
  async join(sessionId, token, opts) {
    await this.init(sessionId, opts);
    const r = await this.connect(token);
    if (!r.ok) throw new Error(`${this.label}: connect failed: ${JSON.stringify(r)}\n${this.tail()}`);
    this.connectionId = r.connectionId;
    this.capabilities = r.capabilities;
    this.mediaMode = r.mediaMode;
    return r.connectionId;
  }

  async publish(opts = {}) {
    const r = await this.call("publish", { name: this.label, ...opts });
    if (!r.ok) throw new Error(`${this.label}: publish failed: ${JSON.stringify(r)}\n${this.tail()}`);
    this.streamId = r.streamId;
    return r.streamId;
  }

  subscribe(streamId) { return this.call("subscribe", streamId); }
  signal(opts) { return this.call("signal", opts); }
  state() { return this.call("state"); }
  stats(streamId) { return this.call("stats", streamId ?? null); }
  colour(streamId) { return this.call("colour", streamId ?? null); }

  events(match = {}, since = -1) {
    return this.page.evaluate(([m, s]) => window.cvTest.events.filter((e) => e.seq > s && Object.entries(m).every(([k, v]) => e[k] === v)), [match, since]);
  }

  mark() { return this.page.evaluate(() => window.cvTest.events.length - 1); }

  async waitEvents(match, { count = 1, since = -1, timeout = 15000 } = {}) {
    try {
      await this.page.waitForFunction(
        ([m, s, n]) => window.cvTest.events.filter((e) => e.seq > s && Object.entries(m).every(([k, v]) => e[k] === v)).length >= n,
        [match, since, count], { timeout, polling: 100 });
    } catch {
      throw new Error(`${this.label}: no ${count} event(s) matching ${JSON.stringify(match)} within ${timeout} ms.\n${await this.describe()}`);
    }
    return this.events(match, since);
  }

  async waitEvent(match, opts) { return (await this.waitEvents(match, opts))[0]; }

  /** Waits until the subscriber of `streamId` decodes video and receives audio. */
  async waitForMedia(streamId, { timeout = 25000 } = {}) {
    const deadline = Date.now() + timeout;
    await this.waitEvent({ type: "subscribed", streamId }, { timeout });
    let last = null;
    while (Date.now() < deadline) {
      last = await this.stats(streamId).catch((e) => ({ error: String(e) }));
      if (last?.video?.framesDecoded > 0 && last?.audio?.packetsReceived > 0) return last;
      await sleep(250);
    }
    throw new Error(`${this.label}: no media from stream ${streamId} in ${timeout} ms: ${JSON.stringify(last)}\n${await this.describe()}`);
  }

  async waitForColour(streamId, expected, { timeout = 10000 } = {}) {
    const deadline = Date.now() + timeout;
    let rgb = null;
    while (Date.now() < deadline) {
      rgb = await this.colour(streamId);
      if (rgb && nearestColour(rgb) === expected && Math.max(...rgb) > 100) return rgb;
      await sleep(250);
    }
    return rgb;
  }

  async screenshot(name) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await this.page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  }

  async describe() {
    const ev = await this.page.evaluate(() => window.cvTest?.events.slice(-25) ?? []).catch(() => []);
    const frames = this.trace.slice(-10).map((f) => `${f.dir} ${JSON.stringify(f.msg ?? f.url)}`.slice(0, 300));
    return `${this.label} events: ${JSON.stringify(ev)}\n${this.label} last v1 frames: ${frames.join(" | ")}\n${this.tail()}`;
  }

  tail() { return `${this.label} console: ${this.console.slice(-10).join(" | ")}`; }

  async writeTrace(prefix) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const f = join(ARTIFACTS, `${prefix}-${this.label}`);
    const events = await this.page.evaluate(() => window.cvTest?.events ?? []).catch(() => []);
    writeFileSync(`${f}.events.jsonl`, events.map((x) => JSON.stringify(x)).join("\n") + "\n");
    writeFileSync(`${f}.v1.jsonl`, this.trace.map((x) => JSON.stringify(x)).join("\n") + "\n");
    writeFileSync(`${f}.console.log`, this.console.join("\n") + "\n");
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.browser.close().catch(() => {});
  }
}

/** Opens a Conclave-SDK participant in a harness (otjs.mjs `harness`), closed with it. */
export async function conclaveParticipant(h, { label, colour, size, fps }) {
  const p = await ConclaveParticipant.open({ label, colour, server: h.server, app: h.app, size, fps });
  h.participants.push(p);
  return p;
}
