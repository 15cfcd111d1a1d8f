// Test harness shared by the Node conformance tests: starts `conclave serve` on a free
// loopback port (the server prints the port it bound), creates projects, runs the server's
// own token verifier, and drives real participants with `conclave client`.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { createRequire } from "node:module";

export const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.CONCLAVE_BIN || join(here, "../../../target/debug/conclave");
const jwt = require("jsonwebtoken");

function run(args, env) {
  const r = spawnSync(BIN, args, { encoding: "utf8", env: { ...process.env, ...env } });
  return r;
}

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "conclave-node-"));
  const data = join(dir, "data");
  const projects = [0, 1].map(() => {
    const r = run(["project", "create", "--json", "--data-dir", data]);
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout);
  });
  const logPath = join(dir, "server.log");
  const proc = spawn(BIN, ["serve", "--data-dir", data, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", openSync(logPath, "w")] });
  const url = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.on("line", (l) => l.startsWith("listening on ") && resolve(l.slice("listening on ".length).trim()));
    proc.on("exit", () => reject(new Error("server exited: " + readFileSync(logPath, "utf8"))));
  });
  return {
    url,
    ws: url.replace("http://", "ws://") + "/v1/signal",
    projects,
    data,
    verify(sessionId, token) {
      const r = run(["token", "verify", "--data-dir", data, "--session-id", sessionId, "--token", token]);
      return { ok: r.status === 0, body: JSON.parse(r.stdout) };
    },
    restJwt(p, now = Math.floor(Date.now() / 1000)) {
      return jwt.sign({ iss: p.api_key, ist: "project", iat: now, exp: now + 300 }, p.api_secret, { algorithm: "HS256" });
    },
    logs: () => readFileSync(logPath, "utf8"),
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
    },
  };
}

/** A real participant whose server messages arrive as parsed JSON. */
export async function bot(server, sessionId, token, { publish, subscribeAll } = {}) {
  const args = ["client", "--url", server.ws, "--session-id", sessionId];
  if (publish) args.push("--publish", publish);
  if (subscribeAll) args.push("--subscribe-all");
  const proc = spawn(BIN, args, { env: { ...process.env, CONCLAVE_TOKEN: token }, stdio: ["pipe", "pipe", "ignore"] });
  const queue = [];
  let waiters = [];
  createInterface({ input: proc.stdout }).on("line", (l) => {
    queue.push(JSON.parse(l));
    waiters.forEach((w) => w());
  });
  const b = {
    proc,
    async waitFor(pred, ms = 10000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = queue.findIndex(pred);
        if (i >= 0) return queue.splice(0, i + 1).pop();
        if (Date.now() > deadline) throw new Error("timed out waiting; got " + JSON.stringify(queue));
        await new Promise((r) => { waiters.push(r); setTimeout(r, 50); });
        waiters = [];
      }
    },
    stop() { proc.kill("SIGKILL"); },
  };
  const welcome = await b.waitFor((m) => m.type === "connected" || m.type === "error");
  if (welcome.type !== "connected") throw new Error("bot refused: " + JSON.stringify(welcome));
  b.connectionId = welcome.connectionId;
  if (publish) b.streamId = (await b.waitFor((m) => m.type === "published")).stream.streamId;
  return b;
}

/** Callback-style SDK method → promise. */
export const call = (obj, method, ...args) =>
  new Promise((resolve, reject) => obj[method](...args, (err, res) => (err ? reject(err) : resolve(res))));
