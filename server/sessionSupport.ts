/**
 * Small procedures every kind of session (play, live, record) needs, written
 * once: the session limit, the local port pairs (with a retry when another
 * program holds one), the destination check, and how long ended sessions stay
 * visible.
 */
import { OffloadError, type PlayTrackParams } from '../offload/channel.js';
import { badRequest, forbiddenDestination, unavailable } from './errors.js';
import { type AllowList, resolveHost } from './net.js';
import type { PortAllocator } from './ports.js';

/** The offload worker that runs the RTSP listener: sessions that send interleaved on its connections run there. */
export const RTSP_WORKER = 0;

/** One session's hold on the limit; `release()` gives it back once, however often it is called. */
export interface SessionSlot {
  release(): void;
}

/**
 * `limits.maxSessions`, counted when a create starts (synchronously, before
 * its first await) and given back when the session ends or its create fails.
 * Creates in flight therefore count like running sessions.
 */
export class SessionSlots {
  private used = 0;
  constructor(readonly max: number) {}

  /** Slots held: running sessions plus creates in flight. */
  get inUse(): number {
    return this.used;
  }

  /** A slot, or 503 OFFCAST_SESSION_LIMIT. */
  take(): SessionSlot {
    if (this.used >= this.max) throw unavailable('OFFCAST_SESSION_LIMIT', `limits.maxSessions (${this.max}) sessions are running`);
    this.used++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.used--;
      },
    };
  }
}

/** Port pairs tried when others are taken by another program (each busy pair is set aside for a minute). */
const BIND_ATTEMPTS = 32;

/**
 * Allocates `count` local port pairs and calls `bind` with them; when the
 * offload answers OFFCAST_PORT_IN_USE the pairs are quarantined and fresh ones
 * tried. On any other failure the pairs go back to the pool and the error
 * propagates. On success the caller owns the returned ports.
 */
export async function withPortPairs<T>(pool: PortAllocator, count: number, bind: (ports: number[]) => Promise<T>): Promise<{ ports: number[]; result: T }> {
  for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
    const ports = pool.allocate(count);
    if (ports === null) throw unavailable('OFFCAST_PORTS_EXHAUSTED', `no free RTP port pairs in ${pool.range}`);
    try {
      return { ports, result: await bind(ports) };
    } catch (err) {
      if (err instanceof OffloadError && err.code === 'OFFCAST_PORT_IN_USE') {
        pool.quarantine(ports);
        continue;
      }
      pool.release(ports);
      throw err;
    }
  }
  throw unavailable('OFFCAST_PORTS_EXHAUSTED', 'could not bind a free RTP port pair');
}

/**
 * Where a play or live session sends: an even RTP port with room for
 * `tracks` pairs, a host that resolves, inside `destinations.allow`.
 */
export async function checkDestination(allow: AllowList, destination: { host: string; port: number }, tracks = 1): Promise<{ address: string; family: 4 | 6 }> {
  if (destination.port % 2 !== 0) throw badRequest('destination.port must be even (RTP on even ports, RTCP on the next one)');
  const dest = await resolveHost(destination.host);
  if (dest === null) throw badRequest(`destination.host ${JSON.stringify(destination.host)} does not resolve`);
  if (!allow.allows(dest.address)) throw forbiddenDestination(destination.host);
  checkPortRoom(destination.port, tracks);
  return dest;
}

/** Tracks go to port + 2·i (RTCP + 1): the last one must fit below 65536. */
export function checkPortRoom(port: number, tracks: number): void {
  if (port + 2 * (tracks - 1) + 1 > 65535) throw badRequest(`destination.port leaves no room for ${tracks} tracks (port + 2·i + 1 must be <= 65535)`);
}

/** Ended sessions stay visible this long, and at most this many (per manager). */
export interface Retention {
  ttlMs: number;
  max: number;
}

export const DEFAULT_RETENTION: Retention = { ttlMs: 10 * 60 * 1000, max: 1000 };

/** Ended sessions in the order they ended, forgotten past their time or beyond the bound. */
export class EndedSessions {
  private readonly ended = new Map<string, number>();
  constructor(private readonly retention: Retention) {}

  add(id: string, at: number): void {
    this.ended.set(id, at);
  }

  delete(id: string): void {
    this.ended.delete(id);
  }

  /** Calls `forget` for each session to drop, oldest first. */
  prune(now: number, forget: (id: string) => void): void {
    for (const [id, at] of this.ended) {
      if (this.ended.size <= this.retention.max && now - at <= this.retention.ttlMs) break;
      this.ended.delete(id);
      forget(id);
    }
  }
}

/**
 * The sending side of track `i` of a play or live session: its local port, its
 * destination (RTP on port + 2i) and a fresh RTP header (random SSRC, sequence
 * number and timestamp base, RFC 3550 5.1).
 */
export function playTrack(
  i: number,
  localPort: number,
  dest: { address: string; family: 4 | 6 },
  destPort: number,
  payloadType: number,
  clockRate: number,
): PlayTrackParams {
  return {
    localPort,
    family: dest.family,
    destHost: dest.address,
    destPort: destPort + 2 * i,
    payloadType,
    ssrc: random32(),
    seq: random32() & 0xffff,
    tsBase: random32(),
    clockRate,
    cacheTrack: i,
  };
}

/** A random 32-bit value (SSRC, initial timestamp; RFC 3550 5.1). */
export function random32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}
