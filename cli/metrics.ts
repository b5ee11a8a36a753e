/**
 * Send lateness from /metrics. The API reports it for the whole server (a
 * histogram merged over the workers), not per session, so the CLI shows it
 * once under the sessions table: the quantiles of the sends since the last look.
 */

export interface Histogram {
  /** Upper bounds in seconds, ascending, +Inf last. */
  le: number[];
  /** Cumulative counts per bound. */
  counts: number[];
}

/** The buckets of one histogram in Prometheus text format, or null when it is absent. */
export function parseHistogram(text: string, name: string): Histogram | null {
  const le: number[] = [];
  const counts: number[] = [];
  const re = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)`, 'gm');
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    le.push(m[1] === '+Inf' ? Infinity : Number(m[1]));
    counts.push(Number(m[2]));
  }
  return le.length === 0 ? null : { le, counts };
}

/** The buckets' counts between two scrapes (a restart resets: then the newer one alone). */
export function delta(now: Histogram, before: Histogram | null): Histogram {
  if (before === null || before.counts.length !== now.counts.length || now.counts.some((c, i) => c < before.counts[i]!)) return now;
  return { le: now.le, counts: now.counts.map((c, i) => c - before.counts[i]!) };
}

/** The q-quantile's bucket bound in seconds (an upper estimate, as the buckets allow), or null without samples. */
export function quantile(h: Histogram, q: number): number | null {
  const total = h.counts[h.counts.length - 1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  for (let i = 0; i < h.le.length; i++) if (h.counts[i]! >= rank) return h.le[i]!;
  return Infinity;
}
