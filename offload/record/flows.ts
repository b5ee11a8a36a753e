/**
 * The flow table of one record track, and the control plane's decision on a
 * new flow. A flow is (source address, source port, SSRC).
 *
 * Rules (`FlowTable.lookup`, in this order):
 * 1. The latched flow: FAST. Three field compares, no strings built.
 * 2. Any other flow while one is latched: DENIED at once, without asking the
 *    control plane. Once a sender is latched, a packet from another port,
 *    address or SSRC is a spoof or "RTP bleed" attempt and never takes over;
 *    a sender that really restarts elsewhere gets in after the latch is
 *    released (idle timeout: `releaseLatch()`).
 * 3. A flow the control plane rejected (bounded LRU deny set, 64 flows by
 *    default): DENIED, no new query.
 * 4. A flow whose query is out: PENDING, and the caller holds the packet,
 *    unless the track already holds `maxPendingBytes` (4 MiB) or `maxPending`
 *    packets (a bound for tiny packets): PENDING_FULL (dropped, counted). The
 *    caller holds a packet at most `maxPendingMs` (500 ms), then drops it
 *    (counted). Bytes and time, not a packet count, because a stream opens
 *    with its largest frame: a 4K keyframe is hundreds of packets sent within
 *    a millisecond, all of them arriving before the control plane's answer.
 * 5. Otherwise a new flow. If `maxPendingFlows` queries are out, or
 *    `maxQueriesPerSecond` were sent in the current second, or no packet can
 *    be held: RATE_LIMITED (dropped). Else NEW: the caller sends the header to
 *    the control plane, calls `markPending()` and holds the packet.
 * The control plane answers with `install()` (latch) or `reject()` (deny);
 * the caller then releases or drops what it held and calls `releaseHeld()`.
 * A query unanswered for `pendingTimeoutMs` is forgotten (the next packet of
 * that flow asks again, subject to the same limits).
 *
 * The control plane's policy on a query (source, payload type) is in
 * `server/flowPolicy.ts`.
 */

/** Result of `FlowTable.lookup()`. */
export const FlowResult = {
  Fast: 0,
  Pending: 1,
  New: 2,
  Denied: 3,
  RateLimited: 4,
  PendingFull: 5,
} as const;
export type FlowResult = (typeof FlowResult)[keyof typeof FlowResult];

export const FLOW_RESULT_NAMES: readonly string[] = ['fast', 'pending', 'new', 'denied', 'rate-limited', 'pending-full'];

export interface FlowTableOptions {
  /** Packets held per track while queries are out. Default 8192. */
  maxPending?: number;
  /** Bytes held per track while queries are out. Default 4 MiB. */
  maxPendingBytes?: number;
  /** How long the caller holds a packet for a query that is out, ms (it drops older ones). Default 500. */
  maxPendingMs?: number;
  /** Queries out at once per track. Default 4. */
  maxPendingFlows?: number;
  /** Queries started per second per track. Default 20. */
  maxQueriesPerSecond?: number;
  /** Rejected flows remembered per track (least recently seen forgotten first). Default 64. */
  maxDenied?: number;
  /** How long a query may stay unanswered, ms. Default 2000. */
  pendingTimeoutMs?: number;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}

export class FlowTable {
  readonly maxPending: number;
  readonly maxPendingBytes: number;
  readonly maxPendingMs: number;
  readonly maxPendingFlows: number;
  readonly maxQueriesPerSecond: number;
  readonly maxDenied: number;
  readonly pendingTimeoutMs: number;

  /** The latched flow (address null when none). */
  latchedAddress: string | null = null;
  latchedPort = 0;
  latchedSsrc = 0;

  /** Packets the caller holds for pending flows (its count, kept here). */
  held = 0;
  /** Their bytes. */
  heldBytes = 0;

  /** Counters, one per `lookup()` outcome, plus spoofs (other flows while latched, included in `denied`). */
  fast = 0;
  pending = 0;
  queries = 0;
  denied = 0;
  spoofed = 0;
  rateLimited = 0;
  pendingFull = 0;

  private readonly pendingAddress: (string | null)[];
  private readonly pendingPort: Int32Array;
  private readonly pendingSsrc: Float64Array;
  private readonly pendingSince: Float64Array;
  private pendingFlows = 0;

