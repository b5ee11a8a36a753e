/**
 * Local RTP port pairs (RTP even, RTCP the next odd port) from
 * [rtp.portMin, rtp.portMax]. Allocation is all-or-nothing: a session that
 * needs three pairs gets three or none.
 */
export class PortAllocator {
  private readonly min: number;
  private readonly max: number;
  private readonly pairs: number;
  private readonly used: Uint8Array;
  private next = 0;
  private inUse = 0;
  private held = 0;

  /** @param quarantineMs how long a pair another process holds stays out of rotation */
  constructor(
    min: number,
    max: number,
    private readonly quarantineMs = 60_000,
  ) {
    this.min = min;
    this.max = max;
    this.pairs = Math.floor((max - min + 1) / 2);
    this.used = new Uint8Array(this.pairs);
  }

  get free(): number {
    return this.pairs - this.inUse;
  }

  /** Pairs out of rotation because another process held them (see quarantine()). */
  get quarantined(): number {
    return this.held;
  }

  /** The configured range, for messages ("30000-30999"). */
  get range(): string {
    return `${this.min}-${this.max}`;
  }

  get capacity(): number {
    return this.pairs;
  }

  /** `count` RTP ports (even), or null if not that many pairs are free. */
  allocate(count: number): number[] | null {
    if (count > this.free) return null;
    const out: number[] = [];
    for (let tries = 0; out.length < count && tries < this.pairs; tries++) {
      const i = this.next;
      this.next = (this.next + 1) % this.pairs;
      if (this.used[i] === 0) {
        this.used[i] = 1;
        out.push(this.min + 2 * i);
      }
    }
    this.inUse += out.length;
    if (out.length < count) {
      this.release(out);
      return null;
    }
    return out;
  }

  release(ports: readonly number[]): void {
    for (const p of ports) {
      const i = (p - this.min) / 2;
      if (Number.isInteger(i) && i >= 0 && i < this.pairs && this.used[i] === 1) {
        this.used[i] = 0;
        this.inUse--;
      }
    }
  }

  /**
   * Ports another process holds (the offload could not bind them): kept out
   * of rotation for a while (a minute by default), then offered again.
   */
  quarantine(ports: readonly number[]): void {
    this.held += ports.length;
    setTimeout(() => {
      this.held -= ports.length;
      this.release(ports);
    }, this.quarantineMs).unref();
  }
}
