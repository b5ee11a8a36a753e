/**
 * Publishing over RTSP (ANNOUNCE + SETUP + RECORD, RFC 2326 10.3, 10.4 and
 * 10.11): a client that sends an SDP and then media creates a record session
 * named by the URL, with every guarantee of the record path (the slow path
 * latches the publisher's flow, validation, reordering, durable files, crash
 * recovery): it is an ordinary record session of `RecordSessions`.
 *
 * - ANNOUNCE checks the SDP as a record session's SDP is checked over HTTP
 *   (`fromSdp`: track cap, codecs, fmtp; 400/415 with the reason), applies
 *   sources.allow to the client's address, and claims the name and a session
 *   slot (the one namespace: a name being recorded, or held by media or a
 *   recording, is refused). The RTSP session starts here (Session header).
 * - SETUP of each announced track (by its `a=control`) picks its transport:
 *   UDP, answered with a local port pair from the pool as server_port, or
 *   RTP/AVP/TCP interleaved channels of the connection.
 * - RECORD creates the record session with those ports, on the listener's
 *   worker (interleaved frames are handed to its ingest there; a live reader
 *   over TCP needs its recording there too), accepting flows from the
 *   client's address only.
 *
 * Nothing is written before RECORD: a client that gives up after ANNOUNCE or
 * SETUP leaves no empty recording holding the name, and the close of its
 * connection before RECORD gives the name back. TEARDOWN, the close of the
 * connection of interleaved tracks, and the keep-alive timeout (requests, or
 * media arriving) end the recording as DELETE does; DELETE of the record
 * session ends the RTSP session.
 */
import sdpTransform from 'sdp-transform';
import type { Config } from '../../config/index.js';
import { AllowList } from '../net.js';
import type { OffloadClient } from '../offload.js';
import type { PortAllocator } from '../ports.js';
import { fromSdp, type RecordRequest } from '../recordRequest.js';
import { requestWarnings, type RecordClaim, type RecordSessions } from '../recordSessions.js';
import { RTSP_WORKER } from '../sessionSupport.js';
import { RtspError, type RtspReply } from './messages.js';
import type { MethodHandler, RtspCall } from './service.js';
import { isInterleaved, setupPortPair, type RtspEndReason, type RtspSession, type RtspSessionOwner, type RtspSessionTable } from './sessions.js';
import { chooseTransport } from './transport.js';
import { parseStreamPath } from './url.js';

/** Methods of this file, for OPTIONS' Public header. */
export const PUBLISH_METHODS: readonly string[] = ['ANNOUNCE', 'RECORD'];

export interface PublishDeps {
  recordings: RecordSessions;
  ports: PortAllocator;
}

interface PublishTrack {
  /** Index of the track in the announced SDP. */
  index: number;
  transport: 'udp' | 'tcp';
  /** UDP: the client's RTP port (RTCP on the next). */
  clientPort: number;
  /** UDP: our local port pair, the RTSP session's until RECORD hands it to the record session. */
  localPort: number;
  /** TCP: the RTP channel (RTCP on the next). */
  channel: number;
}

interface PublishSession extends RtspSession {
  readonly role: 'publish';
  /** The announced tracks, checked. */
  readonly request: RecordRequest;
  /** Per announced track: the path segment its SETUP names (its `a=control`, or `trackID=N`). */
  readonly controls: readonly string[];
  /** The name and session slot, until RECORD turns them into the record session. */
  readonly claim: RecordClaim;
  readonly peer: { address: string; family: 4 | 6 };
  tracks: PublishTrack[];
  /** The record session in /v1/sessions, once RECORD created it. */
  recordId: string | null;
  /** ended: its recording ended (idle, BYE, a failure); the RTSP session stays until TEARDOWN or its timeout. */
  state: 'announced' | 'recording' | 'ended';
  /** Packets counted at the last keep-alive check: more since is a sign of life. */
  packetsSeen: number;
  /** A SETUP or RECORD in progress (it holds ports or creates the recording). */
  busy: boolean;
  /** Ended while busy: ended when the request is done. */
  doomed: RtspEndReason | null;
}

export class RtspPublisher implements RtspSessionOwner {
  private readonly deps: PublishDeps;
  private readonly offload: OffloadClient;
  private readonly table: RtspSessionTable;
  private readonly sources: AllowList;
  /**
   * Tells tests (and logs) what became of a publishing session: 'ended' when
   * its recording ended by itself (the session stays until TEARDOWN or its
   * timeout); the others when it is gone.
   */
  onTeardown: (id: string, reason: 'ended' | RtspEndReason | 'stopped' | 'failed') => void = () => undefined;

