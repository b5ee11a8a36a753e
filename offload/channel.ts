/**
 * The one channel between the control plane and an offload worker: requests
 * with ids, responses that settle them, and notifications addressed to an
 * entity (a session). Both sides import the names and types from here.
 *
 * Payload bytes never travel on this channel: media moves between storage, the
 * cache and the sockets inside the offload. `binaryBytes()` measures what does
 * cross, and the control plane exports it as a metric that stays 0.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Encoding, Probe, RecordCounts, RecordedTrack, TrackSpec } from '../storage/types.js';
import type { MediaLayout } from './cache.js';

export interface TrackPlan {
  /** Index of the track in the probe. */
  source: number;
  encoding: Encoding;
}

/** What the control plane asks the offload to put in its cache. */
export interface CacheLoadParams {
  key: string;
  path: string;
  format: Probe['format'];
  tracks: TrackPlan[];
  payloadBytes: number;
  spread: number;
  frameRate?: number;
  /** The `keep` key of a media.probe on this worker whose reader the load takes (no second parse). */
  probed?: string;
}

/** What the control plane asks the offload to probe (it never opens media itself). */
export interface MediaProbeParams {
  path: string;
  /** Frame rate for raw H.264 without VUI timing. */
  frameRate?: number;
  /** An upload: read and packetize every sample as a play would, refuse empty media (422). */
  validate: boolean;
  /** Keep the opened reader a few seconds under this key, for the cache load that follows. */
  keep?: string;
}

export interface CachedTrackInfo {
  packets: number;
  payloadBytes: number;
  /** End of the track (last pts + duration) in the track's clock. */
  endTs: number;
  clockRate: number;
  sync: number;
}

export interface CacheLoadResult {
  key: string;
  bytes: number;
  /** Media bytes (payloads) in that; the rest is the packet index. */
  payloadBytes: number;
  tracks: CachedTrackInfo[];
  loadMs: number;
}

export interface PlayTrackParams {
  localPort: number;
  /** Address family of the destination, so the offload binds a matching socket. */
  family: 4 | 6;
  destHost: string;
  destPort: number;
  payloadType: number;
  ssrc: number;
  /** Initial sequence number and RTP timestamp (random, RFC 3550 5.1). */
  seq: number;
  tsBase: number;
  clockRate: number;
  /** Index of this track's packets in the cache entry. */
  cacheTrack: number;
  /**
   * RTP/AVP/TCP: send on RTSP connection `conn` in `$`-frames on `channel`
   * (RTCP on channel + 1) instead of UDP; localPort, destHost and destPort are
   * then unused. Only on the worker that runs the RTSP listener.
   */
  interleaved?: { conn: number; channel: number };
}

export interface PlayCreateParams {
  sessionId: string;
  cacheKey: string;
  /** Worker that loaded the entry (holds its shared buffer). */
  cacheOwner: number;
  tracks: PlayTrackParams[];
  loop: boolean;
  paused: boolean;
  startMs: number;
  /** Multiplier of real time, or 0 for "max" (as fast as the socket allows). */
  speed: number;
  /** The media's length in ms, common to all tracks (the loop period). */
  durationMs: number;
  cname: string;
}

export interface PlayUpdateParams {
  sessionId: string;
  state?: 'playing' | 'paused';
  positionMs?: number;
}

export interface ReceiverReportStats {
  fractionLost: number;
  totalLost: number;
  jitter: number;
  /** Jitter in ms (jitter / clockRate). */
  jitterMs: number;
  rttMs: number | null;
  highestSeq: number;
  receivedAt: number;
}

export interface TrackStats {
  packets: number;
  octets: number;
  sendErrors: number;
  dropped: number;
  srSent: number;
  rr: ReceiverReportStats | null;
  rrCount: number;
  /** RTCP that came from elsewhere than the destination's address and RTCP (or RTP) port: ignored. */
  rtcpRejected: number;
  /** Play tracks: this track's send lateness (ms buckets, cumulative since the start), one sample per packet sent. */
  lateness?: HistogramSnapshot;
}

