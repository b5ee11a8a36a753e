/**
 * Record sessions, as the control plane sees them: it picks the local ports,
 * starts the session in a worker, answers the slow path (the first packet's
 * header of each new flow, decided by `flowPolicy.ts`) and reports the
 * session until its recording is finished. It never receives a payload byte:
 * the offload writes the files, and `RecordingStore` serves them afterwards.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { OffloadError, type FlowHeader, type RecordingSummary, type RecordStats, type RecordTrackParams } from '../offload/channel.js';
import { resolveMediaPath } from '../storage/library.js';
import type { TrackSpec } from '../storage/types.js';
import { recordingTrackInfo } from '../storage/recording/probe.js';
import { badRequest, conflict, forbiddenSource, sessionNotFound, HttpError } from './errors.js';
import { decideFlow, type FlowDecisionReason } from './flowPolicy.js';
import { AllowList, resolveHost } from './net.js';
import type { OffloadClient } from './offload.js';
import type { PortAllocator } from './ports.js';
import type { RecordRequest } from './recordRequest.js';
import { exists, type RecordingStore } from './recordingStore.js';
import { buildSdp, type SdpTrack } from './sdp.js';
import { EndedSessions, random32, withPortPairs, type Retention, type SessionSlot, type SessionSlots } from './sessionSupport.js';

export interface RecordSessionView {
  id: string;
  mode: 'record';
  state: 'recording' | 'finishing' | 'ended' | 'failed';
  name: string;
  source?: { host: string; port?: number };
  createdAt: string;
  durationMs: number;
  tracks: {
    index: number;
    kind: 'audio' | 'video';
    codec: string;
    payloadType: number;
    clockRate: number;
    channels?: number;
    port: number;
    fmtp?: string;
    stats?: unknown;
  }[];
  sdp: string;
  /** What will go wrong with the recording as requested (e.g. H.264 without parameter sets). */
  warnings?: string[];
  error?: string;
  reason?: string;
  recording?: RecordingSummary;
  /** A recording an RTSP client publishes (ANNOUNCE + RECORD): its RTSP session id and transport. */
  rtsp?: { session: string; transport: 'udp' | 'tcp' };
}

interface RecordEntry {
  view: RecordSessionView;
  worker: number;
  ports: number[];
  slot: SessionSlot;
  specs: TrackSpec[];
  expected?: { host: string; port?: number };
  last: RecordStats | null;
  summary: RecordingSummary | null;
  endedAt: number | null;
  /** The DELETE in progress, shared by concurrent DELETEs. */
  stopping: Promise<RecordingSummary> | null;
  /** A DELETE asked for the end. */
  deleted?: boolean;
}

/** A name held for a record session about to be created, with its session slot (`RecordSessions.claim`). */
export interface RecordClaim {
  readonly name: string;
  readonly slot: SessionSlot;
  /** Still to be started or abandoned. */
  held: boolean;
}

/** How `RecordSessions.start` creates the session beyond its request. */
export interface RecordStart {
  rtcpMux: boolean;
  /** The worker to run on (RTSP publishing: the listener's); by load otherwise. */
  worker?: number;
  /** Local RTP ports per track, already taken from the pool (0: an interleaved track). */
  ports?: readonly number[];
  /** Per track: the RTSP connection and channel its packets come on, or null for UDP. */
  interleaved?: readonly ({ conn: number; channel: number } | null)[];
  /** Address family of the UDP ports (an RTSP publisher's; default 4). */
  family?: 4 | 6;
  /** The sender the slow path accepts: resolved address (and port). */
  expected?: { host: string; port?: number };
  /** Set by RTSP publishing: its RTSP session, shown in the session's view. */
  rtsp?: { session: string; transport: 'udp' | 'tcp' };
}

/** Told when a record session stops recording (RTSP publishing follows its sessions): by DELETE ('stopped'), or otherwise. */
export type RecordEndListener = (id: string, how: 'stopped' | 'ended') => void;

/** What a live relay needs from the record session it follows. */
export interface LiveSource {
  worker: number;
  name: string;
  specs: readonly TrackSpec[];
}

