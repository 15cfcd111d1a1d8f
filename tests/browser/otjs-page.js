// In-page helpers for the OpenTok.js tests: the page loads the unmodified OpenTok.js dist
// file (installed from npm at test time, never committed), then this script. Everything here
// goes through OpenTok.js's public API only; the tests drive it with page.evaluate and read
// `otTest.events`, a plain array of JSON-safe records, in arrival order.
(() => {
  "use strict";
  const events = [];
  let gen = 0; // bumped by every init(): tells events of an old Session from a new one's
  let session = null;
  let publisher = null;
  let proxied = null;
  const connections = new Map(); // connectionId -> OT.Connection (from connectionCreated)
  const streams = new Map(); // streamId -> OT.Stream (others' from streamCreated, own from the publisher)
  const subscribers = new Map(); // streamId -> OT.Subscriber
  let autoSubscribe = true;

  const box = (id) => document.getElementById(id);
  const plain = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));
  const push = (source, type, fields = {}, g = gen) => {
    const e = { seq: events.length, t: Date.now(), gen: g, source, type, ...fields };
    events.push(e);
    return e;
  };
  const err = (e) => ({ ok: false, code: e?.code ?? null, name: e?.name ?? null, message: String(e?.message ?? e) });
  // Calls an OpenTok.js method that takes a completion handler, returns a Promise, or both
  // (2.22 and 2.30 differ from 2.35 here), and settles once, never throws.
  const settle = (fn) => new Promise((resolve) => {
    let done = false;
    const finish = (e, value) => { if (!done) { done = true; resolve(e ? err(e) : { ok: true, ...(value || {}) }); } };
    try {
      const r = fn((e) => finish(e));
      if (r && typeof r.then === "function") r.then(() => finish(null), (e) => finish(e || new Error("rejected")));
    } catch (e) { finish(e); }
  });
  const connId = (c) => c?.connectionId ?? c?.id ?? null;
  const streamInfo = (s) => ({
    streamId: s.streamId, connectionId: connId(s.connection), name: s.name ?? null,
    hasAudio: s.hasAudio, hasVideo: s.hasVideo, videoType: s.videoType ?? null,
  });

  OT.on("exception", (e) => push("OT", "exception", { code: e.code ?? null, title: e.title ?? null, message: e.message ?? null }));

  function wireSession(s) {
    const myGen = gen;
    // Events of a Session replaced by a later init() are dropped, except its end.
    const on = (type, f) => s.on(type, (e) => { if (myGen === gen || type === "sessionDisconnected") f(e, myGen); });
    on("sessionConnected", () => push("session", "sessionConnected", { connectionId: connId(s.connection) }));
    on("sessionDisconnected", (e, g) => push("session", "sessionDisconnected", { reason: e.reason ?? null }, g));
    on("sessionReconnecting", () => push("session", "sessionReconnecting"));
    on("sessionReconnected", () => push("session", "sessionReconnected"));
    on("connectionCreated", (e) => {
      connections.set(connId(e.connection), e.connection);
      push("session", "connectionCreated", { connectionId: connId(e.connection), data: e.connection.data ?? null, own: connId(e.connection) === connId(s.connection) });
    });
    on("connectionDestroyed", (e) => {
      connections.delete(connId(e.connection));
      push("session", "connectionDestroyed", { connectionId: connId(e.connection), reason: e.reason ?? null });
    });
    on("streamCreated", (e) => {
      streams.set(e.stream.streamId, e.stream);
      push("session", "streamCreated", streamInfo(e.stream));
      if (autoSubscribe) subscribe(e.stream.streamId);
    });
    on("streamDestroyed", (e) => {
      push("session", "streamDestroyed", { ...streamInfo(e.stream), reason: e.reason ?? null });
      subscribers.delete(e.stream.streamId);
    });
    on("streamPropertyChanged", (e) => push("session", "streamPropertyChanged", {
      streamId: e.stream?.streamId ?? null, changedProperty: e.changedProperty, oldValue: plain(e.oldValue), newValue: plain(e.newValue),
    }));
    on("signal", (e) => push("session", "signal", {
      signalType: typeof e.type === "string" && e.type.startsWith("signal:") ? e.type.slice(7) : null,
      data: e.data ?? null, from: e.from ? connId(e.from) : null, fromSet: !!e.from,
    }));
    on("archiveStarted", (e) => push("session", "archiveStarted", { id: e.id ?? null, name: e.name ?? null }));
    on("archiveStopped", (e) => push("session", "archiveStopped", { id: e.id ?? null, name: e.name ?? null }));
    on("archiveUpdated", (e) => push("session", "archiveUpdated", { id: e.id ?? null }));
    on("muteForced", (e) => push("session", "muteForced", { active: e.active ?? null }));
  }

  /** Points OpenTok.js at Conclave (`OT.setProxyUrl`, once per page) and makes a Session. */
  function init({ base, apiKey, sessionId, proxy = true, subscribe: auto = true, encryptionSecret }) {
    if (proxy && proxied === null) { OT.setProxyUrl(base); proxied = base; }
    if (session?.isConnected?.()) session.disconnect(); // one Session at a time per page
    gen += 1;
    connections.clear(); streams.clear(); subscribers.clear();
    autoSubscribe = auto;
    session = encryptionSecret
      ? OT.initSession(String(apiKey), sessionId, { encryptionSecret })
      : OT.initSession(String(apiKey), sessionId);
    wireSession(session);
    return { gen, proxied };
  }

  function capabilities() {
    const c = session?.capabilities;
    if (!c) return null;
    return { publish: c.publish, subscribe: c.subscribe, forceDisconnect: c.forceDisconnect, forceUnpublish: c.forceUnpublish, forceMute: c.forceMute ?? null };
  }

  async function connect(token) {
    const r = await settle((cb) => session.connect(token, cb));
    return r.ok ? { ...r, connectionId: connId(session.connection), capabilities: capabilities() } : r;
  }

  async function publish({ name = "camera", publishAudio = true, publishVideo = true, resolution = "320x240" } = {}) {
    const el = document.createElement("div");
    el.className = "ot-publisher";
    box("publisher").appendChild(el);
    const made = await settle((cb) => {
      publisher = OT.initPublisher(el, { insertMode: "append", width: 320, height: 240, name, publishAudio, publishVideo, resolution }, cb);
    });
    if (!made.ok) return made;
    publisher.on("streamCreated", (e) => push("publisher", "streamCreated", streamInfo(e.stream)));
    publisher.on("streamDestroyed", (e) => push("publisher", "streamDestroyed", { streamId: e.stream?.streamId ?? null, reason: e.reason ?? null }));
    publisher.on("muteForced", () => push("publisher", "muteForced"));
    const r = await settle((cb) => session.publish(publisher, cb));
    if (!r.ok) return r;
    streams.set(publisher.stream.streamId, publisher.stream);
    return { ok: true, streamId: publisher.stream.streamId };
  }

  function subscribe(streamId) {
    if (subscribers.has(streamId)) return Promise.resolve({ ok: true, already: true });
    const stream = streams.get(streamId);
    if (!stream) return Promise.resolve({ ok: false, code: null, message: `unknown stream ${streamId}` });
    const el = document.createElement("div");
    el.className = "ot-subscriber";
    el.dataset.streamId = streamId;
    box("subscribers").appendChild(el);
    let sub;
    const p = settle((cb) => {
      sub = session.subscribe(stream, el, { insertMode: "append", width: 320, height: 240 }, cb);
      subscribers.set(streamId, sub);
    }).then((r) => {
      push("subscriber", r.ok ? "subscribed" : "subscribeFailed", { streamId, code: r.code ?? null, message: r.message ?? null });
      return r;
    });
    sub?.on?.("destroyed", (e) => push("subscriber", "destroyed", { streamId, reason: e.reason ?? null }));
    for (const type of ["videoDisabled", "videoEnabled"]) {
      sub?.on?.(type, (e) => push("subscriber", type, { streamId, reason: e.reason ?? null }));
    }
    return p;
  }

  const signal = ({ type, data, to } = {}) => {
    const opts = {};
    if (type !== undefined) opts.type = type;
    if (data !== undefined) opts.data = data;
    if (to) {
      opts.to = connections.get(to);
      if (!opts.to) return Promise.resolve({ ok: false, code: null, message: `unknown connection ${to}` });
    }
    return settle((cb) => session.signal(opts, cb));
  };
  const forceDisconnect = (connectionId) => settle((cb) => session.forceDisconnect(connections.get(connectionId) ?? connectionId, cb));
  const forceUnpublish = (streamId) => settle((cb) => session.forceUnpublish(streams.get(streamId) ?? streamId, cb));
  const forceMuteStream = (streamId) => settle((cb) => session.forceMuteStream(streams.get(streamId), cb));
  const forceMuteAll = (excludedStreamIds = []) => settle((cb) => session.forceMuteAll(excludedStreamIds.map((id) => streams.get(id)), cb));
  const disableForceMute = () => settle((cb) => session.disableForceMute(cb));
  const unpublish = () => { session.unpublish(publisher); return true; };
  const publishAudio = (on) => { publisher.publishAudio(on); return publisher.stream?.hasAudio ?? null; };
  const disconnect = () => { session.disconnect(); return true; };

  function state() {
    return {
      gen,
      connected: !!session?.isConnected?.(),
      connectionId: connId(session?.connection),
      capabilities: capabilities(),
      publisherStreamId: publisher?.stream?.streamId ?? null,
      publisherHasAudio: publisher?.stream?.hasAudio ?? null,
      connections: [...connections.keys()],
      streams: [...streams.keys()],
      subscribers: [...subscribers.keys()],
    };
  }

  const subscriberFor = (streamId) => (streamId ? subscribers.get(streamId) : [...subscribers.values()][0]);

  /** Inbound WebRTC stats of one subscriber (`getRtcStatsReport`), plus its <video> element. */
  async function stats(streamId) {
    const sub = subscriberFor(streamId);
    if (!sub) return null;
    const out = { video: null, audio: null, pair: null, element: null };
    let report = null;
    // getRtcStatsReport() stays pending while the subscriber has no PeerConnection yet.
    const late = new Promise((resolve) => setTimeout(() => resolve(null), 3000));
    try { report = await Promise.race([sub.getRtcStatsReport(), late]); } catch (e) { out.error = String(e?.message ?? e); }
    if (report) {
      const all = [...report.values()];
      const byId = new Map(all.map((s) => [s.id, s]));
      for (const s of all) {
        if (s.type === "inbound-rtp") {
          const kind = s.kind ?? s.mediaType;
          out[kind] = {
            framesDecoded: s.framesDecoded ?? 0, framesReceived: s.framesReceived ?? 0, packetsReceived: s.packetsReceived ?? 0, bytesReceived: s.bytesReceived ?? 0,
            frameWidth: s.frameWidth ?? null, frameHeight: s.frameHeight ?? null, totalAudioEnergy: s.totalAudioEnergy ?? null,
          };
        }
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          const remote = byId.get(s.remoteCandidateId);
          out.pair = { remoteAddress: remote?.address ?? remote?.ip ?? null, remotePort: remote?.port ?? null, candidateType: remote?.candidateType ?? null, protocol: remote?.protocol ?? null };
        }
      }
    }
    const v = sub.element?.querySelector("video");
    if (v) out.element = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, frames: v.getVideoPlaybackQuality?.().totalVideoFrames ?? null, paused: v.paused };
    return out;
  }

  /** Mean RGB of a subscriber's <video>, drawn into a canvas. */
  function colour(streamId) {
    const v = subscriberFor(streamId)?.element?.querySelector("video");
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

  /** Outbound WebRTC stats of the publisher through its public `getRtcStatsReport()` (2.35:
   *  one entry per PeerConnection; routed, the one to the media server has no subscriberId). */
  async function publisherStats() {
    if (!publisher) return null;
    const late = new Promise((resolve) => setTimeout(() => resolve("timeout"), 3000));
    let reports;
    try { reports = await Promise.race([publisher.getRtcStatsReport(), late]); } catch (e) { return { error: String(e?.message ?? e) }; }
    if (reports === "timeout") return { error: "getRtcStatsReport() did not settle in 3 s" };
    return (reports ?? []).map((r) => {
      const all = [...(r.rtcStatsReport?.values?.() ?? [])];
      const outbound = all.filter((s) => s.type === "outbound-rtp").map((s) => ({
        kind: s.kind ?? s.mediaType, rid: s.rid ?? null, ssrc: s.ssrc, bytesSent: s.bytesSent ?? 0, packetsSent: s.packetsSent ?? 0,
        framesSent: s.framesSent ?? null, framesEncoded: s.framesEncoded ?? null, frameWidth: s.frameWidth ?? null, frameHeight: s.frameHeight ?? null,
        active: s.active ?? null, qualityLimitationReason: s.qualityLimitationReason ?? null, scalabilityMode: s.scalabilityMode ?? null,
        encoderImplementation: s.encoderImplementation ?? null, targetBitrate: s.targetBitrate ?? null,
        keyFramesEncoded: s.keyFramesEncoded ?? null, pliCount: s.pliCount ?? null, firCount: s.firCount ?? null, nackCount: s.nackCount ?? null,
        retransmittedBytesSent: s.retransmittedBytesSent ?? null, headerBytesSent: s.headerBytesSent ?? null,
      }));
      return { subscriberId: r.subscriberId ?? null, connectionId: r.connectionId ?? null, outbound };
    });
  }

  /** Subscriber preferences (routed sessions): the layer and the frame rate to receive. */
  function setPreferredResolution(streamId, resolution) {
    const sub = subscriberFor(streamId);
    if (!sub) return { ok: false, message: `no subscriber for ${streamId}` };
    sub.setPreferredResolution(resolution ?? null);
    return { ok: true };
  }
  /** subscribeToVideo / subscribeToAudio of one subscriber. */
  function subscribeTo(streamId, kind, on) {
    const sub = subscriberFor(streamId);
    if (!sub) return { ok: false, message: `no subscriber for ${streamId}` };
    if (kind === "video") sub.subscribeToVideo(on); else sub.subscribeToAudio(on);
    return { ok: true };
  }
  function setPreferredFrameRate(streamId, frameRate) {
    const sub = subscriberFor(streamId);
    if (!sub) return { ok: false, message: `no subscriber for ${streamId}` };
    sub.setPreferredFrameRate(frameRate ?? null);
    return { ok: true };
  }

  window.otTest = {
    events, init, connect, publish, subscribe, unpublish, publishAudio, disconnect, signal,
    forceDisconnect, forceUnpublish, forceMuteStream, forceMuteAll, disableForceMute,
    state, stats, colour, publisherStats, setPreferredResolution, setPreferredFrameRate, subscribeTo, version: OT.version ?? null,
  };
})();
