/**
 * Record sessions and recordings, as the control plane sees them: it picks
 * the local ports, starts the session in a worker, answers the slow path
 * (the header of each new flow: source policy, negotiated payload type, no
 * other flow latched) and keeps the recordings' catalog. It never receives a
 * payload byte: the offload writes the files.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/index.js';
import type { FlowHeader, PlayTrackParams, RecordingSummary, RecordStats, RecordTrackParams } from '../offload/channel.js';
import { OffloadError } from '../offload/channel.js';
import { decideFlow, type FlowDecisionReason } from '../offload/record/flows.js';
import { isValidMediaName, resolveMediaPath } from '../storage/library.js';
import { readManifest, type Manifest, type ManifestTrack } from '../storage/recording/manifest.js';
import { recordingTrackInfo } from '../storage/recording/probe.js';
import { badRequest, conflict, forbiddenDestination, forbiddenSource, HttpError, invalidName, recordingNotFound, unavailable } from './errors.js';
import { AllowList, resolveHost } from './net.js';
import type { OffloadClient } from './offload.js';
import type { PortAllocator } from './ports.js';
import type { RecordRequest, RecordTrackSpec } from './recordRequest.js';
import { buildSdp } from './sdp.js';


/** Port pairs tried when others are taken by another program (each busy pair is set aside for a minute). */
const BIND_ATTEMPTS = 32;
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
  error?: string;
  reason?: string;
  recording?: RecordingSummary;
}

interface RecordEntry {
  view: RecordSessionView;
  worker: number;
  ports: number[];
  specs: RecordTrackSpec[];
  expected?: { host: string; port?: number };
  latched: ({ address: string; port: number; ssrc: number } | null)[];
  last: RecordStats | null;
  summary: RecordingSummary | null;
  endedAt: number | null;
  decisions: Record<string, number>;
}

export interface LiveRequest {
  live: string;
  destination: { host: string; port: number };
}

export class RecordingManager {
  private readonly cfg: Config;
  private readonly offload: OffloadClient;
  private readonly ports: PortAllocator;
  readonly root: string;
  private readonly mediaRoot: string;
  private readonly sources: AllowList;
  private readonly destinations: AllowList;
  private readonly sessions = new Map<string, RecordEntry>();
  /** Slow-path decisions by reason, for /metrics. */
  readonly decisions: Record<string, number> = {};
  /** Called when a live play session is created, so the play side can track it. */
  onLive?: (id: string, worker: number, ports: number[], view: Record<string, unknown>) => void;

