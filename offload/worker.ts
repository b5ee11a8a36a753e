/**
 * Entry of an offload worker thread: the interface device. It owns the UDP
 * sockets, its view of the packet cache and one timing wheel, and answers the
 * control plane's requests on the channel (offload/channel.ts). Workers share
 * cache entries with each other over their own ports, never through the
 * control plane.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import {
  OffloadError,
  type ErrorBody,
  type Method,
  type Notifications,
  type Event,
  type PeerMessage,
  type PeerPortMessage,
  type RequestMessage,
  type Requests,
  type WorkerInit,
  type WorkerMessage,
  type SessionStats,
} from './channel.js';
import { MediaPackets, PacketCache } from './cache.js';
import { loadMediaPackets } from './load.js';
import { probeFile, ProbedReaders } from './probe.js';
import { TimingWheel } from './scheduler.js';
import { PlaySession } from './play/session.js';
import { Histogram, addSnapshots } from './histogram.js';
import { BatchSender } from './batch.js';
import { engineAddon, nativeSender, nativeLoadError } from './native/index.js';
import { E, NativeEngine } from './native/engine.js';
import { RecordSession } from './record/session.js';
import { LiveSession } from './play/live.js';
import { recoverRecordings } from './record/recover.js';
import { registerRecordingReader } from './record/reader.js';
import { RtspListener } from './rtsp/listener.js';
import { bindPortPair, closePortPair } from './sockets.js';

/**
 * How long a worker waits for a peer's answer to `cache.get`. The owner answers
 * from its message loop, so only a stuck owner takes long; a dead one closes
 * the port, which fails the fetch at once.
 */
const PEER_FETCH_TIMEOUT_MS = 5000;

registerRecordingReader();

const init = workerData as WorkerInit;
const port = parentPort!;
const cache = new PacketCache();
const lateness = new Histogram();
const lag = new Histogram();
const native = init.nativeSend ? nativeSender() : null;
const batch = native === null ? null : new BatchSender(native.sendBatch, native.copyBytes);
/** Slots of the native pacing engine: tracks beyond them are paced in JavaScript. */
const ENGINE_TRACKS = 32768;
const addon = init.nativeSend ? engineAddon() : null;
let engine: NativeEngine | null = null;
let engineError: string | null = init.nativeSend && addon === null ? (nativeLoadError() ?? 'the addon has no engine') : null;
/** The native pacing engine, opened (its thread started) at the first track that uses it. */
function nativeEngine(): NativeEngine | null {
  if (engine !== null || addon === null || engineError !== null) return engine;
  try {
    engine = new NativeEngine(addon, ENGINE_TRACKS);
  } catch (err) {
    engineError = (err as Error).message;
  }
  return engine;
}
/** The RTSP listener (only the worker the control plane asks to listen runs one). */
const rtsp = new RtspListener({
  request: (note) => notify('rtsp.request', note),
  closed: (conn, reason) => notify('rtsp.closed', { conn, reason }),
});
const wheel = new TimingWheel(() => performance.now(), {
  onLag: (ms) => lag.observe(ms),
  afterTick: () => {
    batch?.flush();
    rtsp.flush();
  },
});
const sessions = new Map<string, PlaySession>();
const records = new Map<string, RecordSession>();
const lives = new Map<string, LiveSession>();
const loading = new Map<string, Promise<MediaPackets>>();
const probed = new ProbedReaders();
const totals = { packets: 0, octets: 0, sendErrors: 0, dropped: 0 };

function post(msg: WorkerMessage): void {
  port.postMessage(msg);
}

function notify<E extends Event>(event: E, data: Notifications[E]): void {
  post({ kind: 'notification', event, data } as WorkerMessage);
}

const hooks = {
  wheel,
  bindHost: init.bindHost,
  rtcpIntervalMs: init.rtcpIntervalMs,
  batch,
  rtsp,
  engine: nativeEngine,
  onSent(lateMs: number, bytes: number): void {
    lateness.observe(lateMs < 0 ? 0 : lateMs);
    totals.packets++;
    totals.octets += bytes;
  },
  onEnded(session: PlaySession, reason: 'completed' | 'failed', error?: string): void {
    sessions.delete(session.id);
    addTotals(session.stats());
    const data: Notifications['session.ended'] = { sessionId: session.id, reason, stats: session.stats() };
    if (error !== undefined) data.error = error;
    notify('session.ended', data);
  },
};

