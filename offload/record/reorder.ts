/**
 * A bounded reorder buffer between the socket and the recording writer: it
 * takes packets by extended sequence number in any order and releases them in
 * order, waiting a bounded time for a missing one before skipping it.
 *
 * Rules:
 * - The first push sets the next expected sequence number.
 * - A packet at or after the next expected one, within `capacity` of it, is
 *   held (ACCEPTED) unless it is already held (DUPLICATE).
 * - A packet before the next expected one was either released already
 *   (DUPLICATE, known from a bitmap of the last `history` sequence numbers) or
 *   skipped as lost / too old to tell (TOO_LATE, counted as `late`): later
 *   packets were written, so the recording can't use it. RFC 3550 statistics
 *   still count it as received (the sequence tracker does that, not this).
 * - `drain()` releases the head while it is present. When it is missing it
 *   waits until the packet held longest has waited `maxDelayMs`, then skips
 *   the gap: `emit(item, lostBefore)` says how many sequence numbers were
 *   skipped just before that item; they add to `lost`.
 * - The buffer is full when a packet arrives `capacity` or more ahead of the
 *   next expected one: it waits in a one-packet overflow slot, and the next
 *   `drain()` releases and skips just enough (without waiting) to fit it. A
 *   second such packet before that drain is dropped (DROPPED); callers drain
 *   after every push, so that does not happen.
 * - `flush()` releases everything and forgets the sequence position (end of
 *   recording, or a restart the sequence tracker reported as RESYNC).
 *
 * Sequence numbers are plain integers (extended, not 16-bit): they only grow,
 * so there is no wrap; slots are `seq & (capacity - 1)`, which is right for
 * any safe integer, negative ones included.
 *
 * Per packet: no allocation. `emit` is created once by the caller.
 */

/** Result of `ReorderBuffer.push()`. */
export const ReorderResult = {
  Accepted: 0,
  Duplicate: 1,
  TooLate: 2,
  Dropped: 3,
} as const;
export type ReorderResult = (typeof ReorderResult)[keyof typeof ReorderResult];

export type ReorderEmit<T> = (item: T, lostBefore: number) => void;

export interface ReorderBufferOptions {
  /** Packets held at most; a power of two. Default 64. */
  capacity?: number;
  /** How long a missing packet is waited for, in ms. Default 100. */
  maxDelayMs?: number;
  /** Released sequence numbers remembered to recognize duplicates; a power of two. Default 1024. */
  history?: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= 0x40000000 && (n & (n - 1)) === 0;
}

export class ReorderBuffer<T> {
  readonly capacity: number;
  readonly maxDelayMs: number;
  readonly history: number;

  /** Every push. */
  received = 0;
  /** Pushes held for release. */
  accepted = 0;
  duplicates = 0;
  /** Accepted packets that arrived after a higher sequence number had. */
  reordered = 0;
  /** Sequence numbers skipped because they did not arrive in time. */
  lost = 0;
  /** Packets that arrived after their place was skipped (or too old to tell). */
  late = 0;
  /** Out-of-window packets dropped because the overflow slot was taken. */
  dropped = 0;
  released = 0;

  private readonly mask: number;
  private readonly historyMask: number;
  private readonly items: (T | undefined)[];
  private readonly seqs: Float64Array;
  private readonly arrivals: Float64Array;
  private readonly occupied: Uint8Array;
  /** 1 = released, 0 = skipped, for the `history` sequence numbers before `next`. */
  private readonly releasedBits: Uint8Array;
  private started = false;
  private next = 0;
  private highest = 0;
  private held = 0;
  private oldestArrival = Infinity;
  private overflowFull = false;
  private overflowSeq = 0;
  private overflowArrival = 0;
  private overflowItem: T | undefined = undefined;
  /** Sequence numbers skipped since the last release. */
  private lostBefore = 0;

