/**
 * Reading over RTSP: DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN and the
 * keep-alives. An RTSP session collects its tracks' transports over SETUPs
 * (UDP: a local port pair from the pool, answered as server_port; TCP: a pair
 * of interleaved channels of the connection), and its first PLAY creates the
 * ordinary play session (or live relay) that sends them, through
 * `SessionManager`. Later PLAYs and PAUSEs update it; TEARDOWN, a keep-alive
 * timeout, a DELETE of the session, or the close of the connection that
 * carries its interleaved tracks end it (`sessions.ts` holds the sessions of
 * both roles and serves TEARDOWN and the keep-alives).
 *
 * Name resolution (one namespace, as MediaMTX has it): a recording in progress
 * named NAME is relayed live; otherwise NAME is media or a finished recording.
 */
import type { Config } from '../../config/index.js';
import type { TrackSpec } from '../../storage/types.js';
import type { RtpInfo } from '../../offload/channel.js';
import type { Catalog, MediaItem } from '../catalog.js';
import { AllowList } from '../net.js';
import type { PortAllocator } from '../ports.js';
import type { RecordSessions } from '../recordSessions.js';
import { planTracks, type RtspPlayTarget, type SessionManager } from '../sessions.js';
import { random32, type SessionSlot, type SessionSlots } from '../sessionSupport.js';
import type { OffloadClient } from '../offload.js';
import { RtspError, type RtspReply } from './messages.js';
import { describeSdp, type DescribedTrack } from './sdp.js';
import { RTSP_WORKER, type MethodHandler, type RtspCall } from './service.js';
import { setupPortPair, type RtspEndReason, type RtspSession, type RtspSessionOwner, type RtspSessionTable } from './sessions.js';
import { chooseTransport } from './transport.js';
import { contentBase, parseTarget } from './url.js';
import { recordingTrackInfo } from '../../storage/recording/probe.js';

export const READER_METHODS = ['OPTIONS', 'DESCRIBE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN', 'GET_PARAMETER', 'SET_PARAMETER'] as const;

/** Announced in `Session: ID;timeout=N` (seconds): clients send keep-alives well within it. */
export interface ReaderDeps {
  catalog: Catalog;
  sessions: SessionManager;
  recordings: RecordSessions;
  ports: PortAllocator;
  slots: SessionSlots;
}

/** A stream as a name resolves: cached media, or a recording in progress. */
type Stream =
  | { kind: 'media'; name: string; item: MediaItem; tracks: DescribedTrack[]; durationMs: number }
  | { kind: 'live'; name: string; recordId: string; worker: number; specs: readonly TrackSpec[]; tracks: DescribedTrack[] };

interface SetupTrack {
  /** Index in the stream's tracks (trackID). */
  index: number;
  transport: 'udp' | 'tcp';
  /** UDP: the client's RTP port; its RTCP port is the next one. */
  clientPort: number;
  /** UDP: our local port pair (owned by the RTSP session until PLAY hands it to the play session). */
  localPort: number;
  /** TCP: the RTP channel (RTCP on the next). */
  channel: number;
  ssrc: number;
  seq: number;
  tsBase: number;
}

interface ReaderSession extends RtspSession {
  readonly role: 'read';
  stream: Stream;
  peer: { address: string; family: 4 | 6 };
  tracks: SetupTrack[];
  slot: SessionSlot;
  /** The play session or live relay in /v1/sessions, once PLAY created it. */
  sessionId: string | null;
  /** ended: its play session ended (end of media, a failure); the RTSP session stays until TEARDOWN or its timeout. */
  state: 'ready' | 'playing' | 'paused' | 'ended';
  /** Receiver reports counted at the last check: a new one is a keep-alive too. */
  rtcpSeen: number;
  /** A PLAY (creating the session) in progress. */
  busy: boolean;
  /** Torn down while a PLAY was in progress: ended when it is done (it holds the slot and ports). */
  doomed: 'teardown' | 'timeout' | 'connection' | null;
}

export class RtspReader implements RtspSessionOwner {
  private readonly deps: ReaderDeps;
  private readonly offload: OffloadClient;
  private readonly table: RtspSessionTable;
  private readonly destinations: AllowList;
  private port = 0;
  /**
   * Tells tests (and logs) what became of an RTSP session: 'ended' when its
   * media ended (the session stays until TEARDOWN or its timeout); the others
   * when it is gone (TEARDOWN, keep-alive timeout, its connection closed, or
   * its play session stopped by DELETE).
   */
  onTeardown: (id: string, reason: 'ended' | 'teardown' | 'timeout' | 'connection' | 'stopped' | 'failed') => void = () => undefined;

