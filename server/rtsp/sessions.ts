/**
 * The RTSP sessions of both roles — reading (`reader.ts`) and publishing
 * (`publish.ts`) — in one table: their ids and `Session` header, the lookup
 * that is also a keep-alive, the interleaved channels of each connection, and
 * what ends a session without a request of its own: the close of the
 * connection its interleaved tracks use, the loss of every connection (the
 * listener's worker stopped), and the keep-alive timeout. TEARDOWN and the
 * keep-alive methods mean the same for both roles and are served here.
 *
 * Each role ends its own sessions (`RtspSessionOwner.end`), and may spare a
 * session past its keep-alive time that shows other signs of life (a reader's
 * receiver reports, a publisher's media).
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../../config/index.js';
import type { OffloadClient } from '../offload.js';
import type { PortAllocator } from '../ports.js';
import { RTSP_WORKER, withPortPairs } from '../sessionSupport.js';
import { RtspError, type RtspReply } from './messages.js';
import type { MethodHandler, RtspCall } from './service.js';
import { parseTarget } from './url.js';

export type RtspEndReason = 'teardown' | 'timeout' | 'connection';

export interface RtspSession {
  readonly id: string;
  readonly role: 'read' | 'publish';
  /** The stream's name (the URL's path). */
  readonly name: string;
  /** The connection that set it up; its interleaved tracks use this one. */
  conn: number;
  /** The last request naming it (performance.now()). */
  lastSeen: number;
  /** Interleaved channels it holds on `conn` (each an RTP channel; RTCP on the next); any: the connection's close ends the session. */
  readonly channels: number[];
  /** Tracks set up so far. */
  readonly tracks: readonly unknown[];
  readonly owner: RtspSessionOwner;
}

/** Whether a track of the session is interleaved on its connection. */
export function isInterleaved(s: RtspSession): boolean {
  return s.channels.length > 0;
}

export interface RtspSessionOwner {
  /** Ends the session: what it runs, what it holds, and its entry here (`remove`). */
  end(s: RtspSession, why: RtspEndReason): Promise<void>;
  /** Of its sessions past their keep-alive time, those to spare (busy, or alive by other signs). */
  spare(stale: RtspSession[]): Promise<Set<RtspSession>>;
  /** Whether the session ends with its connection though it has no interleaved track (the session's role decides). */
  endsWithConnection?(s: RtspSession): boolean;
}

export class RtspSessionTable {
  private readonly cfg: Config;
  private readonly byId = new Map<string, RtspSession>();
  /** Interleaved channels in use per connection. */
  private readonly channels = new Map<number, Set<number>>();
  private timer: NodeJS.Timeout | null = null;
  /** RTSP sessions ended by their keep-alive timeout (for tests and /metrics). */
  timeouts = 0;

  constructor(cfg: Config) {
    this.cfg = cfg;
  }

  get size(): number {
    return this.byId.size;
  }