const recordHooks = {
  bindHost: init.bindHost,
  rtsp,
  rtcpIntervalMs: init.rtcpIntervalMs,
  onFlow(header: Notifications['flow.new']): void {
    notify('flow.new', header);
  },
  onEnded(session: RecordSession, summary: Notifications['record.ended']['summary']): void {
    records.delete(session.id);
    addRecordTotals(recordRetired, session);
    if (!session.endRequested) notify('record.ended', { sessionId: session.id, summary });
    // Live subscribers of this recording end with it.
    for (const live of [...lives.values()]) {
      if (live.record !== session) continue;
      live.close();
      lives.delete(live.id);
      notify('session.ended', { sessionId: live.id, reason: 'completed', stats: live.stats() });
    }
  },
};

/** Record-path counters of sessions that are gone. */
interface RecordTotals {
  packets: number;
  bytes: number;
  slowPath: number;
  fastPath: number;
  drops: Record<string, number>;
}
const recordRetired: RecordTotals = { packets: 0, bytes: 0, slowPath: 0, fastPath: 0, drops: {} };
function addRecordTotals(into: RecordTotals, session: RecordSession): void {
  for (const t of session.tracks) {
    into.packets += t.stats.packets;
    into.bytes += t.stats.bytes;
    into.slowPath += t.stats.slowPath;
    into.fastPath += t.stats.fastPath;
    for (const [k, v] of Object.entries(t.stats.drops)) into.drops[k] = (into.drops[k] ?? 0) + v;
  }
}

/** Record-path totals: the retired sessions' plus the live ones'. */
function recordTotals(): RecordTotals {
  const r: RecordTotals = { ...recordRetired, drops: { ...recordRetired.drops } };
  for (const s of records.values()) addRecordTotals(r, s);
  return r;
}

/** Counters of sessions that are gone, so worker totals stay monotonic. */
const retired = { sendErrors: 0, dropped: 0 };
function addTotals(stats: SessionStats): void {
  for (const t of stats.tracks) {
    retired.sendErrors += t.sendErrors;
    retired.dropped += t.dropped;
  }
}

// --- cache sharing between workers -------------------------------------------------

let peerReq = 0;
interface PeerWait {
  owner: number;
  settle(m: (PeerMessage & { kind: 'cache.entry' }) | Error): void;
}
const peerWaiting = new Map<number, PeerWait>();

/** Fails every fetch waiting on worker `owner` (its port closed or was replaced). */
function failPeerWaits(owner: number, why: string): void {
  for (const [id, w] of peerWaiting) {
    if (w.owner !== owner) continue;
    peerWaiting.delete(id);
    w.settle(new OffloadError('OFFCAST_OFFLOAD_DOWN', `worker ${owner} ${why}`, 503));
  }
}

function attachPeer(index: number, peer: MessagePort): void {
  peer.on('message', (m: PeerMessage) => {
    if (m.kind === 'cache.get') {
      const e = cache.get(m.key);
      peer.postMessage({ kind: 'cache.entry', id: m.id, sab: e?.sab ?? null, layout: e?.layout ?? null } satisfies PeerMessage);
    } else {
      const w = peerWaiting.get(m.id);
      peerWaiting.delete(m.id);
      w?.settle(m);
    }
  });
  // The other side is gone (its worker died): nothing will answer on this port.
  peer.once('close', () => {
    if (init.peers[index] === peer) init.peers[index] = null;
    failPeerWaits(index, 'stopped while sending a cache entry');
  });
}
init.peers.forEach((peer, i) => {
  if (peer !== null) attachPeer(i, peer);
});

async function entryFor(key: string, owner: number): Promise<MediaPackets> {
  const local = cache.get(key);
  if (local !== undefined) return local;
  const pending = loading.get(key);
  if (pending !== undefined) return pending;
  const peer = init.peers[owner];
  if (peer === null || peer === undefined) throw new OffloadError('OFFCAST_CACHE_MISS', `cache entry ${key} is not loaded`, 500);
  const p = new Promise<MediaPackets>((resolve, reject) => {
    const id = ++peerReq;
    const timer = setTimeout(() => {
      peerWaiting.delete(id);
      reject(new OffloadError('OFFCAST_OFFLOAD_TIMEOUT', `worker ${owner} did not send cache entry ${key} in time`, 503));
    }, PEER_FETCH_TIMEOUT_MS);
    peerWaiting.set(id, {
      owner,
      settle(m) {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else if (m.sab === null || m.layout === null) reject(new OffloadError('OFFCAST_CACHE_MISS', `worker ${owner} no longer holds ${key}`, 500));
        else {
          const entry = new MediaPackets(m.sab, m.layout);
          cache.set(entry);
          resolve(entry);
        }
      },
    });
    peer.postMessage({ kind: 'cache.get', id, key } satisfies PeerMessage);
  });
  loading.set(key, p);
  try {
    return await p;
  } finally {
    loading.delete(key);
  }
}

