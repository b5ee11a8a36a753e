/** A fixed-bucket histogram filled on the hot path without allocation. */
import type { HistogramSnapshot } from './channel.js';

/** Bucket upper bounds in ms, for send lateness and scheduler lag. */
export const LATENESS_BUCKETS_MS = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 250, 1000];

export class Histogram {
  readonly buckets: readonly number[];
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(buckets: readonly number[] = LATENESS_BUCKETS_MS) {
    this.buckets = buckets;
    this.counts = new Float64Array(buckets.length + 1);
  }

  observe(v: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return { buckets: [...this.buckets], counts: Array.from(this.counts), sum: this.sum, count: this.count };
  }
}
