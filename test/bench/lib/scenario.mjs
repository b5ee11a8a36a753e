// What scenarios share: the run context, the result shape, and a server
// started for one scenario and always stopped after it.
import { link, mkdtemp, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { startOffcast } from './server.mjs';

/**
 * @typedef {object} BenchContext
 * @property {boolean} quick            short windows and small N (CI: proves it runs)
 * @property {string} tmp               the run's temp folder
 * @property {import('./media.mjs').BenchMedia} media
 * @property {import('../tools/build.mjs').ToolPaths} tools
 * @property {(msg: string) => void} log
 * @property {number} soakMinutes       length of the RSS soak (scenario 4)
 * @property {Record<string, any>} shared  results one scenario leaves for another
 */

/**
 * One line of the summary table.
 * @typedef {object} Row
 * @property {string} measure
 * @property {string} value
 * @property {string} [baseline]   same-run baseline, with what it is
 * @property {string} [ratio]
 * @property {string} [target]
 * @property {'met' | 'missed' | 'info' | 'skipped' | 'error'} verdict
 */

/**
 * A detail table.
 * @typedef {object} Table
 * @property {string} title
 * @property {string[]} columns
 * @property {(string | number | null)[][]} rows
 */

/**
 * @typedef {object} ScenarioResult
 * @property {string} id
 * @property {string} title
 * @property {Row[]} rows
 * @property {Table[]} tables
 * @property {string[]} notes
 * @property {Record<string, unknown>} data   everything measured, for the JSON file
 * @property {number} [seconds]
 */

/**
 * Starts a server in a fresh folder under the run's temp dir, with the bench
 * media in its library, runs `fn`, and stops the server whatever happens.
 * @template T
 * @param {BenchContext} ctx
 * @param {{workers?: number, maxSessions?: number, env?: Record<string, string>}} opts
 * @param {(server: import('./server.mjs').Offcast) => Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function withServer(ctx, opts, fn) {
  const dir = await mkdtemp(path.join(ctx.tmp, 'server-'));
  const server = await startOffcast({ dir, ...opts });
  try {
    for (const file of [ctx.media.opusPath, ctx.media.videoPath]) {
      const to = path.join(server.mediaRoot, path.basename(file));
      await link(file, to).catch(() => copyFile(file, to));
    }
    return await fn(server);
  } catch (err) {
    // A failure is far easier to read with the server's own last words.
    const ended = server.exited();
    const e = /** @type {Error} */ (err);
    const why = `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
    throw new Error(`${why}${ended === null ? '' : ` — the server exited (${ended})`}; server log: ${server.logTail().slice(-600) || '(empty)'}`, {
      cause: err,
    });
  } finally {
    await server.stop();
  }
}

/** @param {number | null | undefined} v @param {number} [digits] */
export function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return '∞';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits);
}

/** @param {number | null | undefined} v */
export function ms(v) {
  return v === null || v === undefined ? '–' : `${fmt(v)} ms`;
}

/** @param {number} bytes */
export function mib(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** @param {number | null | undefined} a @param {number | null | undefined} b */
export function ratio(a, b) {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}
