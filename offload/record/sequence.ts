/**
 * Per-source sequence tracking and reception statistics, as RFC 3550 appendix
 * A.1 (validation, wrap, restarts), A.3 (loss) and A.8 (jitter) describe them.
 *
 * Division of labour with the reorder buffer (reorder.ts): like A.1, the
 * tracker accepts a packet up to MAX_MISORDER behind the highest one, a
 * duplicate included, and counts it as received (so the RR's cumulative loss
 * can go negative, as RFC 3550 6.4.1 allows). It does not remember which
 * sequence numbers it saw: the reorder buffer does, and it is the one that
 * refuses duplicates and packets too late for the recording.
 *
 * One tracker per SSRC, created once; `update()` allocates nothing.
 */

export const RTP_SEQ_MOD = 0x10000;
export const MAX_DROPOUT = 3000;
export const MAX_MISORDER = 100;
export const MIN_SEQUENTIAL = 2;

/** Result of `SequenceTracker.update()`. */
export const SeqResult = {
  /**
   * A valid packet (in order, ahead by less than MAX_DROPOUT, or up to
   * MAX_MISORDER behind: misordered or duplicate). `extSeq` holds its extended
   * sequence number. The first ACCEPT after PROBATION ends the probation: the
   * caller may then release the packets it held.
   */
  Accept: 0,
  /**
   * The source is still on probation (fewer than MIN_SEQUENTIAL sequential
   * packets). The caller holds the packet; a PROBATION packet that is not the
   * successor of the one held restarts probation, so with MIN_SEQUENTIAL = 2
   * the caller holds just the latest one. As in A.1, held packets are not
   * counted in `received`/`expected`: the statistics start at the packet that
   * ends probation.
   */
  Probation: 1,
  /**
   * A jump too large to be a dropout or misorder, seen for the first time:
   * drop it (or hold just this one). If the next packet is its successor, it
   * comes back as RESYNC.
   */
  Bad: 2,
  /**
   * The second of two sequential packets after a large jump: the sender
   * restarted. Statistics restart at this packet (A.1 init_seq) and extended
   * sequence numbers restart too (`extSeq` = its 16-bit value), so the caller
   * must flush and reset its reorder buffer before pushing it.
   */
  Resync: 3,
} as const;
export type SeqResult = (typeof SeqResult)[keyof typeof SeqResult];

/**
 * The extended sequence number nearest to `refExt` whose low 16 bits are
 * `seq`: what a 16-bit sequence number means next to a known extended one,
 * within half the sequence space either way.
 */
export function extendSeq(refExt: number, seq: number): number {
  const delta = (((seq - refExt) & 0xffff) << 16) >> 16; // signed 16-bit distance
  return refExt + delta;
}

/** RFC 3550 A.3 clamp of the cumulative loss to the RR's 24-bit signed field. */
export function clampTotalLost(lost: number): number {
  return lost > 0x7fffff ? 0x7fffff : lost < -0x800000 ? -0x800000 : lost;
}

/** One report block's worth of reception statistics (RFC 3550 6.4.1). */
export interface ReceptionSnapshot {
  /** Fraction lost since the previous snapshot, 0..255 (1/256 units). */
  fractionLost: number;
  /** Cumulative loss, clamped to 24-bit signed. */
  totalLost: number;
  /** Extended highest sequence number received, as uint32. */
  highestSeq: number;
  /** Interarrival jitter in timestamp units, rounded, as uint32. */
  jitter: number;
  received: number;
  expected: number;
}

export interface SequenceTrackerOptions {
  /** Sequential packets needed to validate a source (RFC 3550 A.1), >= 1. Default 2. */
  minSequential?: number;
}

export class SequenceTracker {
  readonly minSequential: number;
  /** Extended sequence number of the packet given to the last `update()` (valid after ACCEPT/RESYNC). */
  extSeq = 0;
  /** Packets accepted since the statistics (re)started. */
  received = 0;
  /** Wraps of the 16-bit sequence number, in units of RTP_SEQ_MOD (A.1 `cycles`). */
  cycles = 0;
  baseSeq = 0;
  maxSeq = 0;
  /** Interarrival jitter in timestamp units (A.8), as a float. */
  jitter = 0;
  /** Large jumps refused, and restarts accepted. */
  badCount = 0;
  resyncCount = 0;

  private started = false;
  private probation = 0;
  private badSeq = RTP_SEQ_MOD + 1;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private hasTransit = false;
  private lastArrivalUnits = 0;
  private lastRtpTs = 0;

  constructor(options: SequenceTrackerOptions = {}) {
    const minSequential = options.minSequential ?? MIN_SEQUENTIAL;
    if (!Number.isInteger(minSequential) || minSequential < 1) {
      throw new RangeError(`minSequential must be an integer >= 1, got ${minSequential}`);
    }
    this.minSequential = minSequential;
  }

