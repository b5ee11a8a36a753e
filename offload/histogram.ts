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

  /** Takes sum, count and the bucket counts stored from `at` in `src` (the native engine's counters). */
  load(src: Float64Array, at: number): void {
    this.sum = src[at]!;
    this.count = src[at + 1]!;
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = src[at + 2 + i]!;
  }

  snapshot(): HistogramSnapshot {
    return { buckets: [...this.buckets], counts: Array.from(this.counts), sum: this.sum, count: this.count };
  }
}

/** The sum of two snapshots over the same buckets. */
export function addSnapshots(a: HistogramSnapshot, b: HistogramSnapshot): HistogramSnapshot {
  return { buckets: a.buckets, counts: a.counts.map((c, i) => c + (b.counts[i] ?? 0)), sum: a.sum + b.sum, count: a.count + b.count };
}
