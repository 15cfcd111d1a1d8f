// Cluster mode in a real browser: two Conclave nodes share a data directory (SQLite; the Rust
// cluster tests use PostgreSQL) and a real redis-server. The browser SDK joins through one
// node, is redirected to the node hosting the session, and when that node is killed (-9) its
// reconnection logic joins again through the node it started from, where the session is
// placed anew: it is connected again, with a new connection, and a signal from a participant
// on that node reaches it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { createHmac, randomUUID } from "node:crypto";
import { BIN, launch } from "./lib.mjs";

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

function cli(dir, ...args) {
  const r = spawnSync(BIN, args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

async function startNode(data, id, port, redisUrl) {
  const log = join(data, `${id}.log`);
  const proc = spawn(BIN, ["serve", "--demo", "--data-dir", data, "--listen", `127.0.0.1:${port}`, "--redis-url", redisUrl, "--node-id", id,
    "--advertise-url", `http://127.0.0.1:${port}`, "--rtc-host", "127.0.0.1", "--reconnect-grace", "2s"], {
    env: { ...process.env, CONCLAVE_DEMO_PASSWORD: "participant-pass-1", CONCLAVE_DEMO_MODERATOR_PASSWORD: "moderator-pass-2" },
    stdio: ["ignore", "pipe", openSync(log, "w")],
  });
  await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (l) => { if (l.startsWith("listening on ")) resolve(); });
    proc.on("exit", () => reject(new Error(`${id} exited: ` + readFileSync(log, "utf8"))));
  });
  return { proc, port, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/v1/signal`, logs: () => readFileSync(log, "utf8") };
}

test("cluster: the browser SDK follows redirects and rejoins after its node dies", { timeout: 120000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "conclave-cluster-e2e-"));
  const data = join(dir, "data");
  const [project] = [JSON.parse(cli(dir, "project", "create", "--json", "--data-dir", data))];
  const redisPort = await freePort();
  const redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const nodes = [await startNode(data, "node-a", await freePort(), redisUrl), await startNode(data, "node-b", await freePort(), redisUrl)];
  const browser = await launch("red");
  try {
    // A routed session and a token for the browser (minted offline by the CLI).
    const created = await (await fetch(`${nodes[0].base}/session/create`, {
      method: "POST",
      headers: { "X-OPENTOK-AUTH": restJwt(project.api_key, project.api_secret), "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: "p2p.preference=disabled",
    })).json();
    const sessionId = created[0].session_id;
    const token = cli(dir, "token", "--data-dir", data, "--api-key", project.api_key, "--session-id", sessionId, "--role", "publisher").trim();
    const page = browser.page;
    await page.goto(`${nodes[0].base}/demo/`);
    const join = async (entry) => page.evaluate(async ({ apiKey, sessionId, token, entry }) => {
      const sdk = await import("/demo/conclave.js");
      const session = sdk.initSession(apiKey, sessionId, { url: entry });
      window.clusterSession = session;
      window.events = [];
      for (const e of ["sessionReconnecting", "sessionConnected", "sessionReconnected", "sessionDisconnected", "signal"]) session.on(e, (ev) => window.events.push({ e, data: ev?.data }));
      await session.connect(token);
      return { url: session.url, connectionId: session.connection.connectionId };
    }, { apiKey: project.api_key, sessionId, token, entry });
    // Join through node A; whichever node hosts the session, make the entry the other one.
    let first = await join(nodes[0].ws);
    let entry = 0;
    if (first.url === nodes[0].ws) {
      await page.evaluate(() => window.clusterSession.disconnect());
      first = await join(nodes[1].ws);
      entry = 1;
    }
    const host = 1 - entry;
    assert.equal(first.url, nodes[host].ws, "redirected to the session's node");
    nodes[host].proc.kill("SIGKILL");
    const killed = Date.now();
    // The SDK: resume fails (the node is gone), then it joins again through its entry node.
    try {
      await page.waitForFunction((old) => window.clusterSession.connection?.connectionId !== old && window.events.filter((x) => x.e === "sessionConnected").length >= 2, first.connectionId, { timeout: 30000 });
    } catch (e) {
      const state = await page.evaluate(async ({ apiKey, sessionId, token, entry }) => {
        const sdk = await import("/demo/conclave.js");
        let manual;
        try { const s2 = sdk.initSession(apiKey, sessionId, { url: entry }); await s2.connect(token); manual = "ok " + s2.url; } catch (e) { manual = "error " + e.code + " " + e.message; }
        return JSON.stringify({ events: window.events, url: window.clusterSession.url, conn: window.clusterSession.connection, manual, lastRejoinError: window.clusterSession.lastRejoinError });
      }, { apiKey: project.api_key, sessionId, token, entry: nodes[entry].ws });
      throw new Error(`not back: ${state}\nentry log:\n${nodes[entry].logs().split("\n").filter((l) => /redirect|placed|WARN|ERROR|signal/i.test(l)).slice(-15).join("\n")}`);
    }
    const now = await page.evaluate(() => ({ url: window.clusterSession.url, connectionId: window.clusterSession.connection.connectionId }));
    assert.equal(now.url, nodes[entry].ws, "the session lives on the surviving node now");
    console.log(`browser back in the session ${Date.now() - killed} ms after kill -9 of its node`);
    // A participant on the surviving node reaches it.
    const r = await fetch(`${nodes[entry].base}/v2/project/${project.api_key}/session/${sessionId}/signal`, {
      method: "POST", headers: { "X-OPENTOK-AUTH": restJwt(project.api_key, project.api_secret), "Content-Type": "application/json" },
      body: JSON.stringify({ type: "chat", data: "still here?" }),
    });
    assert.equal(r.status, 204);
    await page.waitForFunction(() => window.events.some((x) => x.e === "signal"), null, { timeout: 10000 });
  } finally {
    await browser.browser.close();
    for (const n of nodes) n.proc.kill("SIGKILL");
    redis.kill("SIGKILL");
  }
});

/** The REST credential the official SDKs send (X-OPENTOK-AUTH). */
function restJwt(apiKey, secret) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ iss: apiKey, ist: "project", iat: now, exp: now + 300, jti: randomUUID() });
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`;
}
