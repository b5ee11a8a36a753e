// Creating and ending sessions over HTTP with a fixed number of requests in
// flight, timing each request.
import { quantile, round3 } from './proc.mjs';

/**
 * Runs `task(i)` for i in [from, to) with at most `concurrency` pending. No
 * task starts after `deadline` (performance.now() ms); those results stay undefined.
 * @template T
 * @param {number} from
 * @param {number} to
 * @param {number} concurrency
 * @param {(i: number) => Promise<T>} task
 * @param {number} [deadline]
 * @returns {Promise<(T | undefined)[]>} results indexed by i − from
 */
export async function pool(from, to, concurrency, task, deadline = Infinity) {
  /** @type {(T | undefined)[]} */
  const results = new Array(Math.max(0, to - from));
  let next = from;
  const lanes = Array.from({ length: Math.min(concurrency, Math.max(0, to - from)) }, async () => {
    while (next < to && performance.now() < deadline) {
      const i = next++;
      results[i - from] = await task(i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * @typedef {object} CreateRun
 * @property {(string | null)[]} ids    by index; null where creation failed
 * @property {number[]} latenciesMs     of the successful requests
 * @property {number} elapsedMs
 * @property {number} failures
 * @property {string | null} firstError
 */

/**
 * Creates play sessions i in [from, to), session i sending to port
 * `portBase + 2 i` of 127.0.0.1.
 * @param {import('./server.mjs').Offcast} server
 * @param {{from: number, to: number, portBase: number, media: string, concurrency?: number, extra?: Record<string, unknown>, deadlineMs?: number}} opts
 * @returns {Promise<CreateRun>}
 */
export async function createPlaySessions(server, opts) {
  /** @type {number[]} */
  const latenciesMs = [];
  let failures = 0;
  /** @type {string | null} */
  let firstError = null;
  const t0 = performance.now();
  const ids = await pool(
    opts.from,
    opts.to,
    opts.concurrency ?? 32,
    async (i) => {
      const body = {
        mode: 'play',
        media: opts.media,
        destination: { host: '127.0.0.1', port: opts.portBase + 2 * i },
        loop: true,
        ...opts.extra,
      };
      try {
        const r = await server.api('POST', '/v1/sessions', body);
        if (r.status === 201) {
          latenciesMs.push(r.ms);
          return /** @type {string} */ (r.body.id);
        }
        failures++;
        firstError ??= `POST /v1/sessions ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`;
      } catch (err) {
        failures++;
        firstError ??= `POST /v1/sessions: ${describeError(err)}`;
      }
      return null;
    },
    opts.deadlineMs,
  );
  // Requests never sent because the time budget ran out count as failures.
  const notSent = ids.filter((id) => id === undefined).length;
  if (notSent > 0) {
    failures += notSent;
    firstError ??= `${notSent} creates not attempted: time budget spent`;
  }
  return { ids: ids.map((id) => id ?? null), latenciesMs, elapsedMs: performance.now() - t0, failures, firstError };
}

/**
 * Ends sessions (DELETE), returning the response bodies (null on failure).
 * @param {import('./server.mjs').Offcast} server
 * @param {(string | null)[]} ids
 * @param {number} [concurrency]
 * @returns {Promise<any[]>}
 */
export async function deleteSessions(server, ids, concurrency = 32) {
  return pool(0, ids.length, concurrency, async (i) => {
    const id = ids[i];
    if (id === null || id === undefined) return null;
    try {
      const r = await server.api('DELETE', `/v1/sessions/${id}`);
      return r.status === 200 ? r.body : null;
    } catch {
      return null;
    }
  });
}

/**
 * An error with its cause (fetch reports "fetch failed" and hides the socket error there).
 * @param {unknown} err
 */
export function describeError(err) {
  const e = /** @type {Error & {cause?: {code?: string, message?: string}}} */ (err);
  const cause = e.cause === undefined ? '' : ` (${e.cause.code ?? ''} ${e.cause.message ?? ''})`.replace('( ', '(');
  return `${e.message}${cause}`;
}

/**
 * Latency summary in ms.
 * @param {number[]} ms
 */
export function latencySummary(ms) {
  if (ms.length === 0) return { count: 0, p50: null, p99: null, max: null };
  return { count: ms.length, p50: round3(quantile(ms, 0.5)), p99: round3(quantile(ms, 0.99)), max: round3(Math.max(...ms)) };
}