  private readonly deniedAddress: (string | null)[];
  private readonly deniedPort: Int32Array;
  private readonly deniedSsrc: Float64Array;
  /** Last use, for LRU eviction (a counter, not a time). */
  private readonly deniedUse: Float64Array;
  private deniedCount = 0;
  private useClock = 0;

  private windowStart = -Infinity;
  private windowQueries = 0;

  constructor(options: FlowTableOptions = {}) {
    this.maxPending = positiveInteger('maxPending', options.maxPending ?? 8192);
    this.maxPendingBytes = positiveInteger('maxPendingBytes', options.maxPendingBytes ?? 4 * 1024 * 1024);
    this.maxPendingMs = positiveInteger('maxPendingMs', options.maxPendingMs ?? 500);
    this.maxPendingFlows = positiveInteger('maxPendingFlows', options.maxPendingFlows ?? 4);
    this.maxQueriesPerSecond = positiveInteger('maxQueriesPerSecond', options.maxQueriesPerSecond ?? 20);
    this.maxDenied = positiveInteger('maxDenied', options.maxDenied ?? 64);
    this.pendingTimeoutMs = positiveInteger('pendingTimeoutMs', options.pendingTimeoutMs ?? 2000);
    this.pendingAddress = new Array<string | null>(this.maxPendingFlows).fill(null);
    this.pendingPort = new Int32Array(this.maxPendingFlows);
    this.pendingSsrc = new Float64Array(this.maxPendingFlows);
    this.pendingSince = new Float64Array(this.maxPendingFlows);
    this.deniedAddress = new Array<string | null>(this.maxDenied).fill(null);
    this.deniedPort = new Int32Array(this.maxDenied);
    this.deniedSsrc = new Float64Array(this.maxDenied);
    this.deniedUse = new Float64Array(this.maxDenied);
  }

  get latched(): boolean {
    return this.latchedAddress !== null;
  }

  /** Queries out now. */
  get pendingFlowCount(): number {
    return this.pendingFlows;
  }

  /**
   * Where a packet of this flow goes; returns a `FlowResult`. `nowMs`: any
   * monotonic ms clock; `bytes`: the packet's length (what holding it costs).
   */
  lookup(address: string, port: number, ssrc: number, nowMs: number, bytes = 0): number {
    const latched = this.latchedAddress;
    if (latched !== null) {
      if (this.latchedSsrc === ssrc && this.latchedPort === port && latched === address) {
        this.fast++;
        return FlowResult.Fast;
      }
      this.spoofed++;
      this.denied++;
      return FlowResult.Denied;
    }
    const denied = this.findDenied(address, port, ssrc);
    if (denied >= 0) {
      this.deniedUse[denied] = ++this.useClock;
      this.denied++;
      return FlowResult.Denied;
    }
    this.expirePending(nowMs);
    if (this.findPending(address, port, ssrc) >= 0) {
      if (!this.canHold(bytes)) {
        this.pendingFull++;
        return FlowResult.PendingFull;
      }
      this.hold(bytes);
      this.pending++;
      return FlowResult.Pending;
    }
    if (nowMs - this.windowStart >= 1000) {
      this.windowStart = nowMs;
      this.windowQueries = 0;
    }
    if (this.pendingFlows >= this.maxPendingFlows || this.windowQueries >= this.maxQueriesPerSecond || !this.canHold(bytes)) {
      this.rateLimited++;
      return FlowResult.RateLimited;
    }
    return FlowResult.New;
  }

  /**
   * Records the query the caller sent after NEW, and the packet it holds.
   * Returns false (and records nothing) when no query slot is free: the
   * caller should have got NEW from `lookup()` just before.
   */
  markPending(address: string, port: number, ssrc: number, nowMs: number, bytes = 0): boolean {
    if (this.findPending(address, port, ssrc) >= 0) return true;
    if (this.pendingFlows >= this.maxPendingFlows) return false;
    for (let i = 0; i < this.maxPendingFlows; i++) {
      if (this.pendingAddress[i] !== null) continue;
      this.pendingAddress[i] = address;
      this.pendingPort[i] = port;
      this.pendingSsrc[i] = ssrc;
      this.pendingSince[i] = nowMs;
      this.pendingFlows++;
      break;
    }
    if (nowMs - this.windowStart >= 1000) {
      this.windowStart = nowMs;
      this.windowQueries = 0;
    }
    this.windowQueries++;
    this.queries++;
    this.hold(bytes);
    return true;
  }

