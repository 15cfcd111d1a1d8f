// In-page helpers for the mixed-session tests: the page loads Conclave's own browser SDK
// (clients/js/conclave.js, unmodified, protocol v1 over /v1/signal) and drives it through its
// public API only, as an app would (the demo, clients/demo/meeting.js, shows the same calls).
// The tests call `window.cvTest.*` with page.evaluate and read `cvTest.events`, a plain array
// of JSON-safe records in arrival order, with the same shape as otjs-page.js's `otTest.events`.
import * as Conclave from "/conclave/conclave.js";

const events = [];
let session = null;
let publisher = null;
let autoSubscribe = true;
const connections = new Map(); // connectionId -> connection (from connectionCreated)
const streams = new Map(); // streamId -> stream (others' from streamCreated)
const subscribers = new Map(); // streamId -> Conclave Subscriber

const box = (id) => document.getElementById(id);
const plain = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));
const push = (source, type, fields = {}) => {
  const e = { seq: events.length, t: Date.now(), source, type, ...fields };
  events.push(e);
  return e;
};
const err = (e) => ({ ok: false, code: e?.code ?? null, name: e?.name ?? null, message: String(e?.message ?? e) });
// The SDK's calls return Promises (and some take a callback too): settle once, never throw.
const settle = async (fn) => {
  try { await fn(); return { ok: true }; } catch (e) { return err(e); }
};
const streamInfo = (s) => ({
  streamId: s?.streamId ?? null, connectionId: s?.connectionId ?? s?.connection?.connectionId ?? null, name: s?.name ?? null,
  hasAudio: s?.hasAudio ?? null, hasVideo: s?.hasVideo ?? null, videoType: s?.videoType ?? null,
});

function wireSession(s) {
  s.on("sessionConnected", (e) => push("session", "sessionConnected", { connectionId: e.connection?.connectionId ?? null }));
  s.on("sessionDisconnected", (e) => push("session", "sessionDisconnected", { reason: e.reason ?? null }));
  s.on("sessionReconnecting", () => push("session", "sessionReconnecting"));
  s.on("sessionReconnected", () => push("session", "sessionReconnected"));
  s.on("connectionCreated", (e) => {
    connections.set(e.connection.connectionId, e.connection);
    push("session", "connectionCreated", { connectionId: e.connection.connectionId, data: e.connection.data ?? null, own: false });
  });
  s.on("connectionDestroyed", (e) => {
    const id = e.connection?.connectionId ?? null;
    connections.delete(id);
    push("session", "connectionDestroyed", { connectionId: id, reason: e.reason ?? null });
  });
  s.on("streamCreated", (e) => {
    streams.set(e.stream.streamId, e.stream);
    push("session", "streamCreated", streamInfo(e.stream));
    if (autoSubscribe) subscribe(e.stream.streamId);
  });
  s.on("streamDestroyed", (e) => {
    push("session", "streamDestroyed", { ...streamInfo(e.stream), reason: e.reason ?? null });
    if (e.stream?.streamId) { streams.delete(e.stream.streamId); subscribers.delete(e.stream.streamId); }
  });
  s.on("streamPropertyChanged", (e) => push("session", "streamPropertyChanged", {
    streamId: e.stream?.streamId ?? null, changedProperty: e.changedProperty, newValue: plain(e.newValue),
  }));
  s.on("subscriberCountChanged", (e) => push("session", "subscriberCountChanged", { streamId: e.streamId ?? null, count: e.count ?? null }));
  // The SDK's emitter spreads the event over {type}, so a signal's `type` is its signalType.
  s.on("signal", (e) => push("session", "signal", {
    signalType: e.type ?? null, data: e.data ?? null, from: e.from?.connectionId ?? null, fromSet: !!e.from,
  }));
  s.on("muteForced", (e) => push("session", "muteForced", { streamId: e.streamId ?? null, active: e.active ?? null }));
  s.on("muteForcedDisabled", (e) => push("session", "muteForcedDisabled", { active: e.active ?? null }));
  s.on("error", (e) => push("session", "error", { code: e.code ?? null, message: e.message ?? null }));
}

/** A Session for the server's signaling URL (`ws://host/v1/signal`). */
function init({ url, apiKey, sessionId, subscribe: auto = true }) {
  if (session) session.disconnect();
  connections.clear(); streams.clear(); subscribers.clear();
  autoSubscribe = auto;
  session = Conclave.initSession(String(apiKey), sessionId, { url });
  wireSession(session);
  return { url };
}

async function connect(token) {
  const r = await settle(() => session.connect(token));
  if (!r.ok) return r;
  return {
    ok: true, connectionId: session.connection?.connectionId ?? null, role: session.connection?.role ?? null,
    mediaMode: session.mediaMode, capabilities: plain(session.capabilities),
  };
}

