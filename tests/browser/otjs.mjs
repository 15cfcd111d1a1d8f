// Helpers for the tests that drive the official, unmodified OpenTok.js browser client
// (npm `@opentok/client`) against Conclave:
//  - `conclave serve` with a fresh project (no demo app), sessions made over REST exactly as
//    the OpenTok server SDKs do, client tokens from the CLI (`--format t1`);
//  - a static "customer app" HTTP server on another loopback port (another origin) serving a
//    test page, the installed OpenTok.js dist file and `otjs-page.js` (the in-page helpers);
//  - one headless Chromium per participant with a fake camera colour (lib.mjs `launch`), a
//    record of every URL the page asked for, and a decoded trace of the Rumor WebSocket
//    frames, written to the artifacts dir with the server log when the harness closes;
//  - a TCP proxy to cut a client's network (socket reconnection) without touching the client.
//
// Licence: OpenTok.js is under Vonage's terms of use. `tests/browser/run` installs it from npm
// into a cache dir outside the repo; nothing of it is committed or copied here.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, mkdirSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTcpServer, connect as tcpConnect } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ARTIFACTS, BIN, launch, nearestColour } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const OTJS_MAIN = "2.35.2";
export const OTJS_OLD = "2.22.5";
const CACHE = process.env.CONCLAVE_TEST_CACHE || join(homedir(), ".cache", "conclave-test");
const OTJS_DIRS = {
  "2.35.2": process.env.CONCLAVE_OTJS_2_35 || join(CACHE, "otjs-2.35.2"),
  "2.22.5": process.env.CONCLAVE_OTJS_2_22 || join(CACHE, "otjs-2.22.5"),
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The installed OpenTok.js dist file of one version (installed by tests/browser/run). */
export function otjsFile(version) {
  const dir = OTJS_DIRS[version];
  if (!dir) throw new Error(`no install dir known for OpenTok.js ${version}`);
  const file = join(dir, "node_modules", "@opentok", "client", "dist", "js", "opentok.js");
  if (!existsSync(file)) throw new Error(`OpenTok.js ${version} is not installed at ${file}: tests/browser/run installs it from npm`);
  return file;
}

export function cli(...args) {
  const r = spawnSync(BIN, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${BIN} ${args.join(" ")} failed (${r.status ?? r.error}): ${r.stderr}`);
  return r.stdout;
}

const b64url = (b) => Buffer.from(b).toString("base64url");

/** The REST credential the OpenTok server SDKs send in X-OPENTOK-AUTH. */
export function restJwt(apiKey, secret) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ iss: String(apiKey), ist: "project", iat: now, exp: now + 300, jti: randomUUID() }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** `conclave serve` (no demo) on loopback with a fresh project, and its REST calls. */
export async function startConclave({ args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "conclave-otjs-"));
  const data = join(dir, "data");
  const project = JSON.parse(cli("project", "create", "--data-dir", data, "--json"));
  const apiKey = String(project.api_key);
  const apiSecret = project.api_secret;
  const log = join(dir, "server.log");
  const proc = spawn(BIN, ["serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--rtc-host", "127.0.0.1", ...args], {
    stdio: ["ignore", "pipe", openSync(log, "w")],
  });
  const stdout = [];
  // Every media worker's UDP port (a session's media uses one of them).
  let mediaPorts = [];
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not print its address in 20 s: " + readFileSync(log, "utf8"))), 20000);
    createInterface({ input: proc.stdout }).on("line", (l) => {
      stdout.push(l);
      if (l.startsWith("media on ")) mediaPorts = [...l.matchAll(/udp:\/\/[^ ]+:(\d+)/g)].map((x) => Number(x[1]));
      if (l.startsWith("listening on ")) { clearTimeout(timer); resolve(l.slice(13).trim().split(/\s/)[0]); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}): ` + readFileSync(log, "utf8"))); });
  });

  const rest = async (method, path, { json, form, headers = {} } = {}) => {
    const h = { "X-OPENTOK-AUTH": restJwt(apiKey, apiSecret), Accept: "application/json", ...headers };
    let body;
    if (json !== undefined) { h["Content-Type"] = "application/json"; body = JSON.stringify(json); }
    if (form !== undefined) { h["Content-Type"] = "application/x-www-form-urlencoded"; body = new URLSearchParams(form).toString(); }
    const r = await fetch(base + path, { method, headers: h, body, signal: AbortSignal.timeout(15000) });
    const text = await r.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, text, json: parsed, headers: r.headers };
  };
  const v2 = (path) => `/v2/project/${apiKey}/${path}`;

  const server = {
    base, dir, data, proc, apiKey, apiSecret, mediaPorts,
    logs: () => `${stdout.join("\n")}\n${readFileSync(log, "utf8")}`,
    rest,
    /** POST /session/create as the Node SDK sends it: relayed = p2p.preference=enabled. */
    async createSession({ mediaMode = "relayed", maxParticipants, extra = {} } = {}) {
      const form = { archiveMode: "manual", "p2p.preference": mediaMode === "routed" ? "disabled" : "enabled", ...extra };
      if (maxParticipants !== undefined) form.maxParticipants = String(maxParticipants);
      const r = await rest("POST", "/session/create", { form });
      if (r.status !== 200 || !Array.isArray(r.json) || !r.json[0]?.session_id) throw new Error(`session/create: ${r.status} ${r.text}`);
      return r.json[0].session_id;
    },
    /** A client token from the CLI, in the legacy T1 format the OpenTok server SDKs mint
     *  (`format: "jwt"`: the CLI's default format, as a Conclave app would mint it). */
    token(sessionId, role = "publisher", { connectionData, expireIn, format = "t1" } = {}) {
      const args = ["token", "--data-dir", data, "--session-id", sessionId, "--role", role, "--format", format];
      if (connectionData !== undefined) args.push("--data", connectionData);
      if (expireIn) args.push("--expire-in", expireIn);
      return cli(...args).trim();
    },
    /** A T1 token minted here the way the OpenTok Node SDK does (HMAC-SHA1 with the API
     *  secret), for any session ID, even one the server never made. */
    mintT1(sessionId, role = "publisher", { createdAgo = 0, expiresIn = 3600 } = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload = new URLSearchParams({
        session_id: sessionId, create_time: String(now - createdAgo), expire_time: String(now + expiresIn), role,
        nonce: String(Math.random()).slice(2), initial_layout_class_list: "",
      }).toString();
      const sig = createHmac("sha1", apiSecret).update(payload).digest("hex");
      return "T1==" + Buffer.from(`partner_id=${apiKey}&sig=${sig}:${payload}`).toString("base64");
    },
    /** A well-formed session ID of this project that the server never created. */
    unknownSessionId() {
      const rnd = randomUUID().replace(/-/g, "");
      return "1_" + Buffer.from(`1~${apiKey}~~${Date.now()}~${rnd}~P~~`).toString("base64url");
    },
    signal: (sessionId, body, connectionId) =>
      rest("POST", v2(`session/${sessionId}/${connectionId ? `connection/${connectionId}/` : ""}signal`), { json: body }),
    forceDisconnect: (sessionId, connectionId) => rest("DELETE", v2(`session/${sessionId}/connection/${connectionId}`)),
    startArchive: (sessionId, opts = {}) => rest("POST", v2("archive"), { json: { sessionId, outputMode: "composed", ...opts } }),
    stopArchive: (id) => rest("POST", v2(`archive/${id}/stop`)),
    getArchive: (id) => rest("GET", v2(`archive/${id}`)),
    /** Polls GET archive/{id} until it leaves started/paused/stopped (normally `available`). */
    async waitArchive(id, timeout = 60000) {
      const deadline = Date.now() + timeout;
      let last = null;
      while (Date.now() < deadline) {
        last = await server.getArchive(id);
        if (last.status === 200 && !["started", "paused", "stopped"].includes(last.json?.status)) return last.json;
        await sleep(250);
      }
      throw new Error(`archive ${id} not ready in ${timeout} ms: ${last?.status} ${last?.text}`);
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.on("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    },
  };
  return server;
}

function page(version) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>OpenTok.js ${version} on Conclave</title>
<style>body{font:14px sans-serif;margin:8px;background:#fff}#publisher,#subscribers{display:flex;gap:8px;flex-wrap:wrap;margin:6px 0}
.ot-publisher,.ot-subscriber{width:320px;height:240px}</style></head>
<body><h1>OpenTok.js ${version} on Conclave</h1>
<div id="publisher"></div><div id="subscribers"></div>
<script src="opentok.js"></script>
<script src="/otjs-page.js"></script>
</body></html>`;
}

// A page with Conclave's own browser SDK (clients/js/conclave.js, an ES module served
// unmodified) and the in-page helpers of conclave-page.js (`window.cvTest`), for mixed sessions.
function conclavePage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Conclave browser SDK</title>
<style>body{font:14px sans-serif;margin:8px;background:#fff}#publisher,#subscribers{display:flex;gap:8px;flex-wrap:wrap;margin:6px 0}
video{width:320px;height:240px;background:#000}</style></head>
<body><h1>Conclave browser SDK</h1>
<div id="publisher"></div><div id="subscribers"></div>
<script type="module" src="/conclave-page.js"></script>
</body></html>`;
}
const CONCLAVE_SDK = join(here, "..", "..", "clients", "js", "conclave.js");

/** The customer's app: a static HTTP server on its own loopback port (another origin). */
export async function startAppServer() {
  const requests = [];
  const http = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url });
    const send = (status, type, body) => { res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store" }); res.end(body); };
    const m = req.url.match(/^\/otjs\/([0-9.]+)\/(opentok\.js)?(\?.*)?$/);
    try {
      if (req.method !== "GET") return send(405, "text/plain", "GET only");
      if (m && m[2]) return send(200, "application/javascript; charset=utf-8", readFileSync(otjsFile(m[1])));
      if (m) { otjsFile(m[1]); return send(200, "text/html; charset=utf-8", page(m[1])); }
      if (req.url === "/otjs-page.js") return send(200, "application/javascript; charset=utf-8", readFileSync(join(here, "otjs-page.js")));
      if (req.url === "/conclave/") return send(200, "text/html; charset=utf-8", conclavePage());
      if (req.url === "/conclave/conclave.js") return send(200, "application/javascript; charset=utf-8", readFileSync(CONCLAVE_SDK));
      if (req.url === "/conclave-page.js") return send(200, "application/javascript; charset=utf-8", readFileSync(join(here, "conclave-page.js")));
      if (req.url === "/favicon.ico") return send(204, "image/x-icon", "");
      return send(404, "text/plain", "not found");
    } catch (e) { return send(500, "text/plain", String(e.message)); }
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${http.address().port}`;
  return {
    url, requests,
    pageUrl: (version = OTJS_MAIN) => `${url}/otjs/${version}/`,
    conclavePageUrl: () => `${url}/conclave/`,
    close: () => new Promise((r) => { http.closeAllConnections?.(); http.close(() => r()); }),
  };
}

/**
 * A TCP proxy in front of the Conclave server: point a page's `OT.setProxyUrl` at `base` and
 * the test can cut that page's network. `dropWebSockets()` resets the TCP connections that
 * carried a WebSocket upgrade (the client sees an abnormal close, as on a network loss);
 * `block(true)` also refuses new connections until `block(false)`.
 */
export async function startTcpProxy(targetBase) {
  const target = new URL(targetBase);
  const conns = new Set();
  let blocked = false;
  let upgrades = 0;
  const srv = createTcpServer((client) => {
    if (blocked) { client.destroy(); return; }
    const upstream = tcpConnect(Number(target.port), target.hostname);
    const c = { client, upstream, ws: false, head: "" };
    conns.add(c);
    const sniff = (chunk) => {
      c.head += chunk.toString("latin1");
      if (/\r\nupgrade:\s*websocket/i.test(c.head)) { c.ws = true; upgrades += 1; }
      if (c.ws || c.head.length > 8192 || c.head.includes("\r\n\r\n")) client.off("data", sniff);
    };
    client.on("data", sniff);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); conns.delete(c); };
    client.on("error", end); upstream.on("error", end);
    client.on("close", end); upstream.on("close", end);
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${srv.address().port}`,
    get upgrades() { return upgrades; },
    dropWebSockets() {
      let n = 0;
      for (const c of conns) if (c.ws) { c.client.resetAndDestroy?.() ?? c.client.destroy(); c.upstream.destroy(); conns.delete(c); n += 1; }
      return n;
    },
    block(on) { blocked = on; },
    close: () => new Promise((r) => { for (const c of conns) { c.client.destroy(); c.upstream.destroy(); } srv.close(() => r()); }),
  };
}

