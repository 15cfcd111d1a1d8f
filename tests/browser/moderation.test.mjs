// A moderator browser removes a participant: the participant sees sessionDisconnected with
// reason forceDisconnected and cannot rejoin with the same token. Anonymous callers of the
// token endpoint get 401, never a token; moderator controls show only for moderators.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, joinMeeting, waitForMedia, screenshot, MODERATOR_PASSWORD } from "./lib.mjs";

test("a moderator removes a participant, who cannot rejoin with the same token", { timeout: 90000 }, async () => {
  const server = await startServer();
  const mod = await launch("green");
  const guest = await launch("red");
  try {
    const anon = await fetch(`${server.base}/demo/api/meetings/m1/join`, { method: "POST" });
    assert.equal(anon.status, 401, "no login, no token");
    assert.ok(!("token" in (await anon.json())));
    const page = await fetch(`${server.base}/demo/`);
    const csp = page.headers.get("content-security-policy");
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline.*script|script-src[^;]*unsafe-inline/, "no inline scripts allowed");

    await joinMeeting(mod.page, server.base, { name: "Mo", password: MODERATOR_PASSWORD, room: "m1", mode: "relayed" });
    await joinMeeting(guest.page, server.base, { name: "Gil", room: "m1", mode: "relayed" });
    await waitForMedia(mod.page);
    assert.equal(await guest.page.locator(".force-disconnect").count(), 0, "participants see no moderator controls");
    await screenshot(mod.page, "moderator-before-remove");

    await mod.page.click(".force-disconnect");
    await guest.page.waitForFunction(() => window.conclaveDemo.disconnectReason, null, { timeout: 10000 });
    assert.equal(await guest.page.evaluate(() => window.conclaveDemo.disconnectReason), "forceDisconnected");
    await mod.page.waitForFunction(() => document.querySelectorAll("[data-tile]").length === 0, null, { timeout: 10000 });

    // The same token is refused from now on (revoked), with a typed error.
    const code = await guest.page.evaluate(async () => {
      const { initSession } = await import("./conclave.js");
      const d = window.conclaveDemo;
      try { await initSession(d.apiKey, d.sessionId).connect(d.token); return "connected"; } catch (e) { return e.code; }
    });
    assert.equal(code, "token_revoked");
    await screenshot(guest.page, "participant-removed");
  } finally {
    await mod.browser.close();
    await guest.browser.close();
    await server.stop();
  }
});