  constructor(cfg: Config, offload: OffloadClient, deps: ReaderDeps, table: RtspSessionTable) {
    this.offload = offload;
    this.deps = deps;
    this.table = table;
    this.destinations = new AllowList(cfg.destinations.allow);
    deps.sessions.onPlayEnded((sessionId, why) => {
      for (const s of this.table.all('read') as ReaderSession[]) {
        if (s.sessionId !== sessionId) continue;
        // Stopped by DELETE: the RTSP session goes with it. Ended by itself: a client still sends its
        // TEARDOWN (and keep-alives) for it, which must find it.
        if (why === 'stopped') this.forget(s, 'stopped');
        else if (s.state !== 'ended') {
          s.state = 'ended';
          this.onTeardown(s.id, 'ended');
        }
      }
    });
  }

  start(port: number): void {
    this.port = port;
  }

  /** DESCRIBE, PLAY and PAUSE (SETUP is `setup`, which the service calls for reading transports). */
  methods(): [string, MethodHandler][] {
    return [
      ['DESCRIBE', (c) => this.describe(c)],
      ['PLAY', (c) => this.play(c)],
      ['PAUSE', (c) => this.pause(c)],
    ];
  }

  // --- name resolution ---------------------------------------------------------------

  private async resolve(name: string): Promise<Stream> {
    const live = this.deps.recordings.liveByName(name);
    if (live !== null) {
      const tracks = live.specs.map((t, i): DescribedTrack => {
        const d: DescribedTrack = {
          kind: t.kind,
          encoding: t.encoding,
          payloadType: t.payloadType,
          clockRate: t.clockRate,
          info: recordingTrackInfo(t, i, 0),
          control: i,
        };
        if (t.channels !== undefined) d.channels = t.channels;
        return d;
      });
      return { kind: 'live', name, recordId: live.id, worker: live.worker, specs: live.specs, tracks };
    }
    let item: MediaItem;
    try {
      item = await this.deps.catalog.get(name, { recent: true });
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404 || status === 400) throw new RtspError(404, `no stream named ${JSON.stringify(name)}`);
      throw err;
    }
    const plan = planTracks(item.probe, undefined);
    const tracks = plan.map((p, i): DescribedTrack => {
      const d: DescribedTrack = {
        kind: p.info.kind,
        encoding: p.encoding,
        payloadType: p.payloadType,
        clockRate: rtpClock(p.encoding, p.info.clockRate),
        info: p.info,
        control: i,
      };
      if (p.channels !== undefined) d.channels = p.channels;
      return d;
    });
    return { kind: 'media', name, item, tracks, durationMs: item.probe.durationMs };
  }

  // --- methods -------------------------------------------------------------------------

  private async describe(c: RtspCall): Promise<RtspReply> {
    const target = parseTarget(c.uri);
    if (target === null || target.track !== null) throw new RtspError(404, 'DESCRIBE needs rtsp://HOST:PORT/NAME');
    const accept = c.header('accept');
    if (accept !== undefined && !/application\/sdp|\*\/\*|application\/\*/i.test(accept)) throw new RtspError(406, 'only application/sdp is offered');
    const stream = await this.resolve(target.name);
    const host = hostOf(c.note.local.address);
    const sdp = describeSdp(stream.name, { address: host, family: host.includes(':') ? 6 : 4 }, stream.tracks, stream.kind === 'media' ? stream.durationMs : 0);
    return {
      status: 200,
      headers: [
        ['Content-Base', contentBase(host, this.port, stream.name)],
        ['Content-Type', 'application/sdp'],
      ],
      body: sdp,
    };
  }

  async setup(c: RtspCall): Promise<RtspReply> {
    const target = parseTarget(c.uri);
    if (target === null) throw new RtspError(404, 'SETUP needs rtsp://HOST:PORT/NAME/trackID=N');
    const header = c.header('transport');
    if (header === undefined) throw new RtspError(461, 'SETUP needs a Transport header');
    const spec = chooseTransport(header);
    if (spec === null) throw new RtspError(461, 'offered transports: RTP/AVP;unicast;client_port=N-N+1 or RTP/AVP/TCP;interleaved=N-N+1');
    if (spec.mode === 'record') throw new RtspError(455, 'mode=record needs ANNOUNCE first');
    let s = this.sessionOf(c, false);
    if (s !== null && s.stream.name !== target.name) throw new RtspError(459, 'a session holds the tracks of one stream');
    if (s !== null && s.state !== 'ready') throw new RtspError(455, 'tracks can be added only before PLAY');
    let created = false;
    if (s === null) {
      const stream = await this.resolve(target.name);
      // A single-track stream may be set up by its own URL.
      if (target.track === null && stream.tracks.length !== 1) throw new RtspError(459, 'SETUP names one track: rtsp://HOST:PORT/NAME/trackID=N');
      const slot = this.deps.slots.take();
      s = {
        id: this.table.newId(),
        role: 'read',
        name: stream.name,
        owner: this,
        channels: [],
        stream,
        conn: c.note.conn,
        peer: { address: c.note.peer.address, family: c.note.peer.family },
        tracks: [],
        slot,
        sessionId: null,
        state: 'ready',
        lastSeen: performance.now(),
        rtcpSeen: 0,
        busy: false,
        doomed: null,
      };
      created = true;
    }
    const index = target.track ?? 0;
    if (index >= s.stream.tracks.length) throw new RtspError(404, `${s.stream.name} has no track ${index}`);
    if (s.tracks.some((t) => t.index === index)) throw new RtspError(455, `track ${index} is already set up`);
    const track: SetupTrack = {
      index,
      transport: spec.kind,
      clientPort: 0,
      localPort: 0,
      channel: -1,
      ssrc: random32(),
      seq: random32() & 0xffff,
      tsBase: random32(),
    };
    try {
      // Whatever the transport, the media goes to the client: destinations.allow applies to its address.
      if (!this.destinations.allows(c.note.peer.address)) throw new RtspError(403, `client ${c.note.peer.address} is outside destinations.allow`);
      if (spec.kind === 'udp') {
        track.clientPort = spec.rtpPort;
        track.localPort = await setupPortPair(this.deps.ports, this.offload, c.note.peer.family);
        // Meanwhile (another connection naming the session) it may have ended, or got this track.
        if (!created && (!this.table.has(s) || s.state !== 'ready' || s.tracks.some((t) => t.index === index))) {
          this.deps.ports.release([track.localPort]);
          throw new RtspError(455, 'the session changed while this SETUP was decided');
        }
      } else {
        if (s.stream.kind === 'live' && s.stream.worker !== RTSP_WORKER) {
          throw new RtspError(461, 'this recording runs on another offload worker: read it over UDP (RTP/AVP;unicast)');
        }
        if (s.tracks.some((t) => t.transport === 'tcp') && s.conn !== c.note.conn)
          throw new RtspError(455, 'interleaved tracks of a session share one connection');
        s.conn = c.note.conn;
        track.channel = this.table.takeChannel(s, spec.channel);
      }
    } catch (err) {
      if (created) s.slot.release();
      throw err;
    }
    s.tracks.push(track);
    s.lastSeen = performance.now();
    if (created) this.table.add(s);
    const ssrc = track.ssrc.toString(16).toUpperCase().padStart(8, '0');
    const transport =
      track.transport === 'udp'
        ? `RTP/AVP;unicast;client_port=${track.clientPort}-${track.clientPort + 1};server_port=${track.localPort}-${track.localPort + 1};ssrc=${ssrc}`
        : `RTP/AVP/TCP;unicast;interleaved=${track.channel}-${track.channel + 1};ssrc=${ssrc}`;
    return { status: 200, headers: [['Transport', transport], this.table.header(s)] };
  }

  private async play(c: RtspCall): Promise<RtspReply> {
    const s = this.sessionOf(c, true)!;
    this.checkAggregate(c, s);
    const range = parseRange(c.header('range'));
    if (s.state === 'ended') throw new RtspError(455, 'the stream has ended: TEARDOWN, then SETUP again');
    if (s.busy) throw new RtspError(455, 'a PLAY is in progress');
    s.busy = true;
    try {
      if (s.sessionId === null) return await this.firstPlay(c, s, range);
      if (s.stream.kind === 'live') {
        if (range !== null && range.startMs !== null) throw new RtspError(457, 'a live stream has no position to seek to');
        return { status: 200, headers: [this.table.header(s), ['Range', 'npt=now-']] };
      }
      const body: { state: 'playing'; positionMs?: number } = { state: 'playing' };
      if (range !== null && range.startMs !== null) {
        this.checkRangeWithin(s, range.startMs);
        body.positionMs = range.startMs;
      }
      const { rtpInfo } = await this.deps.sessions.updateRtsp(s.sessionId, body);
      s.state = 'playing';
      return { status: 200, headers: [this.table.header(s), ['Range', `npt=${npt(rtpInfo.positionMs)}-`], ['RTP-Info', this.rtpInfo(c, s, rtpInfo)]] };
    } finally {
      s.busy = false;
      if (s.doomed !== null) void this.end(s, s.doomed);
    }
  }

  private async firstPlay(c: RtspCall, s: ReaderSession, range: { startMs: number | null } | null): Promise<RtspReply> {
    if (s.stream.kind === 'media' && range !== null && range.startMs !== null) this.checkRangeWithin(s, range.startMs);
    const targets: RtspPlayTarget[] = s.tracks.map((t) => {
      const st = s.stream.tracks[t.index]!;
      const base = { track: t.index, payloadType: st.payloadType, clockRate: st.clockRate, ssrc: t.ssrc, seq: t.seq, tsBase: t.tsBase };
      return t.transport === 'udp'
        ? { ...base, udp: { address: s.peer.address, family: s.peer.family, port: t.clientPort, localPort: t.localPort } }
        : { ...base, interleaved: { conn: s.conn, channel: t.channel } };
    });
    const rtsp = { session: s.id, transport: s.tracks.some((t) => t.transport === 'tcp') ? ('tcp' as const) : ('udp' as const) };
    const startMs = range?.startMs ?? 0;
    let created: { view: { id: string; positionMs: number }; rtpInfo: RtpInfo };
    try {
      created =
        s.stream.kind === 'media'
          ? await this.deps.sessions.createRtspPlay({ item: s.stream.item, targets, startMs, slot: s.slot, peer: s.peer, rtsp })
          : await this.deps.sessions.createRtspLive({ recordId: s.stream.recordId, targets, slot: s.slot, peer: s.peer, rtsp });
    } catch (err) {
      // Its local ports went back to the pool (or into quarantine) with the failed create.
      for (const t of s.tracks) t.localPort = 0;
      this.forget(s, 'failed');
      throw err;
    }
    // The play session owns the slot and the ports now.
    s.sessionId = created.view.id;
    s.state = 'playing';
    const headers: [string, string][] = [this.table.header(s)];
    headers.push(['Range', s.stream.kind === 'live' ? 'npt=now-' : `npt=${npt(created.rtpInfo.positionMs)}-`]);
    headers.push(['RTP-Info', this.rtpInfo(c, s, created.rtpInfo)]);
    return { status: 200, headers };
  }

  private async pause(c: RtspCall): Promise<RtspReply> {
    const s = this.sessionOf(c, true)!;
    this.checkAggregate(c, s);
    if (s.stream.kind === 'live') throw new RtspError(455, 'a live stream cannot pause');
    if (s.sessionId === null) throw new RtspError(455, 'PAUSE needs PLAY first');
    // Nothing is sent any more: as good as paused (GStreamer pauses after the end of the stream).
    if (s.state === 'ended') return { status: 200, headers: [this.table.header(s)] };
    if (s.busy) throw new RtspError(455, 'a PLAY is in progress');
    const { view } = await this.deps.sessions.updateRtsp(s.sessionId, { state: 'paused' });
    s.state = 'paused';
    return { status: 200, headers: [this.table.header(s), ['Range', `npt=${npt(view.positionMs)}-`]] };
  }

  // --- sessions ------------------------------------------------------------------------

  /** The reading session the request names (a keep-alive for it); 454 when unknown, 455 when it publishes. */
  private sessionOf(c: RtspCall, required: boolean): ReaderSession | null {
    const s = this.table.lookup(c, required);
    if (s !== null && s.role !== 'read') throw new RtspError(455, `${c.method} is not valid on a publishing session (ANNOUNCE, SETUP, RECORD)`);
    return s as ReaderSession | null;
  }

  /** PLAY and PAUSE act on the whole session: a track URL is refused when there are several. */
  private checkAggregate(c: RtspCall, s: ReaderSession): void {
    const target = parseTarget(c.uri);
    if (target !== null && target.name !== s.stream.name) throw new RtspError(459, 'the URL names another stream than the session');
    if (target !== null && target.track !== null && s.tracks.length > 1) throw new RtspError(459, `${c.method} acts on the whole session: use the stream URL`);
  }

  private checkRangeWithin(s: ReaderSession, startMs: number): void {
    if (s.stream.kind === 'media' && startMs >= s.stream.durationMs && s.stream.durationMs > 0) {
      throw new RtspError(457, `the stream is ${npt(s.stream.durationMs)} s long`);
    }
  }

  private rtpInfo(c: RtspCall, s: ReaderSession, info: RtpInfo): string {
    const host = hostOf(c.note.local.address);
    const base = contentBase(host, this.port, s.stream.name);
    return s.tracks.map((t, i) => `url=${base}trackID=${t.index};seq=${info.tracks[i]?.seq ?? t.seq};rtptime=${info.tracks[i]?.rtptime ?? t.tsBase}`).join(',');
  }

  /** Ends an RTSP session: its play session (if PLAY made one), or the ports and slot it holds. */
  async end(s: ReaderSession, why: RtspEndReason): Promise<void> {
    if (!this.table.has(s)) return;
    // A PLAY in progress is creating the play session with this session's slot and ports: end after it.
    if (s.busy) {
      s.doomed ??= why;
      return;
    }
    const sessionId = s.state === 'ended' ? null : s.sessionId;
    this.forget(s, why);
    if (sessionId !== null) await this.deps.sessions.end(sessionId).catch(() => undefined);
  }

  /** Forgets the RTSP session and gives back what it holds itself (before PLAY: ports and slot). */
  private forget(s: ReaderSession, why: 'teardown' | 'timeout' | 'connection' | 'stopped' | 'failed'): void {
    if (!this.table.remove(s)) return;
    if (s.sessionId === null) {
      const ports = s.tracks.filter((t) => t.localPort !== 0).map((t) => t.localPort);
      if (ports.length > 0) this.deps.ports.release(ports);
      s.slot.release();
    }
    this.onTeardown(s.id, why);
  }

  /** Sessions past their keep-alive time are spared while a PLAY is busy, or when a receiver report came since the last look. */
  async spare(stale: ReaderSession[]): Promise<Set<RtspSession>> {
    const spared = new Set<RtspSession>();
    const ids = stale.filter((s) => s.sessionId !== null && s.state !== 'ended').map((s) => s.sessionId!);
    const counts = ids.length === 0 ? new Map<string, number>() : await this.deps.sessions.rtcpCounts(ids).catch(() => new Map<string, number>());
    for (const s of stale) {
      if (s.busy) spared.add(s);
      const n = s.sessionId === null || s.state === 'ended' ? undefined : counts.get(s.sessionId);
      if (n !== undefined && n > s.rtcpSeen) {
        s.rtcpSeen = n;
        s.lastSeen = performance.now();
        spared.add(s);
      }
    }
    return spared;
  }
}

