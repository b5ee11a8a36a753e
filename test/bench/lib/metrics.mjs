// Reading the server's /metrics (Prometheus text format): samples by their
// full name with labels, and histograms as bucket counts whose difference
// between two scrapes gives the distribution of a measuring window.

/**
 * Parses the text format into a Map from `name{labels}` (labels as printed)
 * to the value. Comment lines are skipped.
 * @param {string} text
 * @returns {Map<string, number>}
 */
export function parseMetrics(text) {
  /** @type {Map<string, number>} */
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    const raw = line.slice(cut + 1);
    // The format spells infinities +Inf/-Inf, which Number() does not read.
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (!Number.isNaN(value)) out.set(line.slice(0, cut), value);
  }
  return out;
}

/**
 * @typedef {object} Histogram
 * @property {number[]} le        upper bounds in seconds (Infinity last)
 * @property {number[]} cumulative  cumulative counts per bound
 * @property {number} sum
 * @property {number} count
 */

/**
 * A histogram family from parsed metrics, or null when absent.
 * @param {Map<string, number>} m
 * @param {string} name   e.g. offcast_send_lateness_seconds
 * @returns {Histogram | null}
 */
export function histogram(m, name) {
  /** @type {{le: number, c: number}[]} */
  const buckets = [];
  const prefix = `${name}_bucket{le="`;
  for (const [key, value] of m) {
    if (!key.startsWith(prefix)) continue;
    const raw = key.slice(prefix.length, key.indexOf('"', prefix.length));
    buckets.push({ le: raw === '+Inf' ? Infinity : Number(raw), c: value });
  }
  if (buckets.length === 0) return null;
  buckets.sort((a, b) => a.le - b.le);
  return {
    le: buckets.map((b) => b.le),
    cumulative: buckets.map((b) => b.c),
    sum: m.get(`${name}_sum`) ?? 0,
    count: m.get(`${name}_count`) ?? 0,
  };
}

/**
 * What was observed between two scrapes (b − a); null if either is missing.
 * @param {Histogram | null} a
 * @param {Histogram | null} b
 * @returns {Histogram | null}
 */
export function histogramDelta(a, b) {
  if (a === null || b === null || a.le.length !== b.le.length) return b;
  return {
    le: b.le,
    cumulative: b.cumulative.map((c, i) => c - (a.cumulative[i] ?? 0)),
    sum: b.sum - a.sum,
    count: b.count - a.count,
  };
}

/**
 * The bucket bound (ms) at or below which a fraction q of observations fall:
 * an upper bound of the true quantile, as coarse as the buckets. Infinity when
 * it lies in the overflow bucket, null when empty.
 * @param {Histogram | null} h
 * @param {number} q
 * @returns {number | null}
 */
export function histogramQuantileMs(h, q) {
  if (h === null || h.count <= 0) return null;
  const target = q * h.count;
  for (let i = 0; i < h.le.length; i++) {
    if (/** @type {number} */ (h.cumulative[i]) >= target) return /** @type {number} */ (h.le[i]) * 1000;
  }
  return Infinity;
}

/**
 * The server's pacing view of a window: lateness and scheduler lag quantiles (ms).
 * @param {Map<string, number>} before
 * @param {Map<string, number>} after
 */
export function pacingView(before, after) {
  const late = histogramDelta(histogram(before, 'offcast_send_lateness_seconds'), histogram(after, 'offcast_send_lateness_seconds'));
  const lag = histogramDelta(histogram(before, 'offcast_scheduler_lag_seconds'), histogram(after, 'offcast_scheduler_lag_seconds'));
  const counter = (/** @type {string} */ name) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  return {
    sendLatenessP50Ms: histogramQuantileMs(late, 0.5),
    sendLatenessP99Ms: histogramQuantileMs(late, 0.99),
    sendLatenessMeanMs: late !== null && late.count > 0 ? (late.sum / late.count) * 1000 : null,
    schedulerLagP99Ms: histogramQuantileMs(lag, 0.99),
    schedulerLagMeanMs: lag !== null && lag.count > 0 ? (lag.sum / lag.count) * 1000 : null,
    packetsSent: counter('offcast_rtp_packets_sent_total'),
    sendErrors: counter('offcast_send_errors_total'),
  };
}
