/**
 * The native pacing engine (offload/native/engine.c) seen from JavaScript: one
 * C thread per worker paces and sends the worker's UDP play tracks from the
 * packet cache. This wrapper owns the slots (a track's place in the engine),
 * the shared counters the thread writes, and the command protocol:
 *
 * - create: the track's arrays and RTP constants (pinned by the addon until release);
 * - run: start from a position (idx, byteOff, seq, loops, RTP epoch, zeroWall);
 * - stop: stop, optionally after the frame in flight; waits for the thread's
 *   acknowledgement, after which the counters hold the track's position;
 * - close: stop for good; once acknowledged the slot's references are
 *   released and `then` runs (the socket may close: the thread will never
 *   send on it again).
 *
 * Commands cross a bounded ring; a full one is OFFCAST_ENGINE_BUSY (503).
 */
import { OffloadError, type HistogramSnapshot } from '../channel.js';
import type { PacketTrack } from '../cache.js';
import { LATENESS_BUCKETS_MS } from '../histogram.js';

export interface EngineAddon {
  engineOpen(counters: Float64Array, totals: Float64Array, maxTracks: number, offsetMs: number, onDone: (slot: number, runId: number) => void): void;
  engineTrack(
    slot: number,
    gen: number,
    fd: number,
    payload: Uint8Array,
    len: Uint16Array,
    ts: Uint32Array,
    send: Uint32Array,
    flags: Uint8Array | null,
    count: number,
    markerAll: number,
    pt: number,
    ssrc: number,
    clockRate: number,
    loopMs: number,
    speed: number,
    loop: number,
    tsBase: number,
    loopTicks: number,
  ): number;
  engineCmd(op: number, slot: number, ...args: number[]): number;
  engineWait(seq: number, timeoutMs: number): boolean;
  engineRelease(slot: number): void;
  engineQueued(): number;
  monoNow(): number;
}

/** Command codes (engine.c). */
export const OP_RUN = 2;
export const OP_STOP = 3;
export const OP_CLOSE = 4;
/** Tests only: the thread reads no command for this many ms (fills the ring). */
export const OP_HOLD = 5;

/** Per-track counters: offsets in a slot's stretch of `counters` (engine.c). */
export const C = {
  packets: 0,
  octets: 1,
  lastTs: 2,
  lastAt: 3,
  errors: 4,
  idx: 5,
  byteOff: 6,
  seq: 7,
  loops: 8,
  midFrame: 9,
  done: 10,
  lateSum: 11,
  lateCount: 12,
  late: 13,
  gso: 26,
  fault: 27,
} as const;
export const C_STRIDE = 32;
/** Engine-wide totals: offsets in `totals`. */
export const E = {
  packets: 0,
  octets: 1,
  errors: 2,
  ticks: 3,
  syscalls: 4,
  gso: 5,
  gsoRefused: 6,
  lateSum: 7,
  lateCount: 8,
  late: 9,
  lagSum: 22,
  lagCount: 23,
  lag: 24,
  active: 37,
  commands: 38,
  /** 1 when the thread sends through io_uring (one submission per turn), 0 with a sendmmsg per track. */
  uring: 39,
} as const;
export const E_STRIDE = 64;

/** How long a stop or close waits for the thread (it answers within a tick unless the machine starves it). */
const WAIT_MS = 2000;

/** What the engine tells a track's owner. */
export interface EngineTrackOwner {
  /** The thread sent the track's last packet (run `runId`). */
  engineDone(runId: number): void;
}

export interface EngineTrackSpec {
  fd: number;
  packets: PacketTrack;
  payloadType: number;
  ssrc: number;
  clockRate: number;
  loopMs: number;
  /** 0: "speed": "max". */
  speed: number;
  loop: boolean;
  tsBase: number;
  loopTicks: number;
}

export class NativeEngine {
  readonly counters: Float64Array;
  readonly totals: Float64Array;
  readonly maxTracks: number;
  private readonly addon: EngineAddon;
  private readonly free: number[] = [];
  private nextFresh = 0;
  private readonly owners: (EngineTrackOwner | null)[];
  private runIds = 0;
  /** Closes whose acknowledgement did not come within WAIT_MS: finished by a poll. */
  private readonly closing: { slot: number; seq: number; then: () => void }[] = [];
  private closingTimer: NodeJS.Timeout | null = null;

  constructor(addon: EngineAddon, maxTracks: number) {
    this.addon = addon;
    this.maxTracks = maxTracks;
    this.counters = new Float64Array(new SharedArrayBuffer(maxTracks * C_STRIDE * 8));
    this.totals = new Float64Array(new SharedArrayBuffer(E_STRIDE * 8));
    this.owners = new Array<EngineTrackOwner | null>(maxTracks).fill(null);
    addon.engineOpen(this.counters, this.totals, maxTracks, clockOffset(addon), (slot, runId) => this.owners[slot]?.engineDone(runId));
  }

  /** Tracks in the engine now. */
  get tracks(): number {
    return this.nextFresh - this.free.length;
  }