  constructor(options: ReorderBufferOptions = {}) {
    const capacity = options.capacity ?? 64;
    const maxDelayMs = options.maxDelayMs ?? 100;
    const history = options.history ?? 1024;
    if (!isPowerOfTwo(capacity)) throw new RangeError(`capacity must be a power of two, got ${capacity}`);
    if (!isPowerOfTwo(history)) throw new RangeError(`history must be a power of two, got ${history}`);
    if (!(maxDelayMs >= 0) || !Number.isFinite(maxDelayMs)) throw new RangeError(`maxDelayMs must be a finite number >= 0, got ${maxDelayMs}`);
    this.capacity = capacity;
    this.maxDelayMs = maxDelayMs;
    this.history = history;
    this.mask = capacity - 1;
    this.historyMask = history - 1;
    this.items = new Array<T | undefined>(capacity).fill(undefined);
    this.seqs = new Float64Array(capacity);
    this.arrivals = new Float64Array(capacity);
    this.occupied = new Uint8Array(capacity);
    this.releasedBits = new Uint8Array(history);
  }

  /** Packets held now (the overflow slot included). */
  get size(): number {
    return this.held + (this.overflowFull ? 1 : 0);
  }

  /** The next sequence number to release, or NaN before the first push. */
  get nextSeq(): number {
    return this.started ? this.next : NaN;
  }

  /** Takes a packet; returns a `ReorderResult`. Only ACCEPTED keeps `item`. */
  push(extSeq: number, item: T, nowMs: number): number {
    this.received++;
    if (!this.started) {
      this.started = true;
      this.next = extSeq;
      this.highest = extSeq;
    }
    if (extSeq < this.next) {
      if (this.next - extSeq <= this.history && this.releasedBits[extSeq & this.historyMask] === 1) {
        this.duplicates++;
        return ReorderResult.Duplicate;
      }
      this.late++;
      return ReorderResult.TooLate;
    }
    if (extSeq - this.next >= this.capacity) {
      if (this.overflowFull) {
        if (this.overflowSeq === extSeq) {
          this.duplicates++;
          return ReorderResult.Duplicate;
        }
        this.dropped++;
        return ReorderResult.Dropped;
      }
      this.overflowFull = true;
      this.overflowSeq = extSeq;
      this.overflowArrival = nowMs;
      this.overflowItem = item;
    } else {
      const slot = extSeq & this.mask;
      // Every held packet lies in [next, next + capacity): a taken slot holds this very seq.
      if (this.occupied[slot] === 1) {
        this.duplicates++;
        return ReorderResult.Duplicate;
      }
      this.occupied[slot] = 1;
      this.seqs[slot] = extSeq;
      this.arrivals[slot] = nowMs;
      this.items[slot] = item;
      this.held++;
      if (nowMs < this.oldestArrival) this.oldestArrival = nowMs;
    }
    this.accepted++;
    if (extSeq < this.highest) this.reordered++;
    else this.highest = extSeq;
    return ReorderResult.Accepted;
  }

  /**
   * Releases, in order, what can be released at `nowMs`: the head while
   * present, past gaps whose oldest held packet waited `maxDelayMs`, and past
   * whatever a full buffer forces (just enough to fit the overflowing packet).
   */
  drain(nowMs: number, emit: ReorderEmit<T>): void {
    for (;;) {
      if (this.overflowFull) {
        if (this.overflowSeq - this.next < this.capacity) {
          this.placeOverflow();
          continue;
        }
        const required = this.overflowSeq - this.capacity + 1;
        if (this.held > 0) {
          const head = this.next & this.mask;
          if (this.occupied[head] === 1) {
            this.releaseSlot(head, emit);
            continue;
          }
          const lowest = this.lowestHeld();
          if (lowest < required) {
            this.skip(lowest - this.next);
            this.releaseSlot(lowest & this.mask, emit);
            continue;
          }
        }
        this.skip(required - this.next);
        this.placeOverflow();
        continue;
      }
      if (this.held === 0) break;
      const head = this.next & this.mask;
      if (this.occupied[head] === 1) {
        this.releaseSlot(head, emit);
        continue;
      }
      // Head missing: wait for it until the packet held longest has waited maxDelayMs.
      let lowest = Infinity;
      let oldest = Infinity;
      for (let i = 0; i < this.capacity; i++) {
        if (this.occupied[i] === 0) continue;
        if (this.seqs[i]! < lowest) lowest = this.seqs[i]!;
        if (this.arrivals[i]! < oldest) oldest = this.arrivals[i]!;
      }
      this.oldestArrival = oldest;
      if (nowMs - oldest < this.maxDelayMs) break;
      this.skip(lowest - this.next);
      this.releaseSlot(lowest & this.mask, emit);
    }
    if (this.held === 0) this.oldestArrival = Infinity;
  }