/** A track's next sequence number and the RTP time of the session's position (RTSP RTP-Info). */
export interface RtpInfoEntry {
  seq: number;
  rtptime: number;
}

/** Where a play session (re)started, and each track's RTP numbering there. */
export interface RtpInfo {
  positionMs: number;
  tracks: RtpInfoEntry[];
}

export interface SessionStats {
  /** Play sessions, answering play.update: where it (re)started and each track's RTP-Info. */
  rtpInfo?: RtpInfo;
  sessionId: string;
  state: 'playing' | 'paused' | 'ended' | 'failed';
  positionMs: number;
  loops: number;
  tracks: TrackStats[];
}

export interface WorkerStats {
  worker: number;
  sessions: number;
  packets: number;
  octets: number;
  sendErrors: number;
  dropped: number;
  cacheEntries: number;
  /** Record path totals: packets recorded, slow/fast path, drops by reason. */
  record: { packets: number; bytes: number; slowPath: number; fastPath: number; drops: Record<string, number> };
  /** The native batched sender is in use (else dgram), and why not when it was wanted. */
  nativeSend: boolean;
  nativeError: string | null;
  batches: number;
  /**
   * Who paces UDP play tracks: the native engine's C thread, or JavaScript
   * (the addon is missing, `offload.nativeSend` is false, or the engine failed: `engineError`).
   */
  engine: 'native' | 'js';
  engineError: string | null;
  /** Tracks in the engine now; its sendmmsg/sendmsg calls, GSO sends, and sockets that refused GSO. */
  engineTracks: number;
  engineSyscalls: number;
  gsoSends: number;
  gsoRefused: number;
  /** Send lateness histogram (ms buckets, cumulative-free counts), and the scheduler's own lag. */
  lateness: HistogramSnapshot;
  lag: HistogramSnapshot;
  rtsp: RtspWorkerStats;
}