/** Decodes one Rumor frame (protocol doc 5.2) for the trace; null when it is not one. */
export function decodeRumor(buf) {
  try {
    const b = Buffer.from(buf);
    let o = 6;
    const type = b.readUInt8(o); o += 1;
    const nAddr = b.readUInt8(o); o += 1;
    const addresses = [];
    for (let i = 0; i < nAddr; i++) { const n = b.readUInt16BE(o); o += 2; addresses.push(b.toString("utf8", o, o + n)); o += n; }
    const nHead = b.readUInt8(o); o += 1;
    const headers = {};
    for (let i = 0; i < nHead; i++) {
      const kn = b.readUInt16BE(o); o += 2; const k = b.toString("utf8", o, o + kn); o += kn;
      const vn = b.readUInt16BE(o); o += 2; headers[k] = b.toString("utf8", o, o + vn); o += vn;
    }
    const text = b.toString("utf8", o);
    let body = text;
    try { body = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
    const names = { 0: "SUBSCRIBE", 1: "UNSUBSCRIBE", 2: "MESSAGE", 3: "CONNECT", 4: "DISCONNECT", 7: "PING", 8: "PONG", 9: "STATUS" };
    return { type: names[type] ?? type, addresses, headers, body };
  } catch {
    return null;
  }
}

const redactToken = (s) => (typeof s === "string" && s.length > 40 ? `${s.slice(0, 12)}…(${s.length} chars)` : s);

function matches(e, match) {
  return Object.entries(match).every(([k, v]) => e[k] === v);
}

/** One browser with OpenTok.js loaded, driven through `window.otTest` (otjs-page.js). */
export class Participant {
  constructor({ label, browser, page, server, app, version, base }) {
    Object.assign(this, { label, browser, page, server, app, version, base });
    this.requests = []; // every HTTP(S) URL the page asked for
    this.responses = []; // the status of every HTTP answer
    this.sockets = []; // every WebSocket URL it opened
    this.console = [];
    this.trace = []; // decoded Rumor frames, both ways
    this.closed = false;
    this.callTimeout = 20000;
  }

  static async open({ label, colour, version = OTJS_MAIN, server, app, base, size, fps }) {
    const { browser, page } = await launch(colour, size, fps);
    const p = new Participant({ label, browser, page, server, app, version, base: base ?? server.base });
    page.context().on("request", (r) => {
      const h = r.headers();
      p.requests.push({ t: Date.now(), method: r.method(), url: r.url(), auth: redactToken(h["x-opentok-auth"] ?? h["x-tb-token-auth"]), clientVersion: h["x-tb-client-version"] ?? null, connectionIdHeader: h["x-tb-connectionid"] ?? null });
    });
    page.context().on("response", (r) => p.responses.push({ t: Date.now(), status: r.status(), method: r.request().method(), url: r.url() }));
    page.on("console", (m) => p.console.push(`${m.type()}: ${m.text()}`));
    page.on("websocket", (ws) => {
      p.sockets.push({ t: Date.now(), url: ws.url() });
      const rec = (dir) => (f) => {
        const payload = f.payload;
        const d = typeof payload === "string" ? { text: payload } : decodeRumor(payload) ?? { bytes: payload.length };
        if (d.headers?.["X-TB-TOKEN-AUTH"]) d.headers["X-TB-TOKEN-AUTH"] = redactToken(d.headers["X-TB-TOKEN-AUTH"]);
        if (d.type === "PING" || d.type === "PONG") return;
        if (p.trace.length < 5000) p.trace.push({ t: Date.now(), dir, url: ws.url(), ...d });
      };
      ws.on("framesent", rec("out"));
      ws.on("framereceived", rec("in"));
      ws.on("close", () => p.trace.push({ t: Date.now(), dir: "close", url: ws.url() }));
      ws.on("socketerror", (e) => p.trace.push({ t: Date.now(), dir: "error", url: ws.url(), error: String(e) }));
    });
    await page.goto(app.pageUrl(version));
    await page.waitForFunction(() => typeof window.OT === "object" && !!window.otTest, null, { timeout: 15000 });
    return p;
  }

  /** Calls `otTest[name](...args)` in the page, failing after `this.callTimeout` ms (a server
   *  that never answers leaves OpenTok.js's connect() pending for ever). */
  async call(name, ...args) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label}: otTest.${name}() did not settle in ${this.callTimeout} ms`)), this.callTimeout);
    });
    try {
      return await Promise.race([this.page.evaluate(([n, a]) => window.otTest[n](...a), [name, args]), timeout]);
    } catch (e) {
      if (String(e.message).includes("did not settle")) throw new Error(`${e.message}\n${await this.describe()}`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** OT.setProxyUrl(base) (first time only) and OT.initSession(apiKey, sessionId). */
  init(sessionId, { subscribe = true, apiKey, encryptionSecret } = {}) {
    this.sessionId = sessionId;
    return this.call("init", { base: this.base, apiKey: apiKey ?? this.server.apiKey, sessionId, subscribe, encryptionSecret });
  }

  connect(token) { return this.call("connect", token); }

  /** init + connect, and fail unless connected. Returns the connectionId. */
  async join(sessionId, token, opts) {
    await this.init(sessionId, opts);
    const r = await this.connect(token);
    if (!r.ok) throw new Error(`${this.label}: connect failed: ${JSON.stringify(r)}\n${this.tail()}`);
    this.connectionId = r.connectionId;
    this.capabilities = r.capabilities;
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

  /** Events so far (optionally only those matching every key of `match`, after seq `since`). */
  events(match = {}, since = -1) {
    return this.page.evaluate(([m, s]) => window.otTest.events.filter((e) => e.seq > s && Object.entries(m).every(([k, v]) => e[k] === v)), [match, since]);
  }

  /** The seq of the last event: pass it as `since` to wait only for later events. */
  mark() { return this.page.evaluate(() => window.otTest.events.length - 1); }

  /** Waits for `count` events matching `match` (after `since`); returns them. */
  async waitEvents(match, { count = 1, since = -1, timeout = 15000 } = {}) {
    try {
      await this.page.waitForFunction(
        ([m, s, n]) => window.otTest.events.filter((e) => e.seq > s && Object.entries(m).every(([k, v]) => e[k] === v)).length >= n,
        [match, since, count], { timeout, polling: 100 });
    } catch (e) {
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

  /** Waits for the received colour of `streamId` to be `expected`; returns the mean RGB. */
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

  /** The last events and console lines, for error messages. */
  async describe() {
    const ev = await this.page.evaluate(() => window.otTest?.events.slice(-25) ?? []).catch(() => []);
    return `${this.label} events: ${JSON.stringify(ev)}\n${this.tail()}`;
  }

  tail() { return `${this.label} console: ${this.console.slice(-10).join(" | ")}`; }

  /** URLs the page requested that are neither the Conclave base nor the app's origin. */
  foreignUrls() {
    const own = [this.base, this.app.url];
    return [...this.requests.map((r) => r.url), ...this.sockets.map((s) => s.url)]
      .filter((u) => !own.some((b) => u.startsWith(b) || u.startsWith(b.replace(/^http/, "ws"))) && !u.startsWith("data:") && !u.startsWith("blob:"));
  }

  async writeTrace(prefix) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const f = join(ARTIFACTS, `${prefix}-${this.label}`);
    const events = await this.page.evaluate(() => window.otTest?.events ?? []).catch(() => []);
    writeFileSync(`${f}.events.jsonl`, events.map((x) => JSON.stringify(x)).join("\n") + "\n");
    writeFileSync(`${f}.rumor.jsonl`, this.trace.map((x) => JSON.stringify(x)).join("\n") + "\n");
    writeFileSync(`${f}.requests.jsonl`, [...this.requests, ...this.responses, ...this.sockets].sort((a, b) => a.t - b.t).map((x) => JSON.stringify(x)).join("\n") + "\n");
    writeFileSync(`${f}.console.log`, this.console.join("\n") + "\n");
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.browser.close().catch(() => {});
  }
}

/**
 * One test file's world: a Conclave server, the app server, participants and proxies; all
 * stopped by `close()` (call it from an `after` hook). `name` prefixes the artifacts.
 */
export function harness(name) {
  const h = {
    name, server: null, app: null, participants: [], proxies: [],
    async start({ serverArgs = [] } = {}) {
      h.app = await startAppServer();
      h.server = await startConclave({ args: serverArgs });
      return h;
    },
    /** An OpenTok.js participant; `size`/`fps`: its fake camera (lib.mjs colourFile). */
    async participant({ label, colour, version = OTJS_MAIN, proxy = false, size, fps }) {
      let base = h.server.base;
      let tcp = null;
      if (proxy) { tcp = await startTcpProxy(h.server.base); h.proxies.push(tcp); base = tcp.base; }
      const p = await Participant.open({ label, colour, version, server: h.server, app: h.app, base, size, fps });
      p.proxy = tcp;
      h.participants.push(p);
      return p;
    },
    async close() {
      for (const p of h.participants) {
        await p.writeTrace(h.name).catch(() => { /* best effort */ });
        await p.close();
      }
      for (const t of h.proxies) await t.close().catch(() => {});
      if (h.app) await h.app.close().catch(() => {});
      if (h.server) {
        await h.server.stop().catch(() => {});
        try { mkdirSync(ARTIFACTS, { recursive: true }); writeFileSync(join(ARTIFACTS, `${h.name}-server.log`), h.server.logs()); } catch { /* best effort */ }
      }
    },
  };
  return h;
}

/** A call where everyone publishes and subscribes to everyone else: waits for all media. */
export async function fullMesh(participants, { timeout = 30000 } = {}) {
  for (const p of participants) {
    for (const q of participants) {
      if (p === q) continue;
      await p.waitEvent({ type: "streamCreated", streamId: q.streamId }, { timeout });
      await p.waitEvent({ type: "subscribed", streamId: q.streamId }, { timeout });
    }
  }
  const stats = new Map();
  for (const p of participants) for (const q of participants) if (p !== q) stats.set(`${p.label}<-${q.label}`, await p.waitForMedia(q.streamId, { timeout }));
  return stats;
}

/** ffprobe's video stream of a file, and the mean RGB of a frame at `at` seconds. */
export function probeVideo(file, at) {
  const r = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height:format=duration", "-of", "json", file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error("ffprobe: " + r.stderr);
  const info = JSON.parse(r.stdout);
  const duration = Number(info.format?.duration ?? 0);
  const video = info.streams.find((s) => s.codec_type === "video") ?? null;
  let rgb = null;
  if (video) {
    const f = spawnSync("ffmpeg", ["-v", "error", "-ss", String(at ?? duration / 2), "-i", file, "-frames:v", "1", "-vf", "scale=16:9", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    const px = [...f.stdout];
    if (px.length >= 3) {
      const sum = [0, 0, 0];
      for (let i = 0; i + 2 < px.length; i += 3) { sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2]; }
      rgb = sum.map((x) => Math.round(x / (px.length / 3)));
    }
  }
  return { duration, video, streams: info.streams, rgb };
}
