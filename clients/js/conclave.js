// Conclave browser SDK: an API close to OpenTok.js over Conclave's signaling protocol
// (docs/protocol.md). Plain ES module, no build step.
//
// Owns: the signaling socket, reconnection, and the peer connections.
// Relayed sessions: one RTCPeerConnection per subscription; the subscriber offers to the
// publisher through the server, which only relays SDP and ICE (media is peer to peer).
// Routed sessions: one sending connection per published stream (the client offers once) and
// one receiving connection per client, which the SFU renegotiates with server-driven offers.
// In both cases each connection has one offerer only, so negotiations never collide.

const PROTOCOL_VERSION = 1;

// ---- End-to-end encryption (routed E2EE sessions) ------------------------------------------
// Each encoded frame becomes: clear header ‖ AES-GCM(ciphertext ‖ tag) ‖ IV (12 bytes). The
// clear header keeps what the SFU and packetizers must read (the VP8 payload header: 10 bytes
// of a keyframe, 3 of a delta frame; 1 byte of audio) and is authenticated as additional data.
// The SFU forwards the frames untouched and never holds the key.

async function deriveFrameKey(secret, sessionId) {
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", salt: new TextEncoder().encode(`conclave-e2ee:${sessionId}`), iterations: 100000, hash: "SHA-256" },
    material, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function clearBytes(frame) {
  if (frame.type === "key") return 10;
  if (frame.type === "delta") return 3;
  return 1; // audio
}

function encryptTransform(getKey) {
  return new TransformStream({
    async transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      const n = Math.min(clearBytes(frame), data.length);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: data.subarray(0, n) }, await getKey(), data.subarray(n)));
      const out = new Uint8Array(n + sealed.length + 12);
      out.set(data.subarray(0, n)); out.set(sealed, n); out.set(iv, n + sealed.length);
      frame.data = out.buffer;
      controller.enqueue(frame);
    },
  });
}

function decryptTransform(getKey) {
  return new TransformStream({
    async transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      const n = clearBytes(frame);
      if (data.length < n + 16 + 12) return; // not ours: drop
      try {
        const iv = data.subarray(data.length - 12);
        const plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: data.subarray(0, n) }, await getKey(), data.subarray(n, data.length - 12)));
        const out = new Uint8Array(n + plain.length);
        out.set(data.subarray(0, n)); out.set(plain, n);
        frame.data = out.buffer;
        controller.enqueue(frame);
      } catch { /* wrong key or tampered: the frame is dropped, never shown */ }
    },
  });
}

function pipeThrough(endpoint, transform) {
  // @ts-ignore: Chromium's insertable streams API
  const { readable, writable } = endpoint.createEncodedStreams();
  readable.pipeThrough(transform).pipeTo(writable);
}