async function publish({ name = "camera", publishAudio = true, publishVideo = true } = {}) {
  const el = document.createElement("div");
  box("publisher").appendChild(el);
  publisher = Conclave.initPublisher(el, { name, publishAudio, publishVideo });
  publisher.on("streamCreated", (e) => push("publisher", "streamCreated", streamInfo(e.stream)));
  publisher.on("streamDestroyed", (e) => push("publisher", "streamDestroyed", { streamId: e.stream?.streamId ?? null, reason: e.reason ?? null }));
  publisher.on("muteForced", () => push("publisher", "muteForced"));
  const r = await settle(() => session.publish(publisher));
  if (!r.ok) return r;
  return { ok: true, streamId: publisher.stream.streamId };
}

function subscribe(streamId) {
  if (subscribers.has(streamId)) return Promise.resolve({ ok: true, already: true });
  const stream = streams.get(streamId);
  if (!stream) return Promise.resolve({ ok: false, code: null, message: `unknown stream ${streamId}` });
  const el = document.createElement("div");
  el.className = "cv-subscriber";
  el.dataset.streamId = streamId;
  box("subscribers").appendChild(el);
  return new Promise((resolve) => {
    const sub = session.subscribe(stream, el, {}, (e) => {
      const r = e ? err(e) : { ok: true };
      push("subscriber", r.ok ? "subscribed" : "subscribeFailed", { streamId, code: r.code ?? null, message: r.message ?? null });
      resolve(r);
    });
    sub.on("videoElementCreated", () => push("subscriber", "videoElementCreated", { streamId }));
    subscribers.set(streamId, sub);
  });
}

const signal = ({ type, data, to } = {}) => {
  const opts = {};
  if (type !== undefined) opts.type = type;
  if (data !== undefined) opts.data = data;
  if (to) opts.to = connections.get(to) ?? to;
  return settle(() => session.signal(opts));
};
const forceDisconnect = (connectionId) => settle(() => session.forceDisconnect(connectionId));
const forceUnpublish = (streamId) => settle(() => session.forceUnpublish(streamId));
const forceMuteStream = (streamId) => settle(() => session.forceMuteStream(streamId));
const forceMuteAll = (excluded = []) => settle(() => session.forceMuteAll(excluded));
const disableForceMute = () => settle(() => session.disableForceMute());
const unpublish = () => settle(() => session.unpublish(publisher));
const disconnect = () => { session.disconnect(); return true; };
const setPreferredResolution = (streamId, resolution) => settle(() => subscriberFor(streamId).setPreferredResolution(resolution ?? undefined));

function state() {
  return {
    connectionId: session?.connection?.connectionId ?? null,
    role: session?.connection?.role ?? null,
    mediaMode: session?.mediaMode ?? null,
    capabilities: plain(session?.capabilities ?? null),
    publisherStreamId: publisher?.stream?.streamId ?? null,
    publisherAudio: publisher?.properties?.publishAudio ?? null,
    publisherAudioTrackEnabled: publisher?.mediaStream?.getAudioTracks()[0]?.enabled ?? null,
    connections: [...connections.keys()],
    streams: [...streams.keys()],
    subscribers: [...subscribers.keys()],
  };
}

const subscriberFor = (streamId) => (streamId ? subscribers.get(streamId) : [...subscribers.values()][0]);

/** Inbound WebRTC stats of one subscriber (`Subscriber.getStats()`), plus its <video>. */
async function stats(streamId) {
  const sub = subscriberFor(streamId);
  if (!sub) return null;
  const out = { video: null, audio: null, pair: null, element: null, tracks: sub.tracks?.map((t) => t.kind) ?? [] };
  let report = null;
  try { report = await sub.getStats(); } catch (e) { out.error = String(e?.message ?? e); }
  // Stats of the whole receiving connection, for the selected candidate pair.
  let whole = null;
  try { whole = sub.pc ? await sub.pc.getStats() : null; } catch { /* none */ }
  for (const s of report?.values?.() ?? []) {
    if (s.type === "inbound-rtp") {
      out[s.kind] = {
        framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0, bytesReceived: s.bytesReceived ?? 0,
        frameWidth: s.frameWidth ?? null, frameHeight: s.frameHeight ?? null, totalAudioEnergy: s.totalAudioEnergy ?? null,
      };
    }
  }
  if (whole) {
    const byId = new Map([...whole.values()].map((s) => [s.id, s]));
    for (const s of whole.values()) {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        const remote = byId.get(s.remoteCandidateId);
        out.pair = { remoteAddress: remote?.address ?? remote?.ip ?? null, remotePort: remote?.port ?? null, candidateType: remote?.candidateType ?? null, protocol: remote?.protocol ?? null };
      }
    }
  }
  const v = sub.videoElement;
  if (v) out.element = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, frames: v.getVideoPlaybackQuality?.().totalVideoFrames ?? null, paused: v.paused };
  return out;
}

/** Mean RGB of a subscriber's <video> (the SDK renders it as video.conclave-subscriber). */
function colour(streamId) {
  const v = subscriberFor(streamId)?.videoElement;
  if (!v || !v.videoWidth) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
  const n = d.length / 4;
  return sum.map((x) => Math.round(x / n));
}

window.cvTest = {
  events, init, connect, publish, subscribe, unpublish, disconnect, signal,
  forceDisconnect, forceUnpublish, forceMuteStream, forceMuteAll, disableForceMute, setPreferredResolution,
  state, stats, colour,
};
