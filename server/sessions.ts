/**
 * Play sessions as the control plane designates them: it picks the local port
 * pairs, the RTP header (payload type, random SSRC, sequence number and
 * timestamp per RFC 3550), the destination and the cached media, then hands
 * the session to a worker; a live session relays a running record session
 * instead of cached media. It keeps the description and asks workers for live
 * stats. /v1/sessions also lists record sessions (`RecordSessions`), so the
 * lookups here fall through to them.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/index.js';
import { OffloadError, type CacheLoadParams, type PlayTrackParams, type RtpInfo, type SessionStats, type TrackPlan } from '../offload/channel.js';
import type { Encoding, Probe, TrackInfo } from '../storage/types.js';
import type { CacheDirectory } from './cache.js';
import type { Catalog, MediaItem } from './catalog.js';
import { badRequest, HttpError, sessionNotFound } from './errors.js';
import { AllowList } from './net.js';
import type { OffloadClient } from './offload.js';
import type { PortAllocator } from './ports.js';
import { sdpTracks, type RecordSessions, type RecordSessionView } from './recordSessions.js';
import { buildSdp, staticPayloadType } from './sdp.js';
import {
  RTSP_WORKER,
  checkDestination,
  checkPortRoom,
  EndedSessions,
  playTrack,
  withPortPairs,
  type Retention,
  type SessionSlot,
  type SessionSlots,
} from './sessionSupport.js';

export type PlayCodecOption = 'L16' | 'PCMU' | 'PCMA';

export interface PlayRequest {
  mode: 'play';
  media?: string;
  live?: string;
  destination: { host: string; port: number };
  codec?: PlayCodecOption;
  loop?: boolean;
  state?: 'playing' | 'paused';
  startMs?: number;
  speed?: number | 'max';
  frameRate?: number;
}

export interface SessionTrack {
  kind: 'audio' | 'video';
  codec: Encoding;
  payloadType: number;
  clockRate: number;
  channels?: number;
  ssrc: number;
  port: number;
  sourcePort: number;
}

export interface PlaySessionView {
  id: string;
  mode: 'play';
  state: 'playing' | 'paused' | 'ended' | 'failed';
  media?: string;
  live?: string;
  destination: { host: string; port: number };
  loop: boolean;
  speed: number | 'max';
  durationMs: number;
  positionMs: number;
  createdAt: string;
  tracks: (SessionTrack & { stats?: unknown })[];
  sdp: string;
  error?: string;
  /** A session an RTSP client set up: its RTSP session id and transport. */
  rtsp?: { session: string; transport: 'udp' | 'tcp' };
}

/** A track of an RTSP session as its SETUP chose it: UDP to the client's port, or interleaved on its connection. */
export interface RtspPlayTarget {
  /** Index of the track in the stream (the plan, or the recording's tracks). */
  track: number;
  payloadType: number;
  clockRate: number;
  ssrc: number;
  seq: number;
  tsBase: number;
  udp?: { address: string; family: 4 | 6; port: number; localPort: number };
  interleaved?: { conn: number; channel: number };
}

/** What an RTSP PLAY creates a session from; the slot and the UDP tracks' local ports come with it. */
export interface RtspCreate {
  targets: RtspPlayTarget[];
  slot: SessionSlot;
  peer: { address: string; family: 4 | 6 };
  rtsp: { session: string; transport: 'udp' | 'tcp' };
}

interface PlayEntry {
  view: PlaySessionView;
  worker: number;
  ports: number[];
  slot: SessionSlot;
  /** The cache entry this session holds a reference to ('' for a live relay). */
  cacheKey: string;
  last: SessionStats | null;
  endedAt: number | null;
  /** The DELETE in progress, shared by concurrent DELETEs. */
  closing: Promise<void> | null;
}

export class SessionManager {
  private readonly sessions = new Map<string, PlayEntry>();
  private readonly cfg: Config;
  private readonly offload: OffloadClient;
  private readonly cache: CacheDirectory;
  private readonly catalog: Catalog;
  private readonly ports: PortAllocator;
  private readonly slots: SessionSlots;
  private readonly destinations: AllowList;
  /** Ended sessions, oldest first (kept for GET until pruned). */
  private readonly ended: EndedSessions;
  private running = 0;

