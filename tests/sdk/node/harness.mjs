// Shared by the Node SDK conformance files (*.test.mjs): the server under test, the official
// SDK clients pointed at it, and live participants (`conclave client` bots). Not a test file
// itself (its name matches none of node --test's patterns).
//
// Each test file starts its own `conclave serve` ($CONCLAVE_BIN, default target/debug/conclave)
// on a free loopback port in a fresh data directory, with two projects (projects[1] belongs to
// "someone else", for isolation checks), and stops it at the end.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BIN = process.env.CONCLAVE_BIN || join(REPO, "target", "debug", "conclave");

/** Runs one `conclave` CLI command synchronously. */
export function conclave(args) {
  return spawnSync(BIN, args, { encoding: "utf8", timeout: 60_000 });
}

/** A loopback port that nothing listens on right now (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A running `conclave serve` with two fresh projects; `extraArgs` are added to `serve`'s
 *  (e.g. the outbound policy flags that let broadcasts reach loopback RTMP/WebSocket servers). */
export async function startServer(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), "conclave-sdk-node-"));
  const data = join(dir, "data");
  const logPath = join(dir, "server.log");
  // Two projects: projects[0] is ours, projects[1] belongs to "someone else".
  const projects = [0, 1].map(() => {
    const r = conclave(["project", "create", "--data-dir", data, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  });
  for (let attempt = 0; attempt < 3; attempt++) { // the port may be taken between probe and bind
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const log = openSync(logPath, "a");
    const proc = spawn(BIN, ["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`, ...extraArgs], { stdio: ["ignore", log, log] });
    closeSync(log);
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    if (await healthy(url, proc)) {
      return { url, ws: `ws://127.0.0.1:${port}/v1/signal`, projects, data, dir, proc, exited, logPath };
    }
    await stopProcess(proc, exited);
  }
  throw new Error("conclave serve did not become ready:\n" + readFileSync(logPath, "utf8").slice(-4000));
}

/** Polls GET /healthz until it answers 200 (true), the process exits or 30 s pass (false). */
export async function healthy(url, proc) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && proc.exitCode === null && proc.signalCode === null) {
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })).status === 200) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** SIGTERM by PID (graceful shutdown), SIGKILL if still running after 5 s. */
export async function stopProcess(proc, exited) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const timer = new Promise((r) => setTimeout(() => r("timeout"), 5000).unref());
  if ((await Promise.race([exited, timer])) === "timeout") {
    proc.kill("SIGKILL");
    await exited;
  }
}

/** Stops the server, removes its directory, and checks that no API secret reached its log. */
export async function stopServer(server) {
  if (!server) return;
  await stopProcess(server.proc, server.exited);
  const logs = readFileSync(server.logPath, "utf8");
  rmSync(server.dir, { recursive: true, force: true });
  for (const p of server.projects) assert.ok(!logs.includes(p.api_secret), "an API secret reached the server log");
}

/** An SDK client of the given version for one of the server's projects, pointed at the server. */
export function sdkClient(server, version, project = 0, secret = undefined) {
  const OpenTok = require(`opentok-${version}`);
  const p = server.projects[project];
  return new OpenTok(p.api_key, secret ?? p.api_secret, { apiUrl: server.url });
}

/** Callback-style SDK method → promise of its first result. The SDK does its synchronous work
 *  (validation, signing the REST credential) before this returns. */
export const call = (obj, method, ...args) =>
  new Promise((resolve, reject) => obj[method](...args, (err, res) => (err ? reject(err) : resolve(res))));

/** A real participant: `conclave client`, whose server messages arrive as JSON lines.
 *  `realMedia` publishes real encoded VP8 and Opus (so that archives of it decode). */
export async function bot(server, sessionId, token, { publish, subscribeAll, realMedia } = {}) {
  const args = ["client", "--url", server.ws, "--session-id", sessionId];
  if (publish) args.push("--publish", publish);
  if (realMedia) args.push("--real-media");
  if (subscribeAll) args.push("--subscribe-all");
  const proc = spawn(BIN, args, { env: { ...process.env, CONCLAVE_TOKEN: token }, stdio: ["pipe", "pipe", "ignore"] });
  const queue = [];
  let wake = () => {};
  createInterface({ input: proc.stdout }).on("line", (line) => {
    queue.push(JSON.parse(line));
    wake();
  });
  const b = {
    /** The next message matching pred (earlier, non-matching messages are dropped). */
    async waitFor(pred, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = queue.findIndex(pred);
        if (i >= 0) return queue.splice(0, i + 1).pop();
        if (Date.now() > deadline) throw new Error("timed out waiting; got " + JSON.stringify(queue));
        await new Promise((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    stop: () => proc.kill("SIGKILL"),
  };
  try {
    const welcome = await b.waitFor((m) => m.type === "connected" || m.type === "error");
    if (welcome.type !== "connected") throw new Error("bot refused: " + JSON.stringify(welcome));
    b.connectionId = welcome.connectionId;
    if (publish) b.streamId = (await b.waitFor((m) => m.type === "published")).stream.streamId;
  } catch (e) {
    b.stop();
    throw e;
  }
  return b;
}
