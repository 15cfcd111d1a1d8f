// The demo meeting page: the example users copy. It asks the demo server for a token (the
// session cookie proves the login), connects, publishes the camera, subscribes to everyone,
// shows subscriber counts, offers mute/camera toggles and chat, and moderator controls.
import { initSession, initPublisher } from "./conclave.js";

const room = new URLSearchParams(location.search).get("room") ?? "lobby";
const mode = new URLSearchParams(location.search).get("mode") ?? "";
// E2EE meetings: the shared secret lives in the URL fragment, which browsers never send to a
// server; share the link out of band. The SFU only ever sees encrypted frames.
const secret = new URLSearchParams(location.hash.slice(1)).get("secret");
const $ = (id) => document.getElementById(id);
const names = new Map(); // connectionId -> display name, learned from "hello" signals

function say(text, isError = false) {
  $("status").textContent = text;
  if (isError) { $("banner").hidden = false; $("banner").textContent = text; }
}

async function join() {
  // 1. A token for this meeting, from our own server (never from the browser).
  const query = new URLSearchParams();
  if (mode) query.set("mode", mode);
  if (secret) query.set("e2ee", "1");
  const r = await fetch(`api/meetings/${encodeURIComponent(room)}/join?${query}`, { method: "POST" });
  if (r.status === 401) { location.href = "./"; return; }
  const { apiKey, sessionId, token, name, role } = await r.json();
  $("title").textContent = `Meeting “${room}” as ${name}${role === "moderator" ? " (moderator)" : ""}`;

  // 2. Connect, announce our display name (names travel in signals, never in token data).
  const session = initSession(apiKey, sessionId);
  const publisher = initPublisher("self", { name });
  // Exposed for the end-to-end tests (and handy in the console).
  window.conclaveDemo = { session, publisher, subscribers: new Map(), token, sessionId, apiKey };
  session.on({
    connectionCreated: (e) => session.signal({ type: "hello", data: name, to: e.connection }),
    connectionDestroyed: (e) => addMessage(`${names.get(e.connection?.connectionId) ?? "someone"} left (${e.reason})`),
    "signal:hello": (e) => e.from && names.set(e.from.connectionId, e.data) && relabel(e.from.connectionId),
    "signal:chat": (e) => addMessage(`${names.get(e.from?.connectionId) ?? "me"}: ${e.data}`),
    streamCreated: (e) => addTile(session, e.stream, role),
    streamDestroyed: (e) => document.querySelector(`[data-tile="${e.stream?.streamId}"]`)?.remove(),
    subscriberCountChanged: (e) => showCount(e.streamId, e.count, publisher),
    sessionDisconnected: (e) => { say(`disconnected: ${e.reason}`, e.reason !== "clientDisconnected"); window.conclaveDemo.disconnectReason = e.reason; },
    muteForced: (e) => e.streamId === publisher.stream?.streamId && (say("a moderator muted you"), ($("toggle-audio").textContent = "Unmute")),
  });
  await session.connect(token);
  if (session.e2ee) {
    if (!secret) throw new Error("this meeting is end-to-end encrypted: open it with its #secret=… link");
    await session.setEncryptionSecret(secret);
  }
  await session.signal({ type: "hello", data: name });
  await session.publish(publisher);
  say("connected");

  $("toggle-audio").onclick = () => { const on = !publisher.properties.publishAudio; publisher.publishAudio(on); $("toggle-audio").textContent = on ? "Mute" : "Unmute"; };
  $("toggle-video").onclick = () => { const on = !publisher.properties.publishVideo; publisher.publishVideo(on); $("toggle-video").textContent = on ? "Stop camera" : "Start camera"; };
  $("leave").onclick = () => session.disconnect();
  $("chat-form").onsubmit = (e) => { e.preventDefault(); const t = $("chat-input").value.trim(); if (t) session.signal({ type: "chat", data: t }); $("chat-input").value = ""; };
}

function addTile(session, stream, role) {
  const tile = document.createElement("figure");
  tile.className = "tile";
  tile.dataset.tile = stream.streamId;
  tile.dataset.connection = stream.connectionId;
  const caption = document.createElement("figcaption");
  caption.innerHTML = `<span class="name"></span> · <span class="count">0 watching</span>`;
  caption.querySelector(".name").textContent = names.get(stream.connectionId) ?? stream.name ?? "guest";
  if (role === "moderator") {
    // Moderator controls appear only for moderator logins; the server enforces the role anyway.
    const controls = document.createElement("span");
    controls.className = "moderation";
    const mute = Object.assign(document.createElement("button"), { textContent: "Mute", className: "force-mute" });
    const remove = Object.assign(document.createElement("button"), { textContent: "Remove", className: "force-disconnect" });
    mute.onclick = () => session.forceMuteStream(stream);
    remove.onclick = () => session.forceDisconnect(stream.connectionId);
    controls.append(mute, remove);
    caption.appendChild(controls);
  }
  tile.appendChild(caption);
  $("grid").appendChild(tile);
  const sub = session.subscribe(stream, tile);
  window.conclaveDemo.subscribers.set(stream.streamId, sub);
}

function relabel(connectionId) {
  document.querySelectorAll(`[data-connection="${connectionId}"] .name`).forEach((n) => (n.textContent = names.get(connectionId)));
}

function showCount(streamId, count, publisher) {
  const text = `${count} watching`;
  if (streamId === publisher.stream?.streamId) $("self-count").textContent = text;
  const el = document.querySelector(`[data-tile="${streamId}"] .count`);
  if (el) el.textContent = text;
}

function addMessage(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("messages").appendChild(li);
}

join().catch((e) => say(`could not join: ${e.message}`, true));
