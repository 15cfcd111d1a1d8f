// Shared by the Vonage Node SDK conformance files (*.test.mjs): a `conclave serve` with two
// Vonage applications (apps[1] belongs to "someone else", for isolation checks), the official
// SDK clients pointed at it, a moto S3 server for archive uploads, and live participants
// (`conclave client` bots, from the OpenTok suite's harness). Not a test file itself.
//
// The server is $CONCLAVE_BIN (default target/debug/conclave) on a free loopback port in a
// fresh data directory; it and moto ($MOTO_SERVER_BIN) are stopped by PID at the end.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, conclave, freePort, healthy, stopProcess } from "../../node/harness.mjs";
export { bot } from "../../node/harness.mjs";

/** A running `conclave serve` with two applications, each with its generated private key. */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "conclave-sdk-vonage-node-"));
  const data = join(dir, "data");
  const logPath = join(dir, "server.log");
  const apps = [0, 1].map((i) => {
    const r = conclave(["application", "create", "--data-dir", data, "--name", `app${i}`, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout.trim().split("\n").pop());
    assert.match(v.application_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(v.private_key, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(v.webhook_secret, /^[0-9a-f]{40}$/);
    return { applicationId: v.application_id, privateKey: v.private_key, webhookSecret: v.webhook_secret };
  });
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const log = openSync(logPath, "a");
    // Uploads go to moto on loopback over http: allowed explicitly.
    const args = ["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`, "--allow-private-callbacks", "--allow-http-callbacks"];
    const proc = spawn(BIN, args, { stdio: ["ignore", log, log] });
    closeSync(log);
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    if (await healthy(url, proc)) {
      return { url, ws: `ws://127.0.0.1:${port}/v1/signal`, apps, data, dir, proc, exited, logPath };
    }
    await stopProcess(proc, exited);
  }
  throw new Error("conclave serve did not become ready:\n" + readFileSync(logPath, "utf8").slice(-4000));
}

/** Stops the server, removes its directory, and checks that no key or secret reached its log. */
export async function stopServer(server) {
  if (!server) return;
  await stopProcess(server.proc, server.exited);
  const logs = readFileSync(server.logPath, "utf8");
  rmSync(server.dir, { recursive: true, force: true });
  for (const a of server.apps) {
    const body = a.privateKey.split("\n")[1];
    assert.ok(!logs.includes(body), "a private key reached the server log");
    assert.ok(!logs.includes(a.webhookSecret), "a webhook secret reached the server log");
  }
}

/** A moto S3 server on a free loopback port (no authentication checks), with one bucket. */
export async function startMoto(bucket) {
  const bin = process.env.MOTO_SERVER_BIN || "moto_server";
  const port = await freePort();
  const proc = spawn(bin, ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}/${bucket}`, { method: "PUT", signal: AbortSignal.timeout(1000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`moto (${bin}) did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    /** The object keys in the bucket. */
    async keys() {
      const xml = await (await fetch(`${endpoint}/${bucket}?list-type=2`)).text();
      return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
    },
    stop: () => stopProcess(proc, exited),
  };
}