  /** True while a query for this flow is out. */
  isPending(address: string, port: number, ssrc: number): boolean {
    return this.findPending(address, port, ssrc) >= 0;
  }

  /**
   * The control plane accepted the flow: latch it. Returns false, and denies
   * the flow instead, when another flow latched in the meantime (two queries
   * accepted at once: the first answer wins).
   */
  install(address: string, port: number, ssrc: number): boolean {
    this.removePending(address, port, ssrc);
    if (this.latchedAddress !== null) {
      if (this.latchedAddress === address && this.latchedPort === port && this.latchedSsrc === ssrc) return true;
      this.addDenied(address, port, ssrc);
      return false;
    }
    this.latchedAddress = address;
    this.latchedPort = port;
    this.latchedSsrc = ssrc;
    return true;
  }

  /** The control plane refused the flow: remember it, so it is denied without asking again. */
  reject(address: string, port: number, ssrc: number): void {
    this.removePending(address, port, ssrc);
    this.addDenied(address, port, ssrc);
  }

  /**
   * Unlatches (the sender went idle). The deny set is cleared too: flows
   * denied only because another one was latched may be legitimate now, and
   * the control plane decides again (within the rate limits).
   */
  releaseLatch(): void {
    this.latchedAddress = null;
    this.deniedAddress.fill(null);
    this.deniedCount = 0;
  }

  /** Room for one more held packet of `bytes`. */
  private canHold(bytes: number): boolean {
    return this.held < this.maxPending && this.heldBytes + bytes <= this.maxPendingBytes;
  }

  private hold(bytes: number): void {
    this.held++;
    this.heldBytes += bytes;
  }

  /** The caller released or dropped `count` held packets of `bytes` in all. */
  releaseHeld(count: number, bytes = 0): void {
    this.held = count >= this.held ? 0 : this.held - count;
    this.heldBytes = this.held === 0 || bytes >= this.heldBytes ? 0 : this.heldBytes - bytes;
  }

  /** Forgets queries older than `pendingTimeoutMs`; returns how many. */
  expirePending(nowMs: number): number {
    if (this.pendingFlows === 0) return 0;
    let expired = 0;
    for (let i = 0; i < this.maxPendingFlows; i++) {
      if (this.pendingAddress[i] !== null && nowMs - this.pendingSince[i]! >= this.pendingTimeoutMs) {
        this.pendingAddress[i] = null;
        this.pendingFlows--;
        expired++;
      }
    }
    return expired;
  }

  private findPending(address: string, port: number, ssrc: number): number {
    if (this.pendingFlows === 0) return -1;
    for (let i = 0; i < this.maxPendingFlows; i++) {
      if (this.pendingSsrc[i] === ssrc && this.pendingPort[i] === port && this.pendingAddress[i] === address) return i;
    }
    return -1;
  }

  private removePending(address: string, port: number, ssrc: number): void {
    const i = this.findPending(address, port, ssrc);
    if (i < 0) return;
    this.pendingAddress[i] = null;
    this.pendingFlows--;
  }

  private findDenied(address: string, port: number, ssrc: number): number {
    if (this.deniedCount === 0) return -1;
    for (let i = 0; i < this.maxDenied; i++) {
      if (this.deniedSsrc[i] === ssrc && this.deniedPort[i] === port && this.deniedAddress[i] === address) return i;
    }
    return -1;
  }

  private addDenied(address: string, port: number, ssrc: number): void {
    let slot = this.findDenied(address, port, ssrc);
    if (slot < 0) {
      // A free slot, else the least recently seen flow.
      let leastUse = Infinity;
      for (let i = 0; i < this.maxDenied; i++) {
        if (this.deniedAddress[i] === null) {
          slot = i;
          break;
        }
        if (this.deniedUse[i]! < leastUse) {
          leastUse = this.deniedUse[i]!;
          slot = i;
        }
      }
      if (this.deniedAddress[slot] === null) this.deniedCount++;
      this.deniedAddress[slot] = address;
      this.deniedPort[slot] = port;
      this.deniedSsrc[slot] = ssrc;
    }
    this.deniedUse[slot] = ++this.useClock;
  }
}