// --- requests ------------------------------------------------------------------------

type Handler<M extends Method> = (params: Requests[M]['params']) => Promise<Requests[M]['result']> | Requests[M]['result'];

const handlers: { [M in Method]: Handler<M> } = {
  async 'cache.load'(params) {
    const started = performance.now();
    const existing = cache.get(params.key);
    if (existing !== undefined) return existing.info(0);
    let p = loading.get(params.key);
    if (p === undefined) {
      p = loadMediaPackets(params, params.probed === undefined ? undefined : probed.take(params.probed));
      loading.set(params.key, p);
    }
    try {
      const entry = await p;
      cache.set(entry);
      return entry.info(performance.now() - started);
    } finally {
      loading.delete(params.key);
    }
  },

  'cache.evict'({ key }) {
    return { evicted: cache.delete(key) };
  },

  'media.probe'(params) {
    return probeFile(params, probed);
  },

  async 'play.create'(params) {
    if (sessions.has(params.sessionId)) throw new OffloadError('OFFCAST_SESSION_EXISTS', `session ${params.sessionId} exists`, 409);
    const entry = await entryFor(params.cacheKey, params.cacheOwner);
    const session = new PlaySession(params, entry, hooks);
    await session.open(params.startMs, params.paused);
    sessions.set(params.sessionId, session);
    const now = performance.now();
    return {
      sourcePorts: params.tracks.map((t) => t.localPort),
      durationMs: session.loopMs,
      rtpInfo: session.rtpInfo(now),
      positionMs: session.stats(now).positionMs,
    };
  },

  'play.update'({ sessionId, state, positionMs }) {
    const s = sessions.get(sessionId);
    if (s === undefined) throw new OffloadError('OFFCAST_SESSION_NOT_FOUND', `session ${sessionId} is not running`, 404);
    if (positionMs !== undefined) s.seek(positionMs);
    if (state === 'paused') s.pause();
    else if (state === 'playing') s.resume();
    const now = performance.now();
    return { ...s.stats(now), rtpInfo: s.rtpInfo(now) };
  },

  'session.end'({ sessionId }) {
    const live = lives.get(sessionId);
    if (live !== undefined) {
      lives.delete(sessionId);
      live.close();
      return live.stats();
    }
    const s = sessions.get(sessionId);
    if (s === undefined) return null;
    sessions.delete(sessionId);
    s.close();
    const stats = s.stats();
    addTotals(stats);
    return stats;
  },

  'session.stats'({ sessionIds }) {
    const now = performance.now();
    const out: SessionStats[] = [];
    if (sessionIds === undefined) {
      for (const s of sessions.values()) out.push(s.stats(now));
      for (const l of lives.values()) out.push(l.stats());
    } else
      for (const id of sessionIds) {
        const s = sessions.get(id) ?? lives.get(id);
        if (s !== undefined) out.push(s.stats(now));
      }
    return out;
  },

  async 'record.create'(params) {
    if (records.has(params.sessionId)) throw new OffloadError('OFFCAST_SESSION_EXISTS', `session ${params.sessionId} exists`, 409);
    const session = new RecordSession(params, recordHooks);
    await session.open();
    records.set(params.sessionId, session);
    return { ports: params.tracks.map((t) => t.localPort) };
  },

  async 'record.end'({ sessionId, reason }) {
    const s = records.get(sessionId);
    if (s === undefined) throw new OffloadError('OFFCAST_SESSION_NOT_FOUND', `record session ${sessionId} is not running`, 404);
    // This answer reports the end (also when the session was already ending by itself): no record.ended.
    s.endRequested = true;
    return s.end(reason);
  },

  'record.stats'({ sessionIds }) {
    const out = [];
    for (const s of records.values()) if (sessionIds === undefined || sessionIds.includes(s.id)) out.push(s.stats());
    return out;
  },

  'flow.install'({ sessionId, track, address, port, ssrc }) {
    const t = records.get(sessionId)?.tracks[track];
    if (t === undefined) return { installed: false, released: 0 };
    return t.install(address, port, ssrc);
  },

  'flow.reject'({ sessionId, track, address, port, ssrc }) {
    const t = records.get(sessionId)?.tracks[track];
    if (t === undefined) return { dropped: 0 };
    return { dropped: t.reject(address, port, ssrc) };
  },

  async 'record.recover'({ root }) {
    return recoverRecordings(root);
  },

  async 'live.create'(params) {
    const record = records.get(params.recordSessionId);
    if (record === undefined || record.state !== 'recording') {
      throw new OffloadError('OFFCAST_SESSION_NOT_FOUND', `record session ${params.recordSessionId} is not recording`, 404);
    }
    const live = new LiveSession(params, record);
    await live.open(init.bindHost, rtsp);
    lives.set(params.sessionId, live);
    return { sourcePorts: params.tracks.map((t) => t.localPort) };
  },

  async 'ports.check'({ localPort, family }) {
    closePortPair(await bindPortPair(localPort, init.bindHost, family));
    return { free: true };
  },

  async 'rtsp.listen'(params) {
    return { port: await rtsp.listen(params) };
  },

  'rtsp.respond'(answer) {
    return { sent: rtsp.respond(answer) };
  },

  'worker.stats'() {
    let sendErrors = retired.sendErrors;
    let dropped = retired.dropped;
    for (const s of sessions.values())
      for (const t of s.tracks) {
        sendErrors += t.stats.sendErrors;
        dropped += t.stats.dropped;
      }
    const e = engine;
    return {
      worker: init.index,
      sessions: sessions.size,
      packets: totals.packets + (e?.totals[E.packets] ?? 0),
      octets: totals.octets + (e?.totals[E.octets] ?? 0),
      sendErrors,
      dropped,
      cacheEntries: cache.size,
      record: recordTotals(),
      nativeSend: batch !== null,
      nativeError: init.nativeSend && batch === null ? (nativeLoadError() ?? 'not built') : null,
      batches: batch?.batches ?? 0,
      engine: addon !== null && engineError === null ? 'native' : 'js',
      engineError,
      engineTracks: e?.tracks ?? 0,
      engineSyscalls: e?.totals[E.syscalls] ?? 0,
      gsoSends: e?.totals[E.gso] ?? 0,
      gsoRefused: e?.totals[E.gsoRefused] ?? 0,
      lateness: e === null ? lateness.snapshot() : addSnapshots(lateness.snapshot(), e.lateness()),
      lag: e === null ? lag.snapshot() : addSnapshots(lag.snapshot(), e.lag()),
      rtsp: rtsp.snapshot(),
    };
  },
};