  /** A slot for a new track, or -1 when every slot is taken (the caller paces in JavaScript). */
  create(owner: EngineTrackOwner, spec: EngineTrackSpec): number {
    const slot = this.free.length > 0 ? this.free.pop()! : this.nextFresh < this.maxTracks ? this.nextFresh++ : -1;
    if (slot < 0) return -1;
    const p = spec.packets;
    try {
      this.push(() =>
        this.addon.engineTrack(
          slot,
          0,
          spec.fd,
          p.payload,
          p.len,
          p.ts,
          p.send,
          p.flags,
          p.count,
          p.markerAll ? 1 : 0,
          spec.payloadType,
          spec.ssrc >>> 0,
          spec.clockRate,
          spec.loopMs,
          spec.speed,
          spec.loop ? 1 : 0,
          spec.tsBase >>> 0,
          spec.loopTicks,
        ),
      );
    } catch (err) {
      this.free.push(slot);
      throw err;
    }
    this.owners[slot] = owner;
    return slot;
  }

  /** Starts the track from this position; returns the run id its completion will carry. */
  run(slot: number, idx: number, byteOff: number, seq: number, loops: number, rtpEpoch: number, zeroWall: number, midFrame: boolean): number {
    const runId = (this.runIds = (this.runIds + 1) >>> 0);
    this.push(() => this.addon.engineCmd(OP_RUN, slot, idx, byteOff, seq, loops, rtpEpoch, zeroWall, midFrame ? 1 : 0, runId));
    return runId;
  }

  /** Stops the track (after the frame in flight, if asked); on return its counters hold its position. */
  stop(slot: number, finishFrame: boolean): void {
    const seq = this.push(() => this.addon.engineCmd(OP_STOP, slot, finishFrame ? 1 : 0));
    if (!this.addon.engineWait(seq, WAIT_MS)) throw new OffloadError('OFFCAST_ENGINE_TIMEOUT', `the pacing thread did not answer within ${WAIT_MS} ms`, 503);
  }

  /** Closes the slot; `then` runs once the thread acknowledged it (now, or from a poll if it is slow). */
  close(slot: number, then: () => void): void {
    this.owners[slot] = null;
    const seq = this.push(() => this.addon.engineCmd(OP_CLOSE, slot));
    if (this.addon.engineWait(seq, WAIT_MS)) {
      this.release(slot);
      then();
      return;
    }
    this.closing.push({ slot, seq, then });
    if (this.closingTimer === null) this.closingTimer = setInterval(() => this.pollClosing(), 20);
  }

  /** The slot's stretch of the counters. */
  at(slot: number, field: number): number {
    return this.counters[slot * C_STRIDE + field]!;
  }

  /** Tests: the thread reads no command for `ms`. */
  hold(ms: number): number {
    return this.addon.engineCmd(OP_HOLD, 0, ms);
  }

  /** Tests: waits until the thread processed command `seq`. */
  wait(seq: number, timeoutMs = WAIT_MS): boolean {
    return this.addon.engineWait(seq, timeoutMs);
  }

  /** Send lateness over every packet the engine sent (ms buckets of offload/histogram.ts). */
  lateness(): HistogramSnapshot {
    return snapshot(this.totals, E.lateSum);
  }

  /** How late the thread woke for the first due track of a turn. */
  lag(): HistogramSnapshot {
    return snapshot(this.totals, E.lagSum);
  }

  private release(slot: number): void {
    this.addon.engineRelease(slot);
    this.free.push(slot);
  }

  private pollClosing(): void {
    for (let i = this.closing.length - 1; i >= 0; i--) {
      const c = this.closing[i]!;
      if (!this.addon.engineWait(c.seq, 0)) continue;
      this.closing.splice(i, 1);
      this.release(c.slot);
      c.then();
    }
    if (this.closing.length === 0 && this.closingTimer !== null) {
      clearInterval(this.closingTimer);
      this.closingTimer = null;
    }
  }

  /** Runs a command push; a full ring gets one bounded wait for the thread to catch up. */
  private push(f: () => number): number {
    try {
      return f();
    } catch (err) {
      if (!isBusy(err)) throw err;
    }
    // The thread drains the whole ring per turn: wait for everything queued so far.
    this.addon.engineWait(this.addon.engineQueued(), WAIT_MS);
    try {
      return f();
    } catch (err) {
      if (isBusy(err)) throw new OffloadError('OFFCAST_ENGINE_BUSY', 'the pacing engine is busy (command ring full)', 503);
      throw err;
    }
  }
}

function isBusy(err: unknown): boolean {
  return (err as { code?: string }).code === 'OFFCAST_ENGINE_BUSY';
}

/** CLOCK_MONOTONIC ms minus performance.now() ms: the narrowest of a few bracketed reads. */
function clockOffset(addon: EngineAddon): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 7; i++) {
    const a = performance.now();
    const m = addon.monoNow();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = m - (a + b) / 2;
    }
  }
  return offset;
}

/** A histogram stored as sum, count, 13 bucket counts at `at`. */
export function snapshot(arr: Float64Array, at: number): HistogramSnapshot {
  const counts: number[] = [];
  for (let i = 0; i <= LATENESS_BUCKETS_MS.length; i++) counts.push(arr[at + 2 + i]!);
  return { buckets: [...LATENESS_BUCKETS_MS], counts, sum: arr[at]!, count: arr[at + 1]! };
}