  readonly recordings: RecordSessions;

  constructor(
    cfg: Config,
    offload: OffloadClient,
    cache: CacheDirectory,
    catalog: Catalog,
    ports: PortAllocator,
    slots: SessionSlots,
    recordings: RecordSessions,
    retention: Retention,
  ) {
    this.recordings = recordings;
    this.cfg = cfg;
    this.offload = offload;
    this.cache = cache;
    this.catalog = catalog;
    this.ports = ports;
    this.slots = slots;
    this.ended = new EndedSessions(retention);
    this.destinations = new AllowList(cfg.destinations.allow);
    offload.on('session.ended', (_worker, data) => this.onEnded(data.sessionId, data.reason, data.stats, data.error));
    offload.on('worker.exit', (worker) => {
      cache.forgetOwner(worker);
      for (const e of this.sessions.values()) {
        if (e.worker === worker && e.endedAt === null) this.onEnded(e.view.id, 'failed', null, 'the offload worker stopped');
      }
    });
  }

  /** Play and live sessions that hold resources (not ended). */
  get activePlay(): number {
    return this.running;
  }

  /** All sessions that hold resources (play, live and record). */
  get active(): number {
    return this.activePlay + this.recordings.active;
  }

  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.sessions.values()) out[e.view.state] = (out[e.view.state] ?? 0) + 1;
    this.recordings.countByState(out);
    return out;
  }

  async createPlay(req: PlayRequest): Promise<PlaySessionView> {
    if (req.live !== undefined) {
      if (req.media !== undefined) throw badRequest('give "media" or "live", not both');
      return this.createLive(req as PlayRequest & { live: string });
    }
    if (req.media === undefined) throw badRequest('body must have "media" (the name of a media file) or "live" (a record session id)');
    this.catalog.checkName(req.media);
    const dest = await checkDestination(this.destinations, req.destination);
    if (req.frameRate !== undefined && (req.frameRate < 1 || req.frameRate > 240)) throw badRequest('frameRate must be between 1 and 240');
    const speed = req.speed ?? 1;
    if (speed !== 'max' && !(speed > 0 && speed <= 100)) throw badRequest('speed must be a positive number up to 100, or "max"');
    // Taken before the next await, so concurrent creates count.
    const slot = this.slots.take();
    try {
      const item = await this.catalog.get(
        req.media,
        req.frameRate === undefined ? { recent: true, forLoad: true } : { frameRate: req.frameRate, recent: true, forLoad: true },
      );
      const plan = planTracks(item.probe, req.codec);
      checkPortRoom(req.destination.port, plan.length);
      return await this.startPlay(req as PlayRequest & { media: string }, item, plan, dest, speed, slot);
    } catch (err) {
      slot.release();
      throw err;
    }
  }

  private async startPlay(
    req: PlayRequest & { media: string },
    item: MediaItem,
    plan: PlannedTrack[],
    dest: { address: string; family: 4 | 6 },
    speed: number | 'max',
    slot: SessionSlot,
  ): Promise<PlaySessionView> {
    const load = this.loadParams(item, plan, req.frameRate);
    const estimate = Math.ceil(item.bytes * (plan.every((p) => p.halves) ? 0.5 : 1));
    const id = randomUUID();
    // The playing worker is chosen with the cache: the one that holds (or will load) the media unless another is less loaded.
    const worker = this.offload.place(id, this.cache.ownerOf(load.key) ?? item.probedBy?.worker);
    let acquired = false;
    try {
      const { owner, result } = await this.cache.acquire(load, estimate, worker);
      acquired = true;
      const durationMs = Math.max(1, ...result.tracks.map((t) => (t.endTs * 1000) / t.clockRate));
      let tracks: PlayTrackParams[] = [];
      const { ports, result: res } = await withPortPairs(this.ports, plan.length, (ports) => {
        tracks = plan.map((p, i) => playTrack(i, ports[i]!, dest, req.destination.port, p.payloadType, result.tracks[i]!.clockRate));
        return this.offload.request(worker, 'play.create', {
          sessionId: id,
          cacheKey: load.key,
          cacheOwner: owner,
          tracks,
          loop: req.loop ?? false,
          paused: req.state === 'paused',
          startMs: req.startMs ?? 0,
          speed: speed === 'max' ? 0 : speed,
          durationMs,
          cname: `offcast-${id.slice(0, 8)}`,
        });
      });
      const sessionTracks: SessionTrack[] = plan.map((p, i) => {
        const t: SessionTrack = {
          kind: p.info.kind,
          codec: p.encoding,
          payloadType: p.payloadType,
          clockRate: result.tracks[i]!.clockRate,
          ssrc: tracks[i]!.ssrc,
          port: req.destination.port + 2 * i,
          sourcePort: res.sourcePorts[i]!,
        };
        if (p.channels !== undefined) t.channels = p.channels;
        return t;
      });
      const view: PlaySessionView = {
        id,
        mode: 'play',
        state: req.state === 'paused' ? 'paused' : 'playing',
        media: item.name,
        destination: { host: req.destination.host, port: req.destination.port },
        loop: req.loop ?? false,
        speed,
        durationMs: Math.round(res.durationMs),
        positionMs: req.startMs ?? 0,
        createdAt: new Date().toISOString(),
        tracks: sessionTracks,
        sdp: buildSdp({
          id,
          name: item.name,
          destination: dest,
          origin: dest.family === 6 ? '::1' : '127.0.0.1',
          tracks: plan.map((p, i) => {
            const t = {
              kind: p.info.kind,
              encoding: p.encoding,
              payloadType: p.payloadType,
              clockRate: result.tracks[i]!.clockRate,
              port: req.destination.port + 2 * i,
              info: p.info,
            };
            return p.channels === undefined ? t : { ...t, channels: p.channels };
          }),
        }),
      };
      this.add({ view, worker, ports, slot, cacheKey: load.key, last: null, endedAt: null, closing: null });
      return view;
    } catch (err) {
      this.offload.unplace(id);
      if (acquired) this.cache.release(load.key);
      throw err;
    }
  }

  /** A play session that relays a record session live, from the record session's worker. */
  async createLive(req: PlayRequest & { live: string }): Promise<PlaySessionView> {
    for (const field of ['loop', 'speed', 'startMs'] as const) {
      if (req[field] !== undefined) throw badRequest(`${field} does not apply to a live session: it follows its recording as it arrives`);
    }
    let source = this.recordings.liveSource(req.live);
    const dest = await checkDestination(this.destinations, req.destination, source.specs.length);
    // The recording may have ended while the host resolved.
    source = this.recordings.liveSource(req.live);
    const slot = this.slots.take();
    const id = randomUUID();
    this.offload.pin(id, source.worker);
    try {
      const specs = source.specs;
      let tracks: PlayTrackParams[] = [];
      const { ports } = await withPortPairs(this.ports, specs.length, (ports) => {
        tracks = specs.map((t, i) => playTrack(i, ports[i]!, dest, req.destination.port, t.payloadType, t.clockRate));
        return this.offload.request(source.worker, 'live.create', {
          sessionId: id,
          recordSessionId: req.live,
          tracks: tracks.map((t, i) => ({ ...t, recordTrack: i })),
          cname: `offcast-${id.slice(0, 8)}`,
        });
      });
      const view: PlaySessionView = {
        id,
        mode: 'play',
        state: 'playing',
        live: req.live,
        destination: req.destination,
        loop: false,
        speed: 1,
        durationMs: 0,
        positionMs: 0,
        createdAt: new Date().toISOString(),
        tracks: specs.map((t, i) => {
          const v: SessionTrack = {
            kind: t.kind,
            codec: t.encoding,
            payloadType: t.payloadType,
            clockRate: t.clockRate,
            ssrc: tracks[i]!.ssrc,
            port: req.destination.port + 2 * i,
            sourcePort: ports[i]!,
          };
          if (t.channels !== undefined) v.channels = t.channels;
          return v;
        }),
        sdp: buildSdp({
          id,
          name: `live ${source.name}`,
          destination: dest,
          origin: dest.family === 6 ? '::1' : '127.0.0.1',
          tracks: sdpTracks(specs, (i) => req.destination.port + 2 * i),
        }),
      };
      this.add({ view, worker: source.worker, ports, slot, cacheKey: '', last: null, endedAt: null, closing: null });
      return view;
    } catch (err) {
      this.offload.unplace(id);
      slot.release();
      throw err;
    }
  }

  /**
   * An RTSP session's first PLAY of media: the tracks it set up, each to its
   * own target, starting at `startMs`. Its slot and local ports are the
   * RTSP session's until this succeeds, then the play session's (they go
   * back when it ends); on failure the ports are released here, the slot not.
   */
  async createRtspPlay(req: RtspCreate & { item: MediaItem; startMs: number }): Promise<{ view: PlaySessionView; rtpInfo: RtpInfo }> {
    const { item, targets } = req;
    const plan = planTracks(item.probe, undefined);
    const load = this.loadParams(item, plan, undefined);
    const ports = targets.filter((t) => t.udp !== undefined).map((t) => t.udp!.localPort);
    const id = randomUUID();
    const interleaved = targets.some((t) => t.interleaved !== undefined);
    let worker: number;
    if (interleaved) {
      this.offload.pin(id, RTSP_WORKER);
      worker = RTSP_WORKER;
    } else worker = this.offload.place(id, this.cache.ownerOf(load.key) ?? item.probedBy?.worker);
    let acquired = false;
    try {
      const estimate = Math.ceil(item.bytes * (plan.every((p) => p.halves) ? 0.5 : 1));
      const { owner, result } = await this.cache.acquire(load, estimate, worker);
      acquired = true;
      const durationMs = Math.max(1, ...result.tracks.map((t) => (t.endTs * 1000) / t.clockRate));
      const tracks = targets.map((t) => rtspTrackParams(t, req.peer, result.tracks[t.track]!.clockRate));
      const res = await this.offload.request(worker, 'play.create', {
        sessionId: id,
        cacheKey: load.key,
        cacheOwner: owner,
        tracks,
        loop: false,
        paused: false,
        startMs: req.startMs,
        speed: 1,
        durationMs,
        cname: `offcast-${id.slice(0, 8)}`,
      });
      const rtpInfo = res.rtpInfo ?? { positionMs: req.startMs, tracks: [] };
      const view = this.rtspView(id, req, { media: item.name, durationMs: Math.round(res.durationMs), positionMs: rtpInfo.positionMs }, targets, (i) => {
        const p = plan[targets[i]!.track]!;
        return { kind: p.info.kind, encoding: p.encoding, channels: p.channels, info: p.info };
      });
      this.add({ view, worker, ports, slot: req.slot, cacheKey: load.key, last: null, endedAt: null, closing: null });
      return { view, rtpInfo };
    } catch (err) {
      this.offload.unplace(id);
      if (acquired) this.cache.release(load.key);
      this.giveBackPorts(ports, err);
      throw err;
    }
  }

  /** An RTSP session's first PLAY of a recording in progress: a live relay of the tracks it set up. */
  async createRtspLive(req: RtspCreate & { recordId: string }): Promise<{ view: PlaySessionView; rtpInfo: RtpInfo }> {
    const { targets } = req;
    const ports = targets.filter((t) => t.udp !== undefined).map((t) => t.udp!.localPort);
    const id = randomUUID();
    try {
      const source = this.recordings.liveSource(req.recordId);
      const worker = source.worker;
      this.offload.pin(id, worker);
      const tracks = targets.map((t) => ({ ...rtspTrackParams(t, req.peer, t.clockRate), recordTrack: t.track }));
      await this.offload.request(worker, 'live.create', { sessionId: id, recordSessionId: req.recordId, tracks, cname: `offcast-${id.slice(0, 8)}` });
      const sdpSpecs = sdpTracks(source.specs, () => 0);
      const view = this.rtspView(id, req, { live: req.recordId, durationMs: 0, positionMs: 0 }, targets, (i) => {
        const t = sdpSpecs[targets[i]!.track]!;
        return { kind: t.kind, encoding: t.encoding, channels: t.channels, info: t.info };
      });
      this.add({ view, worker, ports, slot: req.slot, cacheKey: '', last: null, endedAt: null, closing: null });
      return { view, rtpInfo: { positionMs: 0, tracks: targets.map((t) => ({ seq: t.seq, rtptime: t.tsBase })) } };
    } catch (err) {
      this.offload.unplace(id);
      this.giveBackPorts(ports, err);
      throw err;
    }
  }

  private giveBackPorts(ports: number[], err: unknown): void {
    if (ports.length === 0) return;
    if (err instanceof OffloadError && err.code === 'OFFCAST_PORT_IN_USE') this.ports.quarantine(ports);
    else this.ports.release(ports);
  }

  private rtspView(
    id: string,
    req: RtspCreate,
    what: { media?: string; live?: string; durationMs: number; positionMs: number },
    targets: RtspPlayTarget[],
    describe: (i: number) => { kind: 'audio' | 'video'; encoding: Encoding; channels: number | undefined; info: TrackInfo },
  ): PlaySessionView {
    const firstUdp = targets.find((t) => t.udp !== undefined)?.udp;
    const view: PlaySessionView = {
      id,
      mode: 'play',
      state: 'playing',
      destination: { host: req.peer.address, port: firstUdp?.port ?? 0 },
      loop: false,
      speed: 1,
      durationMs: what.durationMs,
      positionMs: what.positionMs,
      createdAt: new Date().toISOString(),
      tracks: targets.map((t, i) => {
        const d = describe(i);
        const v: SessionTrack = {
          kind: d.kind,
          codec: d.encoding,
          payloadType: t.payloadType,
          clockRate: t.clockRate,
          ssrc: t.ssrc,
          port: t.udp?.port ?? 0,
          sourcePort: t.udp?.localPort ?? 0,
        };
        if (d.channels !== undefined) v.channels = d.channels;
        return v;
      }),
      sdp: buildSdp({
        id,
        name: what.media ?? `live ${what.live ?? ''}`,
        destination: { address: req.peer.address, family: req.peer.family },
        origin: req.peer.family === 6 ? '::1' : '127.0.0.1',
        tracks: targets.map((t, i) => {
          const d = describe(i);
          const s = { kind: d.kind, encoding: d.encoding, payloadType: t.payloadType, clockRate: t.clockRate, port: t.udp?.port ?? 0, info: d.info };
          return d.channels === undefined ? s : { ...s, channels: d.channels };
        }),
      }),
      rtsp: req.rtsp,
    };
    if (what.media !== undefined) view.media = what.media;
    if (what.live !== undefined) view.live = what.live;
    return view;
  }

  /** PLAY (resume, seek) and PAUSE of an RTSP session: the update, and where each track's next packet starts. */
  async updateRtsp(id: string, body: { state: 'playing' | 'paused'; positionMs?: number }): Promise<{ view: PlaySessionView; rtpInfo: RtpInfo }> {
    const e = this.entry(id);
    if (e.endedAt !== null) throw new HttpError(454, 'OFFCAST_SESSION_ENDED', `session ${id} has ended`);
    const stats = await this.offload.request(e.worker, 'play.update', { sessionId: id, ...body });
    this.apply(e, stats);
    return { view: this.render(e), rtpInfo: stats.rtpInfo ?? { positionMs: stats.positionMs, tracks: [] } };
  }

  /** RTCP receiver reports received so far by each of these sessions (RTSP keep-alives). */
  async rtcpCounts(ids: string[]): Promise<Map<string, number>> {
    const byWorker = new Map<number, string[]>();
    for (const id of ids) {
      const e = this.sessions.get(id);
      if (e === undefined || e.endedAt !== null) continue;
      byWorker.set(e.worker, [...(byWorker.get(e.worker) ?? []), id]);
    }
    const out = new Map<string, number>();
    await Promise.all(
      [...byWorker].map(async ([worker, wanted]) => {
        for (const s of await this.offload.request(worker, 'session.stats', { sessionIds: wanted })) {
          out.set(
            s.sessionId,
            s.tracks.reduce((n, t) => n + t.rrCount, 0),
          );
        }
      }),
    );
    return out;
  }

  private readonly endedListeners: ((id: string, why: 'ended' | 'stopped') => void)[] = [];

  /** Calls `fn` with the id of every play or live session that ends: by itself or a failure ('ended'), or by DELETE ('stopped'). */
  onPlayEnded(fn: (id: string, why: 'ended' | 'stopped') => void): void {
    this.endedListeners.push(fn);
  }

  private loadParams(item: MediaItem, plan: PlannedTrack[], frameRate: number | undefined): CacheLoadParams {
    const spread = this.cfg.pacing.spread;
    const payloadBytes = this.cfg.rtp.payloadBytes;
    const encodings = plan.map((p) => `${p.source}:${p.encoding}`).join(',');
    const load: CacheLoadParams = {
      key: `${item.name}|${item.version}|${encodings}|${payloadBytes}|${spread}|${frameRate ?? ''}`,
      path: item.path,
      format: item.probe.format,
      tracks: plan.map((p): TrackPlan => ({ source: p.source, encoding: p.encoding })),
      payloadBytes,
      spread,
    };
    if (frameRate !== undefined) load.frameRate = frameRate;
    // The worker that just probed the file holds it parsed: it loads it, without a second parse.
    if (item.probedBy !== undefined) load.probed = item.probedBy.key;
    return load;
  }

  private add(e: PlayEntry): void {
    this.sessions.set(e.view.id, e);
    this.running++;
    this.prune();
  }

  private entry(id: string): PlayEntry {
    const e = this.sessions.get(id);
    if (e === undefined) throw sessionNotFound(id);
    return e;
  }

  async get(id: string): Promise<PlaySessionView | RecordSessionView> {
    if (this.recordings.has(id)) return this.recordings.get(id);
    const e = this.entry(id);
    if (e.endedAt === null) {
      const [stats] = await this.offload.request(e.worker, 'session.stats', { sessionIds: [id] });
      if (stats !== undefined) this.apply(e, stats);
    }
    return this.render(e);
  }

  async list(): Promise<(PlaySessionView | RecordSessionView)[]> {
    const [plays, records] = await Promise.all([this.listPlay(), this.recordings.list()]);
    return [...plays, ...records];
  }

  private async listPlay(): Promise<PlaySessionView[]> {
    const byWorker = new Map<number, string[]>();
    for (const e of this.sessions.values()) {
      if (e.endedAt !== null) continue;
      const ids = byWorker.get(e.worker) ?? [];
      ids.push(e.view.id);
      byWorker.set(e.worker, ids);
    }
    await Promise.all(
      [...byWorker].map(async ([worker, ids]) => {
        const all = await this.offload.request(worker, 'session.stats', { sessionIds: ids });
        for (const s of all) {
          const e = this.sessions.get(s.sessionId);
          if (e !== undefined) this.apply(e, s);
        }
      }),
    );
    return [...this.sessions.values()].map((e) => this.render(e));
  }

  async update(id: string, body: { state?: 'playing' | 'paused'; positionMs?: number }): Promise<PlaySessionView> {
    if (this.recordings.has(id)) throw new HttpError(409, 'OFFCAST_NOT_PLAYABLE', 'a record session has no play state: DELETE it to finish the recording');
    const e = this.entry(id);
    if (e.view.live !== undefined) throw new HttpError(409, 'OFFCAST_NOT_PLAYABLE', 'a live session follows its recording: it cannot pause or seek');
    if (e.endedAt !== null) throw new HttpError(409, 'OFFCAST_SESSION_ENDED', `session ${id} has ended`);
    if (body.positionMs !== undefined && e.view.speed === 'max') throw badRequest('positionMs cannot be set on a "speed": "max" session');
    const params: { sessionId: string; state?: 'playing' | 'paused'; positionMs?: number } = { sessionId: id };
    if (body.state !== undefined) params.state = body.state;
    if (body.positionMs !== undefined) params.positionMs = body.positionMs;
    const stats = await this.offload.request(e.worker, 'play.update', params);
    this.apply(e, stats);
    return this.render(e);
  }

  /** DELETE: ends the session (once, however many DELETEs race) and forgets it. */
  async delete(id: string): Promise<PlaySessionView | { recording: unknown }> {
    if (this.recordings.has(id)) return this.recordings.stop(id);
    const e = this.entry(id);
    if (e.endedAt === null) {
      e.closing ??= this.offload
        .request(e.worker, 'session.end', { sessionId: id })
        .catch(() => null)
        .then((stats) => this.finish(e, stats, e.view.state === 'failed' ? 'failed' : 'ended', 'stopped'));
      await e.closing;
    }
    this.sessions.delete(id);
    this.ended.delete(id);
    return this.render(e);
  }

  /** Ends a session as DELETE does, but keeps it listed (as ended) like one that ended by itself (RTSP TEARDOWN). */
  async end(id: string): Promise<void> {
    const e = this.sessions.get(id);
    if (e === undefined || e.endedAt !== null) return;
    e.closing ??= this.offload
      .request(e.worker, 'session.end', { sessionId: id })
      .catch(() => null)
      .then((stats) => this.finish(e, stats, e.view.state === 'failed' ? 'failed' : 'ended', 'stopped'));
    await e.closing;
  }

  /** Stops every session (shutdown). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.delete(id).catch(() => undefined)));
    await this.recordings.stopAll();
  }

  private onEnded(id: string, reason: 'completed' | 'failed', stats: SessionStats | null, error?: string): void {
    const e = this.sessions.get(id);
    if (e === undefined || e.endedAt !== null) return;
    this.finish(e, stats, reason === 'completed' ? 'ended' : 'failed', 'ended');
    if (error !== undefined) e.view.error = error;
  }

  /** Gives back what the session held (count, slot, ports, cache reference, placement), once. */
  private finish(e: PlayEntry, stats: SessionStats | null, state: 'ended' | 'failed', why: 'ended' | 'stopped'): void {
    if (stats !== null) this.apply(e, stats);
    if (e.endedAt !== null) return;
    e.view.state = state;
    e.endedAt = Date.now();
    this.running--;
    e.slot.release();
    this.ended.add(e.view.id, e.endedAt);
    this.ports.release(e.ports);
    if (e.cacheKey !== '') this.cache.release(e.cacheKey);
    this.offload.unplace(e.view.id);
    for (const fn of this.endedListeners) fn(e.view.id, why);
  }

  private apply(e: PlayEntry, stats: SessionStats): void {
    e.last = stats;
    if (e.endedAt === null) e.view.state = stats.state;
    e.view.positionMs = stats.positionMs;
  }

  private render(e: PlayEntry): PlaySessionView {
    const v = e.view;
    const stats = e.last;
    return {
      ...v,
      tracks: v.tracks.map((t, i) => {
        const s = stats?.tracks[i];
        if (s === undefined) return { ...t, stats: { packets: 0, octets: 0, sendErrors: 0, rtcp: null } };
        return {
          ...t,
          stats: {
            packets: s.packets,
            octets: s.octets,
            sendErrors: s.sendErrors,
            senderReports: s.srSent,
            receiverReports: s.rrCount,
            rtcpRejected: s.rtcpRejected,
            rtcp:
              s.rr === null
                ? null
                : {
                    fractionLost: s.rr.fractionLost,
                    totalLost: s.rr.totalLost,
                    jitter: s.rr.jitter,
                    jitterMs: round3(s.rr.jitterMs),
                    rttMs: s.rr.rttMs === null ? null : round3(s.rr.rttMs),
                    highestSeq: s.rr.highestSeq,
                  },
            ...(s.lateness === undefined ? {} : { lateness: s.lateness }),
          },
        };
      }),
    };
  }

  /** Forgets ended sessions past their time or beyond the bound, oldest first. */
  private prune(): void {
    this.ended.prune(Date.now(), (id) => this.sessions.delete(id));
  }
}

