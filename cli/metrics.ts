/**
 * Send lateness of one session, from its play tracks' cumulative histograms
 * (`stats.lateness` in the API: bucket upper bounds in ms, a count per bucket
 * with one more for above them all). Under --watch the CLI shows the sends
 * between two refreshes, by differencing the counts.
 */

export interface Lateness {
  /** Upper bounds in ms, ascending (the last count is above them all). */
  buckets: number[];
  /** Counts per bucket, not cumulative over buckets; buckets.length + 1 of them. */
  counts: number[];
}

/** The sum of the tracks' histograms, or null when no track has one (record and live sessions). */
export function sessionLateness(tracks: { stats?: { lateness?: Lateness } }[]): Lateness | null {
  let out: Lateness | null = null;
  for (const t of tracks) {
    const h = t.stats?.lateness;
    if (h === undefined) continue;
    if (out === null) out = { buckets: h.buckets, counts: [...h.counts] };
    else if (out.counts.length === h.counts.length) h.counts.forEach((c, i) => (out!.counts[i]! += c));
  }
  return out;
}

/** The counts between two looks (when they don't line up, the newer one alone). */
export function delta(now: Lateness, before: Lateness | null): Lateness {
  if (before === null || before.counts.length !== now.counts.length || now.counts.some((c, i) => c < before.counts[i]!)) return now;
  return { buckets: now.buckets, counts: now.counts.map((c, i) => c - before.counts[i]!) };
}

/** The q-quantile's bucket bound in ms (an upper estimate, as the buckets allow; Infinity above the top), or null without samples. */
export function quantile(h: Lateness, q: number): number | null {
  const total = h.counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < h.buckets.length; i++) {
    seen += h.counts[i]!;
    if (seen >= rank) return h.buckets[i]!;
  }
  return Infinity;
}

/** A quantile for the table: "≤ 2 ms", "> 1000 ms", or "-". */
export function latenessText(h: Lateness | null, q: number): string {
  const v = h === null ? null : quantile(h, q);
  return v === null ? '-' : v === Infinity ? `> ${h!.buckets[h!.buckets.length - 1]} ms` : `≤ ${v} ms`;
}