/** The RTP clock of an encoding as the payloaders use it. */
function rtpClock(encoding: string, sourceClock: number): number {
  if (encoding === 'H264') return 90000;
  if (encoding === 'opus') return 48000;
  if (encoding === 'PCMU' || encoding === 'PCMA') return 8000;
  return sourceClock;
}

/** `Range: npt=START-[END]` (RFC 2326 3.6); null when absent; startMs null for `now`. */
export function parseRange(h: string | undefined): { startMs: number | null } | null {
  if (h === undefined) return null;
  const m = /^\s*npt\s*=\s*(now|[0-9]+(?:\.[0-9]*)?|[0-9]+:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]*)?)?\s*-\s*([0-9.:]*)\s*(?:;.*)?$/i.exec(h);
  if (m === null) {
    if (/^\s*(smpte|clock)/i.test(h)) return null;
    throw new RtspError(457, `malformed Range ${JSON.stringify(h.slice(0, 64))}`);
  }
  const start = m[1];
  if (start === undefined || start.toLowerCase() === 'now') return { startMs: null };
  let seconds: number;
  if (start.includes(':')) {
    const [hh, mm, ss] = start.split(':') as [string, string, string];
    seconds = Number(hh) * 3600 + Number(mm) * 60 + Number(ss);
  } else seconds = Number(start);
  if (!Number.isFinite(seconds)) throw new RtspError(457, 'malformed Range');
  return { startMs: Math.round(seconds * 1000) };
}

function npt(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}

/** The address as a URL host (IPv4-mapped IPv6 shown as IPv4). */
function hostOf(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