  /** Forgets the source entirely: the next packet starts a new probation. */
  reset(): void {
    this.started = false;
    this.probation = 0;
    this.extSeq = 0;
    this.initSeq(0);
    this.jitter = 0;
    this.hasTransit = false;
  }

  /** A.1 init_seq. */
  private initSeq(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = RTP_SEQ_MOD + 1; // a value no 16-bit sequence number equals
    this.cycles = 0;
    this.received = 0;
    this.receivedPrior = 0;
    this.expectedPrior = 0;
  }

  /** A.1 update_seq for a 16-bit sequence number; returns a `SeqResult`. */
  update(seq: number): number {
    seq &= 0xffff;
    if (!this.started) {
      this.started = true;
      this.initSeq(seq);
      this.maxSeq = (seq - 1) & 0xffff;
      this.probation = this.minSequential;
    }
    const udelta = (seq - this.maxSeq) & 0xffff;
    if (this.probation > 0) {
      if (seq === ((this.maxSeq + 1) & 0xffff)) {
        this.probation--;
        this.maxSeq = seq;
        if (this.probation === 0) {
          this.initSeq(seq);
          this.received++;
          this.extSeq = seq;
          return SeqResult.Accept;
        }
      } else {
        this.probation = this.minSequential - 1;
        this.maxSeq = seq;
      }
      return SeqResult.Probation;
    }
    if (udelta < MAX_DROPOUT) {
      // In order, with a permissible gap; a smaller number means it wrapped.
      if (seq < this.maxSeq) this.cycles += RTP_SEQ_MOD;
      this.maxSeq = seq;
      this.extSeq = this.cycles + seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
      if (seq !== this.badSeq) {
        this.badSeq = (seq + 1) & 0xffff;
        this.badCount++;
        return SeqResult.Bad;
      }
      // Two sequential packets after a jump: the sender restarted.
      this.initSeq(seq);
      this.hasTransit = false; // its timestamps restarted too
      this.received++;
      this.extSeq = seq;
      this.resyncCount++;
      return SeqResult.Resync;
    } else {
      // Misordered or duplicate, at most MAX_MISORDER behind; above maxSeq means the previous cycle.
      this.extSeq = this.cycles + seq - (seq > this.maxSeq ? RTP_SEQ_MOD : 0);
    }
    this.received++;
    return SeqResult.Accept;
  }

  /** True once probation ended: statistics and `extSeq` are meaningful. */
  get valid(): boolean {
    return this.started && this.probation === 0;
  }

  /** Extended highest sequence number received (A.1: cycles + max_seq). */
  get extendedMax(): number {
    return this.cycles + this.maxSeq;
  }

  /** A.3: packets expected since the statistics started; 0 while on probation. */
  expected(): number {
    if (!this.valid) return 0;
    return this.cycles + this.maxSeq - this.baseSeq + 1;
  }

  /** A.3 cumulative loss (negative with duplicates), clamped to 24-bit signed for the RR. */
  lost(): number {
    return clampTotalLost(this.expected() - this.received);
  }

  /**
   * A.3 fraction lost (0..255) since the last `snapshotForReport()`, without
   * starting a new interval. 0 when nothing was expected or nothing lost
   * (more received than expected, because of duplicates, also gives 0).
   */
  fractionLost(): number {
    const expected = this.expected();
    const expectedInterval = expected - this.expectedPrior;
    const lostInterval = expectedInterval - (this.received - this.receivedPrior);
    if (expectedInterval <= 0 || lostInterval <= 0) return 0;
    return Math.floor((lostInterval * 256) / expectedInterval);
  }

  /** The numbers for one report block, and the start of the next A.3 interval. */
  snapshotForReport(): ReceptionSnapshot {
    const expected = this.expected();
    const snapshot: ReceptionSnapshot = {
      fractionLost: this.fractionLost(),
      totalLost: this.lost(),
      highestSeq: this.extendedMax >>> 0,
      jitter: Math.round(this.jitter) >>> 0,
      received: this.received,
      expected,
    };
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    return snapshot;
  }

  /**
   * A.8 interarrival jitter, for a packet with RTP timestamp `rtpTs` that
   * arrived at `arrivalMs` (any monotonic ms clock). J += (|D| - J) / 16 with
   * D the difference of transit times, in timestamp units. The first packet
   * (and the first after a restart) only sets the reference. The timestamp
   * difference is taken modulo 2^32, so a timestamp wrap is not a jump.
   */
  updateJitter(rtpTs: number, arrivalMs: number, clockRate: number): void {
    const arrivalUnits = (arrivalMs * clockRate) / 1000;
    if (this.hasTransit) {
      const tsDelta = (rtpTs - this.lastRtpTs) | 0;
      let d = arrivalUnits - this.lastArrivalUnits - tsDelta;
      if (d < 0) d = -d;
      this.jitter += (d - this.jitter) / 16;
    }
    this.hasTransit = true;
    this.lastArrivalUnits = arrivalUnits;
    this.lastRtpTs = rtpTs >>> 0;
  }
}