  constructor(cfg: Config, offload: OffloadClient, ports: PortAllocator) {
    this.cfg = cfg;
    this.offload = offload;
    this.ports = ports;
    this.root = path.resolve(cfg.recordingsRoot);
    this.mediaRoot = path.resolve(cfg.mediaRoot);
    this.sources = new AllowList(cfg.sources.allow);
    this.destinations = new AllowList(cfg.destinations.allow);
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

  get active(): number {
    let n = 0;
    for (const e of this.sessions.values()) if (e.endedAt === null) n++;
    return n;
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  countByState(out: Record<string, number>): void {
    for (const e of this.sessions.values()) out[e.view.state] = (out[e.view.state] ?? 0) + 1;
  }

  /** Recovers recordings a crash left unfinished. */
  async recover(): Promise<{ recovered: RecordingSummary[]; errors: { name: string; error: string }[] }> {
    return this.offload.request(0, 'record.recover', { root: this.root }, 10 * 60 * 1000);
  }

  async create(req: RecordRequest, rtcpMux: boolean, activeElsewhere: number): Promise<RecordSessionView> {
    if (!isValidMediaName(req.name)) throw invalidName('recording', req.name);
    const dir = resolveMediaPath(this.root, req.name);
    if (await exists(dir)) throw conflict(`recording ${req.name} already exists`);
    if (await exists(resolveMediaPath(this.mediaRoot, req.name))) throw conflict(`media ${req.name} exists: a recording is also media, so its name must be free`);
    for (const e of this.sessions.values()) if (e.endedAt === null && e.view.name === req.name) throw conflict(`recording ${req.name} is in progress`);
    let expected: { host: string; port?: number } | undefined;
    if (req.source !== undefined) {
      const r = await resolveHost(req.source.host);
      if (r === null) throw badRequest(`source.host ${JSON.stringify(req.source.host)} does not resolve`);
      if (!this.sources.allows(r.address)) throw forbiddenSource(req.source.host);
      expected = { host: r.address };
      if (req.source.port !== undefined) expected.port = req.source.port;
    }
    if (activeElsewhere + this.active >= this.cfg.limits.maxSessions) {
      throw unavailable('OFFCAST_SESSION_LIMIT', `limits.maxSessions (${this.cfg.limits.maxSessions}) sessions are running`);
    }
    const id = randomUUID();
    const worker = this.offload.pick();
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      const ports = this.ports.allocate(req.tracks.length);
      if (ports === null) throw unavailable('OFFCAST_PORTS_EXHAUSTED', `no free RTP port pairs in ${this.cfg.rtp.portMin}-${this.cfg.rtp.portMax}`);
      const tracks: RecordTrackParams[] = req.tracks.map((t, i) => {
        const p: RecordTrackParams = {
          kind: t.kind,
          encoding: t.encoding,
          payloadType: t.payloadType,
          clockRate: t.clockRate,
          fmtp: t.fmtp,
          localPort: ports[i]!,
          ssrc: crypto.getRandomValues(new Uint32Array(1))[0]!,
        };
        if (t.channels !== undefined) p.channels = t.channels;
        return p;
      });
      try {
        await this.offload.request(worker, 'record.create', {
          sessionId: id,
          name: req.name,
          dir,
          tracks,
          rtcpMux,
          idleTimeoutMs: this.cfg.record.idleTimeoutMs,
          maxDurationMs: this.cfg.record.maxDurationMs,
          reorderPackets: this.cfg.record.reorderPackets,
          reorderMs: this.cfg.record.reorderMs,
          flushMs: this.cfg.record.flushMs,
          cname: `offcast-${id.slice(0, 8)}`,
        });
      } catch (err) {
        if (err instanceof OffloadError && err.code === 'OFFCAST_PORT_IN_USE') {
          this.ports.quarantine(ports);
          continue;
        }
        this.ports.release(ports);
        throw err;
      }
      this.offload.load[worker]!++;
      const view: RecordSessionView = {
        id,
        mode: 'record',
        state: 'recording',
        name: req.name,
        createdAt: new Date().toISOString(),
        durationMs: 0,
        tracks: req.tracks.map((t, i) => {
          const v: RecordSessionView['tracks'][number] = { index: i, kind: t.kind, codec: t.encoding, payloadType: t.payloadType, clockRate: t.clockRate, port: ports[i]! };
          if (t.channels !== undefined) v.channels = t.channels;
          const f = fmtpText(t.fmtp);
          if (f !== '') v.fmtp = f;
          return v;
        }),
        sdp: this.senderSdp(id, req, ports),
      };
      if (req.source !== undefined) view.source = req.source;
      const entry: RecordEntry = { view, worker, ports, specs: req.tracks, latched: req.tracks.map(() => null), last: null, summary: null, endedAt: null, decisions: {} };
      if (expected !== undefined) entry.expected = expected;
      this.sessions.set(id, entry);
      return view;
    }
    throw unavailable('OFFCAST_PORTS_EXHAUSTED', 'could not bind a free RTP port pair');
  }

  /** An SDP a sender can use: where to send each track. */
  private senderSdp(id: string, req: RecordRequest, ports: number[]): string {
    const host = this.cfg.http.host === '0.0.0.0' ? '127.0.0.1' : this.cfg.http.host;
    return buildSdp({
      id,
      name: req.name,
      destination: { address: host, family: host.includes(':') ? 6 : 4 },
      origin: host,
      tracks: req.tracks.map((t, i) => {
        const info = recordingTrackInfo(asManifestTrack(t, i));
        const s = { kind: t.kind, encoding: t.encoding, payloadType: t.payloadType, clockRate: t.clockRate, port: ports[i]!, info };
        return t.channels === undefined ? s : { ...s, channels: t.channels };
      }),
    });
  }

  /** The slow path: validate a new flow's header and install or reject it in the offload. */
  private async onFlow(worker: number, h: FlowHeader): Promise<void> {
    const e = this.sessions.get(h.sessionId);
    const spec = e?.specs[h.track];
    if (e === undefined || spec === undefined || e.endedAt !== null) return;
    const query = {
      sourceAllowed: this.sources.allows(h.address),
      address: h.address,
      port: h.port,
      ssrc: h.ssrc,
      payloadType: h.payloadType,
      negotiatedPayloadTypes: [spec.payloadType],
      headerValid: h.version === 2 && h.length >= 12 + 4 * h.csrcCount,
      latched: e.latched[h.track] ?? null,
    };
    const decision = decideFlow(e.expected === undefined ? query : { ...query, expectedSource: e.expected });
    this.count(e, decision.reason);
    const key = { sessionId: h.sessionId, track: h.track, address: h.address, port: h.port, ssrc: h.ssrc };
    try {
      if (decision.accept) {
        const r = await this.offload.request(worker, 'flow.install', key);
        if (r.installed) e.latched[h.track] = { address: h.address, port: h.port, ssrc: h.ssrc };
      } else {
        await this.offload.request(worker, 'flow.reject', { ...key, reason: decision.reason });
      }
    } catch {
      // The session ended meanwhile: nothing to install.
    }
  }

  private count(e: RecordEntry, reason: FlowDecisionReason): void {
    e.decisions[reason] = (e.decisions[reason] ?? 0) + 1;
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

  private release(e: RecordEntry): void {
    if (e.endedAt !== null) return;
    e.endedAt = Date.now();
    this.ports.release(e.ports);
    this.offload.load[e.worker] = Math.max(0, (this.offload.load[e.worker] ?? 1) - 1);
  }

  private entry(id: string): RecordEntry {
    const e = this.sessions.get(id);
    if (e === undefined) throw new HttpError(404, 'OFFCAST_SESSION_NOT_FOUND', `no session ${JSON.stringify(id)}`);
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

  /** DELETE: finalize (if still recording) and return the recording's summary. */
  async stop(id: string): Promise<{ recording: RecordingSummary }> {
    const e = this.entry(id);
    if (e.summary === null) {
      const summary = await this.offload.request(e.worker, 'record.stop', { sessionId: id, reason: 'stopped' }, 120_000);
      this.onEnded(id, summary);
    }
    this.sessions.delete(id);
    return { recording: e.summary! };
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

  // --- live fan-out -----------------------------------------------------------------

  /** Plans a live play session: subscribers of a record session, in its worker. */
  async createLive(req: LiveRequest, activeElsewhere: number): Promise<{ id: string; worker: number; ports: number[]; view: Record<string, unknown> }> {
    const e = this.sessions.get(req.live);
    if (e === undefined || e.endedAt !== null) throw new HttpError(404, 'OFFCAST_SESSION_NOT_FOUND', `no recording session ${JSON.stringify(req.live)} is running`);
    if (req.destination.port % 2 !== 0) throw badRequest('destination.port must be even (RTP on even ports, RTCP on the next one)');
    const dest = await resolveHost(req.destination.host);
    if (dest === null) throw badRequest(`destination.host ${JSON.stringify(req.destination.host)} does not resolve`);
    if (!this.destinations.allows(dest.address)) throw forbiddenDestination(req.destination.host);
    if (dest.family !== 4) throw badRequest('live sessions send over IPv4');
    if (activeElsewhere + this.active >= this.cfg.limits.maxSessions) {
      throw unavailable('OFFCAST_SESSION_LIMIT', `limits.maxSessions (${this.cfg.limits.maxSessions}) sessions are running`);
    }
    const id = randomUUID();
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      const ports = this.ports.allocate(e.specs.length);
      if (ports === null) throw unavailable('OFFCAST_PORTS_EXHAUSTED', `no free RTP port pairs in ${this.cfg.rtp.portMin}-${this.cfg.rtp.portMax}`);
      const tracks: (PlayTrackParams & { recordTrack: number })[] = e.specs.map((t, i) => ({
        localPort: ports[i]!,
        family: 4,
        destHost: dest.address,
        destPort: req.destination.port + 2 * i,
        payloadType: t.payloadType,
        ssrc: crypto.getRandomValues(new Uint32Array(1))[0]!,
        seq: crypto.getRandomValues(new Uint16Array(1))[0]!,
        tsBase: crypto.getRandomValues(new Uint32Array(1))[0]!,
        clockRate: t.clockRate,
        cacheTrack: i,
        recordTrack: i,
      }));
      try {
        await this.offload.request(e.worker, 'live.create', { sessionId: id, recordSessionId: req.live, tracks, cname: `offcast-${id.slice(0, 8)}` });
      } catch (err) {
        if (err instanceof OffloadError && err.code === 'OFFCAST_PORT_IN_USE') {
          this.ports.quarantine(ports);
          continue;
        }
        this.ports.release(ports);
        throw err;
      }
      const sdp = buildSdp({
        id,
        name: `live ${e.view.name}`,
        destination: dest,
        origin: '127.0.0.1',
        tracks: e.specs.map((t, i) => {
          const info = recordingTrackInfo(asManifestTrack(t, i));
          const s = { kind: t.kind, encoding: t.encoding, payloadType: t.payloadType, clockRate: t.clockRate, port: req.destination.port + 2 * i, info };
          return t.channels === undefined ? s : { ...s, channels: t.channels };
        }),
      });
      const view = {
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
        tracks: e.specs.map((t, i) => {
          const v: Record<string, unknown> = { kind: t.kind, codec: t.encoding, payloadType: t.payloadType, clockRate: t.clockRate, ssrc: tracks[i]!.ssrc, port: req.destination.port + 2 * i, sourcePort: ports[i]! };
          if (t.channels !== undefined) v.channels = t.channels;
          return v;
        }),
        sdp,
      };
      this.offload.load[e.worker]!++;
      return { id, worker: e.worker, ports, view };
    }
    throw unavailable('OFFCAST_PORTS_EXHAUSTED', 'could not bind a free RTP port pair');
  }

  // --- recordings on disk -----------------------------------------------------------

  async listRecordings(): Promise<Manifest[]> {
    let names: string[] = [];
    try {
      names = await readdir(this.root);
    } catch {
      return [];
    }
    const out: Manifest[] = [];
    for (const n of names.sort()) {
      if (!isValidMediaName(n)) continue;
      try {
        out.push(await readManifest(path.join(this.root, n)));
      } catch {
        // not a recording folder
      }
    }
    return out;
  }

  async manifest(name: string): Promise<Manifest> {
    if (!isValidMediaName(name)) throw invalidName('recording', name);
    try {
      return await readManifest(resolveMediaPath(this.root, name));
    } catch {
      throw recordingNotFound(name);
    }
  }

  async deleteRecording(name: string): Promise<void> {
    const m = await this.manifest(name);
    for (const e of this.sessions.values()) {
      if (e.endedAt === null && e.view.name === name) throw conflict(`recording ${name} is in progress: stop its session first`);
    }
    if (m.state === 'recording') throw conflict(`recording ${name} is unfinished (it is recovered at the next start)`);
    await rm(resolveMediaPath(this.root, name), { recursive: true, force: true });
  }

  /** A finished track file: a stream, its type and size. */
  async trackFile(name: string, index: number, which: 'playable' | 'rtpdump'): Promise<{ stream: NodeJS.ReadableStream; contentType: string; bytes: number; fileName: string }> {
    const m = await this.manifest(name);
    if (m.state !== 'finished') throw new HttpError(409, 'OFFCAST_RECORDING_UNFINISHED', `recording ${name} is ${m.state}`);
    const t = m.tracks.find((x) => x.index === index);
    if (t === undefined) throw new HttpError(404, 'OFFCAST_TRACK_NOT_FOUND', `recording ${name} has no track ${index}`);
    const fileName = which === 'playable' ? t.file : t.rtpdump;
    const file = path.join(resolveMediaPath(this.root, name), fileName);
    let st;
    try {
      st = await stat(file);
    } catch {
      throw new HttpError(404, 'OFFCAST_TRACK_NOT_FOUND', `recording ${name} has no file for track ${index}`);
    }
    return { stream: createReadStream(file), contentType: which === 'playable' ? t.contentType : 'application/x-rtpdump', bytes: st.size, fileName };
  }
}

function fmtpText(fmtp: Record<string, string>): string {
  return Object.entries(fmtp)
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(';');
}

function asManifestTrack(t: RecordTrackSpec, i: number): ManifestTrack {
  const m: ManifestTrack = {
    index: i,
    kind: t.kind,
    codec: t.encoding,
    payloadType: t.payloadType,
    clockRate: t.clockRate,
    fmtp: t.fmtp,
    file: '',
    contentType: '',
    rtpdump: '',
    packets: 0,
    bytes: 0,
    lost: 0,
    duplicates: 0,
    reordered: 0,
    late: 0,
    durationMs: 0,
  };
  if (t.channels !== undefined) m.channels = t.channels;
  return m;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