class Emitter {
  #handlers = new Map();
  on(type, fn) {
    if (typeof type === "object") { for (const [t, f] of Object.entries(type)) this.on(t, f); return this; }
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(fn);
    return this;
  }
  off(type, fn) { this.#handlers.get(type)?.delete(fn); return this; }
  once(type, fn) { const w = (e) => { this.off(type, w); fn(e); }; return this.on(type, w); }
  emit(type, event = {}) {
    for (const fn of [...(this.#handlers.get(type) ?? [])]) {
      try { fn({ type, target: this, ...event }); } catch (err) { console.error(err); }
    }
  }
}

/** Creates a session object; `options.url` is the signaling URL (default: same origin). */
/** A redirect names a node's base URL (or its signaling URL); returns the signaling URL. */
function signalUrl(url) {
  if (url.startsWith("ws://") || url.startsWith("wss://")) return url;
  return url.replace(/^http/, "ws").replace(/\/+$/, "") + "/v1/signal";
}

export function initSession(apiKey, sessionId, options = {}) {
  return new Session(apiKey, sessionId, options);
}

/** Creates a publisher showing the local camera in `element` (an element or its id). */
export function initPublisher(element, properties = {}) {
  return new Publisher(element, properties);
}

function resolveElement(element) {
  if (!element) return null;
  return typeof element === "string" ? document.getElementById(element) : element;
}

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/signal`;
}

export class Publisher extends Emitter {
  constructor(element, properties) {
    super();
    this.element = resolveElement(element);
    this.properties = { publishAudio: true, publishVideo: true, name: "", videoType: "camera", ...properties };
    this.stream = null;
    this.session = null;
    this.mediaStream = null;
    this.ready = this.#start();
  }

  async #start() {
    this.mediaStream = this.properties.mediaStream ??
      (await navigator.mediaDevices.getUserMedia({ audio: this.properties.audio !== false, video: this.properties.video !== false }));
    if (this.element) {
      const video = document.createElement("video");
      Object.assign(video, { autoplay: true, muted: true, playsInline: true, srcObject: this.mediaStream });
      video.className = "conclave-publisher";
      this.element.appendChild(video);
      this.videoElement = video;
    }
    this.#applyEnabled();
    return this;
  }

  #applyEnabled() {
    this.mediaStream?.getAudioTracks().forEach((t) => (t.enabled = this.properties.publishAudio));
    this.mediaStream?.getVideoTracks().forEach((t) => (t.enabled = this.properties.publishVideo));
  }

  publishAudio(on) { this.properties.publishAudio = on; this.#applyEnabled(); this.session?._streamProperty(this, { hasAudio: on }); }
  publishVideo(on) { this.properties.publishVideo = on; this.#applyEnabled(); this.session?._streamProperty(this, { hasVideo: on }); }

  destroy() {
    this.mediaStream?.getTracks().forEach((t) => t.stop());
    this.videoElement?.remove();
  }
}

export class Subscriber extends Emitter {
  constructor(session, stream, element, properties) {
    super();
    this.session = session;
    this.stream = stream;
    this.properties = properties;
    this.element = resolveElement(element);
    this.pc = null;
    this.videoElement = null;
    /** @type {MediaStreamTrack[]} */
    this.tracks = [];
    /** @type {MediaStream | null} */
    this.remote = null;
  }
  /**
   * Routed sessions: the simulcast layer to receive, by size (as OpenTok.js). No argument:
   * the best layer available.
   * @param {{width?: number, height?: number}} [resolution]
   */
  setPreferredResolution(resolution) {
    return this.session._preferredResolution(this, resolution ?? {});
  }

  /**
   * Routed sessions: the frame rate to receive (as OpenTok.js); no argument: the full rate.
   * @param {number} [frameRate]
   */
  setPreferredFrameRate(frameRate) {
    return this.session._preferredFrameRate(this, frameRate);
  }

  /** The receiving stats for this stream (inbound-rtp, candidate pairs…). */
  async getStats() {
    if (!this.pc) return new Map();
    if (!this.tracks?.length) return this.pc.getStats();
    const merged = new Map();
    for (const t of this.tracks) for (const [k, v] of await this.pc.getStats(t)) merged.set(k, v);
    return merged;
  }
}

export class Session extends Emitter {
  constructor(apiKey, sessionId, options) {
    super();
    this.apiKey = apiKey;
    this.sessionId = sessionId;
    this.url = options.url ?? defaultUrl();
    this.iceServers = options.iceServers ?? [];
    /** How long to keep trying a fresh join after a drop (cluster failover), in ms. */
    this.rejoinTimeoutMs = options.rejoinTimeoutMs ?? 30000;
    this.connection = null;
    this.connections = new Map();
    this.streams = new Map();
    this.subscribers = new Map();      // streamId -> Subscriber
    this.publisherPeers = new Map();   // `${streamId}/${subscriberConnectionId}` -> RTCPeerConnection
    this.publishers = new Map();       // streamId -> Publisher
    this.mediaMode = null;
    this.sendingPeers = new Map();     // routed: streamId -> RTCPeerConnection
    this.receiver = null;              // routed: { pc, chain } for everything received
    this.answerWaiters = new Map();    // routed: streamId ("" = receiver) -> resolve(sdp)
    this.e2ee = false;
    this.frameKey = null;              // E2EE: Promise<CryptoKey>
    this.capabilities = {};
    this.#socket = null;
    this.#nextId = 1;
    this.#pending = new Map();
    this.#resume = null;
    this.#closing = false;
  }

  #socket; #nextId; #pending; #resume; #closing; #token; #entryUrl;

  /**
   * E2EE sessions: the shared secret every participant's app sets (never sent to the server).
   * @param {string} secret
   */
  setEncryptionSecret(secret) {
    this.frameKey = deriveFrameKey(secret, this.sessionId);
    return this.frameKey.then(() => undefined);
  }

  #peerConfig() {
    // @ts-ignore: Chromium's insertable-streams switch for E2EE
    return this.e2ee ? { iceServers: this.iceServers, encodedInsertableStreams: true } : { iceServers: this.iceServers };
  }

  #requireKey() {
    if (this.e2ee && !this.frameKey) throw Object.assign(new Error("this session is end-to-end encrypted: call setEncryptionSecret first"), { code: "e2ee_secret_missing" });
  }

  /** Connects with a token; resolves once connected, rejects with the server's error. */
  connect(token, callback) {
    this.#token = token;
    this.#entryUrl = this.url;
    const p = this.#open({ type: "connect", v: PROTOCOL_VERSION, sessionId: this.sessionId, token });
    if (callback) p.then(() => callback(), (e) => callback(e));
    return p;
  }

  /** Opens a socket with `first`; in cluster mode follows `redirect` to the session's node. */
  async #open(first) {
    for (let hop = 0; hop < 4; hop++) {
      const r = await this.#openOnce(first);
      if (!r.redirect) return r.session;
      this.url = r.redirect;
    }
    throw Object.assign(new Error("too many redirects"), { code: "redirect_loop" });
  }

  #openOnce(first) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.#socket = ws;
      let welcomed = false;
      ws.onopen = () => ws.send(JSON.stringify(first));
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (!welcomed) {
          welcomed = true;
          if (msg.type === "connected" || msg.type === "resumed") { this.#welcome(msg); resolve({ session: this }); }
          else if (msg.type === "redirect") { this.#socket = null; resolve({ redirect: signalUrl(msg.url) }); }
          else reject(Object.assign(new Error(msg.message ?? "refused"), { code: msg.code }));
          return;
        }
        this.#dispatch(msg);
      };
      ws.onclose = () => {
        if (!welcomed) { reject(new Error("the signaling connection closed")); return; }
        if (ws === this.#socket) this.#lost();
      };
    });
  }

  #welcome(msg) {
    if (msg.type === "connected") {
      this.connection = { connectionId: msg.connectionId, data: msg.data, role: msg.role };
      this.mediaMode = msg.mediaMode;
      this.e2ee = msg.e2ee === true;
      // TURN from the server (time-limited credentials), plus any the app configured.
      if (msg.iceServers?.length) this.iceServers = [...msg.iceServers, ...this.iceServers];
      this.capabilities = { publish: msg.role !== "subscriber", subscribe: msg.role !== "publisheronly", forceDisconnect: msg.role === "moderator", forceUnpublish: msg.role === "moderator" };
      this.#resume = { connectionId: msg.connectionId, resumeToken: msg.resumeToken, graceMs: msg.reconnectGraceMs };
      this.emit("sessionConnected", { connection: this.connection });
    } else {
      this.emit("sessionReconnected");
    }
    for (const c of msg.connections) this.#connectionCreated(c);
    for (const s of msg.streams) this.#streamCreated(s);
  }

  async #lost() {
    if (this.#closing || !this.#resume) return;
    // Network drop: keep our connection ID by resuming within the server's grace period.
    this.emit("sessionReconnecting");
    const resumeUrl = this.url;
    const graceEnd = Date.now() + this.#resume.graceMs;
    // Cluster mode: the session's node may be gone; the session is placed on another node
    // once that node's heartbeat lapses (seconds). A fresh join through the node the app
    // first gave us (it redirects) is tried alongside, and for longer than the grace period.
    const canRejoin = Boolean(this.#token && this.#entryUrl);
    const end = canRejoin ? Date.now() + Math.max(this.#resume.graceMs, this.rejoinTimeoutMs) : graceEnd;
    while (Date.now() < end && !this.#closing) {
      await new Promise((r) => setTimeout(r, 500));
      if (Date.now() < graceEnd) {
        try {
          this.url = resumeUrl;
          await this.#open({ type: "resume", v: PROTOCOL_VERSION, connectionId: this.#resume.connectionId, resumeToken: this.#resume.resumeToken });
          return;
        } catch { /* try again until the grace period ends */ }
      }
      if (canRejoin) {
        try {
          this.url = this.#entryUrl;
          await this.#open({ type: "connect", v: PROTOCOL_VERSION, sessionId: this.sessionId, token: this.#token });
          return;
        } catch (e) { this.lastRejoinError = `${e?.code} ${e?.message}`; /* keep trying */ }
      }
    }
    this.#teardown("networkDisconnected");
  }


  #send(msg) { this.#socket?.readyState === WebSocket.OPEN && this.#socket.send(JSON.stringify(msg)); }

  #request(msg) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send({ ...msg, id });
    });
  }

  #connectionCreated(c) {
    if (c.connectionId === this.connection?.connectionId || this.connections.has(c.connectionId)) return;
    const connection = { connectionId: c.connectionId, data: c.data, creationTime: c.createdAt };
    this.connections.set(c.connectionId, connection);
    this.emit("connectionCreated", { connection });
  }

  #streamCreated(s) {
    if (this.streams.has(s.streamId)) return;
    const stream = { ...s, connection: this.connections.get(s.connectionId) ?? { connectionId: s.connectionId } };
    this.streams.set(s.streamId, stream);
    this.emit("streamCreated", { stream });
  }

  #dispatch(msg) {
    const waiter = msg.id != null && (msg.type === "ack" || msg.type === "published" || msg.type === "error") ? this.#pending.get(msg.id) : null;
    if (waiter) {
      this.#pending.delete(msg.id);
      msg.type === "error" ? waiter.reject(Object.assign(new Error(msg.message), { code: msg.code })) : waiter.resolve(msg);
      return;
    }
    switch (msg.type) {
      case "connectionCreated": return this.#connectionCreated(msg.connection);
      case "connectionDestroyed": {
        const connection = this.connections.get(msg.connectionId);
        this.connections.delete(msg.connectionId);
        for (const [key, pc] of this.publisherPeers) if (key.endsWith("/" + msg.connectionId)) { pc.close(); this.publisherPeers.delete(key); }
        return this.emit("connectionDestroyed", { connection, reason: msg.reason });
      }
      case "streamCreated": return this.#streamCreated(msg.stream);
      case "streamDestroyed": {
        const stream = this.streams.get(msg.streamId);
        this.streams.delete(msg.streamId);
        const sub = this.subscribers.get(msg.streamId);
        if (sub) { if (sub.pc !== this.receiver?.pc) sub.pc?.close(); sub.videoElement?.remove(); this.subscribers.delete(msg.streamId); }
        const own = this.publishers.get(msg.streamId);
        if (own) { this.#closePublisherPeers(msg.streamId); this.publishers.delete(msg.streamId); own.stream = null; own.emit("streamDestroyed", { stream, reason: msg.reason }); }
        return this.emit("streamDestroyed", { stream, reason: msg.reason });
      }
      case "streamPropertyChanged": {
        const stream = this.streams.get(msg.streamId) ?? this.publishers.get(msg.streamId)?.stream;
        if (stream) stream[msg.property] = msg.newValue;
        return this.emit("streamPropertyChanged", { stream, changedProperty: msg.property, newValue: msg.newValue });
      }
      case "subscriberCount": {
        const stream = this.streams.get(msg.streamId) ?? this.publishers.get(msg.streamId)?.stream;
        if (stream) stream.subscriberCount = msg.count;
        return this.emit("subscriberCountChanged", { stream, streamId: msg.streamId, count: msg.count });
      }
      case "signal": {
        const from = msg.from ? this.connections.get(msg.from) ?? (msg.from === this.connection?.connectionId ? this.connection : { connectionId: msg.from }) : null;
        const event = { type: msg.signalType, data: msg.data, from };
        this.emit("signal", event);
        if (msg.signalType) this.emit(`signal:${msg.signalType}`, event);
        return;
      }
      case "muteForced": {
        const pub = this.publishers.get(msg.streamId);
        if (pub) { pub.properties.publishAudio = false; pub.mediaStream?.getAudioTracks().forEach((t) => (t.enabled = false)); pub.emit("muteForced"); }
        return this.emit("muteForced", { streamId: msg.streamId });
      }
      case "muteAllChanged": return this.emit(msg.active ? "muteForced" : "muteForcedDisabled", { active: msg.active });
      case "sdp": return this.#onSdp(msg);
      case "mediaAnswer": { const w = this.answerWaiters.get(msg.streamId ?? ""); this.answerWaiters.delete(msg.streamId ?? ""); return w?.(msg.sdp); }
      case "mediaOffer": return this.#onServerOffer(msg.sdp);
      case "ice": return this.#onIce(msg);
      case "sessionDisconnected": return this.#teardown(msg.reason);
      case "error": return this.emit("error", { code: msg.code, message: msg.message });
    }
  }

  #teardown(reason) {
    this.#closing = true;
    for (const sub of this.subscribers.values()) { sub.pc?.close(); sub.videoElement?.remove(); }
    for (const pc of this.publisherPeers.values()) pc.close();
    for (const pc of this.sendingPeers.values()) pc.close();
    this.receiver?.pc.close();
    this.subscribers.clear();
    this.publisherPeers.clear();
    this.#socket?.close();
    this.emit("sessionDisconnected", { reason });
  }

  /** Publishes a Publisher (or creates one for `element`). */
  async publish(publisher, callback) {
    try {
      if (!(publisher instanceof Publisher)) publisher = new Publisher(publisher, {});
      await publisher.ready;
      const p = publisher.properties;
      const reply = await this.#request({ type: "publish", name: p.name, hasAudio: p.publishAudio, hasVideo: p.publishVideo, videoType: p.videoType });
      publisher.stream = reply.stream;
      publisher.session = this;
      this.publishers.set(reply.stream.streamId, publisher);
      if (this.mediaMode === "routed") await this.#sendToSfu(publisher, reply.stream.streamId);
      publisher.emit("streamCreated", { stream: reply.stream });
      callback?.();
      return publisher;
    } catch (e) { callback?.(e); throw e; }
  }

  async unpublish(publisher) {
    if (!publisher.stream) return;
    const id = publisher.stream.streamId;
    await this.#request({ type: "unpublish", streamId: id });
  }

  _preferredFrameRate(subscriber, frameRate) {
    return this.#request({ type: "setPreferredFrameRate", streamId: subscriber.stream.streamId, frameRate });
  }

  _preferredResolution(subscriber, { width, height }) {
    return this.#request({ type: "setPreferredResolution", streamId: subscriber.stream.streamId, width, height });
  }

  _streamProperty(publisher, props) {
    if (publisher.stream) this.#request({ type: "setStreamProperty", streamId: publisher.stream.streamId, ...props }).catch(() => {});
  }

  // Routed: waits until ICE gathering finished, so the offer carries our candidates (the SFU
  // is ICE-lite and takes no trickled candidates).
  async #gathered(pc) {
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => pc.iceGatheringState === "complete" && resolve();
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async #offerToSfu(pc, streamId) {
    await pc.setLocalDescription(await pc.createOffer());
    await this.#gathered(pc);
    const answer = new Promise((resolve) => this.answerWaiters.set(streamId ?? "", resolve));
    this.#send({ type: "mediaOffer", streamId, sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: "answer", sdp: await answer });
  }

  async #sendToSfu(publisher, streamId) {
    this.#requireKey();
    const pc = new RTCPeerConnection(this.#peerConfig());
    this.sendingPeers.set(streamId, pc);
    for (const track of publisher.mediaStream.getTracks()) {
      // Camera video goes out in three simulcast layers; the SFU gives each subscriber one.
      const simulcast = track.kind === "video" && publisher.properties.simulcast !== false;
      const sendEncodings = simulcast
        ? [
            // Three temporal layers each (¼, ½, full frame rate), so the SFU can also lower a
            // subscriber's frame rate (setPreferredFrameRate).
            { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000, scalabilityMode: "L1T3" },
            { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000, scalabilityMode: "L1T3" },
            { rid: "h", maxBitrate: 1_500_000, scalabilityMode: "L1T3" },
          ]
        : undefined;
      const t = pc.addTransceiver(track, { direction: "sendonly", streams: [publisher.mediaStream], sendEncodings });
      if (this.e2ee) pipeThrough(t.sender, encryptTransform(() => this.frameKey));
    }
    await this.#offerToSfu(pc, streamId);
  }

  #ensureReceiver() {
    if (this.receiver) return;
    this.#requireKey();
    const pc = new RTCPeerConnection(this.#peerConfig());
    pc.createDataChannel("conclave");
    pc.ontrack = (e) => {
      if (this.e2ee) pipeThrough(e.receiver, decryptTransform(() => this.frameKey));
      // The SFU labels each subscribed stream's tracks with the msid stream ID pub{streamId}.
      const streamId = (e.streams[0]?.id ?? "").replace(/^pub:?/, "");
      const sub = this.subscribers.get(streamId);
      if (sub) this.#attachTrack(sub, e.track);
    };
    this.receiver = { pc, chain: this.#offerToSfu(pc, undefined) };
  }

  #onServerOffer(sdp) {
    const r = this.receiver;
    if (!r) return;
    r.chain = r.chain.then(async () => {
      await r.pc.setRemoteDescription({ type: "offer", sdp });
      await r.pc.setLocalDescription(await r.pc.createAnswer());
      this.#send({ type: "mediaAnswer", sdp: r.pc.localDescription.sdp });
    }).catch((e) => this.emit("error", { code: "media_failed", message: String(e) }));
  }

  #attachTrack(sub, track) {
    sub.tracks = [...sub.tracks, track];
    sub.remote = sub.remote ?? new MediaStream();
    sub.remote.addTrack(track);
    if (!sub.videoElement && sub.element) {
      const v = document.createElement("video");
      Object.assign(v, { autoplay: true, playsInline: true, srcObject: sub.remote });
      v.className = "conclave-subscriber";
      v.dataset.streamId = sub.stream.streamId;
      sub.element.appendChild(v);
      sub.videoElement = v;
    }
    sub.emit("videoElementCreated", { element: sub.videoElement });
  }

  #closePublisherPeers(streamId) {
    this.sendingPeers.get(streamId)?.close();
    this.sendingPeers.delete(streamId);
    for (const [key, pc] of this.publisherPeers) if (key.startsWith(streamId + "/")) { pc.close(); this.publisherPeers.delete(key); }
  }

  /** Subscribes to a stream and renders it into `element`. */
  subscribe(stream, element, properties = {}, callback) {
    const sub = new Subscriber(this, stream, element, properties);
    this.subscribers.set(stream.streamId, sub);
    (async () => {
      await this.#request({ type: "subscribe", streamId: stream.streamId });
      if (this.mediaMode === "routed") {
        this.#ensureReceiver();
        sub.pc = this.receiver.pc;
        callback?.();
        return;
      }
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      sub.pc = pc;
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (e) => this.#attachTrack(sub, e.track);
      pc.onicecandidate = (e) => e.candidate && this.#send({ type: "ice", to: stream.connectionId, streamId: stream.streamId, candidate: e.candidate.toJSON() });
      await pc.setLocalDescription(await pc.createOffer());
      this.#send({ type: "sdp", to: stream.connectionId, streamId: stream.streamId, kind: "offer", sdp: pc.localDescription.sdp });
      callback?.();
    })().catch((e) => { sub.emit("error", { error: e }); callback?.(e); });
    return sub;
  }

  unsubscribe(subscriber) {
    if (subscriber.pc !== this.receiver?.pc) subscriber.pc?.close();
    subscriber.videoElement?.remove();
    this.subscribers.delete(subscriber.stream.streamId);
    return this.#request({ type: "unsubscribe", streamId: subscriber.stream.streamId });
  }

  async #onSdp(msg) {
    if (msg.kind === "offer") {
      // Someone subscribed to our stream: answer with our local tracks.
      const publisher = this.publishers.get(msg.streamId);
      if (!publisher) return;
      const key = `${msg.streamId}/${msg.from}`;
      this.publisherPeers.get(key)?.close();
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      this.publisherPeers.set(key, pc);
      for (const track of publisher.mediaStream.getTracks()) pc.addTrack(track, publisher.mediaStream);
      pc.onicecandidate = (e) => e.candidate && this.#send({ type: "ice", to: msg.from, streamId: msg.streamId, candidate: e.candidate.toJSON() });
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      this.#send({ type: "sdp", to: msg.from, streamId: msg.streamId, kind: "answer", sdp: pc.localDescription.sdp });
    } else {
      await this.subscribers.get(msg.streamId)?.pc?.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    }
  }

  async #onIce(msg) {
    const pc = this.publishers.has(msg.streamId) ? this.publisherPeers.get(`${msg.streamId}/${msg.from}`) : this.subscribers.get(msg.streamId)?.pc;
    try { await pc?.addIceCandidate(msg.candidate); } catch (e) { console.warn("ICE candidate refused", e); }
  }

  /**
   * Sends a signal to everyone, or to `to` (a connection or its id).
   * @param {{type?: string, data?: string, to?: any}} [signal]
   * @param {(error?: Error) => void} [callback]
   */
  signal({ type = "", data = "", to } = {}, callback) {
    const p = this.#request({ type: "signal", signalType: type, data, to: to?.connectionId ?? to });
    if (callback) p.then(() => callback(), callback);
    return p;
  }

  forceDisconnect(connection) { return this.#request({ type: "forceDisconnect", connectionId: connection?.connectionId ?? connection }); }
  forceUnpublish(stream) { return this.#request({ type: "forceUnpublish", streamId: stream?.streamId ?? stream }); }
  forceMuteStream(stream) { return this.#request({ type: "forceMute", streamId: stream?.streamId ?? stream }); }
  forceMuteAll(excludedStreams = []) { return this.#request({ type: "forceMuteAll", excludedStreamIds: excludedStreams.map((s) => s?.streamId ?? s) }); }
  disableForceMute() { return this.#request({ type: "disableForceMute" }); }

  disconnect() {
    this.#closing = true;
    this.#send({ type: "disconnect" });
  }
}
