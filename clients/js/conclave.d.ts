// Types for the Conclave browser SDK (conclave.js). The API follows OpenTok.js.

export interface Connection { connectionId: string; data: string; creationTime?: number; role?: string }
export interface Stream {
  streamId: string; connectionId: string; connection?: Connection; name: string;
  hasAudio: boolean; hasVideo: boolean; videoType: "camera" | "screen";
  layoutClassList: string[]; createdAt: number; subscriberCount: number;
}
export type DisconnectReason = "clientDisconnected" | "networkDisconnected" | "forceDisconnected" | "sessionEnded";

export interface SessionEvents {
  sessionConnected: { connection: Connection };
  sessionReconnecting: {};
  sessionReconnected: {};
  sessionDisconnected: { reason: DisconnectReason };
  connectionCreated: { connection: Connection };
  connectionDestroyed: { connection?: Connection; reason: DisconnectReason };
  streamCreated: { stream: Stream };
  streamDestroyed: { stream?: Stream; reason: string };
  streamPropertyChanged: { stream?: Stream; changedProperty: "hasAudio" | "hasVideo" | "layoutClassList"; newValue: unknown };
  subscriberCountChanged: { stream?: Stream; streamId: string; count: number };
  signal: { type: string; data: string; from: Connection | null };
  muteForced: { streamId?: string; active?: boolean };
  muteForcedDisabled: { active: boolean };
  error: { code: string; message: string };
}

type Handler<E> = (event: E & { type: string; target: unknown }) => void;

declare class Emitter<Events> {
  on<K extends keyof Events & string>(type: K, handler: Handler<Events[K]>): this;
  on(type: string, handler: Handler<any>): this;
  off(type: string, handler: Handler<any>): this;
  once<K extends keyof Events & string>(type: K, handler: Handler<Events[K]>): this;
}

export interface PublisherProperties {
  name?: string; audio?: boolean; video?: boolean; publishAudio?: boolean; publishVideo?: boolean;
  videoType?: "camera" | "screen"; mediaStream?: MediaStream;
  /** Routed sessions: send video in three simulcast layers (default true). */
  simulcast?: boolean;
}

export declare class Publisher extends Emitter<{ streamCreated: { stream: Stream }; streamDestroyed: { stream?: Stream; reason: string }; muteForced: {} }> {
  readonly stream: Stream | null;
  readonly mediaStream: MediaStream | null;
  readonly ready: Promise<Publisher>;
  publishAudio(on: boolean): void;
  publishVideo(on: boolean): void;
  destroy(): void;
}

export declare class Subscriber extends Emitter<{ videoElementCreated: { element: HTMLVideoElement }; error: { error: unknown } }> {
  readonly stream: Stream;
  readonly videoElement: HTMLVideoElement | null;
  getStats(): Promise<RTCStatsReport | Map<string, unknown>>;
  /** Routed sessions: the simulcast layer to receive, by size; no argument: the best. */
  setPreferredResolution(resolution?: { width?: number; height?: number }): Promise<unknown>;
  /** Routed sessions: the frame rate to receive; no argument: the full rate. */
  setPreferredFrameRate(frameRate?: number): Promise<unknown>;
}

export interface SessionOptions {
  url?: string;
  iceServers?: RTCIceServer[];
  /** After a drop, how long to keep trying a fresh join (cluster failover); default 30000 ms. */
  rejoinTimeoutMs?: number;
}

export declare class Session extends Emitter<SessionEvents> {
  readonly apiKey: string;
  readonly sessionId: string;
  readonly connection: Connection | null;
  readonly capabilities: { publish?: boolean; subscribe?: boolean; forceDisconnect?: boolean; forceUnpublish?: boolean };
  readonly streams: Map<string, Stream>;
  connect(token: string, callback?: (error?: Error) => void): Promise<Session>;
  publish(publisher: Publisher | HTMLElement | string, callback?: (error?: Error) => void): Promise<Publisher>;
  unpublish(publisher: Publisher): Promise<void>;
  subscribe(stream: Stream, element: HTMLElement | string, properties?: object, callback?: (error?: Error) => void): Subscriber;
  unsubscribe(subscriber: Subscriber): Promise<unknown>;
  signal(signal: { type?: string; data?: string; to?: Connection | string }, callback?: (error?: Error) => void): Promise<unknown>;
  forceDisconnect(connection: Connection | string): Promise<unknown>;
  forceUnpublish(stream: Stream | string): Promise<unknown>;
  forceMuteStream(stream: Stream | string): Promise<unknown>;
  forceMuteAll(excludedStreams?: Array<Stream | string>): Promise<unknown>;
  disableForceMute(): Promise<unknown>;
  disconnect(): void;
  /** E2EE sessions: the shared secret the app sets before publishing or subscribing. */
  setEncryptionSecret(secret: string): Promise<void>;
  readonly e2ee: boolean;
}

export declare function initSession(apiKey: string, sessionId: string, options?: SessionOptions): Session;
export declare function initPublisher(element: HTMLElement | string | null, properties?: PublisherProperties): Publisher;