function errorBody(err: unknown): ErrorBody {
  if (err instanceof OffloadError) return { code: err.code, message: err.message, statusCode: err.statusCode };
  const e = err as Error;
  return { code: 'OFFCAST_OFFLOAD_ERROR', message: e?.message ?? String(err), statusCode: 500 };
}

port.on('message', (msg: RequestMessage | PeerPortMessage) => {
  if (msg.kind === 'peer') {
    // A restarted worker: talk to it over a fresh port. What waited on the old one fails now.
    const old = init.peers[msg.index];
    init.peers[msg.index] = msg.port;
    old?.close();
    failPeerWaits(msg.index, 'was restarted');
    attachPeer(msg.index, msg.port);
    return;
  }
  if (msg.kind !== 'request') return;
  const handler = handlers[msg.method] as Handler<Method> | undefined;
  if (handler === undefined) {
    post({ kind: 'response', id: msg.id, ok: false, error: { code: 'OFFCAST_UNKNOWN_METHOD', message: `unknown method ${msg.method}`, statusCode: 500 } });
    return;
  }
  Promise.resolve()
    .then(() => handler(msg.params as never))
    .then(
      (result) => post({ kind: 'response', id: msg.id, ok: true, result }),
      (err: unknown) => post({ kind: 'response', id: msg.id, ok: false, error: errorBody(err) }),
    );
});

// RTCP sender reports for every session, staggered by their own timers.
setInterval(() => {
  const now = performance.now();
  for (const s of sessions.values()) s.rtcpTick(now, init.rtcpIntervalMs);
  for (const l of lives.values()) l.rtcpTick(now, init.rtcpIntervalMs);
}, 250);

// Record sessions: reorder timeouts, flushes, receiver reports, idle and length limits.
setInterval(() => {
  if (records.size === 0) return;
  const now = performance.now();
  for (const r of records.values()) r.tick(now);
}, 20);

post({ kind: 'ready', worker: init.index });