  constructor(cfg: Config, offload: OffloadClient, deps: PublishDeps, table: RtspSessionTable) {
    this.deps = deps;
    this.offload = offload;
    this.table = table;
    this.sources = new AllowList(cfg.sources.allow);
    deps.recordings.whenEnded((recordId, how) => {
      for (const s of this.table.all('publish') as PublishSession[]) {
        if (s.recordId !== recordId) continue;
        // Stopped by DELETE: the RTSP session goes with it. Ended by itself: the client still sends
        // its TEARDOWN (and keep-alives) for it, which must find it.
        if (how === 'stopped') this.forget(s, 'stopped');
        else if (s.state !== 'ended') {
          s.state = 'ended';
          this.onTeardown(s.id, 'ended');
        }
      }
    });
  }

  methods(): [string, MethodHandler][] {
    return [
      ['ANNOUNCE', (c) => this.announce(c)],
      ['RECORD', (c) => this.record(c)],
    ];
  }

  /** Whether a SETUP is for publishing: it names a publishing session, or asks for mode=record. */
  takesSetup(c: RtspCall): boolean {
    const named = this.table.peek(c.header('session'));
    if (named !== null) return named.role === 'publish';
    const t = c.header('transport');
    return t !== undefined && chooseTransport(t)?.mode === 'record';
  }

  // --- methods -------------------------------------------------------------------------