export class RecordSessions {
  private readonly cfg: Config;
  private readonly offload: OffloadClient;
  private readonly ports: PortAllocator;
  private readonly slots: SessionSlots;
  private readonly store: RecordingStore;
  private readonly mediaRoot: string;
  private readonly sources: AllowList;
  private readonly sessions = new Map<string, RecordEntry>();
  private readonly ended: EndedSessions;
  /** Names of recordings whose create is in flight (two creates of one name: one wins). */
  private readonly creating = new Set<string>();
  /** Slow-path decisions by reason, for /metrics. */
  readonly decisions: Record<string, number> = {};
  private readonly endListeners: RecordEndListener[] = [];

  constructor(cfg: Config, offload: OffloadClient, ports: PortAllocator, slots: SessionSlots, store: RecordingStore, retention: Retention) {
    this.cfg = cfg;
    this.offload = offload;
    this.ports = ports;
    this.slots = slots;
    this.store = store;
    this.ended = new EndedSessions(retention);
    this.mediaRoot = path.resolve(cfg.mediaRoot);
    this.sources = new AllowList(cfg.sources.allow);
    offload.on('flow.new', (worker, header) => void this.onFlow(worker, header));
    offload.on('record.ended', (_worker, data) => this.onEnded(data.sessionId, data.summary));
    offload.on('worker.exit', (worker) => {
      for (const e of this.sessions.values()) {
        if (e.worker === worker && e.endedAt === null) {
          e.view.state = 'failed';
          e.view.error = 'the offload worker stopped; the recording is recovered at the next start';
          this.release(e);
        }
      }
    });
  }