interface PlannedTrack {
  source: number;
  encoding: Encoding;
  payloadType: number;
  channels?: number;
  info: TrackInfo;
  /** Packetized size is about half the file (16-bit PCM to G.711). */
  halves: boolean;
}

/** Picks the RTP encoding of every supported track of the media. */
export function planTracks(probe: Probe, codec: PlayCodecOption | undefined): PlannedTrack[] {
  const out: PlannedTrack[] = [];
  const supported = probe.tracks.filter((t) => t.supported);
  if (supported.length === 0) throw new HttpError(415, 'OFFCAST_UNSUPPORTED_MEDIA', 'the media has no track offcast can stream');
  const pcm = supported.some((t) => t.codec === 'pcm_s16le' || t.codec === 'pcm_mulaw' || t.codec === 'pcm_alaw');
  if (codec !== undefined && !pcm)
    throw badRequest(`codec ${codec} applies to WAV audio; this media is ${probe.format} (${supported.map((t) => t.codec).join(', ')})`);
  let dynamic = 96;
  for (const t of supported) {
    let encoding: Encoding;
    let halves = false;
    switch (t.codec) {
      case 'pcm_s16le':
        encoding = codec ?? 'L16';
        halves = encoding !== 'L16';
        break;
      case 'pcm_mulaw':
      case 'pcm_alaw':
        if (codec === 'L16') throw new HttpError(415, 'OFFCAST_UNSUPPORTED_MEDIA', 'this WAV holds G.711 audio: play it as PCMU or PCMA');
        encoding = codec ?? (t.codec === 'pcm_mulaw' ? 'PCMU' : 'PCMA');
        break;
      case 'opus':
        encoding = 'opus';
        break;
      case 'h264':
        encoding = 'H264';
        break;
      case 'aac':
        encoding = 'MPEG4-GENERIC';
        break;
      default:
        continue;
    }
    if ((encoding === 'PCMU' || encoding === 'PCMA') && (t.clockRate !== 8000 || (t.channels ?? 1) !== 1)) {
      throw new HttpError(
        415,
        'OFFCAST_UNSUPPORTED_MEDIA',
        `${encoding} needs 8000 Hz mono audio; this file is ${t.clockRate} Hz ${t.channels === 2 ? 'stereo' : `${t.channels ?? 1}-channel`} — play it as L16, or convert it: ffmpeg -i in.wav -ar 8000 -ac 1 out.wav`,
      );
    }
    const channels = t.kind === 'audio' ? (t.channels ?? 1) : undefined;
    const pt = staticPayloadType(encoding, t.clockRate, channels ?? 1) ?? dynamic++;
    const p: PlannedTrack = { source: t.index, encoding, payloadType: pt, info: t, halves };
    if (channels !== undefined) p.channels = channels;
    out.push(p);
  }
  return out;
}

/** The offload's parameters of an RTSP session's track. */
function rtspTrackParams(t: RtspPlayTarget, peer: { address: string; family: 4 | 6 }, clockRate: number): PlayTrackParams {
  const p: PlayTrackParams = {
    localPort: t.udp?.localPort ?? 0,
    family: t.udp?.family ?? peer.family,
    destHost: t.udp?.address ?? peer.address,
    destPort: t.udp?.port ?? 0,
    payloadType: t.payloadType,
    ssrc: t.ssrc,
    seq: t.seq,
    tsBase: t.tsBase,
    clockRate,
    cacheTrack: t.track,
  };
  if (t.interleaved !== undefined) p.interleaved = t.interleaved;
  return p;
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