  private async announce(c: RtspCall): Promise<RtspReply> {
    const path = parseStreamPath(c.uri);
    if (path === null || path.rest !== '') throw new RtspError(400, 'ANNOUNCE needs rtsp://HOST:PORT/NAME');
    if (c.header('session') !== undefined) throw new RtspError(455, 'ANNOUNCE starts a session: send it without a Session header');
    if (c.note.body.trim() === '') throw new RtspError(400, 'ANNOUNCE needs the SDP of the stream as its body');
    const type = (c.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/sdp') throw new RtspError(415, `ANNOUNCE takes application/sdp, not ${JSON.stringify(type.slice(0, 64))}`);
    // Media comes from the client: sources.allow applies to its address (and the slow path checks each flow again).
    if (!this.sources.allows(c.note.peer.address)) throw new RtspError(403, `client ${c.note.peer.address} is outside sources.allow`);
    const request = fromSdp(path.name, c.note.body);
    const controls = announcedControls(c.note.body);
    let claim: RecordClaim;
    try {
      claim = await this.deps.recordings.claim(path.name);
    } catch (err) {
      // The name is taken (HTTP answers 409). RTSP has no 409 (RFC 2326 7.1.1 and RFC 7826 17.4 list none):
      // 403 Forbidden is "understood, and refused", which clients report as such; the reason is in the body.
      if ((err as { statusCode?: number }).statusCode === 409) throw new RtspError(403, (err as Error).message);
      throw err;
    }
    const s: PublishSession = {
      id: this.table.newId(),
      role: 'publish',
      name: path.name,
      owner: this,
      conn: c.note.conn,
      lastSeen: performance.now(),
      channels: [],
      request,
      controls,
      claim,
      peer: { address: c.note.peer.address, family: c.note.peer.family },
      tracks: [],
      recordId: null,
      state: 'announced',
      packetsSeen: 0,
      busy: false,
      doomed: null,
    };
    this.table.add(s);
    // What makes the file less useful (H.264 without sprop-parameter-sets) is said now, as the HTTP view says it:
    // RFC 2326 12.44's Warning header (199, miscellaneous), which clients log.
    const headers: [string, string][] = [this.table.header(s)];
    for (const w of requestWarnings(request.tracks)) headers.push(['Warning', `199 offcast "${w.replace(/["\\]/g, "'")}"`]);
    return { status: 200, headers };
  }

  async setup(c: RtspCall): Promise<RtspReply> {
    const path = parseStreamPath(c.uri);
    if (path === null) throw new RtspError(404, 'SETUP needs the URL of an announced track');
    const header = c.header('transport');
    if (header === undefined) throw new RtspError(461, 'SETUP needs a Transport header');
    const spec = chooseTransport(header);
    if (spec === null)
      throw new RtspError(461, 'offered transports: RTP/AVP;unicast;client_port=N-N+1;mode=record or RTP/AVP/TCP;interleaved=N-N+1;mode=record');
    const s = this.sessionFor(c, path.name);
    if (s.name !== path.name) throw new RtspError(459, 'a session holds the tracks of one stream');
    if (s.state !== 'announced') throw new RtspError(455, 'tracks can be set up only before RECORD');
    if (s.busy) throw new RtspError(455, 'a SETUP of this session is in progress');
    const index = trackOf(s, path.rest);
    if (index < 0) throw new RtspError(404, `${s.name} announced no track ${JSON.stringify(path.rest.slice(0, 64))}`);
    if (s.tracks.some((t) => t.index === index)) throw new RtspError(455, `track ${index} is already set up`);
    const track: PublishTrack = { index, transport: spec.kind, clientPort: 0, localPort: 0, channel: -1 };
    if (spec.kind === 'udp') {
      s.busy = true;
      try {
        track.localPort = await setupPortPair(this.deps.ports, this.offload, c.note.peer.family);
      } finally {
        s.busy = false;
      }
      track.clientPort = spec.rtpPort;
      // Meanwhile it may have been torn down (its end waits for this SETUP).
      if (s.doomed !== null) {
        this.deps.ports.release([track.localPort]);
        void this.end(s, s.doomed);
        throw new RtspError(454, 'the session ended while this SETUP was decided');
      }
    } else {
      if (s.tracks.some((t) => t.transport === 'tcp') && s.conn !== c.note.conn)
        throw new RtspError(455, 'interleaved tracks of a session share one connection');
      s.conn = c.note.conn;
      track.channel = this.table.takeChannel(s, spec.channel);
    }
    s.tracks.push(track);
    const transport =
      track.transport === 'udp'
        ? `RTP/AVP;unicast;client_port=${track.clientPort}-${track.clientPort + 1};server_port=${track.localPort}-${track.localPort + 1};mode=record`
        : `RTP/AVP/TCP;unicast;interleaved=${track.channel}-${track.channel + 1};mode=record`;
    return { status: 200, headers: [['Transport', transport], this.table.header(s)] };
  }

  private async record(c: RtspCall): Promise<RtspReply> {
    const named = this.table.lookup(c, true)!;
    if (named.role !== 'publish') throw new RtspError(455, 'RECORD is not valid on a reading session: publish with ANNOUNCE first');
    const s = named as PublishSession;
    const path = parseStreamPath(c.uri);
    if (path !== null && path.name !== s.name) throw new RtspError(459, 'the URL names another stream than the session');
    if (s.state === 'recording') return { status: 200, headers: [this.table.header(s)] };
    if (s.state === 'ended') throw new RtspError(455, 'the recording has ended: TEARDOWN, then ANNOUNCE again');
    if (s.tracks.length === 0) throw new RtspError(455, 'RECORD needs SETUP of the tracks first');
    if (s.busy) throw new RtspError(455, 'a request of this session is in progress');
    s.busy = true;
    try {
      // The tracks set up, in the order announced (a track not set up is not recorded).
      const tracks = [...s.tracks].sort((a, b) => a.index - b.index);
      const req: RecordRequest = { name: s.name, tracks: tracks.map((t) => s.request.tracks[t.index]!) };
      const view = await this.deps.recordings
        .start(s.claim, req, {
          rtcpMux: false,
          worker: RTSP_WORKER,
          // The UDP ports in the client's family (SETUP checked them free in it).
          family: s.peer.family,
          ports: tracks.map((t) => (t.transport === 'udp' ? t.localPort : 0)),
          interleaved: tracks.map((t) => (t.transport === 'tcp' ? { conn: s.conn, channel: t.channel } : null)),
          // The slow path accepts the client's flows only (its address: the ports it sends from are its own business).
          expected: { host: s.peer.address },
          rtsp: { session: s.id, transport: isInterleaved(s) ? 'tcp' : 'udp' },
        })
        .catch((err: unknown) => {
          // The claim is used up and the ports are back in the pool: nothing left to hold.
          for (const t of s.tracks) t.localPort = 0;
          this.forget(s, 'failed');
          throw err;
        });
      for (const t of s.tracks) t.localPort = 0;
      s.recordId = view.id;
      s.state = 'recording';
      return { status: 200, headers: [this.table.header(s)] };
    } finally {
      s.busy = false;
      if (s.doomed !== null) void this.end(s, s.doomed);
    }
  }

  // --- sessions ------------------------------------------------------------------------

  /**
   * The publishing session a SETUP belongs to: the one its Session header
   * names, or (a client that sends none after ANNOUNCE) the one announced for
   * this name on this connection; 455 when there is none.
   */
  private sessionFor(c: RtspCall, name: string): PublishSession {
    const named = this.table.lookup(c, false);
    if (named !== null) {
      if (named.role !== 'publish') throw new RtspError(455, 'mode=record needs ANNOUNCE first');
      return named as PublishSession;
    }
    const s = this.table.all('publish').find((x) => x.conn === c.note.conn && x.name === name && (x as PublishSession).state === 'announced');
    if (s === undefined) throw new RtspError(455, 'mode=record needs ANNOUNCE first');
    s.lastSeen = performance.now();
    return s as PublishSession;
  }

  /** Ends a publishing session: its recording (finalized as DELETE does), or what it holds before RECORD. */
  async end(s: PublishSession, why: RtspEndReason): Promise<void> {
    if (!this.table.has(s)) return;
    // A SETUP or RECORD in progress holds ports or is creating the recording: end after it.
    if (s.busy) {
      s.doomed ??= why;
      return;
    }
    const recordId = s.state === 'recording' ? s.recordId : null;
    this.forget(s, why);
    if (recordId !== null) await this.deps.recordings.end(recordId, why).catch(() => undefined);
  }

  /** Forgets the session and gives back what it holds itself (before RECORD: ports, name and slot). */
  private forget(s: PublishSession, why: RtspEndReason | 'stopped' | 'failed'): void {
    if (!this.table.remove(s)) return;
    const ports = s.tracks.filter((t) => t.localPort !== 0).map((t) => t.localPort);
    if (ports.length > 0) this.deps.ports.release(ports);
    for (const t of s.tracks) t.localPort = 0;
    this.deps.recordings.abandon(s.claim);
    this.onTeardown(s.id, why);
  }

  /**
   * A session not yet recording ends with the connection that announced it,
   * whatever its transports: it holds the name, and a client that lost its
   * connection announces again (ffmpeg does, trying TCP after UDP), which
   * must find the name free.
   */
  endsWithConnection(s: PublishSession): boolean {
    return s.state === 'announced';
  }

  /** Past their keep-alive time, sessions are spared while busy, or when media came since the last look. */
  async spare(stale: PublishSession[]): Promise<Set<RtspSession>> {
    const spared = new Set<RtspSession>();
    const recording = stale.filter((s) => s.state === 'recording' && s.recordId !== null);
    const counts = recording.length === 0 ? new Map<string, number>() : await this.deps.recordings.activity(recording.map((s) => s.recordId!));
    for (const s of stale) {
      if (s.busy) spared.add(s);
      const n = s.recordId === null ? undefined : counts.get(s.recordId);
      if (n !== undefined && n > s.packetsSeen) {
        s.packetsSeen = n;
        s.lastSeen = performance.now();
        spared.add(s);
      }
    }
    return spared;
  }
}

/**
 * The path segment that names each announced track in SETUP: its `a=control`
 * (relative to the ANNOUNCE URL, or absolute), or `trackID=N` without one
 * ('' names the stream itself: a single track set up by the stream URL).
 */
export function announcedControls(sdp: string): string[] {
  const doc = sdpTransform.parse(sdp);
  return (doc.media ?? []).map((m, i) => {
    // sdp-transform turns numeric-looking values into numbers (`a=control:0` gives 0), whatever its types say.
    const raw: unknown = m.control;
    const control = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' ? String(raw) : '';
    if (control === '' || control === '*') return `trackID=${i}`;
    if (/^rtsp[u]?:\/\//i.test(control)) return parseStreamPath(control)?.rest ?? control;
    return control.replace(/^\/+/, '');
  });
}

/** The announced track a SETUP's path names; -1 when none. */
function trackOf(s: PublishSession, rest: string): number {
  if (rest === '') return s.request.tracks.length === 1 ? 0 : -1;
  const i = s.controls.indexOf(rest);
  if (i >= 0) return i;
  const m = /^trackID=([0-9]{1,3})$/.exec(rest);
  const n = m === null ? -1 : Number(m[1]);
  return n < s.request.tracks.length ? n : -1;
}