  /**
   * Releases everything held, in order (gaps between held packets count as
   * lost), then forgets the sequence position: the next push starts afresh.
   * Counters are kept.
   */
  flush(emit: ReorderEmit<T>): void {
    while (this.held > 0) {
      const head = this.next & this.mask;
      if (this.occupied[head] === 1) this.releaseSlot(head, emit);
      else this.skip(1);
    }
    if (this.overflowFull) {
      this.skip(this.overflowSeq - this.next);
      const item = this.overflowItem as T;
      this.overflowFull = false;
      this.overflowItem = undefined;
      this.release(item, emit);
    }
    this.clear();
  }

  /** Drops everything held without releasing it and forgets the sequence position. */
  clear(): void {
    this.occupied.fill(0);
    this.items.fill(undefined);
    this.releasedBits.fill(0);
    this.held = 0;
    this.overflowFull = false;
    this.overflowItem = undefined;
    this.oldestArrival = Infinity;
    this.lostBefore = 0;
    this.started = false;
  }

  /**
   * When `drain()` should run next, in the caller's ms clock: when the packet
   * held longest times out, or Infinity when nothing waits. A packet in the
   * overflow slot makes it due at once (its arrival time).
   */
  nextDeadline(): number {
    if (this.overflowFull) return this.overflowArrival;
    if (this.held === 0) return Infinity;
    return this.oldestArrival + this.maxDelayMs;
  }

  private placeOverflow(): void {
    const slot = this.overflowSeq & this.mask;
    this.occupied[slot] = 1;
    this.seqs[slot] = this.overflowSeq;
    this.arrivals[slot] = this.overflowArrival;
    this.items[slot] = this.overflowItem;
    this.held++;
    if (this.overflowArrival < this.oldestArrival) this.oldestArrival = this.overflowArrival;
    this.overflowFull = false;
    this.overflowItem = undefined;
  }

  private lowestHeld(): number {
    let lowest = Infinity;
    for (let i = 0; i < this.capacity; i++) {
      if (this.occupied[i] === 1 && this.seqs[i]! < lowest) lowest = this.seqs[i]!;
    }
    return lowest;
  }

  /** Skips `gap` sequence numbers from `next`: lost, marked not released, reported with the next release. */
  private skip(gap: number): void {
    if (gap <= 0) return;
    this.lost += gap;
    this.lostBefore += gap;
    if (gap >= this.history) {
      this.releasedBits.fill(0);
    } else {
      for (let s = this.next, end = this.next + gap; s < end; s++) this.releasedBits[s & this.historyMask] = 0;
    }
    this.next += gap;
  }

  private releaseSlot(slot: number, emit: ReorderEmit<T>): void {
    const item = this.items[slot] as T;
    this.items[slot] = undefined;
    this.occupied[slot] = 0;
    this.held--;
    this.release(item, emit);
  }

  private release(item: T, emit: ReorderEmit<T>): void {
    const lostBefore = this.lostBefore;
    this.lostBefore = 0;
    this.releasedBits[this.next & this.historyMask] = 1;
    this.next++;
    this.released++;
    emit(item, lostBefore);
  }
}