  /** Record sessions that hold resources (not ended). */
  get active(): number {
    let n = 0;
    for (const e of this.sessions.values()) if (e.endedAt === null) n++;
    return n;
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  /** An upload of media `name` is in progress (set by the server from the catalog). */
  mediaUploading: (name: string) => boolean = () => false;

  /** Calls `fn` once when a record session stops recording (by itself, DELETE, `end`, or its worker's death). */
  whenEnded(fn: RecordEndListener): void {
    this.endListeners.push(fn);
  }

  /** A record session is writing (or about to write) recording `name`. */
  isRecording(name: string): boolean {
    if (this.creating.has(name)) return true;
    for (const e of this.sessions.values()) if (e.endedAt === null && e.view.name === name) return true;
    return false;
  }

  countByState(out: Record<string, number>): void {
    for (const e of this.sessions.values()) out[e.view.state] = (out[e.view.state] ?? 0) + 1;
  }

  /** Recovers recordings a crash left unfinished. */
  async recover(): Promise<{ recovered: RecordingSummary[]; errors: { name: string; error: string }[] }> {
    return this.offload.request(0, 'record.recover', { root: this.store.root }, 10 * 60 * 1000);
  }

  /**
   * Holds `name` for a record session about to be created, and a session slot:
   * the name checks of the one namespace (a recording in progress or on disk,
   * media of that name, an upload of it) answer 409, the limit 503. Concurrent
   * claims of one name: the first wins (the hold is taken before any await).
   * `start()` turns the claim into the session; `abandon()` gives it back.
   */
  async claim(name: string): Promise<RecordClaim> {
    const dir = this.store.dir(name);
    if (this.isRecording(name)) throw conflict(`recording ${name} is in progress`);
    if (this.mediaUploading(name)) throw conflict(`media ${name} is being uploaded: a recording is also media, so its name must be free`);
    // Taken before the first await, so concurrent creates count.
    const slot = this.slots.take();
    this.creating.add(name);
    const claim: RecordClaim = { name, slot, held: true };
    try {
      if (await exists(dir)) throw conflict(`recording ${name} already exists`);
      if (await exists(resolveMediaPath(this.mediaRoot, name))) throw conflict(`media ${name} exists: a recording is also media, so its name must be free`);
    } catch (err) {
      this.abandon(claim);
      throw err;
    }
    return claim;
  }

  /** Gives back a claim that was not started (once). */
  abandon(claim: RecordClaim): void {
    if (!claim.held) return;
    claim.held = false;
    this.creating.delete(claim.name);
    claim.slot.release();
  }

  async create(req: RecordRequest, rtcpMux: boolean): Promise<RecordSessionView> {
    const claim = await this.claim(req.name);
    let expected: { host: string; port?: number } | undefined;
    if (req.source !== undefined) {
      try {
        const r = await resolveHost(req.source.host);
        if (r === null) throw badRequest(`source.host ${JSON.stringify(req.source.host)} does not resolve`);
        if (!this.sources.allows(r.address)) throw forbiddenSource(req.source.host);
        expected = { host: r.address };
        if (req.source.port !== undefined) expected.port = req.source.port;
      } catch (err) {
        this.abandon(claim);
        throw err;
      }
    }
    const start: RecordStart = { rtcpMux };
    if (expected !== undefined) start.expected = expected;
    return this.start(claim, req, start);
  }

  /**
   * Creates the record session a claim holds the name of (the claim is used up
   * either way). Without `ports`, fresh port pairs come from the pool (one
   * taken by another program: another one); with them (an RTSP SETUP's, 0 for
   * an interleaved track), those are bound, and go back to the pool on failure.
   */
  async start(claim: RecordClaim, req: RecordRequest, o: RecordStart): Promise<RecordSessionView> {
    if (!claim.held) throw new Error(`the claim of ${claim.name} was given back`);
    const { slot } = claim;
    const id = randomUUID();
    try {
      const dir = this.store.dir(req.name);
      let worker: number;
      if (o.worker === undefined) worker = this.offload.place(id);
      else {
        this.offload.pin(id, o.worker);
        worker = o.worker;
      }
      const create = (ports: readonly number[]): Promise<{ ports: number[] }> =>
        this.offload.request(worker, 'record.create', {
          sessionId: id,
          name: req.name,
          dir,
          tracks: req.tracks.map((t, i): RecordTrackParams => {
            const p: RecordTrackParams = { ...t, localPort: ports[i]!, ssrc: random32() };
            if (o.family === 6) p.family = 6;
            const il = o.interleaved?.[i];
            if (il !== undefined && il !== null) p.interleaved = il;
            return p;
          }),
          rtcpMux: o.rtcpMux,
          idleTimeoutMs: this.cfg.record.idleTimeoutMs,
          maxDurationMs: this.cfg.record.maxDurationMs,
          reorderPackets: this.cfg.record.reorderPackets,
          reorderMs: this.cfg.record.reorderMs,
          holdMs: this.cfg.record.holdMs,
          flushMs: this.cfg.record.flushMs,
          cname: `offcast-${id.slice(0, 8)}`,
        });
      let ports: number[];
      try {
        if (o.ports === undefined) ({ ports } = await withPortPairs(this.ports, req.tracks.length, create));
        else {
          ports = [...o.ports];
          try {
            await create(ports);
          } catch (err) {
            const bound = ports.filter((p) => p !== 0);
            if (err instanceof OffloadError && err.code === 'OFFCAST_PORT_IN_USE') this.ports.quarantine(bound);
            else this.ports.release(bound);
            throw err;
          }
        }
      } catch (err) {
        this.offload.unplace(id);
        throw err;
      }
      const view: RecordSessionView = {
        id,
        mode: 'record',
        state: 'recording',
        name: req.name,
        createdAt: new Date().toISOString(),
        durationMs: 0,
        tracks: req.tracks.map((t, i) => {
          const v: RecordSessionView['tracks'][number] = {
            index: i,
            kind: t.kind,
            codec: t.encoding,
            payloadType: t.payloadType,
            clockRate: t.clockRate,
            port: ports[i]!,
          };
          if (t.channels !== undefined) v.channels = t.channels;
          const f = fmtpText(t.fmtp);
          if (f !== '') v.fmtp = f;
          return v;
        }),
        sdp: this.senderSdp(id, req, ports, o.rtcpMux),
      };
      const warnings = requestWarnings(req.tracks);
      if (warnings.length > 0) view.warnings = warnings;
      if (req.source !== undefined) view.source = req.source;
      if (o.rtsp !== undefined) view.rtsp = o.rtsp;
      const entry: RecordEntry = {
        view,
        worker,
        ports: ports.filter((p) => p !== 0),
        slot,
        specs: req.tracks,
        last: null,
        summary: null,
        endedAt: null,
        stopping: null,
      };
      if (o.expected !== undefined) entry.expected = o.expected;
      this.sessions.set(id, entry);
      this.prune();
      return view;
    } catch (err) {
      slot.release();
      throw err;
    } finally {
      claim.held = false;
      this.creating.delete(req.name);
    }
  }

  /** An SDP a sender can use: where to send each track. */
  private senderSdp(id: string, req: RecordRequest, ports: number[], rtcpMux: boolean): string {
    const host = this.cfg.http.host === '0.0.0.0' ? '127.0.0.1' : this.cfg.http.host;
    return buildSdp({
      id,
      name: req.name,
      destination: { address: host, family: host.includes(':') ? 6 : 4 },
      origin: host,
      tracks: sdpTracks(req.tracks, (i) => ports[i]!),
      rtcpMux,
    });
  }

  /** The running record session a live relay follows, or 404. */
  liveSource(id: string): LiveSource {
    const e = this.sessions.get(id);
    // Finishing (the offload stopped recording, its summary not in yet) is as good as ended: nothing left to follow.
    if (e === undefined || e.endedAt !== null || (e.last !== null && e.last.state !== 'recording')) {
      throw new HttpError(404, 'OFFCAST_SESSION_NOT_FOUND', `no recording session ${JSON.stringify(id)} is running`);
    }
    return { worker: e.worker, name: e.view.name, specs: e.specs };
  }

  /** The running record session writing recording `name` (an RTSP reader joins it live), or null. */
  liveByName(name: string): (LiveSource & { id: string }) | null {
    for (const e of this.sessions.values()) {
      if (e.view.name !== name || e.endedAt !== null || (e.last !== null && e.last.state !== 'recording')) continue;
      return { id: e.view.id, worker: e.worker, name, specs: e.specs };
    }
    return null;
  }

  /** The slow path: decide on a new flow and install or reject it in the offload. */
  private async onFlow(worker: number, h: FlowHeader): Promise<void> {
    const e = this.sessions.get(h.sessionId);
    const spec = e?.specs[h.track];
    if (e === undefined || spec === undefined || e.endedAt !== null) return;
    const query = {
      sourceAllowed: this.sources.allows(h.address),
      address: h.address,
      port: h.port,
      payloadType: h.payloadType,
      negotiatedPayloadTypes: [spec.payloadType],
    };
    const decision = decideFlow(e.expected === undefined ? query : { ...query, expectedSource: e.expected });
    this.count(decision.reason);
    const key = { sessionId: h.sessionId, track: h.track, address: h.address, port: h.port, ssrc: h.ssrc };
    try {
      if (decision.accept) await this.offload.request(worker, 'flow.install', key);
      else await this.offload.request(worker, 'flow.reject', { ...key, reason: decision.reason });
    } catch {
      // The session ended meanwhile: nothing to install.
    }
  }

  private count(reason: FlowDecisionReason): void {
    this.decisions[reason] = (this.decisions[reason] ?? 0) + 1;
  }

  private onEnded(id: string, summary: RecordingSummary): void {
    const e = this.sessions.get(id);
    if (e === undefined) return;
    e.summary = summary;
    e.view.recording = summary;
    e.view.state = summary.state === 'finished' ? 'ended' : 'failed';
    e.view.reason = summary.reason;
    e.view.durationMs = summary.durationMs;
    if (summary.error !== undefined) e.view.error = summary.error;
    this.release(e);
  }

  /** Gives back what the session held, once. */
  private release(e: RecordEntry): void {
    if (e.endedAt !== null) return;
    e.endedAt = Date.now();
    this.ports.release(e.ports);
    this.offload.unplace(e.view.id);
    e.slot.release();
    this.ended.add(e.view.id, e.endedAt);
    this.prune();
    for (const fn of this.endListeners) fn(e.view.id, e.deleted === true ? 'stopped' : 'ended');
  }

  /** Forgets ended sessions past their time or beyond the bound. */
  private prune(): void {
    this.ended.prune(Date.now(), (id) => this.sessions.delete(id));
  }

  private entry(id: string): RecordEntry {
    const e = this.sessions.get(id);
    if (e === undefined) throw sessionNotFound(id);
    return e;
  }

  async get(id: string): Promise<RecordSessionView> {
    const e = this.entry(id);
    if (e.endedAt === null) {
      const [stats] = await this.offload.request(e.worker, 'record.stats', { sessionIds: [id] });
      if (stats !== undefined) e.last = stats;
    }
    return this.render(e);
  }

  async list(): Promise<RecordSessionView[]> {
    const live = [...this.sessions.values()].filter((e) => e.endedAt === null);
    const workers = [...new Set(live.map((e) => e.worker))];
    await Promise.all(
      workers.map(async (w) => {
        for (const s of await this.offload.request(w, 'record.stats', {})) {
          const e = this.sessions.get(s.sessionId);
          if (e !== undefined) e.last = s;
        }
      }),
    );
    return [...this.sessions.values()].map((e) => this.render(e));
  }

  /** DELETE: finalize (if still recording) and return the recording's summary. Concurrent DELETEs share one stop. */
  async stop(id: string): Promise<{ recording: RecordingSummary }> {
    const e = this.entry(id);
    if (e.summary === null) {
      if (e.stopping === null) e.deleted = true;
      await this.finish(e, 'stopped');
    }
    this.sessions.delete(id);
    this.ended.delete(id);
    return { recording: e.summary! };
  }

  /**
   * Ends a recording as DELETE does (files final, manifest written) with
   * `reason` in its summary, but keeps it listed (ended) like one that ended by
   * itself: RTSP TEARDOWN, its connection's close, its keep-alive timeout.
   */
  async end(id: string, reason: string): Promise<void> {
    const e = this.sessions.get(id);
    if (e === undefined || e.summary !== null) return;
    await this.finish(e, reason);
  }

  /** Asks the offload to end the recording (once: concurrent ends share it); its summary ends the session here. */
  private finish(e: RecordEntry, reason: string): Promise<RecordingSummary> {
    const id = e.view.id;
    e.stopping ??= this.offload.request(e.worker, 'record.end', { sessionId: id, reason }, 120_000).then(
      (summary) => {
        this.onEnded(id, summary);
        return summary;
      },
      (err: unknown) => {
        e.stopping = null;
        // It ended by itself just before: its record.ended (sent ahead of this answer) has the summary.
        if (e.summary !== null) return e.summary;
        throw err;
      },
    );
    return e.stopping;
  }

  /** Packets that reached each session so far (RTSP publishing: media is a sign of life), by id; running sessions only. */
  async activity(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const byWorker = new Map<number, string[]>();
    for (const id of ids) {
      const e = this.sessions.get(id);
      if (e === undefined || e.endedAt !== null) continue;
      byWorker.set(e.worker, [...(byWorker.get(e.worker) ?? []), id]);
    }
    await Promise.all(
      [...byWorker].map(async ([w, sessionIds]) => {
        for (const s of await this.offload.request(w, 'record.stats', { sessionIds })) {
          out.set(
            s.sessionId,
            s.tracks.reduce((n, t) => n + t.slowPath + t.fastPath, 0),
          );
        }
      }),
    );
    return out;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.stop(id).catch(() => undefined)));
  }

  private render(e: RecordEntry): RecordSessionView {
    const s = e.last;
    return {
      ...e.view,
      // The offload's "ended" runs ahead of its summary (the manifest is written in between):
      // until the summary arrives the session is finishing, so "ended" always has its reason and recording.
      state: e.endedAt === null && s !== null ? (s.state === 'recording' ? 'recording' : 'finishing') : e.view.state,
      durationMs: e.endedAt === null && s !== null ? s.durationMs : e.view.durationMs,
      tracks: e.view.tracks.map((t, i) => {
        const ts = s?.tracks[i];
        if (ts === undefined) return t;
        return {
          ...t,
          stats: {
            packets: ts.packets,
            bytes: ts.bytes,
            lost: ts.lost,
            duplicates: ts.duplicates,
            reordered: ts.reordered,
            slowPath: ts.slowPath,
            fastPath: ts.fastPath,
            drops: ts.drops,
            jitterMs: ts.jitterMs,
          },
        };
      }),
    };
  }
}

/** SDP tracks for recorded specs (a sender's SDP, or a live relay's), the RTP port of track i from `port(i)`. */
export function sdpTracks(specs: readonly TrackSpec[], port: (i: number) => number): SdpTrack[] {
  return specs.map((t, i) => {
    const info = recordingTrackInfo(t, i, 0);
    const s: SdpTrack = { kind: t.kind, encoding: t.encoding, payloadType: t.payloadType, clockRate: t.clockRate, port: port(i), info };
    if (t.channels !== undefined) s.channels = t.channels;
    return s;
  });
}

/** Problems a request carries that do not stop the recording but make its file less useful. */
export function requestWarnings(specs: readonly TrackSpec[]): string[] {
  const out: string[] = [];
  specs.forEach((t, i) => {
    if (t.encoding === 'H264' && (t.fmtp['sprop-parameter-sets'] ?? '') === '') {
      out.push(
        `track ${i}: H.264 without sprop-parameter-sets: the file is playable only if the sender sends SPS and PPS in-band (ffmpeg from MP4 does not; give its SDP's fmtp)`,
      );
    }
  });
  return out;
}

function fmtpText(fmtp: Record<string, string>): string {
  return Object.entries(fmtp)
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(';');
}