export interface HistogramSnapshot {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

export interface RecordTrackParams extends TrackSpec {
  /** The UDP port pair's RTP port (0 for an interleaved track: no sockets). */
  localPort: number;
  /** Our SSRC for receiver reports. */
  ssrc: number;
  /** Address family of the UDP sockets (default 4; an RTSP publisher's over IPv6: 6). */
  family?: 4 | 6;
  /**
   * RTSP RECORD over RTP/AVP/TCP: the track's packets come in `$`-frames on
   * RTSP connection `conn`, RTP on `channel` and RTCP on channel + 1, instead
   * of UDP. Only on the worker that runs the RTSP listener.
   */
  interleaved?: { conn: number; channel: number };
}

export interface RecordCreateParams {
  sessionId: string;
  name: string;
  /** Absolute path of the recording's folder (created by the offload). */
  dir: string;
  tracks: RecordTrackParams[];
  /** RTCP multiplexed on the RTP port (RFC 5761) is accepted. */
  rtcpMux: boolean;
  idleTimeoutMs: number;
  maxDurationMs: number;
  reorderPackets: number;
  reorderMs: number;
  /** Longest a packet of a new flow is held while the control plane decides, ms. */
  holdMs: number;
  flushMs: number;
  cname: string;
}

export interface FlowKey {
  sessionId: string;
  track: number;
  address: string;
  port: number;
  ssrc: number;
}

/** Header fields of the first packet of a new flow: the slow path carries no payload. */
export interface FlowHeader extends FlowKey {
  version: number;
  payloadType: number;
  seq: number;
  ts: number;
  marker: boolean;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  /** Length of the whole packet in bytes (a number, not the bytes). */
  length: number;
}

export interface RecordTrackStats extends RecordCounts {
  slowPath: number;
  fastPath: number;
  drops: Record<string, number>;
  jitterMs: number;
  source: { address: string; port: number; ssrc: number } | null;
  frames: number;
}

export interface RecordingSummary {
  name: string;
  state: 'finished' | 'failed';
  reason: string;
  error?: string;
  durationMs: number;
  tracks: RecordedTrack[];
}

export interface RecordStats {
  sessionId: string;
  state: 'recording' | 'finishing' | 'ended' | 'failed';
  durationMs: number;
  tracks: RecordTrackStats[];
}

export interface LiveCreateParams {
  sessionId: string;
  recordSessionId: string;
  tracks: (PlayTrackParams & { recordTrack: number })[];
  cname: string;
}

/** Where the RTSP listener listens, and its limits (the worker that runs it). */
export interface RtspListenParams {
  host: string;
  /** 0: any free port (tests). */
  port: number;
  /** A request must be whole this long after its first byte (slowloris), ms. */
  requestTimeoutMs: number;
  /** A connection with no RTSP session and no bytes for this long is closed, ms. */
  idleTimeoutMs: number;
  /** Connections open at once; one more is answered 503 and closed. */
  maxConnections: number;
}

/**
 * One RTSP request, as the offload's listener parsed it, for the control plane
 * to decide. Requests of one connection go one at a time, in order: the next
 * follows the answer (`rtsp.respond`) to the previous one.
 */
export interface RtspRequestNote {
  conn: number;
  /** Position of the request on its connection (answers name it). */
  seq: number;
  method: string;
  uri: string;
  /** Header values by lower-case name. */
  headers: Record<string, string>;
  /** The body as text (an SDP of ANNOUNCE, parameters): control data, never media. */
  body: string;
  peer: { address: string; port: number; family: 4 | 6 };
  /** The listener's own address and port as the client reached it. */
  local: { address: string; port: number };
}

/** The control plane's answer to an RTSP request, which the listener writes to the connection. */
export interface RtspAnswer {
  conn: number;
  seq: number;
  status: number;
  reason: string;
  headers: [string, string][];
  body?: string;
  /** Close the connection after writing the answer. */
  close?: boolean;
}

/** The RTSP listener's counters (the worker that runs it; zeros elsewhere). */
export interface RtspWorkerStats {
  connections: number;
  connectionsTotal: number;
  /** Connections refused because maxConnections were open. */
  refused: number;
  requests: number;
  /** Malformed or oversized requests (answered 400/413/505, connection closed). */
  badRequests: number;
  /** Connections closed for a request that did not complete in time, or idleness. */
  timeouts: number;
  /** Interleaved frames received on a channel nothing is set up on: dropped. */
  unknownChannel: number;
  /** Interleaved packets written, and dropped because the connection's backlog was full. */
  interleavedPackets: number;
  interleavedDropped: number;
}

export interface Requests {
  'cache.load': { params: CacheLoadParams; result: CacheLoadResult };
  'cache.evict': { params: { key: string }; result: { evicted: boolean } };
  'media.probe': { params: MediaProbeParams; result: Probe };
  /** rtpInfo: where the session starts (keyframe-snapped) and each track's RTP numbering there (RTSP's Range and RTP-Info). */
  'play.create': { params: PlayCreateParams; result: { sourcePorts: number[]; durationMs: number; rtpInfo?: RtpInfo } };
  'play.update': { params: PlayUpdateParams; result: SessionStats };
  /** Ends a play or live session (SR + BYE); null when it had already ended. */
  'session.end': { params: { sessionId: string }; result: SessionStats | null };
  'session.stats': { params: { sessionIds?: string[] }; result: SessionStats[] };
  'worker.stats': { params: Record<string, never>; result: WorkerStats };
  'record.create': { params: RecordCreateParams; result: { ports: number[] } };
  /**
   * Ends a record session and answers with its summary once the files are final.
   * That answer is the only report of this end: no `record.ended` follows.
   */
  'record.end': { params: { sessionId: string; reason: string }; result: RecordingSummary };
  'record.stats': { params: { sessionIds?: string[] }; result: RecordStats[] };
  'flow.install': { params: FlowKey; result: { installed: boolean; released: number } };
  'flow.reject': { params: FlowKey & { reason: string }; result: { dropped: number } };
  'record.recover': { params: { root: string }; result: { recovered: RecordingSummary[]; errors: { name: string; error: string }[] } };
  'live.create': { params: LiveCreateParams; result: { sourcePorts: number[] } };
  /**
   * Binds and closes a local port pair: whether another program holds it
   * (OFFCAST_PORT_IN_USE). RTSP answers server_port at SETUP, before the
   * session that binds the pair exists.
   */
  'ports.check': { params: { localPort: number; family: 4 | 6 }; result: { free: boolean } };
  /** Starts the RTSP listener on this worker (see README: RTSP). */
  'rtsp.listen': { params: RtspListenParams; result: { port: number } };
  /** Writes the answer to request `seq` of connection `conn`; false when the connection is gone. */
  'rtsp.respond': { params: RtspAnswer; result: { sent: boolean } };
}

export type Method = keyof Requests;

export interface Notifications {
  /** A play session ended by itself (end of media, or a fatal socket error). */
  'session.ended': { sessionId: string; reason: 'completed' | 'failed'; error?: string; stats: SessionStats };
  /** The first packet of a new flow on a record track: header only. */
  'flow.new': FlowHeader;
  /**
   * A record session ended by itself (idle, max duration, BYE, disk error). An
   * end the control plane asked for (`record.end`) is reported by that request's
   * result instead, never both.
   */
  'record.ended': { sessionId: string; summary: RecordingSummary };
  /** An RTSP request for the control plane to decide (answered with `rtsp.respond`). */
  'rtsp.request': RtspRequestNote;
  /** An RTSP connection closed (its interleaved tracks can no longer send). */
  'rtsp.closed': { conn: number; reason: string };
}

export type Event = keyof Notifications;

export type RequestMessage = { [M in Method]: { kind: 'request'; id: number; method: M; params: Requests[M]['params'] } }[Method];

export interface ErrorBody {
  code: string;
  message: string;
  statusCode?: number;
}

export type ResponseMessage = { kind: 'response'; id: number; ok: true; result: unknown } | { kind: 'response'; id: number; ok: false; error: ErrorBody };

export type NotificationMessage = { [E in Event]: { kind: 'notification'; event: E; data: Notifications[E] } }[Event];

export type WorkerMessage = ResponseMessage | NotificationMessage | { kind: 'ready'; worker: number };

/** A worker's start parameters (its `workerData`). */
export interface WorkerInit {
  index: number;
  /** Use the native batched sender when it is built. */
  nativeSend: boolean;
  bindHost: string;
  rtcpIntervalMs: number;
  /** Port to every other worker, by worker index (null for itself). */
  peers: (MessagePort | null)[];
}

/** From the control plane to a worker besides requests: a restarted worker's new peer port. */
export interface PeerPortMessage {
  kind: 'peer';
  index: number;
  port: MessagePort;
}

/**
 * Between two workers, on their own MessageChannel: one asks the owner of a
 * cache entry for its shared buffer (`cache.get`), the owner answers
 * (`cache.entry`, null when it no longer holds it).
 */
export type PeerMessage =
  { kind: 'cache.get'; id: number; key: string } | { kind: 'cache.entry'; id: number; sab: SharedArrayBuffer | null; layout: MediaLayout | null };

/** An error the offload reports to the control plane, with an HTTP status to pass on. */
export class OffloadError extends Error {
  readonly code: string;
  readonly statusCode: number;
  constructor(code: string, message: string, statusCode = 500) {
    super(message);
    this.name = 'OffloadError';
    this.code = code;
    this.statusCode = statusCode;
  }
}

/** Bytes of binary data (typed arrays, ArrayBuffers, SharedArrayBuffers) inside a message. */
export function binaryBytes(value: unknown, depth = 0): number {
  if (value === null || typeof value !== 'object' || depth > 16) return 0;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return value.byteLength;
  let total = 0;
  if (Array.isArray(value)) {
    for (const item of value) total += binaryBytes(item, depth + 1);
  } else {
    for (const key in value) total += binaryBytes((value as Record<string, unknown>)[key], depth + 1);
  }
  return total;
}