  start(): void {
    const every = Math.max(50, Math.min(1000, Math.floor(this.cfg.rtsp.sessionTimeoutMs / 4)));
    this.timer = setInterval(() => void this.checkTimeouts(), every);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  methods(): [string, MethodHandler][] {
    return [
      ['TEARDOWN', (c) => this.teardown(c)],
      ['GET_PARAMETER', (c) => this.keepAlive(c)],
      ['SET_PARAMETER', (c) => this.keepAlive(c)],
    ];
  }

  newId(): string {
    return randomBytes(8).toString('hex').toUpperCase();
  }

  add(s: RtspSession): void {
    this.byId.set(s.id, s);
  }

  has(s: RtspSession): boolean {
    return this.byId.get(s.id) === s;
  }

  /** The session a Session header value names, without touching it (null: none). */
  peek(header: string | undefined): RtspSession | null {
    if (header === undefined) return null;
    return this.byId.get(header.split(';')[0]!.trim()) ?? null;
  }

  /** Sessions of one role (a copy: ending them while iterating is safe). */
  all(role: 'read' | 'publish'): RtspSession[] {
    return [...this.byId.values()].filter((s) => s.role === role);
  }

  /**
   * The session the request names, which this request keeps alive; 454 when it
   * names an unknown one. Without a Session header: null, or 455 when
   * `required` (in the Init state only SETUP, ANNOUNCE and the stateless
   * methods may come).
   */
  lookup(c: RtspCall, required: boolean): RtspSession | null {
    const h = c.header('session');
    if (h === undefined) {
      if (required) throw new RtspError(455, `${c.method} needs a session: SETUP first`);
      return null;
    }
    const id = h.split(';')[0]!.trim();
    const s = this.byId.get(id);
    if (s === undefined) throw new RtspError(454, `no session ${JSON.stringify(id.slice(0, 64))}`);
    s.lastSeen = performance.now();
    return s;
  }

  header(s: RtspSession): [string, string] {
    return ['Session', `${s.id};timeout=${Math.max(1, Math.round(this.cfg.rtsp.sessionTimeoutMs / 1000))}`];
  }

  /** A free pair of channels on the session's connection (`wanted` if free), held by the session; 453 when none. */
  takeChannel(s: RtspSession, wanted: number): number {
    let used = this.channels.get(s.conn);
    if (used === undefined) this.channels.set(s.conn, (used = new Set()));
    let ch = wanted >= 0 && !used.has(wanted) && !used.has(wanted + 1) ? wanted : -1;
    for (let c = 0; ch < 0 && c < 255; c += 2) if (!used.has(c) && !used.has(c + 1)) ch = c;
    if (ch < 0) throw new RtspError(453, 'no free interleaved channels on this connection');
    used.add(ch);
    used.add(ch + 1);
    s.channels.push(ch);
    return ch;
  }

  /** Forgets the session and frees its channels; false when it was already gone. */
  remove(s: RtspSession): boolean {
    if (this.byId.get(s.id) !== s) return false;
    this.byId.delete(s.id);
    const used = this.channels.get(s.conn);
    for (const ch of s.channels) {
      used?.delete(ch);
      used?.delete(ch + 1);
    }
    return true;
  }

  private async teardown(c: RtspCall): Promise<RtspReply> {
    const s = this.lookup(c, true)!;
    const target = parseTarget(c.uri);
    if (target !== null && target.track !== null && s.tracks.length > 1) throw new RtspError(459, 'TEARDOWN ends the whole session: use the stream URL');
    await s.owner.end(s, 'teardown');
    return { status: 200, headers: [] };
  }

  private keepAlive(c: RtspCall): RtspReply {
    this.lookup(c, false);
    return { status: 200, headers: c.header('session') === undefined ? [] : [['Session', c.header('session')!.split(';')[0]!.trim()]] };
  }

  /** The connection closed: its interleaved sessions end; UDP ones live until their timeout. */
  connectionClosed(conn: number): void {
    for (const s of [...this.byId.values()]) if (s.conn === conn && this.boundToConnection(s)) void s.owner.end(s, 'connection');
    this.channels.delete(conn);
  }

  /** The listener's worker stopped: every connection is gone. */
  connectionsLost(): void {
    for (const s of [...this.byId.values()]) if (this.boundToConnection(s)) void s.owner.end(s, 'connection');
    this.channels.clear();
  }

  private boundToConnection(s: RtspSession): boolean {
    return isInterleaved(s) || s.owner.endsWithConnection?.(s) === true;
  }

  /** Sessions without a request for rtsp.sessionTimeoutMs end, unless their role spares them. */
  private async checkTimeouts(): Promise<void> {
    const limit = this.cfg.rtsp.sessionTimeoutMs;
    const now = performance.now();
    const byOwner = new Map<RtspSessionOwner, RtspSession[]>();
    for (const s of this.byId.values()) if (now - s.lastSeen > limit) byOwner.set(s.owner, [...(byOwner.get(s.owner) ?? []), s]);
    for (const [owner, stale] of byOwner) {
      const spared = await owner.spare(stale).catch(() => new Set<RtspSession>());
      for (const s of stale) {
        if (spared.has(s) || !this.has(s) || performance.now() - s.lastSeen <= limit) continue;
        this.timeouts++;
        void owner.end(s, 'timeout');
      }
    }
  }
}

/**
 * A local UDP port pair for a SETUP (answered as server_port): from the pool,
 * checked free in the listener's worker (a pair another program holds is set
 * aside and another tried); 453 when the pool is exhausted. The caller owns it.
 */
export async function setupPortPair(ports: PortAllocator, offload: OffloadClient, family: 4 | 6): Promise<number> {
  const { ports: pair } = await withPortPairs(ports, 1, (p) => offload.request(RTSP_WORKER, 'ports.check', { localPort: p[0]!, family })).catch(
    (err: unknown) => {
      if ((err as { code?: string }).code === 'OFFCAST_PORTS_EXHAUSTED') throw new RtspError(453, `no free RTP port pairs in ${ports.range}`);
      throw err;
    },
  );
  return pair[0]!;
}
